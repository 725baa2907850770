import { globMatch } from '../glob';
import { formatFor } from '../plan/plan';
import { parseFormat } from '../quant/formats';
import type { QuantReport } from '../quant/run';

/**
 * How per-layer quantization errors combine into the error at the model's output: the one place that
 * says so (the plan check, the planner's heatmap, `quant --plan` and the optimizer's error budget all
 * go through it). Additive: the output's relative noise power is a sum of per-layer terms, so a budget
 * on the output is a knapsack constraint on the layers.
 */
export interface OutputErrorModel {
  /** 'first-order' (unit gains) or 'calibrated' (gains measured on the model). */
  kind: 'first-order' | 'calibrated';
  /**
   * The relative noise power a layer adds at the output: from its weight SQNR (null: exact, adds none),
   * or — calibrated, when the layer's ops were run with that format — from the noise they measured.
   */
  layerNoise(layer: string, sqnrDb: number | null, format?: string): number;
  /** The relative noise power an activation tensor quantized with SQNR `sqnrDb` adds at the output (W8A8). */
  activationNoise(site: { tensor: string; layer: string }, sqnrDb: number | null): number;
  /** The output's SQNR (dB) from the layers' terms; null when they add no noise. */
  outputSqnrDb(noises: readonly number[]): number | null;
  /** The largest sum of layer terms whose output SQNR is still at least `db`. */
  noiseBudget(db: number): number;
  /** The gain of a layer (output noise per unit of its relative weight noise); 1 when first-order. */
  gain(layer: string): number;
}

const relativeNoise = (sqnrDb: number | null) => (sqnrDb === null ? 0 : 10 ** (-sqnrDb / 10));
const sumToDb = (noises: readonly number[]) => {
  const total = noises.reduce((a, b) => a + b, 0);
  return total > 0 ? -10 * Math.log10(total) : null;
};

/**
 * First-order: each layer's weight-quantization noise, relative to its signal, is independent and reaches
 * the output with unit gain, so the relative noise powers add: 1/SQNR_out = Σ 1/SQNR_layer.
 */
export const FIRST_ORDER_ERROR: OutputErrorModel = {
  kind: 'first-order',
  layerNoise: (_layer, sqnrDb) => relativeNoise(sqnrDb),
  activationNoise: (_site, sqnrDb) => relativeNoise(sqnrDb),
  outputSqnrDb: sumToDb,
  noiseBudget: (db) => 10 ** (-db / 10),
  gain: () => 1,
};

/**
 * Each layer's sensitivity, measured on the model (node/sensitivity.ts): `gain` is the output's relative
 * noise power per unit of relative noise power in the layer's weights (probes perturb one weight at a time).
 */
export interface LayerSensitivity {
  layers: { name: string; gain: number }[];
  /** The gain of layers that were not measured (sampled models): the median of the measured ones. */
  defaultGain: number;
  /** Activation tensors probed the same way (W8A8): output noise per unit of relative noise added there. */
  sites?: { tensor: string; gain: number }[];
}

/**
 * A layer's predicted output noise in one format, from runs of its weights' own ops: Σ over its weights of
 * downstream_t · ‖(Ŵ_t − W_t)·X‖² / ‖W_t·X‖² (the noise at the ops' outputs on the model's activations,
 * times how much of such noise reaches the output).
 */
export interface LocalNoise {
  layer: string;
  format: string;
  /** The relative noise power it adds at the output. */
  noise: number;
}

/**
 * Calibrated: 1/SQNR_out = Σ_l local_l(format) where the layer's ops were run in its format, else
 * Σ_l gain_l / SQNR_l (noises stay independent and additive; what first order gets wrong is how much of
 * each layer's noise reaches the output, and which of its weights' errors matter).
 */
export function calibratedError(s: LayerSensitivity, local: readonly LocalNoise[] = []): OutputErrorModel {
  const gains = new Map(s.layers.map((l) => [l.name, l]));
  const measured = new Map(local.map((l) => [`${l.layer}|${l.format}`, l.noise]));
  const gain = (layer: string) => gains.get(layer)?.gain ?? s.defaultGain;
  const sites = new Map((s.sites ?? []).map((x) => [x.tensor, x.gain]));
  return {
    kind: 'calibrated',
    // A site not probed: the gain of the layer that reads it.
    activationNoise: (site, sqnrDb) => (sites.get(site.tensor) ?? gain(site.layer)) * relativeNoise(sqnrDb),
    layerNoise(layer, sqnrDb, format) {
      if (sqnrDb === null) return 0;
      const n = format !== undefined ? measured.get(`${layer}|${format}`) : undefined;
      return n ?? gain(layer) * relativeNoise(sqnrDb);
    },
    outputSqnrDb: sumToDb,
    noiseBudget: (db) => 10 ** (-db / 10),
    gain,
  };
}

