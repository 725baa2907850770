import { globMatch } from '../glob';
import { formatFor } from '../plan/plan';
import { parseFormat } from '../quant/formats';
import type { QuantReport } from '../quant/run';

/**
 * A plan's precision on the real weights: the mixed-precision assignment the plan's rules give, its
 * bytes and its estimated error, and the error-budget warnings located at the rule that chose a format.
 */
export interface AssignmentReport {
  /** Bytes of the measured weights under the assignment, and under the plan's default (bf16 when none). */
  weightBytes: number;
  defaultBytes: number;
  /**
   * Estimated SQNR at the model's output: each layer's weight-quantization noise, relative to its
   * signal, is taken as independent and carried to the output with unit gain, so the relative noise
   * powers add: 1/SQNR_out = Σ 1/SQNR_layer (a first-order estimate; calibrate against a real run).
   */
  outputSqnrDb: number | null;
  layers: { name: string; format: string; bitsPerWeight: number; parameters: number; sqnrDb: number | null }[];
}

/**
 * How per-layer quantization errors combine into the error at the model's output: the one place that
 * says so (the plan check, the planner's heatmap and the optimizer's error budget all call it). Additive
 * by contract — the output's relative noise is a sum of per-layer terms — so the optimizer can treat the
 * error budget as a knapsack constraint; a calibrated model (per-layer gains, issue 16) keeps that form.
 */
export interface OutputErrorModel {
  /** The relative noise power a layer adds at the output for its weight SQNR (null: exact, adds none). */
  layerNoise(layer: string, sqnrDb: number | null): number;
  /** The output's SQNR (dB) from the layers' terms; null when they add no noise. */
  outputSqnrDb(noises: readonly number[]): number | null;
  /** The largest sum of layer terms whose output SQNR is still at least `db`. */
  noiseBudget(db: number): number;
}

/**
 * First-order: each layer's weight-quantization noise, relative to its signal, is independent and reaches
 * the output with unit gain, so the relative noise powers add: 1/SQNR_out = Σ 1/SQNR_layer.
 */
export const FIRST_ORDER_ERROR: OutputErrorModel = {
  layerNoise: (_layer, sqnrDb) => (sqnrDb === null ? 0 : 10 ** (-sqnrDb / 10)),
  outputSqnrDb(noises) {
    const total = noises.reduce((a, b) => a + b, 0);
    return total > 0 ? -10 * Math.log10(total) : null;
  },
  noiseBudget: (db) => 10 ** (-db / 10),
};

/** The model in use (swap here when it is calibrated). */
export const OUTPUT_ERROR: OutputErrorModel = FIRST_ORDER_ERROR;

/** Combines a quant report (which measured every format the plan uses) into the plan's mixed-precision assignment. */
export function assignmentReport(
  report: QuantReport,
  precision: { default?: string; rules?: { match: string; format: string }[] } | undefined,
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
    const sq = l.noise === 0 || l.signal === 0 ? null : 10 * Math.log10(l.signal / l.noise);
    return { name: key.split('|')[0], format: l.format, bitsPerWeight: l.bits, parameters: l.params, sqnrDb: sq };
  });
  return {
    weightBytes: Math.ceil(weightBytes),
    defaultBytes: Math.ceil(defaultBytes),
    outputSqnrDb: OUTPUT_ERROR.outputSqnrDb(layers.map((l) => OUTPUT_ERROR.layerNoise(l.name, l.sqnrDb))),
    layers,
  };
}

/**
 * Warnings for a plan whose precision gives a layer an estimated SQNR under the plan's error budget
 * (precision.errorBudgetDb), located at the rule (or the default) that chose the format.
 */
export function budgetIssues(
  precision: { default?: string; rules?: { match: string; format: string }[]; errorBudgetDb?: number } | undefined,
  a: AssignmentReport,
): { path: (string | number)[]; message: string }[] {
  const budget = precision?.errorBudgetDb;
  if (budget === undefined) return [];
  const byRule = new Map<number, { format: string; layers: string[]; worst: number }>();
  for (const l of a.layers) {
    if (l.sqnrDb === null || l.sqnrDb >= budget) continue;
    // The rule that chose this layer's format: the last one matching the layer, else the default (-1).
    let rule = -1;
    (precision?.rules ?? []).forEach((r, i) => {
      if (globMatch(r.match, l.name) && parseFormat(r.format)?.name === l.format) rule = i;
    });
    const e = byRule.get(rule) ?? { format: l.format, layers: [], worst: Infinity };
    e.layers.push(`${l.name} ${l.sqnrDb.toFixed(1)} dB`);
    e.worst = Math.min(e.worst, l.sqnrDb);
    byRule.set(rule, e);
  }
  return [...byRule].map(([rule, e]) => ({
    path: rule >= 0 ? ['precision', 'rules', rule, 'format'] : ['precision', 'default'],
    message: `${rule >= 0 ? `precision.rules[${rule}]` : 'precision.default'}: ${e.format} is estimated under the ${budget} dB error budget on ${e.layers.length} layer(s): ${e.layers.slice(0, 4).join(', ')}${e.layers.length > 4 ? ', …' : ''} (weight SQNR, measured on the model's weights)`,
  }));
}
