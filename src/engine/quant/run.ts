import type { ByteSource, SiblingResolver } from '../bytes';
import { InputError } from '../errors';
import { closest } from '../hardware/catalog';
import type { GraphTensor, ModelGraph } from '../graph/model-graph';
import { globMatch } from '../glob';
import {
  FILE_TYPE_FORMATS,
  FORMAT_NAMES,
  bitsPerWeightFor,
  parseFormat,
  storedBits,
  type NumberFormat,
} from './formats';
import { mixFallback, mixFormatsFor } from './gguf-mix-resolve';
import {
  errorMetrics,
  kernelScratch,
  pinTensor,
  quantizationError,
  quantizeDequantize,
  type ErrorMetrics,
} from './quantize';
import {
  FLOAT_DTYPES,
  dequantizeLinearOf,
  loadWeightFloat32,
  matMulNBitsOf,
  transpose2d,
  weightLayout,
} from './weights';

/** The default sweep: 16 formats across the families docs/ARCHITECTURE.md names. */
export const DEFAULT_FORMATS = [
  'bf16',
  'fp16',
  'fp8-e4m3',
  'fp8-e5m2',
  'int8-channel',
  'int4-channel',
  'int4-g128',
  'int4-g128-asym',
  'int4-g16-2l',
  'mxfp8-e4m3',
  'mxfp6-e2m3',
  'mxfp4',
  'nvfp4',
  'nf4-g64',
  'q4_0',
  'q4_k',
];

export interface FormatResult {
  format: string;
  /** Exact for this tensor: every stored bit (scales per row and tensor, codebooks, permutation, outliers) over its elements. */
  bitsPerWeight: number;
  mse: number;
  sqnrDb: number | null;
  maxAbsError: number;
  cosine: number;
  relFrobenius: number;
  /** With MSE-optimal clipping (--clip), for integer formats: what clipping buys. */
  clipped?: { mse: number; sqnrDb: number | null };
  /** Σx² and Σ(x − x̂)² (for the summary; not printed). */
  signal?: number;
  noise?: number;
  /** With --sample: the 95% bootstrap interval of the SQNR over the sampled rows. */
  sqnrDbCi?: [number, number];
  /** A GGUF file type (q4_k_m): the type llama-quantize gives this tensor, which was measured. */
  resolvedFormat?: string;
}

export interface QuantReport {
  tensors: { name: string; shape: number[]; layer: string; results: FormatResult[] }[];
  summary: { format: string; bitsPerWeight: number; bytes: number; sqnrDb: number | null; parameters: number }[];
  skipped: { name: string; reason: string }[];
  /** Each statistical format measured beside its positional counterpart (statisticalComparisons). */
  comparisons?: Comparison[];
}

/**
 * A statistical format (`-perm`, `+o<P>`, `kmeans<B>`, block-scaled fp8) against the positional
 * format it refines, on the same weights: exact bits of both, SQNR summed over the tensors and per
 * layer (gain = statistical − positional, in dB).
 */
export interface Comparison {
  format: string;
  counterpart: string;
  bitsPerWeight: number;
  counterpartBitsPerWeight: number;
  sqnrDb: number | null;
  counterpartSqnrDb: number | null;
  gainDb: number | null;
  layers: { layer: string; parameters: number; gainDb: number | null }[];
  /** Layers where the statistical format's SQNR is higher (lower) by more than TIE_DB, of those with a finite gain. */
  layersWon: number;
  layersLost: number;
  layersCompared: number;
}

/** Differences below this are summation order, not the format: a layer counts as neither won nor lost. */
export const TIE_DB = 0.01;

/** Whether a format groups by statistics rather than position. */
export function isStatistical(f: NumberFormat): boolean {
  return !!f.base || !!f.codebook || f.levels.some((l) => (l.blockRows ?? 1) > 1);
}

/**
 * The positional format a statistical one is measured against: its base (`-perm`, `+o<P>`), the
 * integer format of the same index width per channel for `kmeans<B>` (then per group of 128), the
 * per-tensor-scaled fp8 for `fp8-e4m3-b128`; else the measured positional format nearest in bits
 * (within one bit per weight), or none.
 */
export function counterpartOf(
  f: NumberFormat,
  measured: { name: string; bits: number }[],
  bits: number,
): string | undefined {
  const el = f.element;
  const natural = f.base
    ? [f.base.name]
    : el.kind === 'codebook'
      ? [`int${el.bits}-channel`, `int${el.bits}-g128`]
      : f.name.startsWith('fp8-e4m3')
        ? ['fp8-e4m3']
        : [];
  const positional = measured.filter((m) => !isStatistical(parseFormat(m.name)!));
  for (const n of natural) if (positional.some((m) => m.name === n)) return n;
  // Only a neighbour in size is a counterpart: within one bit per weight.
  let best: { name: string; bits: number } | undefined;
  for (const m of positional) {
    if (Math.abs(m.bits - bits) <= 1 && (!best || Math.abs(m.bits - bits) < Math.abs(best.bits - bits))) best = m;
  }
  return best?.name;
}