/** The model where nothing was measured on the model (architecture plans, the optimizer's fallback). */
export const OUTPUT_ERROR: OutputErrorModel = FIRST_ORDER_ERROR;

/** The model to use: calibrated when the model's sensitivities were measured, first-order otherwise. */
export function outputErrorModel(s?: LayerSensitivity, local?: readonly LocalNoise[]): OutputErrorModel {
  return s ? calibratedError(s, local) : FIRST_ORDER_ERROR;
}

/**
 * A plan's precision on the real weights: the mixed-precision assignment the plan's rules give, its
 * bytes and its estimated error, and the error-budget warnings located at the rule that chose a format.
 */
export interface AssignmentReport {
  /** Bytes of the measured weights under the assignment, and under the plan's default (bf16 when none). */
  weightBytes: number;
  defaultBytes: number;
  /** Estimated SQNR at the model's output, from the error model (calibrated when `errorModel` says so). */
  outputSqnrDb: number | null;
  /** The same with unit gains (1/SQNR_out = Σ 1/SQNR_layer), whatever the error model: how far first order is. */
  firstOrderSqnrDb: number | null;
  errorModel: OutputErrorModel['kind'];
  layers: {
    name: string;
    format: string;
    bitsPerWeight: number;
    parameters: number;
    sqnrDb: number | null;
    /** The layer's gain (1 when first-order) and the output SQNR its noise alone would give. */
    sensitivity: number;
    outputSqnrDb: number | null;
  }[];
  /** Activation quantization terms (W8A8), when the plan quantizes activations: each tensor's 8-bit SQNR and what it gives at the output. */
  activations?: { tensor: string; layer: string; sqnrDb: number | null; outputSqnrDb: number | null }[];
}

