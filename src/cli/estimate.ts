import { formatEstimate } from '../engine/report/estimate-text';
import { estimatePlanFile } from '../node/plan-file';
import { json, needFile, out, type Command } from './command';

export const estimate: Command = {
  name: 'estimate',
  usage: `estimate <plan.json> [--json]                      memory per GPU, step time, communication, pipeline bubble`,
  options: {},
  async run(positional, values) {
    const file = needFile(positional, 'estimate', 'a plan file');
    const report = await estimatePlanFile(file);
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
      });
    } else out(formatEstimate(file, report));
    return 0;
  },
};
