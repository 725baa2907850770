import { parseFormat, type NumberFormat } from './formats';
import { E2M1, E2M3, E3M2, E4M3FN, E5M2, roundHalfEven, roundToMiniFloat, toBf16, toHalf, type MiniFloat } from './numeric';

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

/** NF4 levels (Dettmers et al. 2023, QLoRA, Appendix E): quantiles of N(0, 1) normalized to [-1, 1]. */
export const NF4_LEVELS = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

export interface QuantOptions {
  /** Search the clipping ratio that minimizes MSE per scale block (instead of absmax). */
  clip?: boolean;
}

const CLIP_RATIOS = [1, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5];

/** y = quantize-dequantize(x) for one format. */
export function quantizeDequantize(x: Float32Array, rows: number, cols: number, format: NumberFormat | string, options: QuantOptions = {}): Float32Array {
  const f = typeof format === 'string' ? parseFormat(format) : format;
  if (!f) throw new Error(`unknown format ${String(format)}`);
  const y = new Float32Array(x.length);
  const name = f.name;
  if (name === 'fp32') y.set(x);
  else if (name === 'bf16') for (let i = 0; i < x.length; i++) y[i] = toBf16(x[i]);
  else if (name === 'fp16') for (let i = 0; i < x.length; i++) y[i] = toHalf(x[i]);
  else if (name === 'fp8-e4m3' || name === 'fp8-e5m2') {
    const mf = name === 'fp8-e4m3' ? E4M3FN : E5M2;
    const s = absmax(x, 0, x.length) / mf.maxFinite || 1;
    for (let i = 0; i < x.length; i++) y[i] = roundToMiniFloat(x[i] / s, mf) * s;
  } else if (name.startsWith('mx')) mx(x, y, f);
  else if (name === 'nvfp4') nvfp4(x, y);
  else if (name.startsWith('nf4')) blocks(x, y, rows, cols, f.levels[0].block, (lo, hi) => nf4Block(x, y, lo, hi));
  else if (/^q[458]_[01]$/.test(name)) blocks(x, y, rows, cols, 32, (lo, hi) => ggufLegacy(x, y, lo, hi, name));
  else if (/^q[2-6]_k$/.test(name)) kQuant(x, y, rows, cols, name);
  else if (f.element.kind === 'int') intFormat(x, y, rows, cols, f, options);
  else throw new Error(`no quantizer for ${name}`);
  return y;
}

function absmax(x: Float32Array, lo: number, hi: number): number {
  let m = 0;
  for (let i = lo; i < hi; i++) {
    const a = Math.abs(x[i]);
    if (a > m) m = a;
  }
  return m;
}

/** Calls fn(lo, hi) for each block of `block` elements along each row (a block never spans rows). */
function blocks(x: Float32Array, y: Float32Array, rows: number, cols: number, block: number, fn: (lo: number, hi: number) => void): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c += block) fn(r * cols + c, r * cols + Math.min(cols, c + block));
}

