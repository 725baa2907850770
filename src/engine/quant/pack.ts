import { bf16ToFloat, halfToFloat, minifloatToFloat } from '../graph/dtypes';
import { indexBits, levelCount, parseFormat, storedBits, type NumberFormat, type ScaleLevel } from './formats';
import { E4M3FN, floatToBf16Bits, floatToHalfBits, miniFloatBits } from './numeric';
import { NF4_LEVELS, quantizeDequantize, type ScaleSink } from './quantize';

/**
 * The packed bits of a quantized weight [rows = output channels, cols = reduction axis], as the
 * GPU kernels read them. The quantizer is the engine's own (quantizeDequantize): it reports the
 * scales it chose through a ScaleSink and the element codes follow from its output, so the packed
 * weight decodes to exactly the values the error estimate measured.
 *
 * Layout: planes of bit-packed little-endian codes, least significant bits first. Element codes
 * (`elementBits` each) form one bitstream per row, padded to 32-bit words; word w of row r sits at
 * codes[w·rows + r] (interleaved across rows, so one GPU thread per row reads coalesced memory).
 * Each scale level is one bitstream of `bits`-wide codes (with its minimums or zero points in a
 * second stream), blocks in row-major order. The payload is exactly the format's bits per weight:
 * llama.cpp's and OCP's byte orders are permutations of the same bits.
 *
 * The statistical formats store more streams of the same kind: a per-row codebook (kmeans<B>: the
 * element code indexes its row's fp16 centroids), a permutation (-perm: stored position j of every
 * row holds input channel perm[j], so the kernel gathers x through it) and outlier channels (+o<P>:
 * their indices and one fp16 value per row each, added to what the codes decode to there).
 */
export type ScaleType = 'f32' | 'f16' | 'e8m0' | 'e4m3' | 'uint';

export interface PackedStream {
  bits: number;
  type: ScaleType;
  /** Bit-packed codes, `bits` each, from bit 0 of word 0. */
  words: Uint32Array;
}

export interface PackedLevel {
  /** Elements along a row per scale: 0 = one per row, -1 = one for the whole tensor. */
  block: number;
  /** Rows per scale for two-dimensional blocks (fp8-e4m3-b128); 1 when absent. */
  blockRows?: number;
  scale: PackedStream;
  /**
   * Beside the scale: 'zero' is an integer zero point subtracted from the element (w = S·(e − z));
   * 'min' multiplies up the levels into M, subtracted after scaling (w = S·e − sign·M).
   */
  min?: PackedStream & { mode: 'zero' | 'min'; sign: 1 | -1 };
}

export interface PackedWeight {
  format: string;
  rows: number;
  cols: number;
  elementBits: number;
  /** How element codes decode: a table of values (≤ 8 bits), the bits of an IEEE type, or the row's codebook. */
  element: 'lut' | 'f16' | 'bf16' | 'f32' | 'codebook';
  lut?: Float32Array;
  codes: Uint32Array;
  rowWords: number;
  levels: PackedLevel[];
  /** kmeans<B>: each row's `entries` fp16 centroids; row r's entry e is value r·entries + e. */
  codebook?: { entries: number; values: PackedStream };
  /** -perm: ⌈log2 cols⌉-bit entries; stored position j of every row holds input channel perm[j]. */
  perm?: PackedStream;
  /** +o<P>: `count` input channels (⌈log2 cols⌉-bit indices) and their fp16 values, row r's o-th at r·count + o. */
  outliers?: { count: number; index: PackedStream; values: PackedStream };
  /** Bits of codes, scales, codebooks, permutation and outliers without padding. */
  payloadBits: number;
}

const MINI = {
  e4m3: [4, 3, 7, 'fn'],
  e5m2: [5, 2, 15, 'ieee'],
  e2m3: [2, 3, 1, 'finite'],
  e3m2: [3, 2, 3, 'finite'],
  e2m1: [2, 1, 1, 'finite'],
} as const;

