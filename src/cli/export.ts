import * as fs from 'fs';
import * as path from 'path';
import { InputError } from '../engine/errors';
import { UsageError, json, needFile, out, type Command } from './command';

export const exportCommand: Command = {
  name: 'export',
  usage: `export <plan.json> --to <target> [--json] [--out dir]
                                                     launch configuration for a framework or runtime
                                                     (megatron, deepspeed, torchtitan, llama.cpp, vllm,
                                                     accelerate); --out writes its files into dir`,
  options: { to: { type: 'string' }, out: { type: 'string' } },
  async run(positional, values) {
    const { EXPORT_TARGETS, exportPlan } = require('../engine/export') as typeof import('../engine/export');
    const { checkPlanFile } = require('../node/plan-file') as typeof import('../node/plan-file');
    const file = needFile(positional, 'export', 'a plan file');
    const to = values.to as string | undefined;
    if (!to) {
      throw new UsageError(
        `export needs --to <target> (${EXPORT_TARGETS.map((t) => t.name).join(', ') || 'no targets yet'})`,
      );
    }
    const { plan, workload, issues } = await checkPlanFile(file);
    const bad = issues.find((i) => i.severity === 'error');
    if (!plan || !workload || bad) {
      const at = bad ? `${file}:${bad.range.start.line + 1}:${bad.range.start.character + 1}` : file;
      throw new InputError(at, bad?.message ?? 'invalid plan');
    }
    const modelPath = typeof plan.model === 'string' ? path.resolve(path.dirname(file), plan.model) : undefined;
    const dir = values.out as string | undefined;
    // The launch files name the model relative to where they are written (beside the plan unless --out).
    const modelRef = modelPath
      ? path
          .relative(path.resolve(dir ?? path.dirname(file)), modelPath)
          .split(path.sep)
          .join('/')
      : undefined;
    const result = exportPlan(plan, to, { planFile: file, modelPath, workload, modelRef });
    if (dir) {
      fs.mkdirSync(dir, { recursive: true });
      for (const [name, content] of Object.entries(result.files)) fs.writeFileSync(path.join(dir, name), content);
    }
    if (values.json) json(result);
    else {
      out(`# ${result.to} (options checked against ${result.version})\n${result.command}\n`);
      for (const [name, content] of Object.entries(result.files)) {
        out(
          dir ? `\n# wrote ${path.join(dir, name)}\n` : `\n# ${name}\n${content}${content.endsWith('\n') ? '' : '\n'}`,
        );
      }
      for (const n of result.notes) out(`\nnote: ${n}`);
      if (result.notes.length) out('\n');
    }
    return 0;
  },
};
