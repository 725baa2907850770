/**
 * Number formats by name (docs/ARCHITECTURE.md): an element type plus a stack of scale levels. This module
 * knows each format's exact bits per weight, scales included; the quantizers build on it.
 */
export type ElementType =
  | { kind: 'float'; exp: number; man: number; name: string }
  | { kind: 'int'; bits: number; signed: boolean }
  | { kind: 'levels'; bits: number; name: string }
  /** A table of 2^bits values per output channel (row), stored beside the codes (kmeans<B>). */
  | { kind: 'codebook'; bits: number };

export interface ScaleLevel {
  /** Elements per scale: 0 means one per output channel (row), -1 one per tensor. */
  block: number;
  /** Rows per scale, for two-dimensional blocks (fp8-e4m3-b128: 128 × 128); 1 when absent. */
  blockRows?: number;
  /** Bits of the stored scale (16 for fp16, 8 for e8m0 / e4m3 / int8, 32 for fp32). */
  bits: number;
  type: string;
  /** A zero point / minimum stored beside the scale (asymmetric), in bits. */
  zeroBits?: number;
}

export interface NumberFormat {
  name: string;
  element: ElementType;
  levels: ScaleLevel[];
  /** Compute path the format runs on when activations are also in it (fp8 matmuls); else bf16. */
  compute: 'fp32' | 'bf16' | 'fp16' | 'fp8' | 'int8' | 'fp4';
  /**
   * Bits per weight, scales and zero points included (per-channel / per-tensor scales excluded as
   * O(1/K)); codebooks, permutations and outliers counted on a REFERENCE_SHAPE matrix. The exact
   * figure for one matrix, every stored bit included, is storedBits(format, rows, cols) / (rows · cols).
   */
  bitsPerWeight: number;
  /** `kmeans<B>`: each row's codebook of `entries` values, stored as `bits`-bit floats. */
  codebook?: { entries: number; bits: number; type: 'fp16' };
  /** `-perm`: the reduction axis is reordered by channel magnitude before grouping; the permutation is stored. */
  permute?: boolean;
  /** `+o<P>`: P% of the input channels (at least one) kept in fp16, as indices plus a value per row. */
  outlierPercent?: number;
  /** For `-perm` / `+o<P>`: the positional format the rest of the matrix is stored in. */
  base?: NumberFormat;
  /** Decoded from GGUF files only (llama.cpp's codebook IQ types): Layerplan has no quantizer for it. */
  decodeOnly?: boolean;
  /**
   * A GGUF file type (q4_k_m …): llama-quantize's per-tensor mix (quant/gguf-filetypes.ts picks each
   * tensor's type). `name` and the rest describe its default type (q4_k), what code that quantizes one
   * tensor without the model around it uses.
   */
  mix?: string;
}

/** The matrix the nominal bitsPerWeight counts shape-dependent storage on (a 4096-wide projection). */
export const REFERENCE_SHAPE = { rows: 4096, cols: 4096 } as const;

/** Bits of one index into `cols` channels (a permutation entry, an outlier column). */
export const indexBits = (cols: number) => Math.max(1, Math.ceil(Math.log2(cols)));

/** Outlier input channels of a `+o<P>` format on a matrix with `cols` channels: P% rounded up, at least one. */
export function outlierCount(f: NumberFormat, cols: number): number {
  if (!f.outlierPercent) return 0;
  // The percentage in hundredths first: 1% of 300 is 3, not 3.0000000000000004 → 4.
  return Math.min(cols, Math.max(1, Math.ceil(Math.round(f.outlierPercent * cols * 100) / 10000)));
}

/** Scales a level stores for a [rows, cols] matrix: one per tensor, per row, or per (2-D) block. */
export function levelCount(level: Pick<ScaleLevel, 'block' | 'blockRows'>, rows: number, cols: number): number {
  const { block } = level;
  if (block === -1) return 1;
  if (block === 0) return rows;
  return Math.ceil(rows / (level.blockRows ?? 1)) * Math.ceil(cols / block);
}

/**
 * Every bit a [rows, cols] matrix stores in this format: element codes, every scale level (per
 * tensor and per row included), codebooks, the permutation, outlier indices and their fp16 values.
 */
export function storedBits(f: NumberFormat, rows: number, cols: number): number {
  const el = f.element;
  const eb = el.kind === 'float' ? 1 + el.exp + el.man : el.bits;
  let bits = rows * cols * eb;
  for (const l of f.levels) bits += levelCount(l, rows, cols) * (l.bits + (l.zeroBits ?? 0));
  if (f.codebook) bits += rows * f.codebook.entries * f.codebook.bits;
  if (f.permute) bits += cols * indexBits(cols);
  const o = outlierCount(f, cols);
  bits += o * (indexBits(cols) + 16 * rows);
  return bits;
}

