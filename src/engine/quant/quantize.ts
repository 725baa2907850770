import { outlierCount, parseFormat, type NumberFormat } from './formats';
import { ensureMemory, intKernels, kernelLayout } from './wasm/int-kernel';
import { E2M1, E2M3, E3M2, E4M3FN, E5M2, roundHalfEven, toHalf, type MiniFloat } from './numeric';

/**
 * Quantize → dequantize of a weight matrix laid out [rows, cols] with `cols` the reduction axis
 * (contiguous). Rows are output channels: per-channel scales are per row, groups run along a row.
 * The result is what the kernel would compute with: the error metrics compare it with the input.
 *
 * Exact llama.cpp semantics for q4_0, q4_1, q5_0, q5_1 and q8_0 (ggml-quants.c reference
 * quantizers). The k-quants use their block layouts and bit budgets with a direct (absmax / min-max)
 * scale choice; llama.cpp refines its scales with a search, so its error is a little lower.
 */
const MINI: Record<string, MiniFloat> = { e4m3: E4M3FN, e5m2: E5M2, e2m3: E2M3, e3m2: E3M2, e2m1: E2M1 };

// Powers of two by exponent (−300 … 300): exact, and much faster than Math.pow in hot loops.
const POW2 = new Float64Array(601).map((_, i) => 2 ** (i - 300));
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * roundToMiniFloat for hot loops: the exponent comes from the float32 bits instead of Math.log2.
 * Saturates to ±maxFinite (the quantizers never produce infinities).
 */
function roundMini(x: number, man: number, minExp: number, maxFinite: number): number {
  const a = x < 0 ? -x : x;
  if (!(a <= maxFinite)) return Number.isNaN(x) ? NaN : x < 0 ? -maxFinite : maxFinite;
  F32[0] = a;
  let e = ((U32[0] >>> 23) & 0xff) - 127;
  if (e < minExp) e = minExp;
  const q = a * POW2[300 + man - e];
  let r = Math.round(q);
  if (r - q === 0.5 && r % 2 === 1) r--;
  let v = r * POW2[300 + e - man];
  if (v > maxFinite) v = maxFinite;
  return x < 0 ? -v : v;
}

/** fp16 rounding of a (finite, in-range) scale, on the fast path. */
const half = (v: number) => roundMini(v, 10, -14, 65504);

/**
 * Rounds every element of t = fround(x·inv) to the minifloat grid (ties to even, saturating), times
 * s, into y[lo, hi). Normal values round on their float32 bits (drop 23 − man mantissa bits); the
 * few below the format's smallest normal take roundMini.
 */
function miniRange(
  x: Float32Array,
  y: Float32Array,
  lo: number,
  hi: number,
  f: MiniFloat,
  inv: number,
  s: number,
): void {
  const man = f.man;
  const minExp = 1 - f.bias;
  const max = f.maxFinite;
  const drop = 23 - man;
  const half = (1 << (drop - 1)) - 1;
  const mask = ~((1 << drop) - 1);
  const minBiased = minExp + 127;
  for (let k = lo; k < hi; k++) {
    F32[0] = x[k] * inv;
    const b = U32[0];
    const e = (b >>> 23) & 0xff;
    let v: number;
    if (e < minBiased) v = roundMini(F32[0], man, minExp, max);
    else {
      U32[0] = (b + half + ((b >>> drop) & 1)) & mask;
      v = F32[0];
      if (v > max) v = max;
      else if (v < -max) v = -max;
    }
    y[k] = v * s;
  }
}
/** NF4 levels (Dettmers et al. 2023, QLoRA, Appendix E): quantiles of N(0, 1) normalized to [-1, 1]. */
export const NF4_LEVELS = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

export interface QuantOptions {
  /** Search the clipping ratio that minimizes MSE per scale block (instead of absmax). */
  clip?: boolean;
  /**
   * The mean square of each input channel's activations (from calibration samples): `-perm` sorts
   * and `+o<P>` picks channels by it instead of by the weights' own column magnitudes.
   */
  channelWeights?: ArrayLike<number>;
}

/**
 * What a quantizer chose, for packing the real bits (pack.ts): per scale level (innermost first),
 * the stored scale values and the minimums or zero points beside them, indexed block by block in
 * row-major order (row r, block g of a row: r·⌈cols/block⌉ + g; per-row levels by r; per-tensor 0;
 * 2-D blocks of R rows: ⌊r/R⌋·⌈cols/block⌉ + g). Statistical formats add what they store besides.
 */
export interface ScaleSink {
  scales: number[][];
  mins: number[][];
  /** kmeans<B>: each row's 2^B centroids (fp16 values, ascending), row after row. */
  codebook?: number[];
  /** -perm: stored position j of every row holds input channel perm[j]; scale blocks run over stored positions. */
  perm?: number[];
  /**
   * +o<P>: the outlier input channels (ascending), the fp16 value added back per row and channel
   * (row-major, rows × count), and the dense part's decoded value there (what its codes hold).
   */
  outliers?: { cols: number[]; values: number[]; dense: number[] };
}

const CLIP_RATIOS = [1, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5];

