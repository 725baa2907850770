import { assignmentReport } from '../engine/check/precision';
import { InputError } from '../engine/errors';
import { validatePlan, type Plan } from '../engine/plan/plan';
import { formatActivations, formatAssignment, formatQuant } from '../engine/report/quant-text';
import { calibrateFile } from '../node/calibrate';
import { readTextFile } from '../node/plan-file';
import { quantFile } from '../node/quant-file';
import { UsageError, dimsOption, intOption, json, listOption, needFile, out, type Command } from './command';

export const quant: Command = {
  name: 'quant',
  usage: `quant <model> [--json] [--formats a,b] [--tensors glob] [--clip] [--activations [--inputs dir | --batches N] [--dim k=v]]
        [--plan plan.json] [--sample fraction]       quantization error of the real weights per format;
                                                     --activations calibrates activations with onnxruntime;
                                                     --plan reports the plan's mixed-precision assignment`,
  options: {
    formats: { type: 'string' },
    tensors: { type: 'string' },
    clip: { type: 'boolean' },
    activations: { type: 'boolean' },
    inputs: { type: 'string' },
    batches: { type: 'string' },
    dim: { type: 'string', multiple: true },
    plan: { type: 'string' },
    sample: { type: 'string' },
  },
  async run(positional, values) {
    const file = needFile(positional, 'quant', 'a model file');
    const sample = values.sample === undefined ? undefined : Number(values.sample);
    if (sample !== undefined && !(sample > 0 && sample <= 1)) {
      throw new UsageError('--sample expects a fraction of rows in (0, 1]');
    }
    const planFile = values.plan as string | undefined;
    const progress = !values.json && process.stderr.isTTY;
    let precision: Plan['precision'];
    let formats = listOption(values, 'formats');
    if (planFile) {
      const { plan, issues } = validatePlan(await readTextFile(planFile, 'plan'));
      const bad = issues.find((x) => x.severity === 'error');
      if (bad || !plan) {
        throw new InputError(
          `${planFile}:${(bad?.range.start.line ?? 0) + 1}:${(bad?.range.start.character ?? 0) + 1}`,
          bad?.message ?? 'invalid plan',
        );
      }
      precision = plan.precision;
      formats = [
        ...new Set([
          precision?.default ?? 'bf16',
          ...(precision?.rules ?? []).map((r) => r.format),
          ...(formats ?? []),
        ]),
      ];
    }
    const report = await quantFile(file, {
      formats,
      tensors: values.tensors as string | undefined,
      clip: !!values.clip,
      sample,
      onProgress: progress ? (d, n, name) => process.stderr.write(`\r\x1b[Kquantizing ${d}/${n} ${name}`) : undefined,
    });
    if (progress) process.stderr.write('\r\x1b[K');
    const activations = values.activations
      ? await calibrateFile(file, {
          batches: intOption(values, 'batches', 1, 10000),
          bindings: dimsOption(values),
          inputs: values.inputs as string | undefined,
        })
      : undefined;
    const assignment = planFile ? assignmentReport(report, precision) : undefined;
    if (values.json) {
      json({ ...report, ...(activations ? { activations } : {}), ...(assignment ? { assignment } : {}) });
    } else {
      out(
        formatQuant(file, report) +
          (activations ? formatActivations(activations) : '') +
          (assignment ? formatAssignment(planFile!, assignment) : ''),
      );
    }
    return 0;
  },
};
