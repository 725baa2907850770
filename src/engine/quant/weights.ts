import type { ByteSource, SiblingResolver } from '../bytes';
import { InputError } from '../errors';
import type { CheckpointTensorRef } from '../formats/checkpoint';
import { GGML_TYPES } from '../formats/gguf';
import { halfToFloat, bf16ToFloat, rawToNumbers } from '../graph/dtypes';
import type { OnnxTensorRef } from '../formats/onnx-graph';
import { loadTensorBytes } from '../formats/onnx-data';
import { DataType } from '../formats/onnx-schema.generated';
import { dequantizeIq } from './iq-decode';
import { dequantizeLinear, type QdqTensor } from './onnx-qdq';
import type { GraphTensor, ModelGraph } from '../graph/model-graph';

const ST_TO_ONNX: Record<string, number> = {
  F64: DataType.DOUBLE,
  F32: DataType.FLOAT,
  F16: DataType.FLOAT16,
  BF16: DataType.BFLOAT16,
  F8_E4M3: DataType.FLOAT8E4M3FN,
  F8_E5M2: DataType.FLOAT8E5M2,
  I64: DataType.INT64,
  I32: DataType.INT32,
  I16: DataType.INT16,
  I8: DataType.INT8,
  U8: DataType.UINT8,
  U16: DataType.UINT16,
  U32: DataType.UINT32,
  U64: DataType.UINT64,
  BOOL: DataType.BOOL,
};

/** Stored types whose values are real numbers (floats, or ggml blocks of them): weights to quantize. */
export const FLOAT_DTYPES = new Set([
  'float',
  'float16',
  'bfloat16',
  'double',
  'float8e4m3fn',
  'float8e5m2',
  ...Object.values(GGML_TYPES)
    .filter((t) => t.block > 1)
    .map((t) => t.name.toLowerCase()),
]);

/** Whether Layerplan can decode a stored type to floats (every ggml block type, the IQ codebooks included). */
export function decodable(dtype: string): boolean {
  return FLOAT_DTYPES.has(dtype);
}

/**
 * The 6-bit scale and min of sub-block j of a Q4_K / Q5_K super-block (ggml-quants.c get_scale_min_k4):
 * 12 bytes pack 8 scales and 8 mins.
 */
function scaleMinK4(j: number, q: Uint8Array, o: number): [number, number] {
  if (j < 4) return [q[o + j] & 63, q[o + j + 4] & 63];
  return [(q[o + j + 4] & 0xf) | ((q[o + j - 4] >> 6) << 4), (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4)];
}