/** y = quantize-dequantize(x) for one format (into `out` when given, to reuse one buffer across formats). */
export function quantizeDequantize(
  x: Float32Array,
  rows: number,
  cols: number,
  format: NumberFormat | string,
  options: QuantOptions = {},
  out?: Float32Array,
  sink?: ScaleSink,
): Float32Array {
  const f = typeof format === 'string' ? parseFormat(format) : format;
  if (!f) throw new Error(`unknown format ${String(format)}`);
  const y = out && out.length === x.length ? out : new Float32Array(x.length);
  const name = f.name;
  if (f.base) statistical(x, y, rows, cols, f, options, sink);
  else if (name === 'fp32') y.set(x);
  else if (name === 'bf16') bf16(x, y);
  else if (name === 'fp16') fp16(x, y);
  else if (name === 'fp8-e4m3' || name === 'fp8-e5m2') {
    const mf = name === 'fp8-e4m3' ? E4M3FN : E5M2;
    // The per-tensor scale is stored in fp32: round it there so that the kernel reads what y used.
    const s = Math.fround(absmax(x, 0, x.length) / mf.maxFinite) || 1;
    if (sink) sink.scales[0][0] = s;
    miniRange(x, y, 0, x.length, mf, 1 / s, s);
  } else if (name === 'fp8-e4m3-b128') blockFp8(x, y, rows, cols, f.levels[0].block, f.levels[0].blockRows ?? 1, sink);
  else if (f.element.kind === 'codebook') kmeans(x, y, rows, cols, f.element.bits, sink);
  else if (f.decodeOnly) throw new Error(`${name} is decoded from GGUF files; Layerplan has no quantizer for it`);
  else if (name.startsWith('mx')) mx(x, y, rows, cols, f, sink);
  else if (name === 'nvfp4') nvfp4(x, y, rows, cols, sink);
  else if (name.startsWith('nf4')) {
    blocks(rows, cols, f.levels[0].block, (lo, hi, i) => nf4Block(x, y, lo, hi, i, sink));
  } else if (/^q[458]_[01]$/.test(name)) blocks(rows, cols, 32, (lo, hi, i) => ggufLegacy(x, y, lo, hi, name, i, sink));
  else if (/^q[2-6]_k$/.test(name)) kQuant(x, y, rows, cols, name, sink);
  else if (f.element.kind === 'int') intFormat(x, y, rows, cols, f, options, sink);
  else throw new Error(`no quantizer for ${name}`);
  return y;
}

/**
 * Channel order by importance, largest first (ties: lower index first, so the order is deterministic):
 * `score` per input channel.
 */
function byImportance(score: Float64Array): number[] {
  return Array.from(score.keys()).sort((a, b) => score[b] - score[a] || a - b);
}

/**
 * The statistical formats (`-perm`, `+o<P>`): the outlier input channels leave the matrix (kept in
 * fp16, the dense part sees zeros there), the remaining channels are sorted by magnitude so that
 * channels of similar size share a group, and the positional base format quantizes the result.
 * Importance: the calibration activations' mean square per channel when given (GPTQ's act-order,
 * LLM.int8's outlier features), else the weights' own columns (Σw² to sort, max|w| for outliers).
 */
function statistical(
  x: Float32Array,
  y: Float32Array,
  rows: number,
  cols: number,
  f: NumberFormat,
  options: QuantOptions,
  sink?: ScaleSink,
): void {
  const base = f.base!;
  const act = options.channelWeights;
  if (act && act.length !== cols) throw new Error(`${act.length} channel weights for ${cols} input channels`);
  const n = outlierCount(f, cols);
  let src = x;
  let outCols: number[] = [];
  if (n) {
    const score = new Float64Array(cols);
    if (act) for (let c = 0; c < cols; c++) score[c] = act[c];
    else {
      for (let r = 0; r < rows; r++) {
        const o = r * cols;
        for (let c = 0; c < cols; c++) {
          const a = Math.abs(x[o + c]);
          if (a > score[c]) score[c] = a;
        }
      }
    }
    outCols = byImportance(score)
      .slice(0, n)
      .sort((a, b) => a - b);
    src = x.slice();
    for (let r = 0; r < rows; r++) for (const c of outCols) src[r * cols + c] = 0;
  }
  let perm: number[] | undefined;
  if (f.permute) {
    perm = channelPermutation(src, rows, cols, act, outCols);
    src = gatherColumns(src, rows, cols, perm);
    if (sink) sink.perm = perm;
  }
  const yb = perm ? new Float32Array(x.length) : y;
  quantizeDequantize(src, rows, cols, base, { clip: options.clip }, yb, sink);
  if (perm) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let j = 0; j < cols; j++) y[o + perm[j]] = yb[o + j];
    }
  }
  if (n) {
    // fp16 residuals over what the dense part decodes to there (zero for most formats): y = dense + v.
    const values: number[] = new Array(rows * n);
    const dense: number[] = new Array(rows * n);
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < n; k++) {
        const i = r * cols + outCols[k];
        const d = y[i];
        const v = toHalf(x[i] - d);
        values[r * n + k] = v;
        dense[r * n + k] = d;
        y[i] = d + v;
      }
    }
    if (sink) sink.outliers = { cols: outCols, values, dense };
  }
}

