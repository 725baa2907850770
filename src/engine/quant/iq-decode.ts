import { halfToFloat } from '../graph/dtypes';
import { IQ_GRIDS, type IqGrid } from './iq-grids';

/**
 * Decoders for llama.cpp's codebook IQ types, ported from ggml-quants.c (dequantize_row_iq2_xxs …
 * dequantize_row_iq1_m, llama.cpp commit c392e509, tag b4747, MIT; the block layouts are
 * ggml-common.h's block_iq*). Every super-block holds 256 values: 8 sub-blocks of 32, each 4 groups
 * of 8, and a group is one grid entry (its magnitudes, or −1/0/1 for IQ1) with signs. Every product
 * here is exact in float32 (fp16 d, small integer factors), so double arithmetic stored into a
 * Float32Array gives llama.cpp's float32 results bit for bit.
 */

/** The grid's values, entry after entry (`width` each), expanded once from the compact table. */
const expanded = new Map<string, Int8Array | Uint8Array>();

function base64Bytes(s: string): Uint8Array {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const clean = s.replace(/=+$/, '');
  const out = new Uint8Array(Math.floor((clean.length * 6) / 8));
  let acc = 0;
  let n = 0;
  let o = 0;
  for (const ch of clean) {
    acc = (acc << 6) | A.indexOf(ch);
    n += 6;
    if (n >= 8) {
      n -= 8;
      out[o++] = (acc >> n) & 0xff;
    }
  }
  return out;
}

/** Expands a compact grid: `bits`-wide indices into `levels`, least significant bits first. */
export function expandGrid(g: IqGrid): Int8Array | Uint8Array {
  const packed = base64Bytes(g.data);
  const n = g.entries * g.width;
  const out = g.levels.some((v) => v < 0) ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const bit = i * g.bits;
    const b = bit >> 3;
    const v = ((packed[b] | ((packed[b + 1] ?? 0) << 8)) >> (bit & 7)) & ((1 << g.bits) - 1);
    out[i] = g.levels[v];
  }
  return out;
}

function grid(name: keyof typeof IQ_GRIDS): Int8Array | Uint8Array {
  let g = expanded.get(name);
  if (!g) expanded.set(name, (g = expandGrid(IQ_GRIDS[name])));
  return g;
}

/** ksigns_iq2xs: 7 stored sign bits, the 8th their parity (every group has an even number of negatives). */
const KSIGNS = Uint8Array.from({ length: 128 }, (_, k) => {
  let p = 0;
  for (let b = k; b; b >>= 1) p ^= b & 1;
  return k | (p << 7);
});

/** IQ1S_DELTA (ggml-common.h): the shift of IQ1_S / IQ1_M values off the −1/0/1 grid; IQ1_M decodes with it too. */
const IQ1S_DELTA = 0.125;

/** Bytes per 256-value super-block (ggml-common.h block_iq*). */
export const IQ_BLOCK_BYTES: Record<string, number> = {
  IQ2_XXS: 66,
  IQ2_XS: 74,
  IQ2_S: 82,
  IQ3_XXS: 98,
  IQ3_S: 110,
  IQ1_S: 50,
  IQ1_M: 56,
};