/** Symmetric or asymmetric integers with a per-tensor / per-row / per-group fp16 scale; optionally a second (int8) level. */
function intFormat(x: Float32Array, y: Float32Array, rows: number, cols: number, f: NumberFormat, options: QuantOptions): void {
  const el = f.element as { bits: number; signed: boolean };
  const level = f.levels[0];
  const asym = level.zeroBits !== undefined;
  const qmax = asym ? 2 ** el.bits - 1 : 2 ** (el.bits - 1) - 1;
  const qmin = asym ? 0 : -(2 ** (el.bits - 1));
  const twoLevel = f.levels.length > 1 && f.levels[1].block === 0;
  const ranges: [number, number][] = [];
  if (level.block === -1) ranges.push([0, x.length]);
  else if (level.block === 0) for (let r = 0; r < rows; r++) ranges.push([r * cols, (r + 1) * cols]);
  else blocks(x, y, rows, cols, level.block, (lo, hi) => ranges.push([lo, hi]));
  const scales = new Float64Array(ranges.length);
  const mins = new Float64Array(ranges.length);
  ranges.forEach(([lo, hi], i) => {
    if (asym) {
      let mn = Infinity;
      let mx = -Infinity;
      for (let k = lo; k < hi; k++) {
        mn = Math.min(mn, x[k]);
        mx = Math.max(mx, x[k]);
      }
      scales[i] = (mx - mn) / qmax || 1;
      mins[i] = mn;
    } else scales[i] = absmax(x, lo, hi) / qmax || 1;
  });
  if (twoLevel) {
    // VS-Quant: an unsigned int8 scale per group under an fp16 scale per row: r = γ · S_q · q.
    const perRow = Math.ceil(cols / level.block);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let g = 0; g < perRow; g++) m = Math.max(m, scales[r * perRow + g]);
      const gamma = toHalf(m / 255) || 1;
      for (let g = 0; g < perRow; g++) scales[r * perRow + g] = gamma * Math.min(255, Math.max(1, Math.round(scales[r * perRow + g] / gamma)));
    }
  } else for (let i = 0; i < scales.length; i++) scales[i] = toHalf(scales[i]) || 1;
  ranges.forEach(([lo, hi], i) => {
    const apply = (s: number, out: Float32Array | undefined): number => {
      const z = asym ? Math.min(qmax, Math.max(0, roundHalfEven(-mins[i] / s))) : 0;
      let err = 0;
      for (let k = lo; k < hi; k++) {
        const q = Math.min(qmax, Math.max(qmin, roundHalfEven(x[k] / s) + z));
        const v = (q - z) * s;
        if (out) out[k] = v;
        else err += (v - x[k]) ** 2;
      }
      return err;
    };
    let s = scales[i];
    if (options.clip && !twoLevel) {
      let best = Infinity;
      for (const ratio of CLIP_RATIOS) {
        const cand = toHalf(scales[i] * ratio) || scales[i];
        const e = apply(cand, undefined);
        if (e < best) [best, s] = [e, cand];
      }
    }
    apply(s, y);
  });
}

