import { UsageError, intOption, json, needFile, out, type Command } from './command';

export const verify: Command = {
  name: 'verify',
  usage: `verify <model> --tensor <name> --format <f> [--json] [--batch N] [--seed N] [--repeats N] [--inputs dir]
                                                     run the quantized layer's WebGPU kernel on the real
                                                     weight (Dawn; SwiftShader where no GPU is): kernel vs
                                                     CPU reference, output error vs the prediction;
                                                     --inputs runs it on the activations your samples
                                                     (input_<i>.pb sets) produce, via onnxruntime
                                                     (exit 0 pass, 1 fail, 3 no adapter: CPU reference only)`,
  options: {
    tensor: { type: 'string' },
    format: { type: 'string' },
    batch: { type: 'string' },
    seed: { type: 'string' },
    repeats: { type: 'string' },
    inputs: { type: 'string' },
  },
  async run(positional, values) {
    const { formatVerify } = require('../engine/report/verify-text') as typeof import('../engine/report/verify-text');
    const { verifyFile } = require('../node/verify-file') as typeof import('../node/verify-file');
    const file = needFile(positional, 'verify', 'a model file');
    if (!values.tensor || !values.format) throw new UsageError('verify needs --tensor <name> and --format <format>');
    const report = await verifyFile(file, {
      tensor: values.tensor as string,
      format: values.format as string,
      batch: intOption(values, 'batch', 1, 64),
      seed: intOption(values, 'seed', 1, 2 ** 32 - 1),
      repeats: intOption(values, 'repeats', 0, 1000),
      inputs: values.inputs as string | undefined,
    });
    if (values.json) json(report);
    else out(formatVerify(file, report));
    // 0 verified, 1 failed, 3 no adapter: only the CPU reference ran (docs/ARCHITECTURE.md; never a pass).
    return report.outcome === 'fallback' ? 3 : report.pass ? 0 : 1;
  },
};
