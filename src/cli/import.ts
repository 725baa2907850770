import * as fs from 'fs';
import * as path from 'path';
import { InputError } from '../engine/errors';
import { json, needFile, out, type Command } from './command';
import { LAUNCH_OPTIONS, LAUNCH_USAGE, launchOptions } from './launch-options';

export const importCommand: Command = {
  name: 'import',
  usage: `import <launch config> [--json] [--out plan.json] [--gpu id] [--nodes N] [--gpus-per-node N] [--model f]
                                                     the plan a Megatron-LM script (or argument list), a DeepSpeed
                                                     config or a torchtitan TOML describes; --out writes it (model
                                                     paths relative to it);
                                                     ${LAUNCH_USAGE}`,
  options: { ...LAUNCH_OPTIONS, out: { type: 'string' } },
  async run(positional, values) {
    const { planText } = require('../engine/check/launch') as typeof import('../engine/check/launch');
    const { importLaunchFile } = require('../node/launch-file') as typeof import('../node/launch-file');
    const file = needFile(positional, 'import', 'a launch configuration');
    const r = await importLaunchFile(file, launchOptions(values));
    const errors = [{ file: r.file, diagnostics: r.diagnostics }, ...r.related].flatMap((x) =>
      x.diagnostics.filter((d) => d.severity === 'error').map((d) => ({ ...d, file: x.file })),
    );
    if (!r.plan) {
      const e = errors[0];
      throw new InputError(
        e ? `${e.file}:${e.range.start.line + 1}:${e.range.start.character + 1}` : file,
        e?.message ?? r.diagnostics[0]?.message ?? 'no plan could be read from it',
      );
    }
    const plan = { ...r.plan };
    const target = values.out as string | undefined;
    if (target && typeof plan.model === 'string') {
      // plan.model is relative to the launch file; the written plan names it relative to itself.
      const abs = path.resolve(path.dirname(r.file), plan.model);
      plan.model = path
        .relative(path.dirname(path.resolve(target)), abs)
        .split(path.sep)
        .join('/');
    }
    const text = planText({ ...r.imp, plan }, path.basename(file));
    if (target) fs.writeFileSync(target, text);
    if (values.json) {
      json({ plan, version: r.imp.version, notes: r.imp.notes, diagnostics: r.diagnostics, related: r.related });
    } else if (!target) out(text);
    else out(`wrote ${target}\n`);
    for (const e of errors) {
      process.stderr.write(`${e.file}:${e.range.start.line + 1}:${e.range.start.character + 1}: error: ${e.message}\n`);
    }
    return errors.length ? 1 : 0;
  },
};
