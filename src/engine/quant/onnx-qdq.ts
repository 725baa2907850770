import { DataType } from '../formats/onnx-schema.generated';
import {
  E2M1,
  E4M3FN,
  E4M3FNUZ,
  E5M2,
  E5M2FNUZ,
  floatToBf16Bits,
  floatToHalfBits,
  miniFloatBits,
  roundHalfEven,
  roundToMiniFloat,
  toBf16,
  toHalf,
  type MiniFloat,
} from './numeric';

/**
 * ONNX QuantizeLinear / DequantizeLinear (opsets 10–25): per-tensor, per-axis and blocked scales,
 * integer outputs of 2 to 16 bits, float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ) and FLOAT4E2M1, with the
 * reference implementation's arithmetic (x / scale in the inputs' float type, round half to even,
 * saturation). Values in, raw little-endian bytes out (4- and 2-bit types packed low bits first).
 */
export interface QdqTensor {
  values: Float64Array;
  dtype: number;
  shape: number[];
}

const INT_RANGE: Record<number, [number, number, number]> = {
  [DataType.INT8]: [-128, 127, 8],
  [DataType.UINT8]: [0, 255, 8],
  [DataType.INT16]: [-32768, 32767, 16],
  [DataType.UINT16]: [0, 65535, 16],
  [DataType.INT4]: [-8, 7, 4],
  [DataType.UINT4]: [0, 15, 4],
  [DataType.INT2]: [-2, 1, 2],
  [DataType.UINT2]: [0, 3, 2],
  [DataType.INT32]: [-2147483648, 2147483647, 32],
};
const FLOATS: Record<number, MiniFloat> = {
  [DataType.FLOAT8E4M3FN]: E4M3FN,
  [DataType.FLOAT8E4M3FNUZ]: E4M3FNUZ,
  [DataType.FLOAT8E5M2]: E5M2,
  [DataType.FLOAT8E5M2FNUZ]: E5M2FNUZ,
  [DataType.FLOAT4E2M1]: E2M1,
};

/** Index into the scale / zero point for each element of x (per-tensor, per-axis or blocked). */
function scaleIndex(
  xShape: number[],
  scaleShape: number[],
  scaleSize: number,
  axis: number,
  block: number,
): (i: number) => number {
  if (scaleSize === 1) return () => 0;
  const rank = xShape.length;
  const ax = axis < 0 ? axis + rank : axis;
  const strides = xShape.map((_, d) => xShape.slice(d + 1).reduce((a, b) => a * b, 1));
  if (block > 0 && scaleShape.length === rank) {
    const sStrides = scaleShape.map((_, d) => scaleShape.slice(d + 1).reduce((a, b) => a * b, 1));
    return (i) => {
      let idx = 0;
      for (let d = 0; d < rank; d++) {
        let c = Math.floor(i / strides[d]) % xShape[d];
        if (d === ax) c = Math.floor(c / block);
        idx += c * sStrides[d];
      }
      return idx;
    };
  }
  return (i) => Math.floor(i / strides[ax]) % xShape[ax];
}

/** Rounds a quotient to the precision the reference computes it in (the wider of x's and the scale's float types). */
function inPrecision(v: number, a: number, b: number): number {
  const wide = [a, b].some((t) => t === DataType.FLOAT || t === DataType.DOUBLE);
  if (!wide && (a === DataType.FLOAT16 || b === DataType.FLOAT16)) return toHalf(v);
  if (!wide && (a === DataType.BFLOAT16 || b === DataType.BFLOAT16)) return toBf16(v);
  return [a, b].includes(DataType.DOUBLE) ? v : Math.fround(v);
}

function pack(values: number[], dtype: number): Uint8Array {
  const n = values.length;
  if (dtype === DataType.INT4 || dtype === DataType.UINT4 || dtype === DataType.FLOAT4E2M1) {
    const out = new Uint8Array(Math.ceil(n / 2));
    values.forEach((v, i) => (out[i >> 1] |= (v & 0xf) << ((i & 1) * 4)));
    return out;
  }
  if (dtype === DataType.INT2 || dtype === DataType.UINT2) {
    const out = new Uint8Array(Math.ceil(n / 4));
    values.forEach((v, i) => (out[i >> 2] |= (v & 3) << ((i & 3) * 2)));
    return out;
  }
  const bits = INT_RANGE[dtype]?.[2] ?? 8;
  const out = new Uint8Array((n * bits) / 8);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => {
    if (bits === 8) out[i] = v & 0xff;
    else if (bits === 16) dv.setUint16(i * 2, v & 0xffff, true);
    else dv.setInt32(i * 4, v, true);
  });
  return out;
}

export function quantizeLinear(
  x: QdqTensor,
  scale: QdqTensor,
  zeroPoint: QdqTensor | undefined,
  attrs: { axis?: number; blockSize?: number; saturate?: number; outputDtype?: number },
): { bytes: Uint8Array; dtype: number } {
  const outType = zeroPoint?.dtype ?? (attrs.outputDtype || DataType.UINT8);
  const at = scaleIndex(x.shape, scale.shape, scale.values.length, attrs.axis ?? 1, attrs.blockSize ?? 0);
  const saturate = (attrs.saturate ?? 1) !== 0;
  const out: number[] = new Array(x.values.length);
  const float = FLOATS[outType];
  const range = INT_RANGE[outType];
  for (let i = 0; i < x.values.length; i++) {
    const k = at(i);
    const v = inPrecision(x.values[i] / scale.values[k], x.dtype, scale.dtype);
    if (float) {
      const q = roundToMiniFloat(v, float, saturate || outType === DataType.FLOAT4E2M1);
      out[i] = miniFloatBits(q, float);
    } else if (range) {
      const zp = zeroPoint ? zeroPoint.values[k] : 0;
      out[i] = Math.min(range[1], Math.max(range[0], roundHalfEven(v) + zp));
    } else throw new Error(`QuantizeLinear to data type ${outType} is not supported`);
  }
  return { bytes: pack(out, outType), dtype: outType };
}

export function dequantizeLinear(
  x: QdqTensor,
  scale: QdqTensor,
  zeroPoint: QdqTensor | undefined,
  attrs: { axis?: number; blockSize?: number; outputDtype?: number },
): { bytes: Uint8Array; dtype: number } {
  const outType = attrs.outputDtype || scale.dtype;
  const at = scaleIndex(x.shape, scale.shape, scale.values.length, attrs.axis ?? 1, attrs.blockSize ?? 0);
  const n = x.values.length;
  const width = outType === DataType.FLOAT ? 4 : outType === DataType.DOUBLE ? 8 : 2;
  const out = new Uint8Array(n * width);
  const dv = new DataView(out.buffer);
  const isFloat8 = !!FLOATS[x.dtype];
  for (let i = 0; i < n; i++) {
    const k = at(i);
    const zp = zeroPoint && !isFloat8 ? zeroPoint.values[k] : 0;
    const v = Math.fround(Math.fround(x.values[i] - zp) * scale.values[k]);
    if (outType === DataType.FLOAT) dv.setFloat32(i * 4, v, true);
    else if (outType === DataType.DOUBLE) dv.setFloat64(i * 8, v, true);
    else if (outType === DataType.FLOAT16) dv.setUint16(i * 2, floatToHalfBits(v), true);
    else dv.setUint16(i * 2, floatToBf16Bits(v), true);
  }
  return { bytes: out, dtype: outType };
}
