import { dimsOption, json, needFile, out, type Command } from './command';

export const inspect: Command = {
  name: 'inspect',
  usage: `inspect <model> [--json] [--dim name=value ...]   graph summary: ops, parameters, dtypes, layers
                                                     (--dim binds a symbolic dim, e.g. --dim batch=8)`,
  options: { dim: { type: 'string', multiple: true } },
  async run(positional, values) {
    const { formatInspect } =
      require('../engine/report/inspect-text') as typeof import('../engine/report/inspect-text');
    const { inspectFile } = require('../node/inspect-file') as typeof import('../node/inspect-file');
    const file = needFile(positional, 'inspect', 'a model file');
    const report = await inspectFile(file, dimsOption(values));
    if (values.json) json(report);
    else out(formatInspect(file, report));
    return 0;
  },
};