/** Measures every format on one tensor laid out [rows, cols]; injected so Node can run it on worker threads. */
export type MeasureFn = (
  values: Float32Array,
  rows: number,
  cols: number,
  formats: string[],
  clip: boolean,
) => Promise<FormatResult[]>;

/** One format's result row from its metrics on a [rows, cols] tensor (exact results have no SQNR: null). */
function formatResult(f: NumberFormat, m: ErrorMetrics, rows: number, cols: number): FormatResult {
  return {
    format: f.name,
    bitsPerWeight: bitsPerWeightFor(f, rows, cols),
    mse: m.mse,
    sqnrDb: Number.isFinite(m.sqnrDb) ? m.sqnrDb : null,
    maxAbsError: m.maxAbsError,
    cosine: m.cosine,
    relFrobenius: m.relFrobenius,
    signal: m.signal,
    noise: m.noise,
  };
}

/** The per-tensor work: quantize → dequantize → metrics for each format, reusing one scratch buffer. */
export function measureFormats(
  values: Float32Array,
  rows: number,
  cols: number,
  formats: string[],
  clip: boolean,
): FormatResult[] {
  // The quantizers write into the SIMD kernel's memory when it is there, so metrics run in place.
  const scratch = kernelScratch(values) ?? new Float32Array(values.length);
  pinTensor(values);
  try {
    return measureEach(values, rows, cols, formats, clip, scratch);
  } finally {
    pinTensor(undefined);
  }
}

function measureEach(
  values: Float32Array,
  rows: number,
  cols: number,
  formats: string[],
  clip: boolean,
  scratch: Float32Array,
): FormatResult[] {
  return formats.map((name) => {
    const f = parseFormat(name)!;
    const m = quantizationError(values, rows, cols, f, {}, scratch);
    const r = formatResult(f, m, rows, cols);
    if (clip && f.element.kind === 'int' && f.levels.length === 1) {
      const c = quantizationError(values, rows, cols, f, { clip: true }, scratch);
      r.clipped = { mse: c.mse, sqnrDb: Number.isFinite(c.sqnrDb) ? c.sqnrDb : null };
    }
    return r;
  });
}

/**
 * The SQNR's 95% interval when only some rows were measured: a bootstrap over the rows' own
 * signal and noise sums (200 resamples, fixed seed), so it reflects how much the rows differ.
 */
export function sqnrInterval(signal: Float64Array, noise: Float64Array): [number, number] {
  const n = signal.length;
  let seed = 12345;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
  const samples: number[] = [];
  for (let b = 0; b < 200; b++) {
    let s = 0;
    let e = 0;
    for (let i = 0; i < n; i++) {
      const k = Math.floor(next() * n);
      s += signal[k];
      e += noise[k];
    }
    samples.push(e > 0 ? 10 * Math.log10(s / e) : Infinity);
  }
  samples.sort((a, b) => a - b);
  return [samples[4], samples[195]];
}

/** Measures formats on sampled rows, with each format's SQNR interval. */
export function measureSampled(values: Float32Array, rows: number, cols: number, formats: string[]): FormatResult[] {
  const y = new Float32Array(values.length);
  return formats.map((name) => {
    const f = parseFormat(name)!;
    quantizeDequantize(values, rows, cols, f, {}, y);
    const sig = new Float64Array(rows);
    const noi = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      for (let c = r * cols; c < (r + 1) * cols; c++) {
        sig[r] += values[c] * values[c];
        noi[r] += (y[c] - values[c]) ** 2;
      }
    }
    const m = errorMetrics(values, y);
    return { ...formatResult(f, m, rows, cols), sqnrDbCi: rows > 1 ? sqnrInterval(sig, noi) : undefined };
  });
}

export interface QuantOptions {
  /** Measure this fraction of each tensor's rows (output channels), with a confidence interval on SQNR: for very large models. */
  sample?: number;
  /** Tensors measured at once (memory: this many of the largest tensor); Node passes its worker count. */
  concurrency?: number;
  measure?: MeasureFn;
  formats?: string[];
  /** Glob on tensor names; default: floating-point weights of rank ≥ 2 with at least 1,024 elements. */
  tensors?: string;
  clip?: boolean;
  onProgress?: (done: number, total: number, name: string) => void;
}