/**
 * -perm's order: input channels by Σ_r w² (or the activations' mean square), largest first; the
 * outlier channels (zeros in the dense part) go last, out of the way of real groups.
 */
function channelPermutation(
  x: Float32Array,
  rows: number,
  cols: number,
  act: ArrayLike<number> | undefined,
  outCols: number[],
): number[] {
  const mag = new Float64Array(cols);
  if (act) for (let c = 0; c < cols; c++) mag[c] = act[c];
  else {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) mag[c] += x[o + c] * x[o + c];
    }
  }
  for (const c of outCols) mag[c] = -1;
  return byImportance(mag);
}

/** x with its columns in `perm`'s order: column j of the result is column perm[j] of x. */
function gatherColumns(x: Float32Array, rows: number, cols: number, perm: number[]): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) out[o + j] = x[o + perm[j]];
  }
  return out;
}

/** DeepSeek-V3's fp8 weights: E4M3 with an fp32 scale absmax / 448 per block of R rows × B columns. */
function blockFp8(
  x: Float32Array,
  y: Float32Array,
  rows: number,
  cols: number,
  B: number,
  R: number,
  sink?: ScaleSink,
): void {
  const perRow = Math.ceil(cols / B);
  for (let r0 = 0, br = 0; r0 < rows; r0 += R, br++) {
    const r1 = Math.min(rows, r0 + R);
    for (let g = 0; g < perRow; g++) {
      const c0 = g * B;
      const c1 = Math.min(cols, c0 + B);
      let a = 0;
      for (let r = r0; r < r1; r++) a = Math.max(a, absmax(x, r * cols + c0, r * cols + c1));
      // Stored in fp32: round it there so that the kernel reads what y used.
      const s = Math.fround(a / E4M3FN.maxFinite) || 1;
      if (sink) sink.scales[0][br * perRow + g] = s;
      for (let r = r0; r < r1; r++) miniRange(x, y, r * cols + c0, r * cols + c1, E4M3FN, 1 / s, s);
    }
  }
}

/**
 * Sorts n float32 values (x[o … o + n)) with their positions: an LSD radix sort on the float bits
 * mapped to unsigned order (3 passes of 11 bits), O(n) per row instead of a comparison sort.
 * Writes the sorted values to `sorted` and their positions (0 … n − 1) to `index`.
 */
function radixSortRow(
  x: Float32Array,
  o: number,
  n: number,
  sorted: Float32Array,
  index: Uint32Array,
  scratch: { keys: Uint32Array; keys2: Uint32Array; index2: Uint32Array; count: Uint32Array },
): void {
  const xb = new Uint32Array(x.buffer, x.byteOffset + o * 4, n);
  const count = scratch.count;
  let ka = scratch.keys;
  let kb = scratch.keys2;
  let ia = index;
  let ib = scratch.index2;
  for (let i = 0; i < n; i++) {
    const b = xb[i];
    // Negative floats: all bits flipped (larger magnitude sorts first); positive: the sign bit set.
    ka[i] = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    ia[i] = i;
  }
  for (let shift = 0; shift < 32; shift += 11) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[(ka[i] >>> shift) & 0x7ff]++;
    let sum = 0;
    for (let d = 0; d < 2048; d++) {
      const c = count[d];
      count[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const k = ka[i];
      const at = count[(k >>> shift) & 0x7ff]++;
      kb[at] = k;
      ib[at] = ia[i];
    }
    const tk = ka;
    ka = kb;
    kb = tk;
    const ti = ia;
    ia = ib;
    ib = ti;
  }
  // After three passes the positions are in scratch.index2 (ia): copy them to `index`.
  for (let i = 0; i < n; i++) {
    const j = ia[i];
    index[i] = j;
    sorted[i] = x[o + j];
  }
}

/**
 * kmeans<B>: per row, 2^B centroids by Lloyd's algorithm in one dimension, seeded at the row's
 * quantiles (deterministic: the same row gives the same codebook). On the sorted row each step is
 * a binary search per boundary and a prefix-sum mean per cluster; the final assignment fills the
 * sorted ranges. The centroids are stored in fp16.
 */
