import type { PackedWeight, ScaleType } from './pack';
import { innermostBlock } from './pack';

/**
 * One WGSL kernel family for every packed format: y[b, n] = Σ_k x[b, k] · W[n, k], dequantizing W
 * on the fly from its packed bits (pack.ts). The generator bakes the format's element width and
 * decoding, its scale levels and the batch size into the source; the arithmetic is the same for all:
 * per innermost block, Σ x·e and Σ x in float32, then S·(Σx·e − z·Σx) − M·Σx.
 *
 * A thread per output row and share of the reduction axis (split-K; reduceSource sums the shares),
 * no workgroup barriers (SwiftShader runs barriers 10–80× slower), and the codes interleaved across
 * rows so neighbouring threads read neighbouring words. Batch 1 is
 * the decode GEMV; a small batch is the prefill GEMM, each weight word read once for all rows of x.
 * The same source runs in Node (Dawn) and in the webview (navigator.gpu).
 */
export const WORKGROUP = 64;

/**
 * Columns the kernel sums before applying scales: the innermost scale block, or — where scales are
 * per row or per tensor — 256, so that per-channel formats can split the reduction axis too (the
 * scales are the same for every sub-block; 256 is a whole number of words for every code width).
 */
export function kernelBlock(p: PackedWeight): number {
  const inner = innermostBlock(p);
  return inner < p.cols ? inner : Math.min(p.cols, 256);
}

/**
 * The streams of the one `meta` buffer, in order: each level's scale (then min), then the codebook,
 * the permutation, the outlier indices and the outlier values, where the format has them.
 */
function metaStreams(p: PackedWeight): Uint32Array[] {
  const out: Uint32Array[] = [];
  for (const l of p.levels) {
    out.push(l.scale.words);
    if (l.min) out.push(l.min.words);
  }
  if (p.codebook) out.push(p.codebook.values.words);
  if (p.perm) out.push(p.perm.words);
  if (p.outliers) out.push(p.outliers.index.words, p.outliers.values.words);
  return out;
}

/** Word offsets of the streams inside the one `meta` buffer (metaStreams' order). */
export function metaLayout(p: PackedWeight): { offsets: number[]; words: number } {
  const offsets: number[] = [];
  let words = 0;
  for (const s of metaStreams(p)) {
    offsets.push(words);
    words += s.length;
  }
  return { offsets, words };
}

const DECODE: Record<ScaleType, string> = {
  f32: 'bitcast<f32>(c)',
  f16: 'unpack2x16float(c).x',
  // 2^(c − 127) on the float32 exponent bits (c = 0 is the subnormal 2^-127).
  e8m0: 'select(bitcast<f32>(c << 23u), bitcast<f32>(0x00400000u), c == 0u)',
  e4m3: 'dec_e4m3(c)',
  uint: 'f32(c)',
};

const mask = (bits: number) => (bits >= 32 ? '0xffffffffu' : `${(2 ** bits - 1) >>> 0}u`);

function indexExpr(block: number, blockRows = 1): string {
  if (block === -1) return '0u';
  if (block === 0) return 'r';
  const row = blockRows > 1 ? `(r / ${blockRows}u)` : 'r';
  return `${row} * ((p.cols + ${block}u - 1u) / ${block}u) + k0 / ${block}u`;
}