const db = (signal: number, noise: number) => (noise === 0 ? null : 10 * Math.log10(signal / noise));

export function resolveFormats(names: string[], file: string): NumberFormat[] {
  return names.map((n) => {
    const f = parseFormat(n);
    if (!f) {
      const hint = closest(n, [...FORMAT_NAMES, ...FILE_TYPE_FORMATS]);
      throw new InputError(file, `unknown number format '${n}'${hint ? ` (did you mean '${hint}'?)` : ''}`);
    }
    if (f.decodeOnly) {
      throw new InputError(
        file,
        `'${f.name}' is one of llama.cpp's codebook types: Layerplan decodes it from GGUF files but does not quantize to it`,
      );
    }
    return f;
  });
}

/** Stored integer weights the model dequantizes (MatMulNBits blocks, QDQ): measured as the floats they stand for. */
function isPackedWeight(graph: ModelGraph, t: GraphTensor): boolean {
  return !!matMulNBitsOf(graph, t) || (!!dequantizeLinearOf(graph, t) && (t.shape?.length ?? 0) >= 2);
}

/**
 * The weights quant measures when no --tensors glob is given (and that a plan's precision applies to,
 * in its assignment and its export): floating-point matrices of at least 1,024 elements, and packed weights.
 */
export function measuredWeight(graph: ModelGraph, t: GraphTensor): boolean {
  if (!t.isWeight || !t.ref) return false;
  if (isPackedWeight(graph, t)) return true;
  return FLOAT_DTYPES.has(t.dtype) && (t.shape?.length ?? 0) >= 2 && t.elements >= 1024;
}

