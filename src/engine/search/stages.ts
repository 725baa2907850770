/**
 * The inter-operator pass (Alpa, Zheng et al. OSDI 2022, §5.2): cut a chain of layers into contiguous pipeline
 * stages so that the slowest stage is as fast as possible while every stage fits its memory. Exact dynamic
 * programming over (stages used, layers covered): O(parts × n²) checks.
 */
export interface StageSplit {
  /** [from, to) of each stage. */
  bounds: [number, number][];
  /** Time of the slowest stage. */
  slowest: number;
}

/**
 * Splits layers 0…n−1 (per-layer times `time`) into `parts` non-empty contiguous stages minimizing the largest
 * stage time, subject to `fits(stage, from, to)`; undefined when no split fits.
 */
export function splitStages(
  time: readonly number[],
  parts: number,
  fits: (stage: number, from: number, to: number) => boolean,
): StageSplit | undefined {
  const n = time.length;
  if (parts < 1 || parts > n) return undefined;
  const prefix = [0];
  for (const t of time) prefix.push(prefix[prefix.length - 1] + t);
  const span = (from: number, to: number) => prefix[to] - prefix[from];
  // best[k][i]: the smallest slowest-stage time covering layers [0, i) with stages 0…k−1; from[k][i]: its last cut.
  const best = Array.from({ length: parts + 1 }, () => new Float64Array(n + 1).fill(Infinity));
  const cut = Array.from({ length: parts + 1 }, () => new Int32Array(n + 1).fill(-1));
  best[0][0] = 0;
  for (let k = 1; k <= parts; k++) {
    // Stage k−1 ends at i; at least one layer for each stage before and after.
    for (let i = k; i <= n - (parts - k); i++) {
      for (let j = k - 1; j < i; j++) {
        const before = best[k - 1][j];
        if (before === Infinity) continue;
        const t = Math.max(before, span(j, i));
        if (t < best[k][i] && fits(k - 1, j, i)) {
          best[k][i] = t;
          cut[k][i] = j;
        }
      }
    }
  }
  if (best[parts][n] === Infinity) return undefined;
  const bounds: [number, number][] = [];
  for (let k = parts, i = n; k > 0; k--) {
    const j = cut[k][i];
    bounds.unshift([j, i]);
    i = j;
  }
  return { bounds, slowest: best[parts][n] };
}