/** The value of every code of a ≤ 8-bit element type. */
export function elementTable(f: NumberFormat): Float32Array | undefined {
  const el = f.element;
  if (el.kind === 'codebook') return undefined;
  if (el.kind === 'levels') return Float32Array.from(NF4_LEVELS);
  if (el.kind === 'int') {
    // Codes are offset binary: code − 2^(bits−1) for signed types; MXINT8 carries an implicit 2^-6.
    const off = el.signed ? -(2 ** (el.bits - 1)) : 0;
    const unit = f.name === 'mxint8' ? 1 / 64 : 1;
    return Float32Array.from({ length: 2 ** el.bits }, (_, c) => (c + off) * unit);
  }
  const total = 1 + el.exp + el.man;
  if (total > 8) return undefined;
  const [e, m, bias, mode] = MINI[el.name as keyof typeof MINI];
  return Float32Array.from({ length: 2 ** total }, (_, c) => minifloatToFloat(c, e, m, bias, mode));
}

function scaleType(level: ScaleLevel): ScaleType {
  if (level.type === 'fp16') return 'f16';
  if (level.type === 'fp32') return 'f32';
  if (level.type === 'e8m0' || level.type === 'e4m3') return level.type;
  return 'uint';
}

/** How a level's zeroBits are used: integer zero points (…-asym), added minimums (q4_1, q5_1) or subtracted minimums (k-quants). */
function minMode(f: NumberFormat): { mode: 'zero' | 'min'; sign: 1 | -1 } {
  if (f.base) return minMode(f.base);
  if (f.name.endsWith('-asym')) return { mode: 'zero', sign: 1 };
  if (/^q[45]_1$/.test(f.name)) return { mode: 'min', sign: -1 };
  return { mode: 'min', sign: 1 };
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

export function encodeScale(v: number, type: ScaleType, bits: number): number {
  switch (type) {
    case 'f32':
      F32[0] = v;
      return U32[0];
    case 'f16':
      return floatToHalfBits(v);
    case 'e8m0': {
      const e = Math.round(Math.log2(v));
      if (2 ** e !== v || e < -127 || e > 127) throw new Error(`e8m0 scale ${v} is not a power of two in range`);
      return e + 127;
    }
    case 'e4m3':
      return miniFloatBits(v, E4M3FN);
    case 'uint':
      if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) {
        throw new Error(`integer scale ${v} does not fit ${bits} bits`);
      }
      return v;
  }
}

export function decodeScale(c: number, type: ScaleType): number {
  switch (type) {
    case 'f32':
      U32[0] = c;
      return F32[0];
    case 'f16':
      return halfToFloat(c);
    case 'e8m0':
      return 2 ** (c - 127);
    case 'e4m3':
      return minifloatToFloat(c, 4, 3, 7, 'fn');
    case 'uint':
      return c;
  }
}

function writeBits(words: Uint32Array, bit: number, bits: number, v: number): void {
  const w = bit >>> 5;
  const sh = bit & 31;
  words[w] |= (v << sh) >>> 0;
  if (sh + bits > 32) words[w + 1] |= v >>> (32 - sh);
}

/**
 * `bits` bits at bit offset `bit` of a bitstream whose word w is words[w·stride + base] (stride 1:
 * a plain stream; stride rows, base r: row r of the element codes, interleaved across rows).
 */
export function readBits(words: Uint32Array, bit: number, bits: number, stride = 1, base = 0): number {
  const w = bit >>> 5;
  const sh = bit & 31;
  let v = words[w * stride + base] >>> sh;
  if (sh + bits > 32) v |= words[(w + 1) * stride + base] << (32 - sh);
  return bits === 32 ? v >>> 0 : v & ((1 << bits) - 1);
}

function packStream(values: number[], bits: number, type: ScaleType): Uint32Array {
  const words = new Uint32Array(Math.ceil((values.length * bits) / 32) + 1);
  values.forEach((v, i) => writeBits(words, i * bits, bits, encodeScale(v, type, bits)));
  return words;
}

