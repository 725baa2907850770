import { promises as fsp } from 'fs';
import {
  assignmentReport,
  outputErrorModel,
  type AssignmentReport,
  type LocalNoise,
  type Predicted,
} from '../engine/check/precision';
import { InputError } from '../engine/errors';
import type { ObserverName } from '../engine/quant/observers';
import { parseFormat } from '../engine/quant/formats';
import type { QuantReport } from '../engine/quant/run';
import type { Plan } from '../engine/plan/plan';
import { calibrateSites, type ActivationSiteRange } from './calibrate';
import {
  compareOutputs,
  exportQuantizedFile,
  tempExportPath,
  type ExportFileResult,
  type OutputComparison,
} from './quant-export';
import { quantFile } from './quant-file';
import { activationSensitivity, cachedCalibration, calibrateModel, type SensitivityReport } from './sensitivity';
import { formatFor } from '../engine/plan/plan';

/**
 * A plan's precision on a model, end to end: the weights' error per format (quant), each layer's
 * sensitivity (how much of its noise reaches the output), the calibrated prediction of the output
 * SQNR beside the first-order one, and — when asked — the exported model and what onnxruntime
 * measures when it runs it against the original. `layerplan quant --plan` and VS Code's
 * *Export Quantized Model* both call this.
 */
export interface QuantPlanResult {
  report: QuantReport;
  assignment: AssignmentReport;
  predicted: Predicted;
  activations?: { format: string; observer: ObserverName; sites: ActivationSiteRange[] };
  export?: ExportFileResult;
  endToEnd?: OutputComparison;
}

export interface QuantPlanOptions {
  /** Write the quantized model here. */
  exportTo?: string;
  /** Run it against the original (exports to a temporary file when exportTo is not given). */
  measure?: boolean;
  blocked?: 'matmulnbits' | 'dequantize';
  externalData?: boolean;
  /** Samples (input_<i>.pb sets) or generated inputs: batches and symbolic dims. */
  inputs?: string;
  batches?: number;
  bindings?: Record<string, number>;
  logits?: string;
  /** Skip the sensitivity runs (first-order prediction). */
  firstOrder?: boolean;
  sample?: number;
  onProgress?: (stage: string, done: number, total: number, name?: string) => void;
  cancelled?: () => boolean;
}

const OBSERVER_OF: Record<string, ObserverName> = {
  minmax: 'minmax',
  'moving-average': 'ema',
  ema: 'ema',
  percentile: 'percentile',
  mse: 'mse',
  entropy: 'entropy',
};

/** The formats a plan's precision uses. */
export function planFormats(precision: Plan['precision'], extra: string[] = []): string[] {
  return [...new Set([precision?.default ?? 'bf16', ...(precision?.rules ?? []).map((r) => r.format), ...extra])];
}

/** Models up to this size are calibrated whenever a prediction is asked for (plan checks, the planner); larger ones when asked explicitly. */
export const AUTO_CALIBRATE_BYTES = 64 * 2 ** 20;

const siteCache = new Map<
  string,
  Promise<{ sites: ActivationSiteRange[]; gains?: { tensor: string; gain: number }[] }>
>();

export interface PredictOptions {
  inputs?: string;
  batches?: number;
  bindings?: Record<string, number>;
  /** Skip the sensitivity runs (first-order prediction). */
  firstOrder?: boolean;
  /** 'always' runs the calibration; 'cached' uses one only if it was run already (large models in the editor). */
  calibrate?: 'always' | 'cached';
  onProgress?: (stage: string, done: number, total: number, name?: string) => void;
  cancelled?: () => boolean;
}

/**
 * The prediction for a plan's precision on a model whose weights `report` measured: the assignment
 * through the calibrated error model (check/precision.ts) when the model's sensitivities can be
 * measured, first-order otherwise (and `predicted.note` says why). Activation quantization (W8A8)
 * adds one term per quantized tensor. Calibrations are cached per model file.
 */