/** Quantizes the model's weights, tensor by tensor (memory bounded by the largest tensor), in every format. */
export async function quantModel(
  graph: ModelGraph,
  source: ByteSource,
  siblings: SiblingResolver | undefined,
  options: QuantOptions = {},
): Promise<QuantReport> {
  const formats = resolveFormats(options.formats ?? DEFAULT_FORMATS, source.name);
  const chosen: GraphTensor[] = [];
  const skipped: QuantReport['skipped'] = [];
  for (const t of graph.tensors.values()) {
    if (!t.isWeight || !t.ref) continue;
    const packed = isPackedWeight(graph, t);
    if (options.tensors) {
      if (!globMatch(options.tensors, t.name)) continue;
      if (!FLOAT_DTYPES.has(t.dtype) && !packed) {
        throw new InputError(source.name, `tensor '${t.name}' is ${t.dtype}, not floating point: nothing to quantize`);
      }
      if (t.elements === 0) throw new InputError(source.name, `tensor '${t.name}' is empty`);
    } else if (!measuredWeight(graph, t)) continue;
    chosen.push(t);
  }
  if (!chosen.length) {
    throw new InputError(
      source.name,
      options.tensors
        ? `no stored floating-point tensor matches '${options.tensors}'`
        : 'no floating-point weight tensors to quantize',
    );
  }
  const totals = formats.map(() => ({ signal: 0, noise: 0, parameters: 0, bits: 0 }));
  const layouts: { rows: number; cols: number }[] = new Array(chosen.length);
  const report: QuantReport = { tensors: [], summary: [], skipped };
  const names = formats.map((f) => f.name);
  // GGUF file types: each tensor is measured in the type llama-quantize would give it.
  const mixes = mixFormatsFor(graph, formats);
  const namesFor = (t: GraphTensor) =>
    formats.map((f) => (f.mix ? (mixes.get(f.mix)?.get(t.name) ?? mixFallback(f.mix, t)) : f.name));
  const measure: MeasureFn = options.measure ?? (async (v, r, c, f, clip) => measureFormats(v, r, c, f, clip));
  const results: (FormatResult[] | undefined)[] = new Array(chosen.length);
  let next = 0;
  let done = 0;
  // A few tensors in flight at once: loading the next overlaps measuring the previous (workers in Node).
  const worker = async () => {
    while (next < chosen.length) {
      const i = next++;
      const t = chosen[i];
      let values: Float32Array;
      try {
        values = await loadWeightFloat32(t, source, siblings, graph);
      } catch (e) {
        if (!(e instanceof InputError) || options.tensors) throw e;
        skipped.push({ name: t.name, reason: e.problem.replace(`tensor '${t.name}': `, '') });
        continue;
      }
      const layout = weightLayout(graph, t);
      layouts[i] = layout;
      if (layout.transpose) values = transpose2d(values, layout.cols, layout.rows);
      const fraction = options.sample;
      if (fraction !== undefined && fraction < 1 && layout.rows > 1) {
        // Every k-th row (output channel): groups stay whole; per-tensor scales come from the sample.
        const stride = Math.max(1, Math.round(1 / fraction));
        const picked = Math.ceil(layout.rows / stride);
        const sub = new Float32Array(picked * layout.cols);
        for (let r = 0, j = 0; r < layout.rows; r += stride, j++) {
          sub.set(values.subarray(r * layout.cols, (r + 1) * layout.cols), j * layout.cols);
        }
        results[i] = measureSampled(sub, picked, layout.cols, namesFor(t));
      } else results[i] = await measure(values, layout.rows, layout.cols, namesFor(t), !!options.clip);
      results[i]!.forEach((r, k) => {
        if (!formats[k].mix) return;
        r.resolvedFormat = r.format;
        r.format = formats[k].mix!;
      });
      options.onProgress?.(++done, chosen.length, t.name);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 1) }, worker));
  // Per layer and format: Σx², Σe² and parameters, for the statistical-vs-positional comparison.
  const perLayer = new Map<string, { signal: number[]; noise: number[]; parameters: number }>();
  chosen.forEach((t, i) => {
    const res = results[i];
    if (!res) return;
    const { rows, cols } = layouts[i];
    const layer = t.layer !== undefined ? (graph.layers[t.layer]?.name ?? t.name) : t.name;
    const l = perLayer.get(layer) ?? { signal: formats.map(() => 0), noise: formats.map(() => 0), parameters: 0 };
    perLayer.set(layer, l);
    l.parameters += t.elements;
    res.forEach((r, k) => {
      l.signal[k] += r.signal ?? 0;
      l.noise[k] += r.noise ?? 0;
      // Sampled rows measure the error; the storage is the whole tensor's.
      // A GGUF file type stores each tensor in the type it resolved to.
      const stored = formats[k].mix && r.resolvedFormat ? (parseFormat(r.resolvedFormat) ?? formats[k]) : formats[k];
      r.bitsPerWeight = bitsPerWeightFor(stored, rows, cols);
      totals[k].bits += storedBits(stored, rows, cols);
      totals[k].signal += r.signal ?? 0;
      totals[k].noise += r.noise ?? 0;
      totals[k].parameters += t.elements;
      totals[k].bits += t.elements * r.bitsPerWeight;
      delete r.signal;
      delete r.noise;
    });
    report.tensors.push({
      name: t.name,
      shape: (t.shape ?? []).map((d) => (typeof d === 'number' ? d : 0)),
      layer: t.layer !== undefined ? (graph.layers[t.layer]?.name ?? '') : '',
      results: res,
    });
  });
  options.onProgress?.(chosen.length, chosen.length, '');
  report.summary = formats.map((f, k) => ({
    format: f.mix ?? f.name,
    // Every stored bit of the measured tensors over their parameters (the format's nominal figure when none was measured).
    bitsPerWeight: totals[k].parameters ? totals[k].bits / totals[k].parameters : f.bitsPerWeight,
    bytes: Math.ceil(totals[k].bits / 8),
    sqnrDb: db(totals[k].signal, totals[k].noise),
    parameters: totals[k].parameters,
  }));
  const comparisons: Comparison[] = [];
  const measured = report.summary.map((x) => ({ name: x.format, bits: x.bitsPerWeight }));
  formats.forEach((f, k) => {
    if (!isStatistical(f) || !totals[k].parameters) return;
    const name = counterpartOf(f, measured, report.summary[k].bitsPerWeight);
    const j = names.indexOf(name ?? '');
    if (j < 0) return;
    const gain = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
    const layers = [...perLayer].map(([layer, l]) => ({
      layer,
      parameters: l.parameters,
      gainDb: gain(db(l.signal[k], l.noise[k]), db(l.signal[j], l.noise[j])),
    }));
    const finite = layers.filter((l) => l.gainDb !== null);
    comparisons.push({
      format: f.name,
      counterpart: names[j],
      bitsPerWeight: report.summary[k].bitsPerWeight,
      counterpartBitsPerWeight: report.summary[j].bitsPerWeight,
      sqnrDb: report.summary[k].sqnrDb,
      counterpartSqnrDb: report.summary[j].sqnrDb,
      gainDb: gain(report.summary[k].sqnrDb, report.summary[j].sqnrDb),
      layers,
      layersWon: finite.filter((l) => l.gainDb! > TIE_DB).length,
      layersLost: finite.filter((l) => l.gainDb! < -TIE_DB).length,
      layersCompared: finite.length,
    });
  });
  if (comparisons.length) report.comparisons = comparisons;
  return report;
}