/** The scale of (r, c) at a level: row-major blocks (⌊r/R⌋·⌈cols/block⌉ + ⌊c/block⌋), one per row, or one per tensor. */
export function levelIndex(level: Pick<ScaleLevel, 'block' | 'blockRows'>, r: number, c: number, cols: number): number {
  const { block } = level;
  if (block === -1) return 0;
  if (block === 0) return r;
  return Math.floor(r / (level.blockRows ?? 1)) * Math.ceil(cols / block) + Math.floor(c / block);
}

/** Index of the nearest value in a sorted table (finite values only). */
function nearest(sorted: Float64Array, v: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= v) lo = mid;
    else hi = mid;
  }
  return Math.abs(sorted[hi] - v) < Math.abs(v - sorted[lo]) ? hi : lo;
}

/**
 * Quantizes x [rows, cols] in `format` with the engine's quantizer and packs the result.
 * Also returns the dequantized values the quantizer produced (what the error estimate measured).
 */
export function packWeight(
  x: Float32Array,
  rows: number,
  cols: number,
  format: string | NumberFormat,
  options: { channelWeights?: ArrayLike<number> } = {},
): { packed: PackedWeight; dequantized: Float32Array } {
  const f = typeof format === 'string' ? parseFormat(format) : format;
  if (!f) throw new Error(`unknown format ${String(format)}`);
  if (f.decodeOnly) throw new Error(`${f.name} is decoded from GGUF files; Layerplan has no quantizer to pack it`);
  if (x.length !== rows * cols) throw new Error(`weight has ${x.length} elements, not ${rows}×${cols}`);
  const sink: ScaleSink = { scales: f.levels.map(() => []), mins: f.levels.map(() => []) };
  const y = quantizeDequantize(x, rows, cols, f, { channelWeights: options.channelWeights }, undefined, sink);
  const mm = minMode(f);
  const levels: PackedLevel[] = f.levels.map((l, i) => {
    const type = scaleType(l);
    const n = levelCount(l, rows, cols);
    if (sink.scales[i].length !== n) {
      throw new Error(`${f.name}: the quantizer reported ${sink.scales[i].length} scales at level ${i}, expected ${n}`);
    }
    const level: PackedLevel = {
      block: l.block,
      ...(l.blockRows ? { blockRows: l.blockRows } : {}),
      scale: { bits: l.bits, type, words: packStream(sink.scales[i], l.bits, type) },
    };
    if (l.zeroBits !== undefined) {
      const mtype: ScaleType = mm.mode === 'zero' ? 'uint' : type;
      level.min = { bits: l.zeroBits, type: mtype, words: packStream(sink.mins[i], l.zeroBits, mtype), ...mm };
    }
    return level;
  });
  const el = f.element;
  const elementBits = el.kind === 'float' ? 1 + el.exp + el.man : el.bits;
  const element: PackedWeight['element'] =
    el.kind === 'codebook'
      ? 'codebook'
      : elementBits <= 8
        ? 'lut'
        : elementBits === 32
          ? 'f32'
          : el.kind === 'float' && el.exp === 8
            ? 'bf16'
            : 'f16';
  const lut = element === 'lut' ? elementTable(f) : undefined;
  const rowWords = Math.ceil((cols * elementBits) / 32);
  const codes = new Uint32Array(rowWords * rows);
  const rowBits = new Uint32Array(rowWords);
  // Values of the table in order, with their codes: y → nearest table entry after undoing scale, minimum and zero point.
  let sortedValues = new Float64Array(0);
  let sortedCodes = new Uint32Array(0);
  const sortTable = (table: ArrayLike<number>) => {
    const entries = Array.from(table, (v, c) => [v, c] as const)
      .filter(([v]) => Number.isFinite(v))
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    sortedValues = Float64Array.from(entries, (e) => e[0]);
    sortedCodes = Uint32Array.from(entries, (e) => e[1]);
  };
  if (lut) sortTable(lut);
  let payloadBits = rows * cols * elementBits;
  for (const l of levels) {
    const n = levelCount(l, rows, cols);
    payloadBits += n * (l.scale.bits + (l.min?.bits ?? 0));
  }
  const packed: PackedWeight = {
    format: f.name,
    rows,
    cols,
    elementBits,
    element,
    lut,
    codes,
    rowWords,
    levels,
    payloadBits,
  };
  if (f.codebook) {
    const entries = f.codebook.entries;
    if (sink.codebook?.length !== rows * entries) {
      throw new Error(
        `${f.name}: the quantizer reported ${sink.codebook?.length ?? 0} centroids, expected ${rows * entries}`,
      );
    }
    packed.codebook = { entries, values: { bits: 16, type: 'f16', words: packStream(sink.codebook, 16, 'f16') } };
    packed.payloadBits += rows * entries * 16;
  }
  const ib = indexBits(cols);
  if (f.permute) {
    if (sink.perm?.length !== cols) {
      throw new Error(`${f.name}: the quantizer reported no permutation of ${cols} channels`);
    }
    packed.perm = { bits: ib, type: 'uint', words: packStream(sink.perm, ib, 'uint') };
    packed.payloadBits += cols * ib;
  }
  // What the codes hold: y, except at outlier channels, where y = dense + the fp16 value stored beside.
  let dense = y;
  const out = sink.outliers;
  if (f.outlierPercent) {
    if (!out || out.values.length !== rows * out.cols.length) {
      throw new Error(`${f.name}: the quantizer reported no outliers`);
    }
    const count = out.cols.length;
    packed.outliers = {
      count,
      index: { bits: ib, type: 'uint', words: packStream(out.cols, ib, 'uint') },
      values: { bits: 16, type: 'f16', words: packStream(out.values, 16, 'f16') },
    };
    packed.payloadBits += count * (ib + 16 * rows);
    dense = y.slice();
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < count; k++) dense[r * cols + out.cols[k]] = out.dense[r * count + k];
    }
  }
  if (packed.payloadBits !== storedBits(f, rows, cols)) {
    throw new Error(`${f.name}: packed ${packed.payloadBits} bits, the format counts ${storedBits(f, rows, cols)}`);
  }
  const perm = sink.perm;
  // The scales are packed already (they round-trip exactly): each block's S, M and z come from the
  // stored bits, as the decoder and the kernel read them.
  const block = innermostBlock(packed);
  for (let r = 0; r < rows; r++) {
    rowBits.fill(0);
    const off = r * cols;
    if (element === 'codebook') {
      sortTable(sink.codebook!.slice(r * packed.codebook!.entries, (r + 1) * packed.codebook!.entries));
    }
    let params = blockParams(packed, r, 0);
    for (let j = 0; j < cols; j++) {
      if (j > 0 && j % block === 0) params = blockParams(packed, r, j);
      const v = dense[off + (perm ? perm[j] : j)];
      let code: number;
      if (element === 'f32') {
        F32[0] = v;
        code = U32[0];
      } else if (element === 'bf16') code = floatToBf16Bits(v);
      else if (element === 'f16') code = floatToHalfBits(v);
      else code = sortedCodes[nearest(sortedValues, params.S === 0 ? 0 : (v + params.M) / params.S + params.z)];
      writeBits(rowBits, j * elementBits, elementBits, code);
    }
    for (let w = 0; w < rowWords; w++) codes[w * rows + r] = rowBits[w];
  }
  return { packed, dequantized: y };
}