/** llama.cpp's reference quantizers (ggml-quants.c quantize_row_q*_ref) for the 32-element legacy blocks. */
function ggufLegacy(x: Float32Array, y: Float32Array, lo: number, hi: number, name: string): void {
  if (name === 'q8_0') {
    const d = absmax(x, lo, hi) / 127;
    const id = d ? 1 / d : 0;
    const dh = toHalf(d);
    for (let k = lo; k < hi; k++) y[k] = Math.round(Math.abs(x[k] * id)) * Math.sign(x[k] * id) * dh;
    return;
  }
  if (name === 'q4_0' || name === 'q5_0') {
    const half = name === 'q4_0' ? 8 : 16;
    let amax = 0;
    let max = 0;
    for (let k = lo; k < hi; k++) if (Math.abs(x[k]) > amax) [amax, max] = [Math.abs(x[k]), x[k]];
    const d = max / -half;
    const id = d ? 1 / d : 0;
    const dh = toHalf(d);
    for (let k = lo; k < hi; k++) {
      const q = Math.min(2 * half - 1, Math.trunc(Math.fround(x[k] * id) + half + 0.5));
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
  const d = (mx - mn) / levels;
  const id = d ? 1 / d : 0;
  const dh = toHalf(d);
  const mh = toHalf(mn);
  for (let k = lo; k < hi; k++) {
    const q = Math.min(levels, Math.trunc((x[k] - mn) * id + 0.5));
    y[k] = q * dh + mh;
  }
}

/** k-quants: super-blocks of 256 with integer sub-block scales (and minimums) under fp16 super-block scales. */
function kQuant(x: Float32Array, y: Float32Array, rows: number, cols: number, name: string): void {
  const spec: Record<string, { bits: number; sub: number; scaleBits: number; asym: boolean }> = {
    q2_k: { bits: 2, sub: 16, scaleBits: 4, asym: true }, q3_k: { bits: 3, sub: 16, scaleBits: 6, asym: false },
    q4_k: { bits: 4, sub: 32, scaleBits: 6, asym: true }, q5_k: { bits: 5, sub: 32, scaleBits: 6, asym: true },
    q6_k: { bits: 6, sub: 16, scaleBits: 8, asym: false },
  };
  const s = spec[name];
  const qmax = s.asym ? 2 ** s.bits - 1 : 2 ** (s.bits - 1) - 1;
  const smax = s.asym || name === 'q3_k' ? 2 ** s.scaleBits - 1 : 2 ** (s.scaleBits - 1) - 1;
  blocks(x, y, rows, cols, 256, (lo, hi) => {
    const subs: [number, number][] = [];
    for (let k = lo; k < hi; k += s.sub) subs.push([k, Math.min(hi, k + s.sub)]);
    const sc = subs.map(([a, b]) => {
      if (!s.asym) return { scale: absmax(x, a, b) / qmax, min: 0 };
      let mn = 0;
      let mx = 0;
      for (let k = a; k < b; k++) {
        mn = Math.min(mn, x[k]);
        mx = Math.max(mx, x[k]);
      }
      return { scale: (mx - mn) / qmax, min: -mn };
    });
    const d = toHalf(Math.max(...sc.map((v) => v.scale)) / smax) || 1;
    const dmin = toHalf(Math.max(...sc.map((v) => v.min)) / smax) || 1;
    subs.forEach(([a, b], i) => {
      const scale = d * Math.min(smax, Math.max(s.asym ? 0 : 1, Math.round(sc[i].scale / d)));
      const min = s.asym ? dmin * Math.min(smax, Math.round(sc[i].min / dmin)) : 0;
      for (let k = a; k < b; k++) {
        const q = scale ? Math.min(qmax, Math.max(s.asym ? 0 : -qmax - 1, Math.round((x[k] + min) / scale))) : 0;
        y[k] = q * scale - min;
      }
    });
  });
}

/** OCP Microscaling v1.0: blocks of 32 along a row share an E8M0 scale 2^(floor(log2(absmax)) − emax). */
function mx(x: Float32Array, y: Float32Array, f: NumberFormat): void {
  const el = f.element;
  const isInt = el.kind === 'int';
  const mf = el.kind === 'float' ? MINI[el.name] : undefined;
  const emax = isInt ? 0 : Math.floor(Math.log2(mf!.maxFinite));
  for (let lo = 0; lo < x.length; lo += 32) {
    const hi = Math.min(x.length, lo + 32);
    const a = absmax(x, lo, hi);
    if (a === 0) {
      for (let k = lo; k < hi; k++) y[k] = 0;
      continue;
    }
    const X = 2 ** Math.max(-127, Math.floor(Math.log2(a)) - emax);
    for (let k = lo; k < hi; k++) {
      const v = x[k] / X;
      // MXINT8: two's complement with an implicit 2^-6, i.e. values q/64 in [-2, 2 - 1/64].
      y[k] = (isInt ? Math.min(127, Math.max(-128, roundHalfEven(v * 64))) / 64 : roundToMiniFloat(v, mf!)) * X;
    }
  }
}

/** NVFP4: E2M1 elements, an E4M3 scale per 16, an fp32 scale per tensor (absmax / (448·6)). */
function nvfp4(x: Float32Array, y: Float32Array): void {
  const st = absmax(x, 0, x.length) / (448 * 6) || 1;
  for (let lo = 0; lo < x.length; lo += 16) {
    const hi = Math.min(x.length, lo + 16);
    const sb = roundToMiniFloat(absmax(x, lo, hi) / 6 / st, E4M3FN);
    const s = sb * st;
    for (let k = lo; k < hi; k++) y[k] = s ? roundToMiniFloat(x[k] / s, E2M1) * s : 0;
  }
}

function nf4Block(x: Float32Array, y: Float32Array, lo: number, hi: number): void {
  const a = toHalf(absmax(x, lo, hi)) || 1;
  for (let k = lo; k < hi; k++) {
    const v = x[k] / a;
    let best = 0;
    let bestD = Infinity;
    for (let i = 0; i < 16; i++) {
      const d = Math.abs(v - NF4_LEVELS[i]);
      if (d < bestD) [best, bestD] = [i, d];
    }
    y[k] = NF4_LEVELS[best] * a;
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
  return {
    mse: noise / x.length,
    sqnrDb: noise === 0 ? Infinity : 10 * Math.log10(signal / noise),
    maxAbsError: maxAbs,
    cosine: signal && yy ? dot / Math.sqrt(signal * yy) : signal === yy ? 1 : 0,
    relFrobenius: signal ? Math.sqrt(noise / signal) : 0,
    signal,
    noise,
    count: x.length,
  };
}