function kmeans(x: Float32Array, y: Float32Array, rows: number, cols: number, bits: number, sink?: ScaleSink): void {
  const K = 2 ** bits;
  const sorted = new Float32Array(cols);
  const index = new Uint32Array(cols);
  const scratch = {
    keys: new Uint32Array(cols),
    keys2: new Uint32Array(cols),
    index2: new Uint32Array(cols),
    count: new Uint32Array(2048),
  };
  const prefix = new Float64Array(cols + 1);
  const c = new Float64Array(K);
  const book: number[] | undefined = sink ? (sink.codebook = []) : undefined;
  // First index of the sorted row whose value is above v.
  const upper = (v: number) => {
    let lo = 0;
    let hi = cols;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (sorted[m] <= v) lo = m + 1;
      else hi = m;
    }
    return lo;
  };
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    radixSortRow(x, o, cols, sorted, index, scratch);
    for (let i = 0; i < cols; i++) prefix[i + 1] = prefix[i] + sorted[i];
    for (let k = 0; k < K; k++) c[k] = sorted[Math.min(cols - 1, Math.floor(((k + 0.5) * cols) / K))];
    for (let iter = 0; iter < 50; iter++) {
      let moved = false;
      let start = 0;
      for (let k = 0; k < K; k++) {
        const end = k === K - 1 ? cols : upper((c[k] + c[k + 1]) / 2);
        if (end > start) {
          const m = (prefix[end] - prefix[start]) / (end - start);
          if (m !== c[k]) [c[k], moved] = [m, true];
        }
        start = Math.max(start, end);
      }
      if (!moved) break;
    }
    for (let k = 0; k < K; k++) c[k] = half(c[k]);
    c.sort();
    if (book) for (let k = 0; k < K; k++) book.push(c[k]);
    // Nearest centroid: values up to the midpoint with the next go to the lower one.
    let start = 0;
    for (let k = 0; k < K; k++) {
      const end = k === K - 1 ? cols : Math.max(start, upper((c[k] + c[k + 1]) / 2));
      for (let i = start; i < end; i++) y[o + index[i]] = c[k];
      start = end;
    }
  }
}