/** The element code of row r, column c. */
export function elementCode(p: PackedWeight, r: number, c: number): number {
  return readBits(p.codes, c * p.elementBits, p.elementBits, p.rows, r);
}

/** The scale S, subtracted minimum M and zero point z of the block holding (r, c), decoded from the packed bits. */
export function blockParams(p: PackedWeight, r: number, c: number): { S: number; M: number; z: number } {
  let S = 1;
  let Mprod = 1;
  let hasMin = false;
  let sign = 1;
  let z = 0;
  for (const l of p.levels) {
    const idx = levelIndex(l, r, c, p.cols);
    S *= decodeScale(readBits(l.scale.words, idx * l.scale.bits, l.scale.bits), l.scale.type);
    if (l.min) {
      const m = decodeScale(readBits(l.min.words, idx * l.min.bits, l.min.bits), l.min.type);
      if (l.min.mode === 'zero') z = m;
      else {
        hasMin = true;
        sign = l.min.sign;
        Mprod *= m;
      }
    }
  }
  return { S, M: hasMin ? sign * Mprod : 0, z };
}

/** Decodes one element code of row r to its (unscaled) value. */
export function elementValue(p: PackedWeight, code: number, r = 0): number {
  if (p.element === 'lut') return p.lut![code];
  if (p.element === 'codebook') {
    const cb = p.codebook!;
    return halfToFloat(readBits(cb.values.words, (r * cb.entries + code) * 16, 16));
  }
  if (p.element === 'f32') {
    U32[0] = code;
    return F32[0];
  }
  return p.element === 'bf16' ? bf16ToFloat(code) : halfToFloat(code);
}