/** ggml's 2-bit layout (Q2_K, Q3_K, TQ2_0): element e of 256 is in byte 32·⌊e/128⌋ + e mod 32 of `qs`, at bit 2·(⌊e/32⌋ mod 4). */
function twoBits(raw: Uint8Array, qs: number, e: number): number {
  return (raw[qs + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
}

/** 32 elements from 16 bytes of 4-bit codes through a level table (low nibbles are elements 0–15, high ones 16–31), times `scale`. */
function nibblePairs(
  out: Float32Array,
  y: number,
  raw: Uint8Array,
  qs: number,
  scale: number,
  table: readonly number[],
): void {
  for (let j = 0; j < 16; j++) {
    out[y + j] = scale * table[raw[qs + j] & 0xf];
    out[y + 16 + j] = scale * table[raw[qs + j] >> 4];
  }
}

/** Decodes ggml's k-quant super-blocks of 256 (ggml-common.h block_q2_K … block_q6_K, dequantize_row_q*_K). */
function dequantizeK(type: string, raw: Uint8Array, count: number, out: Float32Array): boolean {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const h = (o: number) => halfToFloat(dv.getUint16(o, true));
  const nb = count / 256;
  switch (type) {
    case 'Q4_K':
    case 'Q5_K': {
      const five = type === 'Q5_K';
      const bs = five ? 176 : 144;
      for (let b = 0; b < nb; b++) {
        const o = b * bs;
        const d = h(o);
        const dmin = h(o + 2);
        const sc = o + 4;
        const qh = o + 16;
        let ql = five ? o + 48 : o + 16;
        let y = b * 256;
        let u1 = 1;
        let u2 = 2;
        for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
          const [s1, m1] = scaleMinK4(is, raw, sc);
          const [s2, m2] = scaleMinK4(is + 1, raw, sc);
          for (let l = 0; l < 32; l++) {
            out[y + l] = d * s1 * ((raw[ql + l] & 0xf) + (five && raw[qh + l] & u1 ? 16 : 0)) - dmin * m1;
          }
          for (let l = 0; l < 32; l++) {
            out[y + 32 + l] = d * s2 * ((raw[ql + l] >> 4) + (five && raw[qh + l] & u2 ? 16 : 0)) - dmin * m2;
          }
          ql += 32;
          y += 64;
          u1 <<= 2;
          u2 <<= 2;
        }
      }
      return true;
    }
    case 'Q6_K': {
      for (let b = 0; b < nb; b++) {
        const o = b * 210;
        const d = h(o + 208);
        let ql = o;
        let qh = o + 128;
        let sc = o + 192;
        for (let n = 0; n < 256; n += 128) {
          const y = b * 256 + n;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const q1 = ((raw[ql + l] & 0xf) | (((raw[qh + l] >> 0) & 3) << 4)) - 32;
            const q2 = ((raw[ql + l + 32] & 0xf) | (((raw[qh + l] >> 2) & 3) << 4)) - 32;
            const q3 = ((raw[ql + l] >> 4) | (((raw[qh + l] >> 4) & 3) << 4)) - 32;
            const q4 = ((raw[ql + l + 32] >> 4) | (((raw[qh + l] >> 6) & 3) << 4)) - 32;
            out[y + l] = d * dv.getInt8(sc + is) * q1;
            out[y + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
            out[y + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
            out[y + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
          }
          ql += 64;
          qh += 32;
          sc += 8;
        }
      }
      return true;
    }
    case 'Q2_K': {
      // 16 scale bytes (low nibble scale, high nibble min) for 16 elements each, 64 bytes of 2-bit values, d, dmin.
      for (let b = 0; b < nb; b++) {
        const o = b * 84;
        const d = h(o + 80);
        const dmin = h(o + 82);
        for (let e = 0; e < 256; e++) {
          const s = raw[o + (e >> 4)];
          out[b * 256 + e] = d * (s & 0xf) * twoBits(raw, o + 16, e) - dmin * (s >> 4);
        }
      }
      return true;
    }
    case 'Q3_K': {
      // hmask[32] (the third bit, set: no offset), qs[64] (two bits), 16 six-bit scales in 12 bytes, d.
      for (let b = 0; b < nb; b++) {
        const o = b * 110;
        const d = h(o + 108);
        const sc = o + 96;
        for (let e = 0; e < 256; e++) {
          const i = e >> 4;
          const scale =
            (((raw[sc + (i & 7)] >> (4 * (i >> 3))) & 0xf) | (((raw[sc + 8 + (i & 3)] >> (2 * (i >> 2))) & 3) << 4)) -
            32;
          const q = twoBits(raw, o + 32, e) - ((raw[o + (e & 31)] >> (e >> 5)) & 1 ? 0 : 4);
          out[b * 256 + e] = d * scale * q;
        }
      }
      return true;
    }
    case 'Q8_K': {
      // d as float32, 256 int8 values, then 16 int16 block sums (for dot products only).
      for (let b = 0; b < nb; b++) {
        const o = b * 292;
        const d = dv.getFloat32(o, true);
        for (let e = 0; e < 256; e++) out[b * 256 + e] = d * dv.getInt8(o + 4 + e);
      }
      return true;
    }
    case 'TQ2_0': {
      // Ternary: 2-bit codes q − 1 ∈ {−1, 0, 1}, four per byte in 32-byte rows, then d.
      for (let b = 0; b < nb; b++) {
        const o = b * 66;
        const d = h(o + 64);
        for (let e = 0; e < 256; e++) out[b * 256 + e] = d * (twoBits(raw, o, e) - 1);
      }
      return true;
    }
    case 'TQ1_0': {
      // Ternary, 1.6875 bits: five trits per byte as a base-3 fraction (q = (byte·3^k mod 256)·3 >> 8); 48 + 4 bytes, then d.
      const pow3 = [1, 3, 9, 27, 81];
      for (let b = 0; b < nb; b++) {
        const o = b * 54;
        const d = h(o + 52);
        for (let e = 0; e < 256; e++) {
          const [byte, k] =
            e < 160
              ? [raw[o + (e & 31)], e >> 5]
              : e < 240
                ? [raw[o + 32 + ((e - 160) & 15)], (e - 160) >> 4]
                : [raw[o + 48 + ((e - 240) & 3)], (e - 240) >> 2];
          out[b * 256 + e] = d * (((((byte * pow3[k]) & 0xff) * 3) >> 8) - 1);
        }
      }
      return true;
    }
    case 'IQ4_XS': {
      // Eight sub-blocks of 32 with 6-bit scales (low nibbles in scales_l, high pairs in scales_h), values from the IQ4_NL table.
      for (let b = 0; b < nb; b++) {
        const o = b * 136;
        const d = h(o);
        const hi = dv.getUint16(o + 2, true);
        for (let ib = 0; ib < 8; ib++) {
          const ls = ((raw[o + 4 + (ib >> 1)] >> (4 * (ib & 1))) & 0xf) | (((hi >> (2 * ib)) & 3) << 4);
          nibblePairs(out, b * 256 + 32 * ib, raw, o + 8 + 16 * ib, d * (ls - 32), IQ4_VALUES);
        }
      }
      return true;
    }
    default:
      return false;
  }
}

/** IQ4_NL / IQ4_XS: the 16 non-uniform levels a 4-bit code stands for (ggml-common.h kvalues_iq4nl). */
const IQ4_VALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
/** MXFP4 in GGUF: E2M1 codes as doubled integers (ggml's kvalues_mxfp4); the E8M0 scale is halved to match. */
const MXFP4_DOUBLED = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];
/**
 * Decodes ggml blocks (ggml-common.h layouts) to floats: the legacy 32-element blocks, the k-quants Q2_K…Q6_K
 * and Q8_K, the ternary TQ1_0 / TQ2_0, IQ4_NL / IQ4_XS, MXFP4 and the codebook types IQ1_S … IQ3_S (iq-decode.ts).
 */
export function dequantizeGgml(type: string, raw: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  if (dequantizeK(type, raw, count, out) || dequantizeIq(type, raw, count, out)) return out;
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const sizes: Record<string, number> = {
    Q4_0: 18,
    Q4_1: 20,
    Q5_0: 22,
    Q5_1: 24,
    Q8_0: 34,
    Q8_1: 36,
    IQ4_NL: 18,
    MXFP4: 17,
  };
  const bs = sizes[type];
  if (!bs) throw new Error(`decoding ${type} blocks is not implemented`);
  for (let b = 0; b < count / 32; b++) {
    const o = b * bs;
    if (type === 'MXFP4' || type === 'IQ4_NL') {
      if (type === 'MXFP4') nibblePairs(out, b * 32, raw, o + 1, 2 ** (raw[o] - 128), MXFP4_DOUBLED);
      else nibblePairs(out, b * 32, raw, o + 2, halfToFloat(dv.getUint16(o, true)), IQ4_VALUES);
      continue;
    }
    const d = halfToFloat(dv.getUint16(o, true));
    if (type === 'Q8_0' || type === 'Q8_1') {
      // Q8_1 keeps d·Σq after d (for dot products): the values start 2 bytes later.
      const qs = o + (type === 'Q8_1' ? 4 : 2);
      for (let j = 0; j < 32; j++) out[b * 32 + j] = dv.getInt8(qs + j) * d;
      continue;
    }
    const hasMin = type === 'Q4_1' || type === 'Q5_1';
    const m = hasMin ? halfToFloat(dv.getUint16(o + 2, true)) : 0;
    const five = type === 'Q5_0' || type === 'Q5_1';
    const qh = five ? dv.getUint32(o + (hasMin ? 4 : 2), true) : 0;
    const qs = o + (hasMin ? 4 : 2) + (five ? 4 : 0);
    for (let j = 0; j < 16; j++) {
      let lo = raw[qs + j] & 0x0f;
      let hi = raw[qs + j] >> 4;
      if (five) {
        lo |= ((qh >> j) & 1) << 4;
        hi |= ((qh >> (j + 16)) & 1) << 4;
      }
      const off = hasMin ? 0 : five ? 16 : 8;
      out[b * 32 + j] = hasMin ? lo * d + m : (lo - off) * d;
      out[b * 32 + j + 16] = hasMin ? hi * d + m : (hi - off) * d;
    }
  }
  return out;
}

/** Opens the file a checkpoint tensor lives in (the model itself, or a shard beside it). */
async function fileOf(ref: CheckpointTensorRef, source: ByteSource, siblings?: SiblingResolver): Promise<ByteSource> {
  if (ref.file === source.name) return source;
  if (!siblings || !ref.shard) throw new InputError(source.name, `cannot open '${ref.file}'`);
  return siblings.open(ref.shard, 'checkpoint');
}

/** The bytes of an ONNX-stored tensor of the graph (a MatMulNBits or DequantizeLinear operand), if it is stored. */
async function storedOnnxTensor(
  graph: ModelGraph,
  name: string | undefined,
  source: ByteSource,
  siblings?: SiblingResolver,
) {
  const r = (name ? graph.tensors.get(name)?.ref : undefined) as OnnxTensorRef | undefined;
  return r ? { bytes: await loadTensorBytes(r.tensor, source, siblings), t: r.tensor } : undefined;
}

/** The MatMulNBits node whose packed weight input is `t`, if any. */
export function matMulNBitsOf(graph: ModelGraph, t: GraphTensor) {
  return t.consumers.map((c) => graph.nodes[c]).find((n) => n.opType === 'MatMulNBits' && n.inputs[1] === t.name);
}

/** The DequantizeLinear node that turns stored integer weight `t` into floats (QDQ models), if any. */
export function dequantizeLinearOf(graph: ModelGraph, t: GraphTensor) {
  return t.consumers.map((c) => graph.nodes[c]).find((n) => n.opType === 'DequantizeLinear' && n.inputs[0] === t.name);
}

/** A weight's values as float32 (stored fp16 / bf16 / int8 / ggml blocks / MatMulNBits blocks are decoded first). */
export async function loadWeightFloat32(
  t: GraphTensor,
  source: ByteSource,
  siblings?: SiblingResolver,
  graph?: ModelGraph,
): Promise<Float32Array> {
  const nbits = graph && matMulNBitsOf(graph, t);
  if (graph && nbits) {
    const num = (n: string, d: number) =>
      typeof nbits.attributes[n] === 'number' ? (nbits.attributes[n] as number) : d;
    const [N, K, bits, block] = [num('N', 0), num('K', 0), num('bits', 4), num('block_size', 32)];
    const onnxBytes = (name: string | undefined) => storedOnnxTensor(graph, name, source, siblings);
    const b = await onnxBytes(t.name);
    const sc = await onnxBytes(nbits.inputs[2]);
    if (!b || !sc) {
      throw new InputError(
        source.name,
        `MatMulNBits '${nbits.name}': its weights or scales are not stored in the model`,
      );
    }
    const zp = await onnxBytes(nbits.inputs[3]);
    const scales = Float32Array.from(rawToNumbers(sc.bytes, sc.t.dataType, sc.t.elements));
    const zeros = zp
      ? zp.t.dataType === DataType.UINT8
        ? zp.bytes
        : Float32Array.from(rawToNumbers(zp.bytes, zp.t.dataType, zp.t.elements))
      : undefined;
    return dequantizeMatMulNBits(b.bytes, scales, zeros, N, K, bits, block);
  }
  const dq = graph && dequantizeLinearOf(graph, t);
  // Whatever DequantizeLinear reads is stored quantized (integers, or float8 codes under a scale).
  if (graph && dq) {
    // QDQ: the weight as the model computes with it, through the conformance-tested DequantizeLinear reference.
    const load = async (name: string | undefined): Promise<QdqTensor | undefined> => {
      const s = await storedOnnxTensor(graph, name, source, siblings);
      return s && { values: rawToNumbers(s.bytes, s.t.dataType, s.t.elements), dtype: s.t.dataType, shape: s.t.dims };
    };
    const [x, scale, zp] = [await load(t.name), await load(dq.inputs[1]), await load(dq.inputs[2])];
    if (!x || !scale) {
      throw new InputError(
        source.name,
        `DequantizeLinear '${dq.name}': its weight or scale is not stored in the model`,
      );
    }
    const num = (n: string) => (typeof dq.attributes[n] === 'number' ? (dq.attributes[n] as number) : undefined);
    const out = dequantizeLinear(x, scale, zp, {
      axis: num('axis'),
      blockSize: num('block_size'),
      outputDtype: DataType.FLOAT,
    });
    return new Float32Array(out.bytes.buffer, out.bytes.byteOffset, x.values.length);
  }
  const ref = t.ref as OnnxTensorRef | CheckpointTensorRef | undefined;
  if (!ref) throw new InputError(source.name, `tensor '${t.name}' has no stored values`);
  if (ref.format === 'onnx') {
    const bytes = await loadTensorBytes(ref.tensor, source, siblings);
    return Float32Array.from(rawToNumbers(bytes, ref.tensor.dataType, ref.tensor.elements));
  }
  const file = await fileOf(ref, source, siblings);
  const raw = await file.read(ref.offset, ref.length);
  if (ref.format === 'safetensors') {
    const code = ST_TO_ONNX[ref.storage];
    return Float32Array.from(rawToNumbers(raw, code, t.elements));
  }
  switch (ref.storage) {
    case 'F32':
      return new Float32Array(raw.slice().buffer, 0, t.elements);
    case 'F16': {
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      return Float32Array.from({ length: t.elements }, (_, i) => halfToFloat(dv.getUint16(i * 2, true)));
    }
    case 'BF16': {
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      return Float32Array.from({ length: t.elements }, (_, i) => bf16ToFloat(dv.getUint16(i * 2, true)));
    }
    default:
      try {
        return dequantizeGgml(ref.storage, raw, t.elements);
      } catch (e) {
        throw new InputError(source.name, `tensor '${t.name}': ${(e as Error).message}`);
      }
  }
}

/**
 * How a weight's values are laid out for quantization: [rows = output channels, cols = reduction axis].
 * A weight that feeds MatMul's B input directly is [K, N] and gets transposed; one that feeds a
 * Transpose (Linear weights [out, in]), Gemm with transB, Conv, or nothing known keeps its first axis as rows.
 */
export function weightLayout(graph: ModelGraph, t: GraphTensor): { rows: number; cols: number; transpose: boolean } {
  const dq = dequantizeLinearOf(graph, t);
  const dqOut = dq && graph.tensors.get(dq.outputs[0]);
  if (dqOut && dqOut !== t) return weightLayout(graph, { ...dqOut, shape: t.shape, elements: t.elements });
  const nbits = matMulNBitsOf(graph, t);
  if (nbits) {
    const N = nbits.attributes.N as number;
    const K = nbits.attributes.K as number;
    return { rows: N, cols: K, transpose: false };
  }
  const shape = (t.shape ?? []).map((d) => (typeof d === 'number' ? d : 1));
  if (shape.length < 2) return { rows: 1, cols: t.elements, transpose: false };
  const consumer = t.consumers.map((c) => graph.nodes[c]).find((n) => n.opType !== 'Identity');
  const asB =
    consumer &&
    (consumer.opType === 'MatMul' || (consumer.opType === 'Gemm' && !consumer.attributes.transB)) &&
    consumer.inputs[1] === t.name;
  if (asB && shape.length === 2) return { rows: shape[1], cols: shape[0], transpose: true };
  return { rows: shape[0], cols: t.elements / shape[0], transpose: false };
}

/** Copies [K, N] into [N, K], in 64×64 tiles so both sides stay in cache. */
export function transpose2d(x: Float32Array, rows: number, cols: number): Float32Array {
  const y = new Float32Array(x.length);
  const T = 64;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) {
        const row = r * cols;
        for (let c = c0; c < c1; c++) y[c * rows + r] = x[row + c];
      }
    }
  }
  return y;
}