/** bf16 round-to-nearest-even on the float32 bits, a whole array at a time. */
function bf16(x: Float32Array, y: Float32Array): void {
  const xb = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const yb = new Uint32Array(y.buffer, y.byteOffset, y.length);
  for (let i = 0; i < x.length; i++) {
    const b = xb[i];
    if ((b & 0x7f800000) === 0x7f800000) yb[i] = b;
    else yb[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  }
}

/**
 * fp16 round-to-nearest-even on the float32 bits: normal halves keep 10 of the 23 mantissa bits;
 * values below the smallest normal half (2^-14) take roundMini; overflow goes to ±infinity as IEEE does.
 */
function fp16(x: Float32Array, y: Float32Array): void {
  const xb = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const yb = new Uint32Array(y.buffer, y.byteOffset, y.length);
  for (let i = 0; i < x.length; i++) {
    const b = xb[i];
    const e = (b >>> 23) & 0xff;
    if (e === 0xff) yb[i] = b;
    else if (e < 113) y[i] = roundMini(x[i], 10, -14, 65504);
    else {
      const r = (b + 0xfff + ((b >>> 13) & 1)) & 0xffffe000;
      // 65520 and above round past the largest half (65504): infinity.
      yb[i] = ((r >>> 23) & 0xff) > 142 ? (b & 0x80000000) | 0x7f800000 : r;
    }
  }
}

function absmax(x: Float32Array, lo: number, hi: number): number {
  let m = 0;
  for (let i = lo; i < hi; i++) {
    const a = Math.abs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

/** Calls fn(lo, hi, index) for each block of `block` elements along each row (a block never spans rows), in row-major order. */
function blocks(rows: number, cols: number, block: number, fn: (lo: number, hi: number, index: number) => void): void {
  let i = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c += block) fn(r * cols + c, r * cols + Math.min(cols, c + block), i++);
  }
}

/** Symmetric or asymmetric integers with a per-tensor / per-row / per-group fp16 scale; optionally a second (int8) level. */
function intFormat(
  x: Float32Array,
  y: Float32Array,
  rows: number,
  cols: number,
  f: NumberFormat,
  options: QuantOptions,
  sink?: ScaleSink,
): void {
  const el = f.element as { bits: number; signed: boolean };
  const level = f.levels[0];
  const asym = level.zeroBits !== undefined;
  const qmax = asym ? 2 ** el.bits - 1 : 2 ** (el.bits - 1) - 1;
  const qmin = asym ? 0 : -(2 ** (el.bits - 1));
  const twoLevel = f.levels.length > 1 && f.levels[1].block === 0;
  const block = level.block === -1 ? x.length : level.block === 0 ? cols : Math.min(level.block, cols);
  const rowsOf = level.block === -1 ? 1 : rows;
  const colsOf = level.block === -1 ? x.length : cols;
  const perRow = Math.ceil(colsOf / block);
  const scales = new Float64Array(rowsOf * perRow);
  const mins = new Float64Array(rowsOf * perRow);
  const multipliers = new Float64Array(twoLevel ? rowsOf * perRow : 0);
  for (let r = 0; r < rowsOf; r++) {
    for (let g = 0; g < perRow; g++) {
      const lo = r * colsOf + g * block;
      const hi = Math.min(r * colsOf + colsOf, lo + block);
      if (asym) {
        let mn = Infinity;
        let mx = -Infinity;
        for (let k = lo; k < hi; k++) {
          const v = x[k];
          if (v < mn) mn = v;
          if (v > mx) mx = v;
        }
        scales[r * perRow + g] = (mx - mn) / qmax || 1;
        mins[r * perRow + g] = mn;
      } else scales[r * perRow + g] = absmax(x, lo, hi) / qmax || 1;
    }
    if (twoLevel) {
      // VS-Quant: an unsigned int8 scale per group under an fp16 scale per row: r = γ · S_q · q.
      let m = 0;
      for (let g = 0; g < perRow; g++) m = Math.max(m, scales[r * perRow + g]);
      const gamma = toHalf(m / 255) || 1;
      if (sink) sink.scales[1][r] = gamma;
      for (let g = 0; g < perRow; g++) {
        multipliers[r * perRow + g] = Math.min(255, Math.max(1, Math.round(scales[r * perRow + g] / gamma)));
        scales[r * perRow + g] = gamma * multipliers[r * perRow + g];
      }
    } else for (let g = 0; g < perRow; g++) scales[r * perRow + g] = half(scales[r * perRow + g]) || 1;
  }
  for (let r = 0; r < rowsOf; r++) {
    for (let g = 0; g < perRow; g++) {
      const i = r * perRow + g;
      const lo = r * colsOf + g * block;
      const hi = Math.min(r * colsOf + colsOf, lo + block);
      let s = scales[i];
      if (options.clip && !twoLevel) {
        let best = Infinity;
        const base = s;
        for (const ratio of CLIP_RATIOS) {
          const cand = toHalf(base * ratio) || base;
          const e = intRange(x, undefined, lo, hi, cand, asym ? mins[i] : 0, asym, qmin, qmax);
          if (e < best) [best, s] = [e, cand];
        }
      }
      if (sink) {
        sink.scales[0][i] = twoLevel ? multipliers[i] : s;
        if (asym) sink.mins[0][i] = zeroPoint(mins[i], s, qmax);
      }
      intRange(x, y, lo, hi, s, asym ? mins[i] : 0, asym, qmin, qmax);
    }
  }
}

/** The integer zero point that puts `min` at the bottom of [0, qmax] (round half to even). */
function zeroPoint(min: number, s: number, qmax: number): number {
  const q0 = -min / s;
  let z = Math.round(q0);
  if (z - q0 === 0.5 && (z & 1) !== 0) z--;
  return z < 0 ? 0 : z > qmax ? qmax : z;
}

/** Quantizes x[lo, hi) with scale s (and zero point from `min`); writes y when given, returns the squared error. */
function intRange(
  x: Float32Array,
  y: Float32Array | undefined,
  lo: number,
  hi: number,
  s: number,
  min: number,
  asym: boolean,
  qmin: number,
  qmax: number,
): number {
  const z = asym ? zeroPoint(min, s, qmax) : 0;
  // float32 arithmetic, as the WebAssembly kernel computes: identical results on both paths.
  const inv = Math.fround(1 / s);
  if (y) {
    for (let k = lo; k < hi; k++) {
      const t = Math.fround(x[k] * inv);
      let q = Math.round(t);
      if (q - t === 0.5 && (q & 1) !== 0) q--;
      q += z;
      q = q < qmin ? qmin : q > qmax ? qmax : q;
      y[k] = (q - z) * s;
    }
    return 0;
  }
  let err = 0;
  for (let k = lo; k < hi; k++) {
    const t = Math.fround(x[k] * inv);
    let q = Math.round(t);
    if (q - t === 0.5 && (q & 1) !== 0) q--;
    q += z;
    q = q < qmin ? qmin : q > qmax ? qmax : q;
    const e = (q - z) * s - x[k];
    err += e * e;
  }
  return err;
}

/**
 * llama.cpp's reference quantizers for the 32-element legacy blocks, in its float32 arithmetic
 * (gguf-py/gguf/quants.py Q4_0 … Q8_0, which follows ggml-quants.c quantize_row_q*_ref): scale,
 * inverse and products rounded to float32 where llama.cpp rounds them. In float64 a value next to a
 * rounding boundary takes the other code; test/fixtures/ggml-quantize.json pins gguf-py's output.
 */
function ggufLegacy(
  x: Float32Array,
  y: Float32Array,
  lo: number,
  hi: number,
  name: string,
  index: number,
  sink?: ScaleSink,
): void {
  const f = Math.fround;
  if (name === 'q8_0') {
    const d = f(absmax(x, lo, hi) / 127);
    const id = d ? f(1 / d) : 0;
    const dh = toHalf(d);
    if (sink) sink.scales[0][index] = dh;
    // roundf: half away from zero
    for (let k = lo; k < hi; k++) {
      const t = f(x[k] * id);
      y[k] = Math.round(Math.abs(t)) * Math.sign(t) * dh;
    }
    return;
  }
  if (name === 'q4_0' || name === 'q5_0') {
    const half = name === 'q4_0' ? 8 : 16;
    let amax = 0;
    let max = 0;
    for (let k = lo; k < hi; k++) if (Math.abs(x[k]) > amax) [amax, max] = [Math.abs(x[k]), x[k]];
    const d = f(max / -half);
    const id = d ? f(1 / d) : 0;
    const dh = toHalf(d);
    if (sink) sink.scales[0][index] = dh;
    for (let k = lo; k < hi; k++) {
      // x·id + half + 0.5 rounded once to float32 (llama.cpp's fused multiply-add; gguf-py computes it so).
      const q = Math.max(0, Math.min(2 * half - 1, Math.trunc(f(x[k] * id + half + 0.5))));
      y[k] = (q - half) * dh;
    }
    return;
  }
  // q4_1, q5_1: scale and minimum
  const levels = name === 'q4_1' ? 15 : 31;
  let mn = Infinity;
  let mx = -Infinity;
  for (let k = lo; k < hi; k++) {
    mn = Math.min(mn, x[k]);
    mx = Math.max(mx, x[k]);
  }
  const d = f(f(mx - mn) / levels);
  const id = d ? f(1 / d) : 0;
  const dh = toHalf(d);
  const mh = toHalf(mn);
  if (sink) [sink.scales[0][index], sink.mins[0][index]] = [dh, mh];
  for (let k = lo; k < hi; k++) {
    const q = Math.min(levels, Math.trunc(f(f(f(x[k] - mn) * id) + 0.5)));
    y[k] = q * dh + mh;
  }
}

const KQ: Record<string, { bits: number; sub: number; scaleBits: number; asym: boolean }> = {
  q2_k: { bits: 2, sub: 16, scaleBits: 4, asym: true },
  q3_k: { bits: 3, sub: 16, scaleBits: 6, asym: false },
  q4_k: { bits: 4, sub: 32, scaleBits: 6, asym: true },
  q5_k: { bits: 5, sub: 32, scaleBits: 6, asym: true },
  q6_k: { bits: 6, sub: 16, scaleBits: 8, asym: false },
};

/** k-quants: super-blocks of 256 with integer sub-block scales (and minimums) under fp16 super-block scales. */
function kQuant(x: Float32Array, y: Float32Array, rows: number, cols: number, name: string, sink?: ScaleSink): void {
  const s = KQ[name];
  const qmax = s.asym ? 2 ** s.bits - 1 : 2 ** (s.bits - 1) - 1;
  const qmin = s.asym ? 0 : -qmax - 1;
  const smax = s.asym || name === 'q3_k' ? 2 ** s.scaleBits - 1 : 2 ** (s.scaleBits - 1) - 1;
  const scales = new Float64Array(256 / s.sub);
  const mins = new Float64Array(256 / s.sub);
  let subIndex = 0;
  blocks(rows, cols, 256, (lo, hi, index) => {
    const nsub = Math.ceil((hi - lo) / s.sub);
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < nsub; j++) {
      const a = lo + j * s.sub;
      const b = Math.min(hi, a + s.sub);
      if (s.asym) {
        let mn = 0;
        let mx = 0;
        for (let k = a; k < b; k++) {
          const v = x[k];
          if (v < mn) mn = v;
          if (v > mx) mx = v;
        }
        scales[j] = (mx - mn) / qmax;
        mins[j] = -mn;
      } else {
        scales[j] = absmax(x, a, b) / qmax;
        mins[j] = 0;
      }
      if (scales[j] > maxScale) maxScale = scales[j];
      if (mins[j] > maxMin) maxMin = mins[j];
    }
    const d = half(maxScale / smax) || 1;
    const dmin = half(maxMin / smax) || 1;
    if (sink) {
      sink.scales[1][index] = d;
      if (s.asym) sink.mins[1][index] = dmin;
    }
    for (let j = 0; j < nsub; j++) {
      const a = lo + j * s.sub;
      const b = Math.min(hi, a + s.sub);
      const sc = Math.min(smax, Math.max(s.asym ? 0 : 1, Math.round(scales[j] / d)));
      const m = s.asym ? Math.min(smax, Math.round(mins[j] / dmin)) : 0;
      if (sink) {
        sink.scales[0][subIndex] = sc;
        if (s.asym) sink.mins[0][subIndex] = m;
      }
      subIndex++;
      const scale = d * sc;
      const min = dmin * m;
      if (!scale) {
        for (let k = a; k < b; k++) y[k] = -min;
        continue;
      }
      const inv = 1 / scale;
      for (let k = a; k < b; k++) {
        let v = Math.round((x[k] + min) * inv);
        v = v < qmin ? qmin : v > qmax ? qmax : v;
        y[k] = v * scale - min;
      }
    }
  });
}

