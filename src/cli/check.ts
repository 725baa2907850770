import { json, needFile, out, type Command } from './command';
import { LAUNCH_OPTIONS, LAUNCH_USAGE, launchOptions } from './launch-options';

export const check: Command = {
  name: 'check',
  usage: `check <file> [--json] [--world-size N] [--gpu id] [--nodes N] [--gpus-per-node N] [--model f]
                                                     diagnostics for a plan, a Hugging Face config.json, a DeepSpeed
                                                     config, a Megatron-LM launch script or a torchtitan TOML (exit 1
                                                     when there are errors);
                                                     ${LAUNCH_USAGE}`,
  options: { ...LAUNCH_OPTIONS },
  async run(positional, values) {
    const { checkAnyFile } = require('../node/launch-file') as typeof import('../node/launch-file');
    const file = needFile(positional, 'check', 'a file');
    const r = await checkAnyFile(file, launchOptions(values));
    const shape = (ds: typeof r.diagnostics) =>
      ds.map(({ severity, message, range, fix, fixes }) => ({
        severity,
        message,
        range,
        ...(fix ? { fix } : {}),
        ...(fixes?.length ? { fixes } : {}),
      }));
    const found = shape(r.diagnostics);
    const related = r.related.map((x) => ({ file: x.file, diagnostics: shape(x.diagnostics) }));
    if (values.json) json({ diagnostics: found, ...(related.length ? { related } : {}) });
    else {
      const print = (f: string, ds: typeof found) => {
        for (const d of ds) {
          const at = `${f}:${d.range.start.line + 1}:${d.range.start.character + 1}`;
          const fixes = [d.fix, ...(d.fixes ?? [])].filter((x) => !!x);
          out(`${at}: ${d.severity}: ${d.message}${fixes.map((x) => `\n  fix: ${x.title}`).join('')}\n`);
        }
      };
      if (!found.length && related.every((x) => !x.diagnostics.length)) out(`${file}: no problems found\n`);
      print(file, found);
      for (const x of related) print(x.file, x.diagnostics);
    }
    const errors = [...found, ...related.flatMap((x) => x.diagnostics)].some((d) => d.severity === 'error');
    return errors ? 1 : 0;
  },
};