/**
 * com.microsoft MatMulNBits weights: B is [N, K/block, block·bits/8] packed uint8 (low bits first),
 * scales [N · K/block], optional zero points (packed like B, default 2^(bits−1)).
 * Returns W as [N, K] floats: W[n, k] = (q − zp) · scale, computed in float32 as onnxruntime does.
 */
export function dequantizeMatMulNBits(
  b: Uint8Array,
  scales: Float32Array,
  zeroPoints: Uint8Array | Float32Array | undefined,
  N: number,
  K: number,
  bits: number,
  block: number,
): Float32Array {
  const blocks = Math.ceil(K / block);
  const bytesPerBlock = (block * bits) / 8;
  const mask = (1 << bits) - 1;
  const w = new Float32Array(N * K);
  const zpBytesPerRow = Math.ceil((blocks * bits) / 8);
  for (let n = 0; n < N; n++) {
    for (let blk = 0; blk < blocks; blk++) {
      const scale = scales[n * blocks + blk];
      let zp = 2 ** (bits - 1);
      if (zeroPoints instanceof Float32Array) zp = zeroPoints[n * blocks + blk];
      else if (zeroPoints) {
        const bitPos = blk * bits;
        zp = (zeroPoints[n * zpBytesPerRow + (bitPos >> 3)] >> (bitPos & 7)) & mask;
      }
      const base = (n * blocks + blk) * bytesPerBlock;
      for (let j = 0; j < block && blk * block + j < K; j++) {
        const bitPos = j * bits;
        const q = (b[base + (bitPos >> 3)] >> (bitPos & 7)) & mask;
        w[n * K + blk * block + j] = Math.fround((q - zp) * scale);
      }
    }
  }
  return w;
}
