/**
 * Number formats by name (docs/ARCHITECTURE.md): an element type plus a stack of scale levels. This module
 * knows each format's exact bits per weight, scales included; the quantizers build on it.
 */
export type ElementType =
  | { kind: 'float'; exp: number; man: number; name: string }
  | { kind: 'int'; bits: number; signed: boolean }
  | { kind: 'levels'; bits: number; name: string };

export interface ScaleLevel {
  /** Elements per scale: 0 means one per output channel (row), -1 one per tensor. */
  block: number;
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
  /** Exact bits per weight, scales and zero points included (per-channel / per-tensor scales excluded as O(1/K)). */
  bitsPerWeight: number;
}

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
    fixedBits ?? eb + levels.filter((l) => l.block > 0).reduce((s, l) => s + (l.bits + (l.zeroBits ?? 0)) / l.block, 0);
  return { name, element, levels, compute, bitsPerWeight: bits };
}

const FIXED: Record<string, () => NumberFormat> = {
  fp32: () => make('fp32', fp(8, 23, 'fp32'), [], 'fp32'),
  bf16: () => make('bf16', fp(8, 7, 'bf16'), [], 'bf16'),
  fp16: () => make('fp16', fp(5, 10, 'fp16'), [], 'fp16'),
  'fp8-e4m3': () => make('fp8-e4m3', fp(4, 3, 'e4m3'), [{ block: -1, bits: 32, type: 'fp32' }], 'fp8'),
  'fp8-e5m2': () => make('fp8-e5m2', fp(5, 2, 'e5m2'), [{ block: -1, bits: 32, type: 'fp32' }], 'fp8'),
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
};

/** Parses a format name: fixed names above, or int8/int4/int2 with -tensor | -channel | -g<N>, -asym, int4-g16-2l, nf4-g64. */
export function parseFormat(name: string): NumberFormat | undefined {
  const key = name.toLowerCase().trim();
  if (FIXED[key]) return FIXED[key]();
  let m = /^nf4-g(\d+)$/.exec(key);
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
  if (/^int(8|4|2)$/.test(key)) return parseFormat(`${key}-channel`);
  return undefined;
}

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
];

/** The formats pickers offer (verify, the planner's precision list): the contract's (docs/ARCHITECTURE.md) names plus common granularities. */
export const OFFERED_FORMATS: readonly string[] = [...new Set([...FORMAT_NAMES, 'int8-g32-asym', 'int4-tensor'])];