/** The exact bits per weight of one [rows, cols] matrix: storedBits / elements. */
export const bitsPerWeightFor = (f: NumberFormat, rows: number, cols: number) =>
  storedBits(f, rows, cols) / (rows * cols);

const fp = (exp: number, man: number, name: string): ElementType => ({ kind: 'float', exp, man, name });

function make(
  name: string,
  element: ElementType,
  levels: ScaleLevel[],
  compute: NumberFormat['compute'],
  fixedBits?: number,
): NumberFormat {
  const eb = element.kind === 'float' ? 1 + element.exp + element.man : element.bits;
  const bits =
    fixedBits ??
    eb +
      levels
        .filter((l) => l.block > 0)
        .reduce((s, l) => s + (l.bits + (l.zeroBits ?? 0)) / (l.block * (l.blockRows ?? 1)), 0);
  return { name, element, levels, compute, bitsPerWeight: bits };
}

/**
 * llama.cpp's codebook ("lattice") types, decoded from GGUF only: bytes per 256-element super-block
 * (ggml-common.h block_iq*, llama.cpp b4747) × 8 / 256. The element width is the index bits per value.
 */
const IQ_TYPES: Record<string, { bytes: number; indexBits: number }> = {
  iq1_s: { bytes: 50, indexBits: 1 },
  iq1_m: { bytes: 56, indexBits: 1 },
  iq2_xxs: { bytes: 66, indexBits: 2 },
  iq2_xs: { bytes: 74, indexBits: 2 },
  iq2_s: { bytes: 82, indexBits: 2 },
  iq3_xxs: { bytes: 98, indexBits: 3 },
  iq3_s: { bytes: 110, indexBits: 3 },
};

