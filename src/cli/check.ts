import { checkFile } from '../node/plan-file';
import { intOption, json, needFile, out, type Command } from './command';

export const check: Command = {
  name: 'check',
  usage: `check <file> [--json] [--world-size N]             diagnostics for a plan, a Hugging Face config.json or a
                                                     DeepSpeed config (exit 1 when there are errors)`,
  options: { 'world-size': { type: 'string' } },
  async run(positional, values) {
    const file = needFile(positional, 'check', 'a file');
    const { diagnostics } = await checkFile(file, { worldSize: intOption(values, 'world-size', 1, 1 << 20) });
    const found = diagnostics.map(({ severity, message, range, fix, fixes }) => ({
      severity,
      message,
      range,
      ...(fix ? { fix } : {}),
      ...(fixes?.length ? { fixes } : {}),
    }));
    if (values.json) json({ diagnostics: found });
    else if (!found.length) out(`${file}: no problems found\n`);
    else {
      for (const d of found) {
        const at = `${file}:${d.range.start.line + 1}:${d.range.start.character + 1}`;
        const fixes = [d.fix, ...(d.fixes ?? [])].filter((f) => !!f);
        out(`${at}: ${d.severity}: ${d.message}${fixes.map((f) => `\n  fix: ${f.title}`).join('')}\n`);
      }
    }
    return found.some((d) => d.severity === 'error') ? 1 : 0;
  },
};