/** OCP Microscaling v1.0: blocks of 32 along a row share an E8M0 scale 2^(floor(log2(absmax)) − emax). */
function mx(x: Float32Array, y: Float32Array, rows: number, cols: number, f: NumberFormat, sink?: ScaleSink): void {
  const el = f.element;
  const isInt = el.kind === 'int';
  const mf = el.kind === 'float' ? MINI[el.name] : undefined;
  const emax = isInt ? 0 : Math.floor(Math.log2(mf!.maxFinite));
  blocks(rows, cols, 32, (lo, hi, index) => {
    const a = absmax(x, lo, hi);
    if (a === 0) {
      if (sink) sink.scales[0][index] = 1;
      for (let k = lo; k < hi; k++) y[k] = 0;
      return;
    }
    F32[0] = a;
    const X = POW2[300 + Math.max(-127, ((U32[0] >>> 23) & 0xff) - 127 - emax)];
    if (sink) sink.scales[0][index] = X;
    if (isInt) {
      // MXINT8: two's complement with an implicit 2^-6, i.e. values q/64 in [-2, 2 - 1/64].
      for (let k = lo; k < hi; k++) y[k] = (Math.min(127, Math.max(-128, roundHalfEven((x[k] / X) * 64))) / 64) * X;
    } else miniRange(x, y, lo, hi, mf!, 1 / X, X);
  });
}

