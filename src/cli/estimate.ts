import type { CostReport } from '../engine/cost/estimate';
import { json, needFile, out, type Command } from './command';
import { LAUNCH_OPTIONS, LAUNCH_USAGE, launchOptions } from './launch-options';

export const estimate: Command = {
  name: 'estimate',
  usage: `estimate <plan.json | launch config> [--json] [--gpu id] [--nodes N] [--gpus-per-node N] [--model f]
                                                     memory per GPU, step time, communication, pipeline bubble of a
                                                     plan, or of the plan a Megatron-LM script, a DeepSpeed config or
                                                     a torchtitan TOML describes;
                                                     ${LAUNCH_USAGE}`,
  options: { ...LAUNCH_OPTIONS },
  async run(positional, values) {
    const { formatEstimate } =
      require('../engine/report/estimate-text') as typeof import('../engine/report/estimate-text');
    const { estimateLaunchFile, launchKindOf } = require('../node/launch-file') as typeof import('../node/launch-file');
    const { estimatePlanFile, readTextFile } = require('../node/plan-file') as typeof import('../node/plan-file');
    const file = needFile(positional, 'estimate', 'a plan file or a launch configuration');
    let report: CostReport;
    let imported: { version: string; notes: string[]; plan: unknown } | undefined;
    if (!/\.plan\.json$/i.test(file) && launchKindOf(file, await readTextFile(file, 'file'))) {
      const r = await estimateLaunchFile(file, launchOptions(values));
      report = r.report;
      imported = { version: r.version, notes: r.notes, plan: r.plan };
    } else report = await estimatePlanFile(file);
    if (values.json) {
      const { timeline, ...rest } = report;
      json({
        ...rest,
        timeline: timeline.map((e) => [
          e.stage,
          e.microBatch,
          e.chunk,
          e.pass === 'forward' ? 'F' : 'B',
          e.start,
          e.end,
        ]),
        ...(imported ? { imported } : {}),
      });
    } else {
      out(formatEstimate(file, report));
      if (imported) {
        out(`\nread as a plan with the options of ${imported.version}\n`);
        for (const n of imported.notes) out(`note: ${n}\n`);
      }
    }
    return 0;
  },
};