/** Decodes `count` values of an IQ type into `out`; false for any other type. */
export function dequantizeIq(type: string, raw: Uint8Array, count: number, out: Float32Array): boolean {
  const bs = IQ_BLOCK_BYTES[type];
  if (!bs) return false;
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const h = (o: number) => halfToFloat(u16(o));
  const nb = count / 256;
  // Group of 8 values: y[j] = scale · grid[entry·width + j] · (sign bit j ? −1 : 1).
  const signed8 = (y: number, g: Int8Array | Uint8Array, entry: number, scale: number, signs: number) => {
    for (let j = 0; j < 8; j++) out[y + j] = scale * g[entry * 8 + j] * (signs & (1 << j) ? -1 : 1);
  };
  // Two 4-value entries sharing one sign byte (IQ3).
  const signed4x2 = (y: number, g: Uint8Array | Int8Array, e1: number, e2: number, scale: number, signs: number) => {
    for (let j = 0; j < 4; j++) {
      out[y + j] = scale * g[e1 * 4 + j] * (signs & (1 << j) ? -1 : 1);
      out[y + j + 4] = scale * g[e2 * 4 + j] * (signs & (1 << (j + 4)) ? -1 : 1);
    }
  };
  for (let b = 0; b < nb; b++) {
    const o = b * bs;
    let y = b * 256;
    switch (type) {
      case 'IQ2_XXS': {
        // qs: 8 pairs of uint32: four grid-index bytes, then four 7-bit ksigns indices and a 4-bit scale on top.
        const g = grid('iq2xxs');
        const d = h(o);
        for (let ib = 0; ib < 8; ib++) {
          const a0 = o + 2 + 8 * ib;
          const a1 = u32(a0 + 4);
          const db = d * (0.5 + (a1 >>> 28)) * 0.25;
          for (let l = 0; l < 4; l++, y += 8) signed8(y, g, raw[a0 + l], db, KSIGNS[(a1 >>> (7 * l)) & 127]);
        }
        break;
      }
      case 'IQ2_XS': {
        // qs: 32 uint16 (9-bit grid index, 7-bit ksigns index); scales: a nibble per 16 values.
        const g = grid('iq2xs');
        const d = h(o);
        for (let ib = 0; ib < 8; ib++) {
          const sc = raw[o + 66 + ib];
          const db = [d * (0.5 + (sc & 0xf)) * 0.25, d * (0.5 + (sc >> 4)) * 0.25];
          for (let l = 0; l < 4; l++, y += 8) {
            const q = u16(o + 2 + 2 * (4 * ib + l));
            signed8(y, g, q & 511, db[l >> 1], KSIGNS[q >> 9]);
          }
        }
        break;
      }
      case 'IQ2_S': {
        // qs: 32 low index bytes, then 32 sign bytes (used whole); qh: 2 more index bits per group; scales as IQ2_XS.
        const g = grid('iq2s');
        const d = h(o);
        for (let ib = 0; ib < 8; ib++) {
          const sc = raw[o + 74 + ib];
          const db = [d * (0.5 + (sc & 0xf)) * 0.25, d * (0.5 + (sc >> 4)) * 0.25];
          const qh = raw[o + 66 + ib];
          for (let l = 0; l < 4; l++, y += 8) {
            const idx = raw[o + 2 + 4 * ib + l] | ((qh << (8 - 2 * l)) & 0x300);
            signed8(y, g, idx, db[l >> 1], raw[o + 34 + 4 * ib + l]);
          }
        }
        break;
      }
      case 'IQ3_XXS': {
        // qs: 64 index bytes (two 4-value entries per group); then 8 uint32: four 7-bit ksigns indices and a 4-bit scale.
        const g = grid('iq3xxs');
        const d = h(o);
        for (let ib = 0; ib < 8; ib++) {
          const a = u32(o + 66 + 4 * ib);
          const db = d * (0.5 + (a >>> 28)) * 0.5;
          for (let l = 0; l < 4; l++, y += 8) {
            const q = o + 2 + 8 * ib + 2 * l;
            signed4x2(y, g, raw[q], raw[q + 1], db, KSIGNS[(a >>> (7 * l)) & 127]);
          }
        }
        break;
      }
      case 'IQ3_S': {
        // qs: 64 low index bytes; qh: the 9th bit of each; signs: 32 bytes used whole; scales: a nibble per 32 values.
        const g = grid('iq3s');
        const d = h(o);
        for (let ib = 0; ib < 8; ib++) {
          const sc = raw[o + 106 + (ib >> 1)];
          const db = d * (1 + 2 * (ib & 1 ? sc >> 4 : sc & 0xf));
          const qh = raw[o + 66 + ib];
          for (let l = 0; l < 4; l++, y += 8) {
            const q = o + 2 + 8 * ib + 2 * l;
            const e1 = raw[q] | ((qh << (8 - 2 * l)) & 256);
            const e2 = raw[q + 1] | ((qh << (7 - 2 * l)) & 256);
            signed4x2(y, g, e1, e2, db, raw[o + 74 + 4 * ib + l]);
          }
        }
        break;
      }
      case 'IQ1_S': {
        // qs: 32 low index bytes; qh: a uint16 per 32 values: 3 index bits per group, a 3-bit scale, the delta's sign.
        const g = grid('iq1s');
        const d = h(o);
        for (let ib = 0; ib < 8; ib++) {
          const qh = u16(o + 34 + 2 * ib);
          const dl = d * (2 * ((qh >> 12) & 7) + 1);
          const delta = qh & 0x8000 ? -IQ1S_DELTA : IQ1S_DELTA;
          for (let l = 0; l < 4; l++, y += 8) {
            const e = raw[o + 2 + 4 * ib + l] | (((qh >> (3 * l)) & 7) << 8);
            for (let j = 0; j < 8; j++) out[y + j] = dl * (g[e * 8 + j] + delta);
          }
        }
        break;
      }
      case 'IQ1_M': {
        // No d field: the fp16 scale is the top nibbles of the four uint16 scale words (iq1m_scale_t); their
        // low 12 bits are four 3-bit sub-block scales. qh: a nibble per group (3 index bits, the delta's sign).
        const g = grid('iq1s');
        const sc = [0, 1, 2, 3].map((k) => u16(o + 48 + 2 * k));
        const d = halfToFloat((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
        for (let ib = 0; ib < 8; ib++) {
          const w = sc[ib >> 1];
          const shift = 6 * (ib & 1);
          const dl = [d * (2 * ((w >> shift) & 7) + 1), d * (2 * ((w >> (shift + 3)) & 7) + 1)];
          for (let l = 0; l < 4; l++, y += 8) {
            const qh = raw[o + 32 + 2 * ib + (l >> 1)];
            const nib = l & 1 ? qh >> 4 : qh & 0xf;
            const e = raw[o + 4 * ib + l] | ((nib & 7) << 8);
            const delta = nib & 8 ? -IQ1S_DELTA : IQ1S_DELTA;
            for (let j = 0; j < 8; j++) out[y + j] = dl[l >> 1] * (g[e * 8 + j] + delta);
          }
        }
        break;
      }
    }
  }
  return true;
}