/** NVFP4: E2M1 elements, an E4M3 scale per 16, an fp32 scale per tensor (absmax / (448·6)). */
function nvfp4(x: Float32Array, y: Float32Array, rows: number, cols: number, sink?: ScaleSink): void {
  // The tensor scale is stored in fp32: round it there so that what the kernel reads is what y used.
  const st = Math.fround(absmax(x, 0, x.length) / (448 * 6)) || 1;
  if (sink) sink.scales[1][0] = st;
  blocks(rows, cols, 16, (lo, hi, index) => {
    const sb = roundMini(absmax(x, lo, hi) / 6 / st, E4M3FN.man, 1 - E4M3FN.bias, E4M3FN.maxFinite);
    if (sink) sink.scales[0][index] = sb;
    const s = sb * st;
    if (s) miniRange(x, y, lo, hi, E2M1, 1 / s, s);
    else for (let k = lo; k < hi; k++) y[k] = 0;
  });
}

const NF4_MIDPOINTS = NF4_LEVELS.slice(1).map((v, i) => (v + NF4_LEVELS[i]) / 2);

function nf4Block(x: Float32Array, y: Float32Array, lo: number, hi: number, index: number, sink?: ScaleSink): void {
  const a = toHalf(absmax(x, lo, hi)) || 1;
  if (sink) sink.scales[0][index] = a;
  const inv = 1 / a;
  for (let k = lo; k < hi; k++) {
    const v = x[k] * inv;
    // Binary search over the 15 midpoints between levels: the nearest level in four comparisons.
    let i = 0;
    for (let step = 8; step >= 1; step >>= 1) if (i + step <= 15 && v > NF4_MIDPOINTS[i + step - 1]) i += step;
    y[k] = NF4_LEVELS[i] * a;
  }
}

export interface ErrorMetrics {
  mse: number;
  sqnrDb: number;
  maxAbsError: number;
  cosine: number;
  relFrobenius: number;
  /** Σx² and Σ(x − x̂)², to combine tensors into a parameter-weighted summary. */
  signal: number;
  noise: number;
  count: number;
}

export function errorMetrics(x: Float32Array, y: Float32Array): ErrorMetrics {
  let signal = 0;
  let noise = 0;
  let dot = 0;
  let yy = 0;
  let maxAbs = 0;
  for (let i = 0; i < x.length; i++) {
    const e = y[i] - x[i];
    signal += x[i] * x[i];
    noise += e * e;
    dot += x[i] * y[i];
    yy += y[i] * y[i];
    const a = Math.abs(e);
    if (a > maxAbs) maxAbs = a;
  }
  return metricsFromSums(signal, noise, dot, yy, maxAbs, x.length);
}

/** ErrorMetrics from Σx², Σ(y − x)², Σx·y, Σy² and max|y − x| over n elements (JS loop or SIMD kernel alike). */
function metricsFromSums(
  signal: number,
  noise: number,
  dot: number,
  yy: number,
  maxAbs: number,
  n: number,
): ErrorMetrics {
  return {
    mse: noise / n,
    sqnrDb: noise === 0 ? Infinity : 10 * Math.log10(signal / noise),
    maxAbsError: maxAbs,
    cosine: signal && yy ? dot / Math.sqrt(signal * yy) : signal === yy ? 1 : 0,
    relFrobenius: signal ? Math.sqrt(noise / signal) : 0,
    signal,
    noise,
    count: n,
  };
}

/** The error of quantizing x in one format; `scratch` (x.length floats) avoids an allocation per call. */
export function quantizationError(
  x: Float32Array,
  rows: number,
  cols: number,
  format: NumberFormat,
  options: QuantOptions = {},
  scratch?: Float32Array,
): ErrorMetrics {
  if (format.permute && !format.outlierPercent) {
    // The metrics do not depend on the order of the elements: measure the base format on the
    // permuted matrix, on the SIMD kernel where the base has one.
    const perm = channelPermutation(x, rows, cols, options.channelWeights, []);
    const base = format.base!;
    return quantizationError(gatherColumns(x, rows, cols, perm), rows, cols, base, { clip: options.clip }, scratch);
  }
  const simd = intErrorSimd(x, cols, format, options);
  if (simd) return simd;
  const y = quantizeDequantize(x, rows, cols, format, options, scratch);
  return metricsSimd(x, y) ?? errorMetrics(x, y);
}

/**
 * A y buffer inside the kernel's memory (for a pinned tensor x), so the quantizers write where the
 * SIMD metrics read; undefined without the kernel.
 */
