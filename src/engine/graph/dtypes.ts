/**
 * Element types, as the engine names and sizes them. The codes are ONNX's TensorProto.DataType
 * enumeration (onnx/onnx.proto3), which the other formats' dtypes are mapped onto; a unit test checks
 * this table against the protobuf schema the ONNX reader is generated from.
 */
export const ONNX_DTYPE = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const;
const DataType = ONNX_DTYPE;

/** Engine-wide element type names (lower case, as `inspect` prints them). */
const names: Record<number, string> = {};
for (const [k, v] of Object.entries(DataType)) names[v] = k.toLowerCase();

/** Bits per element of an ONNX data type; undefined for strings and unknown codes. */
const bits: Record<number, number> = {
  [DataType.FLOAT]: 32,
  [DataType.UINT8]: 8,
  [DataType.INT8]: 8,
  [DataType.UINT16]: 16,
  [DataType.INT16]: 16,
  [DataType.INT32]: 32,
  [DataType.INT64]: 64,
  [DataType.BOOL]: 8,
  [DataType.FLOAT16]: 16,
  [DataType.DOUBLE]: 64,
  [DataType.UINT32]: 32,
  [DataType.UINT64]: 64,
  [DataType.COMPLEX64]: 64,
  [DataType.COMPLEX128]: 128,
  [DataType.BFLOAT16]: 16,
  [DataType.FLOAT8E4M3FN]: 8,
  [DataType.FLOAT8E4M3FNUZ]: 8,
  [DataType.FLOAT8E5M2]: 8,
  [DataType.FLOAT8E5M2FNUZ]: 8,
  [DataType.UINT4]: 4,
  [DataType.INT4]: 4,
  [DataType.FLOAT4E2M1]: 4,
  [DataType.FLOAT8E8M0]: 8,
  [DataType.UINT2]: 2,
  [DataType.INT2]: 2,
};

export function onnxDtypeName(code: number): string {
  return names[code] ?? `dtype(${code})`;
}

export function dtypeBits(code: number): number | undefined {
  return bits[code];
}

export function isFloatDtype(code: number): boolean {
  return [
    DataType.FLOAT,
    DataType.FLOAT16,
    DataType.DOUBLE,
    DataType.BFLOAT16,
    DataType.FLOAT8E4M3FN,
    DataType.FLOAT8E4M3FNUZ,
    DataType.FLOAT8E5M2,
    DataType.FLOAT8E5M2FNUZ,
    DataType.FLOAT4E2M1,
    DataType.FLOAT8E8M0,
  ].includes(code as never);
}

/** IEEE half → float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
export function bf16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}

/**
 * Generic minifloat decoder: `e` exponent bits, `m` mantissa bits, `bias`,
 * `fnuz` (no negative zero / infinities, NaN is 0x80), `fn` (no infinities, only all-ones is NaN),
 * `finite` (no special values at all, as FP4 E2M1).
 */
export function minifloatToFloat(
  v: number,
  e: number,
  m: number,
  bias: number,
  mode: 'ieee' | 'fn' | 'fnuz' | 'finite',
): number {
  const total = 1 + e + m;
  const sign = (v >> (total - 1)) & 1;
  const exp = (v >> m) & ((1 << e) - 1);
  const man = v & ((1 << m) - 1);
  if (mode === 'fnuz' && v === 1 << (total - 1)) return NaN;
  const maxExp = (1 << e) - 1;
  if (mode === 'ieee' && exp === maxExp) return man ? NaN : sign ? -Infinity : Infinity;
  if (mode === 'fn' && exp === maxExp && man === (1 << m) - 1) return NaN;
  const val = exp === 0 ? man * 2 ** (1 - bias - m) : (1 + man / (1 << m)) * 2 ** (exp - bias);
  return sign ? -val : val;
}

/**
 * Decodes the little-endian raw representation of a tensor (as raw_data holds it) to float64 values.
 * Integer types give their integer values; 4-bit and 2-bit types are unpacked low bits first.
 */
export function rawToNumbers(raw: Uint8Array, dataType: number, count: number): Float64Array {
  const out = new Float64Array(count);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (dataType) {
    case DataType.FLOAT:
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      break;
    case DataType.DOUBLE:
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case DataType.FLOAT16:
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      break;
    case DataType.BFLOAT16:
      for (let i = 0; i < count; i++) out[i] = bf16ToFloat(dv.getUint16(i * 2, true));
      break;
    case DataType.UINT8:
    case DataType.BOOL:
      for (let i = 0; i < count; i++) out[i] = raw[i];
      break;
    case DataType.INT8:
      for (let i = 0; i < count; i++) out[i] = dv.getInt8(i);
      break;
    case DataType.UINT16:
      for (let i = 0; i < count; i++) out[i] = dv.getUint16(i * 2, true);
      break;
    case DataType.INT16:
      for (let i = 0; i < count; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case DataType.INT32:
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case DataType.UINT32:
      for (let i = 0; i < count; i++) out[i] = dv.getUint32(i * 4, true);
      break;
    case DataType.INT64:
      for (let i = 0; i < count; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case DataType.UINT64:
      for (let i = 0; i < count; i++) out[i] = Number(dv.getBigUint64(i * 8, true));
      break;
    case DataType.FLOAT8E4M3FN:
      for (let i = 0; i < count; i++) out[i] = minifloatToFloat(raw[i], 4, 3, 7, 'fn');
      break;
    case DataType.FLOAT8E4M3FNUZ:
      for (let i = 0; i < count; i++) out[i] = minifloatToFloat(raw[i], 4, 3, 8, 'fnuz');
      break;
    case DataType.FLOAT8E5M2:
      for (let i = 0; i < count; i++) out[i] = minifloatToFloat(raw[i], 5, 2, 15, 'ieee');
      break;
    case DataType.FLOAT8E5M2FNUZ:
      for (let i = 0; i < count; i++) out[i] = minifloatToFloat(raw[i], 5, 2, 16, 'fnuz');
      break;
    case DataType.FLOAT8E8M0:
      for (let i = 0; i < count; i++) out[i] = raw[i] === 255 ? NaN : 2 ** (raw[i] - 127);
      break;
    case DataType.UINT4:
    case DataType.INT4:
    case DataType.FLOAT4E2M1:
      for (let i = 0; i < count; i++) {
        const nib = (raw[i >> 1] >> ((i & 1) * 4)) & 0xf;
        out[i] =
          dataType === DataType.UINT4
            ? nib
            : dataType === DataType.INT4
              ? (nib << 28) >> 28
              : minifloatToFloat(nib, 2, 1, 1, 'finite');
      }
      break;
    case DataType.UINT2:
    case DataType.INT2:
      for (let i = 0; i < count; i++) {
        const v = (raw[i >> 2] >> ((i & 3) * 2)) & 3;
        out[i] = dataType === DataType.UINT2 ? v : (v << 30) >> 30;
      }
      break;
    default:
      throw new Error(`cannot decode values of data type ${onnxDtypeName(dataType)}`);
  }
  return out;
}
