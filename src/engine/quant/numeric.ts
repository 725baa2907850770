/** Scalar rounding and minifloat encodings shared by the quantizers and the ONNX QDQ reference. */
import { bf16ToFloat as bf16BitsToFloat, halfToFloat as halfBitsToFloat } from '../graph/dtypes';

export { bf16BitsToFloat, halfBitsToFloat };

/** Round half to even (numpy / torch / ONNX rounding). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 bits, round to nearest even (NaN stays NaN). */
export function floatToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if (Number.isNaN(x)) return 0x7fc0;
  const lsb = (b >>> 16) & 1;
  return ((b + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** float → IEEE half bits, round to nearest even, overflow to infinity. */
export function floatToHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = man & ((1 << shift) - 1);
    let h = man >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  const rest = man & 0x1fff;
  let h = (e << 10) | (man >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  if (h >= 0x7c00) return sign | 0x7c00;
  return sign | h;
}

export const toHalf = (x: number) => halfBitsToFloat(floatToHalfBits(x));
export const toBf16 = (x: number) => bf16BitsToFloat(floatToBf16Bits(x));

/**
 * A small float type: `exp` exponent bits, `man` mantissa bits. Finite-only variants (E4M3FN's
 * all-ones-is-NaN, the OCP FP6/FP4 types with no specials) are described by their largest finite
 * value; IEEE-like ones (E5M2) keep infinities.
 */
export interface MiniFloat {
  exp: number;
  man: number;
  bias: number;
  maxFinite: number;
  /** Has infinities (E5M2): overflow without saturation goes to ±inf. */
  ieee: boolean;
  /** Unsigned-zero-NaN variants (FNUZ): bias one higher, no negative zero. */
  fnuz?: boolean;
}

export const E4M3FN: MiniFloat = { exp: 4, man: 3, bias: 7, maxFinite: 448, ieee: false };
export const E4M3FNUZ: MiniFloat = { exp: 4, man: 3, bias: 8, maxFinite: 240, ieee: false, fnuz: true };
export const E5M2: MiniFloat = { exp: 5, man: 2, bias: 15, maxFinite: 57344, ieee: true };
export const E5M2FNUZ: MiniFloat = { exp: 5, man: 2, bias: 16, maxFinite: 57344, ieee: false, fnuz: true };
export const E2M3: MiniFloat = { exp: 2, man: 3, bias: 1, maxFinite: 7.5, ieee: false };
export const E3M2: MiniFloat = { exp: 3, man: 2, bias: 3, maxFinite: 28, ieee: false };
export const E2M1: MiniFloat = { exp: 2, man: 1, bias: 1, maxFinite: 6, ieee: false };

/**
 * Rounds x to the nearest value of the minifloat grid (ties to even mantissa), saturating to
 * ±maxFinite when `saturate` (else ±inf for IEEE-like types, NaN otherwise). Returns the value.
 */
export function roundToMiniFloat(x: number, f: MiniFloat, saturate = true): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  const sign = x < 0 ? -1 : 1;
  if (a === Infinity) return saturate ? sign * f.maxFinite : f.ieee ? x : NaN;
  const minNormalExp = 1 - f.bias;
  let e = a === 0 ? minNormalExp : Math.max(minNormalExp, Math.floor(Math.log2(a)));
  // Guard log2 rounding at exact powers of two.
  if (2 ** e > a) e--;
  if (e < minNormalExp) e = minNormalExp;
  const quantum = 2 ** (e - f.man);
  let q = a / quantum;
  const r = Math.floor(q);
  const frac = q - r;
  q = frac > 0.5 || (frac === 0.5 && r % 2 === 1) ? r + 1 : r;
  const v = q * quantum;
  if (v > f.maxFinite) {
    if (saturate) return sign * f.maxFinite;
    // Values that round past the largest finite one overflow.
    return f.ieee ? sign * Infinity : NaN;
  }
  const out = sign * v;
  return f.fnuz && out === 0 ? 0 : out;
}

/** Bits of a minifloat value (for packing); x must already lie on the grid. */
export function miniFloatBits(x: number, f: MiniFloat): number {
  const total = 1 + f.exp + f.man;
  if (Number.isNaN(x)) return f.fnuz ? 1 << (total - 1) : (1 << total) - 1;
  const sign = x < 0 || Object.is(x, -0) ? 1 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return (sign << (total - 1)) | (((1 << f.exp) - 1) << f.man);
  if (a === 0) return f.fnuz ? 0 : sign << (total - 1);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  let be = e + f.bias;
  let m: number;
  if (be <= 0) {
    be = 0;
    m = Math.round(a / 2 ** (1 - f.bias - f.man));
  } else m = Math.round((a / 2 ** e - 1) * (1 << f.man));
  if (m === 1 << f.man) {
    m = 0;
    be++;
  }
  return (sign << (total - 1)) | (be << f.man) | m;
}