export async function predictPlan(
  file: string,
  precision: Plan['precision'],
  report: QuantReport,
  options: PredictOptions = {},
): Promise<{ assignment: AssignmentReport; predicted: Predicted; activations?: QuantPlanResult['activations'] }> {
  const onnx = /\.onnx$/i.test(file);
  const progress = options.onProgress;
  const run = { inputs: options.inputs, batches: options.batches, bindings: options.bindings };
  let sensitivity: SensitivityReport | undefined;
  let local: LocalNoise[] | undefined;
  let note: string | undefined;
  if (!onnx) note = 'sensitivities are measured by running the model (ONNX only)';
  else if (options.firstOrder) note = 'first-order requested';
  else {
    try {
      const c =
        options.calibrate === 'cached'
          ? await cachedCalibration(file, run)
          : await calibrateModel(file, {
              ...run,
              onProgress: progress && ((d, n, name) => progress('sensitivity', d, n, name)),
              cancelled: options.cancelled,
            });
      if (c) {
        sensitivity = c.report;
        local = await c.localNoise((t, layer) => formatFor(precision, t, layer));
      } else {
        note =
          'the model is too large to calibrate on every check: run Export Quantized Model or layerplan quant --plan';
      }
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      note = e.problem;
    }
  }
  let activations: QuantPlanResult['activations'];
  const act = precision?.activations;
  if (act?.format) {
    const f = parseFormat(act.format);
    if (!f || f.element.kind !== 'int' || (f.element as { bits: number }).bits !== 8) {
      throw new InputError(
        file,
        `activations in ${act.format}: the export quantizes activations to 8-bit integers (int8-tensor)`,
      );
    }
    if (!onnx) throw new InputError(file, 'activation calibration runs the model: ONNX only');
    const observer = OBSERVER_OF[act.observer ?? 'minmax'] ?? 'minmax';
    const stat = await fsp.stat(file);
    const key = JSON.stringify([file, stat.size, stat.mtimeMs, observer, run, !!sensitivity]);
    let p = siteCache.get(key);
    if (!p) {
      p = (async () => {
        progress?.('calibration', 0, 1);
        const c = await calibrateSites(file, observer, run);
        progress?.('calibration', 1, 1);
        const gains = sensitivity
          ? await activationSensitivity(file, c.sites, {
              ...run,
              onProgress: progress && ((d, n, name) => progress('activation sensitivity', d, n, name)),
              cancelled: options.cancelled,
            })
          : undefined;
        return { sites: c.sites, gains };
      })();
      if (siteCache.size > 8) siteCache.clear();
      siteCache.set(key, p);
      p.catch(() => siteCache.delete(key));
    }
    const { sites, gains } = await p;
    activations = { format: act.format, observer, sites };
    if (sensitivity && gains) sensitivity = { ...sensitivity, sites: gains };
  }
  const model = outputErrorModel(sensitivity, local);
  const assignment = assignmentReport(
    report,
    precision,
    model,
    activations?.sites.map((s) => ({ tensor: s.tensor, layer: s.layer, sqnrDb: s.sqnrDb })),
  );
  const predicted: Predicted = {
    outputSqnrDb: assignment.outputSqnrDb,
    firstOrderSqnrDb: assignment.firstOrderSqnrDb,
    errorModel: model.kind,
    ...(note ? { note } : {}),
    ...(sensitivity
      ? {
          sensitivity: {
            probeDb: sensitivity.probeDb,
            batches: sensitivity.batches,
            generatedInputs: sensitivity.generatedInputs,
            ...(sensitivity.sampled ? { sampled: sensitivity.sampled } : {}),
            layers: sensitivity.layers.map((l) => ({ name: l.name, gain: l.gain })),
          },
        }
      : {}),
  };
  return { assignment, predicted, ...(activations ? { activations } : {}) };
}

export async function quantPlan(
  file: string,
  precision: Plan['precision'],
  options: QuantPlanOptions = {},
  measuredReport?: QuantReport,
): Promise<QuantPlanResult> {
  const onnx = /\.onnx$/i.test(file);
  if ((options.exportTo || options.measure) && !onnx) {
    throw new InputError(file, 'only ONNX models can be exported and run (onnxruntime); this is not an .onnx file');
  }
  const progress = options.onProgress;
  const report =
    measuredReport ??
    (await quantFile(file, {
      formats: planFormats(precision),
      sample: options.sample,
      onProgress: progress && ((d, n, name) => progress('weights', d, n, name)),
    }));
  const run = { inputs: options.inputs, batches: options.batches, bindings: options.bindings };
  const { assignment, predicted, activations } = await predictPlan(file, precision, report, {
    ...run,
    firstOrder: options.firstOrder,
    onProgress: progress,
    cancelled: options.cancelled,
  });
  const result: QuantPlanResult = { report, assignment, predicted, ...(activations ? { activations } : {}) };
  if (!options.exportTo && !options.measure) return result;
  const temp = options.exportTo ? undefined : tempExportPath(file);
  try {
    const out = options.exportTo ?? temp!.file;
    result.export = await exportQuantizedFile(file, out, {
      precision,
      blocked: options.blocked,
      externalData: options.externalData,
      activations: activations?.sites.map((s) => ({
        tensor: s.tensor,
        consumers: s.consumers,
        min: s.min,
        max: s.max,
        format: activations!.format,
      })),
      onProgress: progress && ((d, n, name) => progress('export', d, n, name)),
      cancelled: options.cancelled,
    });
    if (temp) result.export.file = '(temporary)';
    if (options.measure) {
      result.endToEnd = await compareOutputs(file, out, {
        ...run,
        logits: options.logits,
        onProgress: progress && ((d, n) => progress('measure', d, n)),
        cancelled: options.cancelled,
      });
    }
  } finally {
    temp?.dispose();
  }
  return result;
}
