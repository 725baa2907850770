import { InputError } from '../engine/errors';
import type { Plan } from '../engine/plan/plan';
import {
  formatActivations,
  formatAssignment,
  formatEndToEnd,
  formatExport,
  formatQuant,
} from '../engine/report/quant-text';
import { UsageError, dimsOption, intOption, json, listOption, needFile, out, type Command } from './command';

export const quant: Command = {
  name: 'quant',
  usage: `quant <model> [--json] [--formats a,b] [--tensors glob] [--clip] [--activations [--inputs dir | --batches N] [--dim k=v]]
        [--plan plan.json [--export out.onnx] [--measure] [--first-order] [--blocked matmulnbits|dequantize]
         [--external-data] [--logits name]] [--sample fraction]
                                                     quantization error of the real weights per format;
                                                     --activations calibrates activations with onnxruntime;
                                                     --plan reports the plan's mixed-precision assignment and its
                                                     predicted output SQNR (calibrated on each layer's measured
                                                     sensitivity; --first-order skips those runs);
                                                     --export writes the plan's precision as an ONNX model;
                                                     --measure runs it against the original with onnxruntime
                                                     (output SQNR, KL divergence and top-1 agreement of logits)
                                                     on --inputs (input_<i>.pb sets) or generated inputs`,
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
    export: { type: 'string' },
    measure: { type: 'boolean' },
    'first-order': { type: 'boolean' },
    blocked: { type: 'string' },
    'external-data': { type: 'boolean' },
    logits: { type: 'string' },
  },
  async run(positional, values) {
    const { assignmentReport } = require('../engine/check/precision') as typeof import('../engine/check/precision');
    const { validatePlan } = require('../engine/plan/plan') as typeof import('../engine/plan/plan');
    const { calibrateFile } = require('../node/calibrate') as typeof import('../node/calibrate');
    const { readTextFile } = require('../node/plan-file') as typeof import('../node/plan-file');
    const { quantFile } = require('../node/quant-file') as typeof import('../node/quant-file');
    const { planFormats, quantPlan } = require('../node/quant-plan') as typeof import('../node/quant-plan');
    const file = needFile(positional, 'quant', 'a model file');
    const sample = values.sample === undefined ? undefined : Number(values.sample);
    if (sample !== undefined && !(sample > 0 && sample <= 1)) {
      throw new UsageError('--sample expects a fraction of rows in (0, 1]');
    }
    const planFile = values.plan as string | undefined;
    const exportTo = values.export as string | undefined;
    if ((exportTo || values.measure || values['first-order']) && !planFile) {
      throw new UsageError('--export, --measure and --first-order need --plan');
    }
    const blocked = values.blocked as string | undefined;
    if (blocked !== undefined && blocked !== 'matmulnbits' && blocked !== 'dequantize') {
      throw new UsageError('--blocked expects matmulnbits or dequantize');
    }
    const progress = !values.json && process.stderr.isTTY;
    const say = (text: string) => progress && process.stderr.write(`\r\x1b[K${text}`);
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
      formats = planFormats(precision, formats ?? []);
    }
    const batches = intOption(values, 'batches', 1, 10000);
    const bindings = dimsOption(values);
    const report = await quantFile(file, {
      formats,
      tensors: values.tensors as string | undefined,
      clip: !!values.clip,
      sample,
      onProgress: progress ? (d, n, name) => say(`quantizing ${d}/${n} ${name}`) : undefined,
    });
    say('');
    const activations = values.activations
      ? await calibrateFile(file, { batches, bindings, inputs: values.inputs as string | undefined })
      : undefined;
    const planned = planFile
      ? values.tensors
        ? { assignment: assignmentReport(report, precision) }
        : await quantPlan(
            file,
            precision,
            {
              exportTo,
              measure: !!values.measure,
              firstOrder: !!values['first-order'],
              blocked: blocked as 'matmulnbits' | 'dequantize' | undefined,
              externalData: values['external-data'] ? true : undefined,
              inputs: values.inputs as string | undefined,
              batches,
              bindings,
              logits: values.logits as string | undefined,
              onProgress: progress ? (stage, d, n, name) => say(`${stage} ${d}/${n} ${name ?? ''}`) : undefined,
            },
            report,
          )
      : undefined;
    say('');
    const p = planned && 'predicted' in planned ? planned : undefined;
    if (values.json) {
      json({
        ...report,
        ...(activations ? { activations } : {}),
        ...(planned ? { assignment: planned.assignment } : {}),
        ...(p
          ? {
              predicted: p.predicted,
              ...(p.activations ? { activationSites: p.activations } : {}),
              ...(p.export ? { export: p.export } : {}),
              ...(p.endToEnd ? { endToEnd: p.endToEnd } : {}),
            }
          : {}),
      });
    } else {
      out(
        formatQuant(file, report) +
          (activations ? formatActivations(activations) : '') +
          (planned ? formatAssignment(planFile!, planned.assignment, p?.predicted) : '') +
          (p?.export ? formatExport(p.export) : '') +
          (p?.endToEnd ? formatEndToEnd(p.endToEnd, p.predicted) : ''),
      );
    }
    return 0;
  },
};