/** The input channel of every stored position (the identity without a permutation). */
export function permutation(p: PackedWeight): Uint32Array {
  const out = new Uint32Array(p.cols);
  for (let j = 0; j < p.cols; j++) out[j] = p.perm ? readBits(p.perm.words, j * p.perm.bits, p.perm.bits) : j;
  return out;
}

/** The outlier channels and their values (row r's o-th at r·count + o), decoded from the packed bits. */
export function outlierValues(p: PackedWeight): { cols: number[]; values: Float64Array } {
  const o = p.outliers;
  if (!o) return { cols: [], values: new Float64Array(0) };
  const cols = Array.from({ length: o.count }, (_, k) => readBits(o.index.words, k * o.index.bits, o.index.bits));
  const values = Float64Array.from({ length: p.rows * o.count }, (_, i) =>
    halfToFloat(readBits(o.values.words, i * 16, 16)),
  );
  return { cols, values };
}

/**
 * The CPU reference: W [rows, cols] decoded from the packed bits alone, w = S·(e − z) − M at input
 * channel perm[j] for stored position j, plus the outlier values; computed in double and stored in
 * float32 as the quantizer stored its output.
 * `magnitude`, when given, receives |S·e| + |S·z| + |M| (+ |outlier value|) per element (for rounding bounds).
 */
export function dequantizePacked(p: PackedWeight, magnitude?: Float32Array): Float32Array {
  const w = new Float32Array(p.rows * p.cols);
  const block = innermostBlock(p);
  const perm = permutation(p);
  const out = outlierValues(p);
  for (let r = 0; r < p.rows; r++) {
    let params = blockParams(p, r, 0);
    for (let j = 0; j < p.cols; j++) {
      if (j > 0 && j % block === 0) params = blockParams(p, r, j);
      const e = elementValue(p, elementCode(p, r, j), r);
      const { S, M, z } = params;
      const i = r * p.cols + perm[j];
      w[i] = p.levels.length ? S * (e - z) - M : e;
      if (magnitude) magnitude[i] = Math.abs(S * e) + Math.abs(S * z) + Math.abs(M);
    }
    out.cols.forEach((c, k) => {
      const v = out.values[r * out.cols.length + k];
      const i = r * p.cols + c;
      w[i] = w[i] + v;
      if (magnitude) magnitude[i] += Math.abs(v);
    });
  }
  return w;
}

/** Columns per innermost block (where scales change along a row); the whole row when no level is finer. */
export function innermostBlock(p: PackedWeight): number {
  const b = p.levels.map((l) => l.block).filter((x) => x > 0);
  return b.length ? Math.min(...b) : p.cols;
}

/** Bytes the GPU reads for the packed weight (codes with row padding, and every scale stream). */
export function packedBytes(p: PackedWeight): number {
  return (
    p.codes.byteLength +
    p.levels.reduce((s, l) => s + l.scale.words.byteLength + (l.min?.words.byteLength ?? 0), 0) +
    (p.codebook?.values.words.byteLength ?? 0) +
    (p.perm?.words.byteLength ?? 0) +
    (p.outliers ? p.outliers.index.words.byteLength + p.outliers.values.words.byteLength : 0)
  );
}