export function kernelScratch(x: Float32Array): Float32Array | undefined {
  const k = intKernels();
  if (!k || x.length % 4 !== 0) return undefined;
  const L = kernelLayout(x.length);
  const mem = ensureMemory(k, L.bytes);
  return new Float32Array(mem, L.yOff, x.length);
}

/** errorMetrics on the SIMD kernel when y is the kernel scratch buffer and x is pinned there. */
function metricsSimd(x: Float32Array, y: Float32Array): ErrorMetrics | undefined {
  const k = intKernels();
  const n = x.length;
  if (!k || n % 4 !== 0 || y.buffer !== k.memory.buffer) return undefined;
  const L = kernelLayout(n);
  if (y.byteOffset !== L.yOff) return undefined;
  const mem = k.memory.buffer;
  if (pinned !== x || lastCopied !== x || lastBuffer !== mem) {
    new Float32Array(mem, L.xOff, n).set(x);
    lastCopied = x;
    lastBuffer = mem;
  }
  k.metrics(L.xOff, L.yOff, n, L.outOff);
  const [signal, noise, dot, yy, maxAbs] = new Float64Array(mem, L.outOff, 5);
  return metricsFromSums(signal, noise, dot, yy, maxAbs, n);
}

/**
 * Single-level integer formats on the WebAssembly SIMD kernel (same float32 arithmetic as
 * intRange, so the same quantized values): group ranges, then quantize + metrics in one pass.
 * Returns undefined where the kernel does not apply (odd group sizes, clipping search, no SIMD).
 */
let lastCopied: Float32Array | undefined;
let lastBuffer: ArrayBuffer | undefined;
let pinned: Float32Array | undefined;

/** Declares that `x` will not change until unpinned, so the SIMD kernel may keep its copy between calls. */
export function pinTensor(x: Float32Array | undefined): void {
  pinned = x;
  if (!x) lastCopied = undefined;
}

function intErrorSimd(x: Float32Array, cols: number, f: NumberFormat, options: QuantOptions): ErrorMetrics | undefined {
  if (
    f.base ||
    f.element.kind !== 'int' ||
    f.levels.length !== 1 ||
    options.clip ||
    f.name.startsWith('q') ||
    f.name.startsWith('mx')
  ) {
    return undefined;
  }
  const level = f.levels[0];
  const n = x.length;
  const block = level.block === -1 ? n : level.block === 0 ? cols : level.block;
  if (block % 4 !== 0 || n % block !== 0 || (level.block > 0 && cols % block !== 0)) return undefined;
  const k = intKernels();
  if (!k) return undefined;
  const asym = level.zeroBits !== undefined;
  const bits = f.element.bits;
  const qmax = asym ? 2 ** bits - 1 : 2 ** (bits - 1) - 1;
  const qmin = asym ? 0 : -(2 ** (bits - 1));
  // The kernel sums each group in float32 lanes: split groups into sub-blocks of at most 1,024 (same scale) so the sums stay exact enough.
  let sub = block;
  for (let d = Math.floor(block / 4); d >= 1 && sub > 1024; d--) {
    if (block % (4 * d) === 0 && 4 * d <= 1024) sub = 4 * d;
  }
  const subs = block / sub;
  const groups = n / sub;
  const L = kernelLayout(n);
  const xOff = L.xOff;
  const aOff = L.groupsOff;
  const bOff = aOff + groups * 4;
  const sOff = bOff + groups * 4;
  const iOff = sOff + groups * 4;
  const zOff = iOff + groups * 4;
  const outOff = L.outOff;
  const mem = ensureMemory(k, L.bytes);
  // A sweep pins its tensor (pinTensor): then it is copied into the kernel's memory once for all formats.
  if (pinned !== x || lastCopied !== x || lastBuffer !== mem) {
    new Float32Array(mem, xOff, n).set(x);
    lastCopied = x;
    lastBuffer = mem;
  }
  k.group_range(xOff, n, sub, aOff, bOff, asym ? 1 : 0);
  const A = new Float32Array(mem, aOff, groups);
  const B = new Float32Array(mem, bOff, groups);
  const S = new Float32Array(mem, sOff, groups);
  const I = new Float32Array(mem, iOff, groups);
  const Z = new Float32Array(mem, zOff, groups);
  for (let g = 0; g < groups; g += subs) {
    // The group's range over its sub-blocks.
    let lo = A[g];
    let hi = B[g];
    for (let j = 1; j < subs; j++) {
      lo = Math.min(lo, A[g + j]);
      hi = Math.max(hi, B[g + j]);
    }
    const s = half(asym ? (hi - lo) / qmax || 1 : hi / qmax || 1) || 1;
    const z = asym ? zeroPoint(lo, s, qmax) : 0;
    for (let j = 0; j < subs; j++) {
      S[g + j] = s;
      I[g + j] = Math.fround(1 / s);
      Z[g + j] = z;
    }
  }
  k.quant_error(xOff, 0, n, sub, sOff, iOff, zOff, qmin, qmax, outOff);
  const [signal, noise, dot, yy, maxAbs] = new Float64Array(k.memory.buffer, outOff, 5);
  return metricsFromSums(signal, noise, dot, yy, maxAbs, n);
}