/** Combines a quant report (which measured every format the plan uses) into the plan's mixed-precision assignment. */
export function assignmentReport(
  report: QuantReport,
  precision: { default?: string; rules?: { match: string; format: string }[] } | undefined,
  model: OutputErrorModel = FIRST_ORDER_ERROR,
  activations?: { tensor: string; layer: string; sqnrDb: number | null }[],
): AssignmentReport {
  const perLayer = new Map<string, { format: string; bits: number; params: number; signal: number; noise: number }>();
  let weightBytes = 0;
  let defaultBytes = 0;
  const def = parseFormat(precision?.default ?? 'bf16')!;
  for (const t of report.tensors) {
    const name = formatFor(precision, t.name, t.layer);
    const r = t.results.find((x) => x.format === parseFormat(name)?.name);
    if (!r) throw new Error(`the quant report has no '${name}' result for ${t.name}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    weightBytes += (n * r.bitsPerWeight) / 8;
    defaultBytes += (n * def.bitsPerWeight) / 8;
    const key = `${t.layer}|${r.format}`;
    const l = perLayer.get(key) ?? { format: r.format, bits: r.bitsPerWeight, params: 0, signal: 0, noise: 0 };
    // Recover Σx² and Σe² from mse and SQNR (exact formats contribute no noise).
    const noise = r.mse * n;
    l.noise += noise;
    l.signal += r.sqnrDb === null ? 0 : noise * 10 ** (r.sqnrDb / 10);
    l.params += n;
    perLayer.set(key, l);
  }
  const layers = [...perLayer].map(([key, l]) => {
    const name = key.split('|')[0];
    const sq = l.noise === 0 || l.signal === 0 ? null : 10 * Math.log10(l.signal / l.noise);
    return {
      name,
      format: l.format,
      bitsPerWeight: l.bits,
      parameters: l.params,
      sqnrDb: sq,
      sensitivity: model.gain(name),
      outputSqnrDb: model.outputSqnrDb([model.layerNoise(name, sq, l.format)]),
    };
  });
  const acts = activations?.map((a) => ({
    ...a,
    outputSqnrDb: model.outputSqnrDb([model.activationNoise(a, a.sqnrDb)]),
  }));
  const terms = (m: OutputErrorModel) => [
    ...layers.map((l) => m.layerNoise(l.name, l.sqnrDb, l.format)),
    ...(activations ?? []).map((a) => m.activationNoise(a, a.sqnrDb)),
  ];
  return {
    weightBytes: Math.ceil(weightBytes),
    defaultBytes: Math.ceil(defaultBytes),
    outputSqnrDb: model.outputSqnrDb(terms(model)),
    firstOrderSqnrDb: FIRST_ORDER_ERROR.outputSqnrDb(terms(FIRST_ORDER_ERROR)),
    errorModel: model.kind,
    layers,
    ...(acts ? { activations: acts } : {}),
  };
}

/** The prediction `quant --plan` reports (DESIGN.md: predicted{outputSqnrDb, firstOrderSqnrDb}). */
export interface Predicted {
  /** The calibrated prediction (first-order when the sensitivities could not be measured: see `errorModel`). */
  outputSqnrDb: number | null;
  firstOrderSqnrDb: number | null;
  errorModel: 'first-order' | 'calibrated';
  /** Why the prediction is first-order, when it is. */
  note?: string;
  /** The measurement behind a calibrated prediction: the probe's level, the runs, the gains. */
  sensitivity?: {
    probeDb: number;
    batches: number;
    generatedInputs: boolean;
    sampled?: { measured: number; of: number };
    layers: { name: string; gain: number }[];
  };
}

/**
 * Warnings for a plan whose predicted output SQNR (the whole model, calibrated where the model's
 * sensitivities were measured) is under its error budget (precision.errorBudgetDb), one at each rule
 * (or the default, or the activations) whose layers add at least a tenth of the output noise, with
 * its share: where to raise the precision.
 */
export function budgetIssues(
  precision:
    | {
        default?: string;
        rules?: { match: string; format: string }[];
        errorBudgetDb?: number;
      }
    | undefined,
  a: AssignmentReport,
): { path: (string | number)[]; message: string }[] {
  const budget = precision?.errorBudgetDb;
  if (budget === undefined || a.outputSqnrDb === null || a.outputSqnrDb >= budget) return [];
  const noise = (db: number | null) => (db === null ? 0 : 10 ** (-db / 10));
  const total = 10 ** (-a.outputSqnrDb / 10);
  const byRule = new Map<number, { format: string; layers: string[]; share: number }>();
  for (const l of a.layers) {
    if (l.outputSqnrDb === null) continue;
    // The rule that chose this layer's format: the last one matching the layer, else the default (-1).
    let rule = -1;
    (precision?.rules ?? []).forEach((r, i) => {
      if (globMatch(r.match, l.name) && parseFormat(r.format)?.name === l.format) rule = i;
    });
    const e = byRule.get(rule) ?? { format: l.format, layers: [], share: 0 };
    e.layers.push(l.name);
    e.share += noise(l.outputSqnrDb) / total;
    byRule.set(rule, e);
  }
  const acts = (a.activations ?? []).reduce((s, x) => s + noise(x.outputSqnrDb) / total, 0);
  const how = `${a.outputSqnrDb.toFixed(1)} dB (${a.errorModel === 'calibrated' ? `calibrated on the model's per-layer sensitivities; first-order ${a.firstOrderSqnrDb?.toFixed(1)} dB` : 'first-order'})`;
  const under = `the predicted output SQNR ${how} is under the ${budget} dB error budget`;
  const out = [...byRule]
    .filter(([, e]) => e.share >= 0.1)
    .sort((x, y) => y[1].share - x[1].share)
    .map(([rule, e]) => ({
      path: rule >= 0 ? ['precision', 'rules', rule, 'format'] : ['precision', 'default'],
      message: `${rule >= 0 ? `precision.rules[${rule}]` : 'precision.default'}: ${e.format} on ${e.layers.length} layer(s) (${e.layers.slice(0, 4).join(', ')}${e.layers.length > 4 ? ', …' : ''}) adds ${Math.round(e.share * 100)}% of the output noise; ${under}`,
    }));
  if (acts >= 0.1) {
    out.push({
      path: ['precision', 'activations', 'format'],
      message: `precision.activations: quantizing ${a.activations!.length} activation tensor(s) adds ${Math.round(acts * 100)}% of the output noise; ${under}`,
    });
  }
  if (!out.length) out.push({ path: ['precision', 'errorBudgetDb'], message: `precision.errorBudgetDb: ${under}` });
  return out;
}