export function kernelSource(p: PackedWeight, batch: number): string {
  const eb = p.elementBits;
  const straddles = 32 % eb !== 0;
  const element =
    p.element === 'lut'
      ? 'lut[code]'
      : p.element === 'codebook'
        ? 'cb[code]'
        : p.element === 'f16'
          ? 'unpack2x16float(code).x'
          : p.element === 'bf16'
            ? 'bitcast<f32>(code << 16u)'
            : 'bitcast<f32>(code)';
  const { offsets } = metaLayout(p);
  const slots = Math.max(1, Math.ceil(offsets.length / 4));
  const lines: string[] = [];
  let slot = 0;
  const off = () => {
    const i = slot++;
    return `p.off[${i >> 2}][${i & 3}]`;
  };
  let hasMin = false;
  let hasZero = false;
  let minSign = 1;
  p.levels.forEach((l, i) => {
    lines.push(`    let i${i} = ${indexExpr(l.block, l.blockRows)};`);
    const c = `scale_bits(${off()}, i${i} * ${l.scale.bits}u, ${l.scale.bits}u, ${mask(l.scale.bits)})`;
    lines.push(`    { let c = ${c}; S = S * ${DECODE[l.scale.type]}; }`);
    if (l.min) {
      const m = `scale_bits(${off()}, i${i} * ${l.min.bits}u, ${l.min.bits}u, ${mask(l.min.bits)})`;
      if (l.min.mode === 'zero') {
        hasZero = true;
        lines.push(`    z = f32(${m});`);
      } else {
        hasMin = true;
        minSign = l.min.sign;
        lines.push(`    { let c = ${m}; M = M * ${DECODE[l.min.type]}; }`);
      }
    }
  });
  const sumX = hasMin || hasZero;
  const B = batch;
  // The row's codebook (kmeans), read once per thread from its fp16 stream.
  let rowSetup = '';
  if (p.codebook) {
    const E = p.codebook.entries;
    rowSetup = `  var cb = array<f32, ${E}>();
  for (var i = 0u; i < ${E}u; i = i + 1u) { cb[i] = unpack2x16float(scale_bits(${off()}, (r * ${E}u + i) * 16u, 16u, 0xffffu)).x; }
`;
  }
  // -perm: stored position k holds input channel perm[k]; x is gathered through it.
  const perm = p.perm;
  const permOff = perm ? off() : '';
  const col = (k: string) =>
    perm ? `scale_bits(${permOff}, (${k}) * ${perm.bits}u, ${perm.bits}u, ${mask(perm.bits)})` : k;
  // +o<P>: the outlier channels' fp16 values, added once per row (by the first split).
  let outlierLoop = '';
  if (p.outliers) {
    const o = p.outliers;
    const io = off();
    const vo = off();
    outlierLoop = `  if (gid.z == 0u) {
    for (var o = 0u; o < ${o.count}u; o = o + 1u) {
      let c = scale_bits(${io}, o * ${o.index.bits}u, ${o.index.bits}u, ${mask(o.index.bits)});
      let v = unpack2x16float(scale_bits(${vo}, (r * ${o.count}u + o) * 16u, 16u, 0xffffu)).x;
      for (var b = 0u; b < ${B}u; b = b + 1u) { acc[b] = acc[b] + x[b * p.cols + c] * v; }
    }
  }
`;
  }
  // Whole words at a time where codes never straddle words and blocks start on word boundaries:
  // one load per 32/eb elements (the element loop below finishes a row's tail).
  const perWord = 32 / eb;
  const inner = kernelBlock(p);
  const wordLoop =
    !straddles && (inner === p.cols || inner % perWord === 0)
      ? `    for (; k + ${perWord}u <= k1; k = k + ${perWord}u) {
      let word = codes[(k / ${perWord}u) * p.rows + r];
      for (var j = 0u; j < ${perWord}u; j = j + 1u) {
        let code = ${eb === 32 ? 'word' : `(word >> (j * ${eb}u)) & ${mask(eb)}`};
        let e = ${element};
        let c = ${col('k + j')};
        for (var b = 0u; b < ${B}u; b = b + 1u) {
          let xv = x[b * p.cols + c];
          ae[b] = ae[b] + xv * e;
${sumX ? '          ax[b] = ax[b] + xv;\n' : ''}        }
      }
    }
`
      : '';
  return `// Layerplan packed ${p.format} (${eb}-bit elements, ${p.levels.length} scale level(s)${p.codebook ? ', a codebook per row' : ''}${perm ? ', permuted channels' : ''}${p.outliers ? `, ${p.outliers.count} outlier channel(s)` : ''}), batch ${B}: generated by kernelSource.
struct Params { rows: u32, cols: u32, block: u32, splits: u32, off: array<vec4<u32>, ${slots}> }
@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read> lut: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

fn scale_bits(base: u32, bit: u32, n: u32, m: u32) -> u32 {
  let w = base + (bit >> 5u);
  let sh = bit & 31u;
  var v = scales[w] >> sh;
  if (sh + n > 32u) { v = v | (scales[w + 1u] << (32u - sh)); }
  return v & m;
}

fn dec_e4m3(c: u32) -> f32 {
  let e = (c >> 3u) & 15u;
  let m = c & 7u;
  var v = f32(m) * 0.001953125;
  if (e != 0u) { v = bitcast<f32>(((e + 120u) << 23u) | (m << 20u)); }
  return select(v, -v, (c & 0x80u) != 0u);
}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * ${WORKGROUP}u;
  if (r >= p.rows) { return; }
  var acc = array<f32, ${B}>();
${rowSetup}  // Split-K: workgroup z takes one contiguous share of the row's blocks; partial sums go to y[split].
  let nb = (p.cols + p.block - 1u) / p.block;
  let share = (nb + p.splits - 1u) / p.splits;
  let g0 = gid.z * share;
  let g1 = min(nb, g0 + share);
  for (var g = g0; g < g1; g = g + 1u) {
    let k0 = g * p.block;
    let k1 = min(k0 + p.block, p.cols);
    var S = 1.0;
    var M = ${hasMin ? '1.0' : '0.0'};
    var z = 0.0;
${lines.join('\n')}
    var ae = array<f32, ${B}>();
${sumX ? `    var ax = array<f32, ${B}>();\n` : ''}    var k = k0;
${wordLoop}    for (; k < k1; k = k + 1u) {
      let bit = k * ${eb}u;
      let w = bit >> 5u;
      let sh = bit & 31u;
      var v = codes[w * p.rows + r] >> sh;
${straddles ? `      if (sh + ${eb}u > 32u) { v = v | (codes[(w + 1u) * p.rows + r] << (32u - sh)); }\n` : ''}      let code = v & ${mask(eb)};
      let e = ${element};
      let c = ${col('k')};
      for (var b = 0u; b < ${B}u; b = b + 1u) {
        let xv = x[b * p.cols + c];
        ae[b] = ae[b] + xv * e;
${sumX ? '        ax[b] = ax[b] + xv;\n' : ''}      }
    }
    for (var b = 0u; b < ${B}u; b = b + 1u) {
      acc[b] = acc[b] + ${sumX ? `S * (ae[b] - z * ax[b]) ${minSign < 0 ? '+' : '-'} M * ax[b]` : 'S * ae[b]'};
    }
  }
${outlierLoop}  for (var b = 0u; b < ${B}u; b = b + 1u) { y[(gid.z * ${B}u + b) * p.rows + r] = acc[b]; }
}
`;
}