const FIXED: Record<string, () => NumberFormat> = {
  fp32: () => make('fp32', fp(8, 23, 'fp32'), [], 'fp32'),
  bf16: () => make('bf16', fp(8, 7, 'bf16'), [], 'bf16'),
  fp16: () => make('fp16', fp(5, 10, 'fp16'), [], 'fp16'),
  'fp8-e4m3': () => make('fp8-e4m3', fp(4, 3, 'e4m3'), [{ block: -1, bits: 32, type: 'fp32' }], 'fp8'),
  'fp8-e5m2': () => make('fp8-e5m2', fp(5, 2, 'e5m2'), [{ block: -1, bits: 32, type: 'fp32' }], 'fp8'),
  // DeepSeek-V3 (arXiv:2412.19437, §3.3.2): weights in E4M3 with an fp32 scale per 128 × 128 block.
  'fp8-e4m3-b128': () =>
    make('fp8-e4m3-b128', fp(4, 3, 'e4m3'), [{ block: 128, blockRows: 128, bits: 32, type: 'fp32' }], 'fp8'),
  // OCP Microscaling v1.0: one E8M0 scale per 32 elements.
  'mxfp8-e4m3': () => make('mxfp8-e4m3', fp(4, 3, 'e4m3'), [{ block: 32, bits: 8, type: 'e8m0' }], 'fp8'),
  'mxfp8-e5m2': () => make('mxfp8-e5m2', fp(5, 2, 'e5m2'), [{ block: 32, bits: 8, type: 'e8m0' }], 'fp8'),
  'mxfp6-e2m3': () => make('mxfp6-e2m3', fp(2, 3, 'e2m3'), [{ block: 32, bits: 8, type: 'e8m0' }], 'bf16'),
  'mxfp6-e3m2': () => make('mxfp6-e3m2', fp(3, 2, 'e3m2'), [{ block: 32, bits: 8, type: 'e8m0' }], 'bf16'),
  mxfp4: () => make('mxfp4', fp(2, 1, 'e2m1'), [{ block: 32, bits: 8, type: 'e8m0' }], 'fp4'),
  mxint8: () => make('mxint8', { kind: 'int', bits: 8, signed: true }, [{ block: 32, bits: 8, type: 'e8m0' }], 'int8'),
  // NVFP4: E2M1 elements, an E4M3 scale per 16, an fp32 scale per tensor.
  nvfp4: () =>
    make(
      'nvfp4',
      fp(2, 1, 'e2m1'),
      [
        { block: 16, bits: 8, type: 'e4m3' },
        { block: -1, bits: 32, type: 'fp32' },
      ],
      'fp4',
    ),
  // llama.cpp block layouts (ggml-common.h): bytes per block / elements per block.
  q4_0: () =>
    make(
      'q4_0',
      { kind: 'int', bits: 4, signed: true },
      [{ block: 32, bits: 16, type: 'fp16' }],
      'bf16',
      (18 * 8) / 32,
    ),
  q4_1: () =>
    make(
      'q4_1',
      { kind: 'int', bits: 4, signed: false },
      [{ block: 32, bits: 16, type: 'fp16', zeroBits: 16 }],
      'bf16',
      (20 * 8) / 32,
    ),
  q5_0: () =>
    make(
      'q5_0',
      { kind: 'int', bits: 5, signed: true },
      [{ block: 32, bits: 16, type: 'fp16' }],
      'bf16',
      (22 * 8) / 32,
    ),
  q5_1: () =>
    make(
      'q5_1',
      { kind: 'int', bits: 5, signed: false },
      [{ block: 32, bits: 16, type: 'fp16', zeroBits: 16 }],
      'bf16',
      (24 * 8) / 32,
    ),
  q8_0: () =>
    make(
      'q8_0',
      { kind: 'int', bits: 8, signed: true },
      [{ block: 32, bits: 16, type: 'fp16' }],
      'bf16',
      (34 * 8) / 32,
    ),
  q2_k: () =>
    make(
      'q2_k',
      { kind: 'int', bits: 2, signed: false },
      [
        { block: 16, bits: 4, type: 'int4', zeroBits: 4 },
        { block: 256, bits: 16, type: 'fp16', zeroBits: 16 },
      ],
      'bf16',
      (84 * 8) / 256,
    ),
  q3_k: () =>
    make(
      'q3_k',
      { kind: 'int', bits: 3, signed: true },
      [
        { block: 16, bits: 6, type: 'int6' },
        { block: 256, bits: 16, type: 'fp16' },
      ],
      'bf16',
      (110 * 8) / 256,
    ),
  q4_k: () =>
    make(
      'q4_k',
      { kind: 'int', bits: 4, signed: false },
      [
        { block: 32, bits: 6, type: 'int6', zeroBits: 6 },
        { block: 256, bits: 16, type: 'fp16', zeroBits: 16 },
      ],
      'bf16',
      (144 * 8) / 256,
    ),
  q5_k: () =>
    make(
      'q5_k',
      { kind: 'int', bits: 5, signed: false },
      [
        { block: 32, bits: 6, type: 'int6', zeroBits: 6 },
        { block: 256, bits: 16, type: 'fp16', zeroBits: 16 },
      ],
      'bf16',
      (176 * 8) / 256,
    ),
  q6_k: () =>
    make(
      'q6_k',
      { kind: 'int', bits: 6, signed: true },
      [
        { block: 16, bits: 8, type: 'int8' },
        { block: 256, bits: 16, type: 'fp16' },
      ],
      'bf16',
      (210 * 8) / 256,
    ),
  ...Object.fromEntries(
    Object.entries(IQ_TYPES).map(([name, t]) => [
      name,
      () => ({
        ...make(name, { kind: 'levels', bits: t.indexBits, name }, [], 'bf16', (t.bytes * 8) / 256),
        decodeOnly: true,
      }),
    ]),
  ),
};

/**
 * Parses a format name: fixed names above, int8/int4/int2 with -tensor | -channel | -g<N>, -asym,
 * int4-g16-2l, nf4-g64, kmeans<B>; then the statistical suffixes, in this order: `-perm` (reorder the
 * reduction axis by channel magnitude before grouping: only for formats with groups along it) and
 * `+o<P>` (P% of the input channels in fp16), as in int4-g128-asym-perm+o1.
 */
export function parseFormat(name: string): NumberFormat | undefined {
  const key = name.toLowerCase().trim();
  const m = /^(.+?)(-perm)?(?:\+o(\d+(?:\.\d+)?))?$/.exec(key);
  if (!m || (!m[2] && m[3] === undefined)) return parseBase(key);
  const base = parseBase(m[1]);
  if (!base || base.decodeOnly || (base.element.kind === 'float' && base.levels.length === 0)) return undefined;
  const permute = !!m[2];
  // Reordering only changes which channels share a scale: a format without groups along the row gains nothing.
  if (permute && !base.levels.some((l) => l.block > 0)) return undefined;
  const outlierPercent = m[3] === undefined ? undefined : Number(m[3]);
  if (outlierPercent !== undefined && !(outlierPercent > 0 && outlierPercent <= 50)) return undefined;
  const f: NumberFormat = {
    ...base,
    name: key,
    base,
    ...(permute ? { permute } : {}),
    ...(outlierPercent !== undefined ? { outlierPercent } : {}),
  };
  const { rows, cols } = REFERENCE_SHAPE;
  f.bitsPerWeight = base.bitsPerWeight + (storedBits(f, rows, cols) - storedBits(base, rows, cols)) / (rows * cols);
  return f;
}

