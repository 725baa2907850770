import { OUTPUT_ERROR } from '../check/precision';
import { parseFormat } from '../quant/formats';
import { quantizationError } from '../quant/quantize';

/**
 * Per-layer precision as a multiple-choice knapsack: each layer takes one format; the layers' error terms
 * (OUTPUT_ERROR, additive by contract) must stay within the output's error budget; the sum of the layers'
 * costs (step time or bytes) is minimized. Solved exactly by dynamic programming over Pareto sets
 * (Nemhauser & Ullmann 1969): after each layer keep every partial assignment no other beats on both cost and
 * error. A dropped assignment is beaten by a kept one on both, and stays beaten whatever the remaining layers
 * add (both sums grow by the same amounts), so the optimum survives; the tests compare it with exhaustive
 * enumeration.
 */
export interface LayerChoice {
  format: string;
  /** What the objective adds up: seconds or bytes. */
  cost: number;
  /** The layer's error term (OUTPUT_ERROR.layerNoise). */
  noise: number;
}

export interface KnapsackLayer {
  name: string;
  choices: LayerChoice[];
}

export interface KnapsackPoint {
  cost: number;
  noise: number;
  /** Index of the chosen choice per layer. */
  picks: number[];
}

/**
 * Every Pareto-optimal assignment (cost ascending, noise descending) whose total noise is within `maxNoise`.
 * `limit` caps the set kept per layer (exactness holds while it is not reached; `truncated` says when it was).
 */
export function paretoAssignments(
  layers: readonly KnapsackLayer[],
  maxNoise = Infinity,
  limit = 200_000,
): { points: KnapsackPoint[]; truncated: boolean } {
  // Each state: cost, noise, the layer's pick and the index of its predecessor in the previous frontier.
  let frontier: { cost: number; noise: number; pick: number; prev: number }[] = [
    { cost: 0, noise: 0, pick: -1, prev: -1 },
  ];
  const history: { pick: number; prev: number }[][] = [];
  let truncated = false;
  for (const layer of layers) {
    const next: { cost: number; noise: number; pick: number; prev: number }[] = [];
    frontier.forEach((st, i) => {
      layer.choices.forEach((c, k) => {
        const noise = st.noise + c.noise;
        if (noise <= maxNoise) next.push({ cost: st.cost + c.cost, noise, pick: k, prev: i });
      });
    });
    // Keep the lower-left staircase: by cost ascending (then noise), each kept point strictly quieter than the last.
    next.sort((a, b) => a.cost - b.cost || a.noise - b.noise);
    const kept: typeof next = [];
    for (const s of next) if (!kept.length || s.noise < kept[kept.length - 1].noise) kept.push(s);
    if (kept.length > limit) {
      truncated = true;
      kept.length = limit;
    }
    history.push(kept.map((s) => ({ pick: s.pick, prev: s.prev })));
    frontier = kept;
  }
  const points = frontier.map((s, i) => {
    const picks = new Array<number>(layers.length);
    for (let l = layers.length - 1, j = i; l >= 0; l--) {
      picks[l] = history[l][j].pick;
      j = history[l][j].prev;
    }
    return { cost: s.cost, noise: s.noise, picks };
  });
  return { points, truncated };
}

/** The cheapest assignment within the noise budget (undefined when none is). */
export function cheapestWithin(layers: readonly KnapsackLayer[], maxNoise: number): KnapsackPoint | undefined {
  return paretoAssignments(layers, maxNoise).points[0];
}

const typical = new Map<string, number | null>();

/**
 * A format's typical weight SQNR, for plans that name only an architecture: the engine's own quantizer on a
 * fixed 256 × 1024 matrix of standard normal weights (seeded, so the same every run). Real weights have heavier
 * tails than a Gaussian, so formats without fine scales (per-tensor int8) do worse on them than this says.
 */
export function typicalSqnrDb(format: string): number | null {
  const key = format.toLowerCase();
  if (typical.has(key)) return typical.get(key)!;
  const f = parseFormat(key);
  if (!f) throw new Error(`unknown format '${format}'`);
  const rows = 256;
  const cols = 1024;
  const x = new Float32Array(rows * cols);
  let seed = 0x2545f491;
  const uniform = () => {
    // xorshift32
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return ((seed >>> 0) + 0.5) / 2 ** 32;
  };
  for (let i = 0; i < x.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    x[i] = r * Math.cos(t);
    x[i + 1] = r * Math.sin(t);
  }
  const m = quantizationError(x, rows, cols, f);
  const db = Number.isFinite(m.sqnrDb) ? m.sqnrDb : null;
  typical.set(key, db);
  return db;
}

/** The error term of a layer in a format at a measured (or typical) SQNR. */
export const layerNoise = (layer: string, sqnrDb: number | null): number => OUTPUT_ERROR.layerNoise(layer, sqnrDb);