/**
 * How many ways to split the reduction axis: one thread per row leaves a GPU mostly idle on a
 * single GEMV (4,096 rows are 4,096 threads), so rows × splits aims at ~32k threads, at most one
 * split per innermost block. The partial sums are added by reduceSource's kernel.
 */
export function kernelSplits(p: PackedWeight): number {
  const nb = Math.ceil(p.cols / kernelBlock(p));
  return Math.max(1, Math.min(nb, Math.ceil(32768 / p.rows), 64));
}

/** Sums the split-K partial outputs: y[i] = Σ_s part[s·n + i] for n = batch·rows. */
export function reduceSource(): string {
  return `// Layerplan split-K reduction: generated by reduceSource.
@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> q: vec4<u32>;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WORKGROUP}u;
  if (i >= q.x) { return; }
  var s = 0.0;
  for (var k = 0u; k < q.y; k = k + 1u) { s = s + part[k * q.x + i]; }
  y[i] = s;
}
`;
}

/** The uniform block for kernelSource: rows, cols, innermost block, splits and the scale streams' word offsets. */
export function kernelParams(p: PackedWeight, splits = 1): Uint32Array {
  const { offsets } = metaLayout(p);
  const slots = Math.max(1, Math.ceil(offsets.length / 4));
  const u = new Uint32Array(4 + 4 * slots);
  u.set([p.rows, p.cols, kernelBlock(p), splits]);
  u.set(offsets, 4);
  return u;
}

/** The `meta` buffer: every scale and minimum stream, one after another (at least one word). */
export function metaWords(p: PackedWeight): Uint32Array {
  const { words } = metaLayout(p);
  const out = new Uint32Array(Math.max(1, words));
  let at = 0;
  for (const s of metaStreams(p)) {
    out.set(s, at);
    at += s.length;
  }
  return out;
}