function parseBase(key: string): NumberFormat | undefined {
  if (FIXED[key]) return FIXED[key]();
  // GGUF file types: llama-quantize's mix over the k-quants (IQ file types need an importance matrix and
  // codebook quantizers this build does not have).
  const mix = /^(q2_k_s|q3_k_[sml]|q4_k_[sm]|q5_k_[sm])$/.exec(key);
  if (mix) return { ...FIXED[`q${key[1]}_k`](), mix: key };
  let m = /^kmeans([1-8])$/.exec(key);
  if (m) {
    // Deep Compression's weight sharing (Han et al. 2016): 2^B fp16 centroids per output channel, B-bit indices.
    const bits = Number(m[1]);
    const f = make(key, { kind: 'codebook', bits }, [], 'bf16');
    f.codebook = { entries: 2 ** bits, bits: 16, type: 'fp16' };
    const { rows, cols } = REFERENCE_SHAPE;
    f.bitsPerWeight = storedBits(f, rows, cols) / (rows * cols);
    return f;
  }
  m = /^nf4-g(\d+)$/.exec(key);
  if (m) {
    return make(
      key,
      { kind: 'levels', bits: 4, name: 'nf4' },
      [{ block: Number(m[1]), bits: 16, type: 'fp16' }],
      'bf16',
    );
  }
  m = /^int(8|4|2)-g(\d+)-2l$/.exec(key);
  if (m) {
    // VS-Quant two-level: an integer (int8) scale per small group under an fp16 scale per channel.
    return make(
      key,
      { kind: 'int', bits: Number(m[1]), signed: true },
      [
        { block: Number(m[2]), bits: 8, type: 'int8' },
        { block: 0, bits: 16, type: 'fp16' },
      ],
      'bf16',
    );
  }
  m = /^int(8|4|2)-(tensor|channel|g(\d+))(-asym)?$/.exec(key);
  if (m) {
    const bits = Number(m[1]);
    const asym = !!m[4];
    const block = m[2] === 'tensor' ? -1 : m[2] === 'channel' ? 0 : Number(m[3]);
    if (block === 0 && m[3] === '0') return undefined;
    return make(
      key,
      { kind: 'int', bits, signed: !asym },
      [{ block, bits: 16, type: 'fp16', zeroBits: asym ? bits : undefined }],
      bits === 8 ? 'int8' : 'bf16',
    );
  }
  if (/^int(8|4|2)$/.test(key)) return parseBase(`${key}-channel`);
  return undefined;
}

/** GGUF file types parseFormat accepts (llama-quantize's mixes over the k-quants). */
export const FILE_TYPE_FORMATS = ['q2_k_s', 'q3_k_s', 'q3_k_m', 'q3_k_l', 'q4_k_s', 'q4_k_m', 'q5_k_s', 'q5_k_m'];

export const FORMAT_NAMES = [
  ...Object.keys(FIXED),
  'int8-tensor',
  'int8-channel',
  'int8-g128',
  'int4-channel',
  'int4-g128',
  'int4-g128-asym',
  'int4-g32',
  'int2-g64',
  'int4-g16-2l',
  'nf4-g64',
  // Statistical grouping (the contract, docs/ARCHITECTURE.md): groups from channel statistics, not position.
  'int4-g128-perm',
  'int4-g128+o1',
  'int4-g128-asym-perm+o1',
  'kmeans3',
  'kmeans4',
];

let offered: readonly string[] | undefined;

/**
 * The formats pickers offer (verify, the planner's precision list): the contract's (docs/ARCHITECTURE.md) names plus
 * common granularities; not the decode-only IQ types. Worked out on first use (parsing each name when the module
 * loaded cost every start of the command line ~1 ms).
 */
export function offeredFormats(): readonly string[] {
  offered ??= [
    ...new Set([...FORMAT_NAMES, 'int8-g32-asym', 'int4-tensor', 'int4-g32-perm', 'int8-channel+o1']),
  ].filter((n) => !parseFormat(n)?.decodeOnly);
  return offered;
}
