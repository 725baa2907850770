import type { ByteSource, SiblingResolver } from '../bytes';
import { InputError } from '../errors';
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor, TensorData } from '../formats/onnx';
import { loadTensorBytes } from '../formats/onnx-data';
import type { OnnxTensorRef } from '../formats/onnx-graph';
import {
  defaultOpset,
  intAttribute,
  intsAttribute,
  opsetUpgradeProblem,
  stringAttribute,
  upgradeOpset,
  type OpsetUpgrade,
} from '../formats/onnx-opset';
import { DataType } from '../formats/onnx-schema.generated';
import type { GraphTensor, ModelGraph } from '../graph/model-graph';
import { levelCount, parseFormat, type NumberFormat } from './formats';
import { floatToBf16Bits, floatToHalfBits } from './numeric';
import { decodeScale, elementCode, outlierValues, packWeight, permutation, readBits, type PackedWeight } from './pack';
import { quantizeDequantize } from './quantize';
import { loadWeightFloat32, transpose2d, weightLayout } from './weights';

/**
 * The plan's precision as an ONNX model onnxruntime runs (docs/ARCHITECTURE.md, "quant --export"):
 * each weight is stored in its format's own bits and decoded by standard operators, and the values
 * they decode to are exactly those the engine's quantizer produced (the error estimate measured them):
 *
 *   dequantize   DequantizeLinear on the stored codes: int8 / int4 / int2 per tensor, per channel
 *                (axis) or per block (block_size, opset 21), with integer zero points for -asym;
 *                two-level int…-2l as a DequantizeLinear that computes the scales (uint8 multipliers ×
 *                fp16 row scale) feeding the one that decodes the elements; fp8 (E4M3FN / E5M2, opset
 *                19), mxfp8 (fp8 in blocks of 32) and mxint8; GGUF q8_0 and q4_0 are int blocks of 32.
 *   matmulnbits  com.microsoft MatMulNBits replaces a MatMul whose B is the weight (blocked int2/4/8,
 *                blocks of 16…256), onnxruntime's 4-bit path.
 *   cast         bf16 / fp16 stored in 16 bits and Cast to float.
 *   simulated    formats no operator decodes (nf4, nvfp4, mxfp4, mxfp6, the k-quants, q4_1 …): the
 *                dequantized values, as float32 — exact, but not smaller; the report says so.
 * Scales are stored as float32 holding the format's scale values exactly (fp16 scales would make
 * DequantizeLinear produce fp16, whose products round): the stored bytes say what this costs.
 *
 * Activations (W8A8): a QuantizeLinear → DequantizeLinear pair (uint8 with a zero point, per
 * tensor, from the calibrated range) in front of the compute ops that read them.
 */
export type WeightEncoding = 'dequantize' | 'matmulnbits' | 'cast' | 'simulated' | 'kept';

export interface ExportedWeight {
  name: string;
  layer: string;
  format: string;
  encoding: WeightEncoding;
  /** Why a format is simulated, or a weight kept as it was. */
  note?: string;
  /** Bytes the weight takes in the exported model (codes, scales, zero points), and before. */
  bytes: number;
  originalBytes: number;
}

export interface ActivationSite {
  /** The activation tensor, and the compute nodes that now read its quantized copy. */
  tensor: string;
  consumers: string[];
  min: number;
  max: number;
  format: string;
}

export interface QuantExportReport {
  opset: OpsetUpgrade;
  weights: ExportedWeight[];
  activations: (ActivationSite & { scale: number; zeroPoint: number })[];
  /** Formats written as dequantized float32, each with the reason and the weights it covers. */
  simulated: { format: string; reason: string; weights: number }[];
  /** Bytes of all weights in the exported model, and in the original. */
  weightBytes: number;
  originalWeightBytes: number;
}

export interface QuantExportOptions {
  /** The format of each weight the export quantizes (undefined: kept as it is). */
  formatOf: (tensor: GraphTensor, layer: string) => string | undefined;
  /** Blocked integer weights of MatMuls: com.microsoft MatMulNBits (default) or DequantizeLinear with block_size. */
  blocked?: 'matmulnbits' | 'dequantize';
  /** Write every weight as its dequantized float32 values: the simulation the real export is compared with. */
  simulateAll?: boolean;
  activations?: ActivationSite[];
  /** Where a new or kept tensor's bytes go (held inline, or appended to an external data file). */
  store: (name: string, bytes: Uint8Array) => Promise<TensorData>;
  onProgress?: (done: number, total: number, name: string) => void;
  /** Checked between weights: a cancelled export stops there. */
  cancelled?: () => boolean;
}

export class ExportCancelled extends Error {
  constructor() {
    super('export cancelled');
  }
}

/** How a format is written, and the opset it needs (or why it is simulated). */
interface Plan {
  encoding: WeightEncoding;
  opset: number;
  note?: string;
}

const FP8: Record<string, number> = { e4m3: DataType.FLOAT8E4M3FN, e5m2: DataType.FLOAT8E5M2 };

/** The ONNX type codes of a format's elements, or undefined when no ONNX type holds them exactly. */
function elementType(f: NumberFormat): { dtype: number; bits: number; signed: boolean } | undefined {
  const el = f.element;
  if (el.kind === 'int' && (el.bits === 8 || el.bits === 4 || el.bits === 2)) {
    const dtype = el.signed
      ? { 8: DataType.INT8, 4: DataType.INT4, 2: DataType.INT2 }[el.bits]!
      : { 8: DataType.UINT8, 4: DataType.UINT4, 2: DataType.UINT2 }[el.bits]!;
    return { dtype, bits: el.bits, signed: el.signed };
  }
  if (el.kind === 'float' && FP8[el.name]) return { dtype: FP8[el.name], bits: 8, signed: true };
  return undefined;
}

/** Integer zero points (…-asym) are representable; llama.cpp's added / subtracted minimums are not. */
function zeroPointKind(f: NumberFormat): 'none' | 'zero' | 'min' {
  const z = f.levels.some((l) => l.zeroBits !== undefined);
  if (!z) return 'none';
  return (f.base ?? f).name.endsWith('-asym') ? 'zero' : 'min';
}

function twoLevel(f: NumberFormat): boolean {
  return f.levels.length === 2 && f.levels[1].block === 0 && f.levels[0].type === 'int8';
}

/** What DequantizeLinear (or MatMulNBits) can express exactly, from the format's data. */
function planFormat(f: NumberFormat, matmulB: boolean, blocked: 'matmulnbits' | 'dequantize'): Plan {
  if (f.name === 'fp32') return { encoding: 'kept', opset: 0 };
  if (f.name === 'bf16' || f.name === 'fp16') return { encoding: 'cast', opset: 0 };
  if (f.decodeOnly) return { encoding: 'simulated', opset: 0, note: 'it is decoded from GGUF only' };
  // ScatterElements adding the outlier channels takes reduction 'add' from opset 16.
  const extra = f.outlierPercent ? 16 : 0;
  if (f.element.kind === 'codebook') {
    // GatherElements of the row's centroids by code: 4-bit codes (UINT4) need opset 21.
    return { encoding: 'dequantize', opset: Math.max(f.element.bits <= 4 ? 21 : 13, extra) };
  }
  const el = elementType(f);
  if (!el) {
    const what =
      f.element.kind === 'levels'
        ? `its ${f.element.name} levels are a lookup table`
        : f.element.kind === 'float'
          ? `no ONNX type stores ${f.element.name} elements that onnxruntime decodes`
          : `no ONNX type stores ${f.element.bits}-bit integers`;
    return { encoding: 'simulated', opset: 0, note: what };
  }
  if (zeroPointKind(f) === 'min') {
    return { encoding: 'simulated', opset: 0, note: 'its minimums are added after scaling, not integer zero points' };
  }
  if (f.levels.length > 1 && !twoLevel(f)) {
    return {
      encoding: 'simulated',
      opset: 0,
      note: 'its scales are themselves quantized in a way DequantizeLinear does not chain',
    };
  }
  if (f.levels.length === 2 && f.levels[1].type !== 'fp16') {
    return { encoding: 'simulated', opset: 0, note: 'its outer scale type' };
  }
  if (f.levels.length === 0) return { encoding: 'simulated', opset: 0, note: 'no scale' };
  const block = f.levels[0].block;
  const isFloat = f.element.kind === 'float';
  if (
    matmulB &&
    !f.permute &&
    !f.outlierPercent &&
    !f.levels[0].blockRows &&
    blocked === 'matmulnbits' &&
    !isFloat &&
    f.levels.length === 1 &&
    block >= 16 &&
    block <= 256 &&
    (block & (block - 1)) === 0 &&
    f.name !== 'mxint8'
  ) {
    return { encoding: 'matmulnbits', opset: 0 };
  }
  // Opsets: 4- and 2-bit types and block_size arrived at 21 (INT2 at 25), float8 at 19, axis at 13.
  let opset = 13;
  if (isFloat) opset = 19;
  if (block > 0 || twoLevel(f)) opset = 21;
  if (el.bits === 4) opset = Math.max(opset, 21);
  if (el.bits === 2) opset = 25;
  return { encoding: 'dequantize', opset: Math.max(opset, extra) };
}

/** The extra factor of a format's elements (MXINT8 codes are q / 64). */
const elementUnit = (f: NumberFormat) => (f.name === 'mxint8' ? 1 / 64 : 1);

interface Emitted {
  initializers: OnnxTensor[];
  nodes: OnnxNode[];
  bytes: number;
}

function node(opType: string, name: string, inputs: string[], outputs: string[], attributes: OnnxAttribute[] = []) {
  return {
    name,
    opType,
    domain: opType === 'MatMulNBits' ? 'com.microsoft' : '',
    overload: '',
    inputs,
    outputs,
    attributes,
    docString: '',
  } satisfies OnnxNode;
}

function packBits(values: ArrayLike<number>, bits: number): Uint8Array {
  if (bits === 8) return Uint8Array.from(values, (v) => v & 0xff);
  const out = new Uint8Array(Math.ceil((values.length * bits) / 8));
  const mask = (1 << bits) - 1;
  for (let i = 0; i < values.length; i++) {
    const bit = i * bits;
    out[bit >> 3] |= (values[i] & mask) << (bit & 7);
  }
  return out;
}

const f32Bytes = (v: ArrayLike<number>) => new Uint8Array(Float32Array.from(v).buffer);

/** One scale level's values, decoded from the packed bits, in row-major block order. */
function levelValues(p: PackedWeight, level: number, which: 'scale' | 'min'): Float64Array {
  const l = p.levels[level];
  const s = which === 'scale' ? l.scale : l.min!;
  const n = levelCount(l, p.rows, p.cols);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = decodeScale(readBits(s.words, i * s.bits, s.bits), s.type);
  return out;
}

/**
 * Rearranges per-block values [rows, G] (row-major, ours) into the ONNX layout of the stored weight:
 * transposed weights ([K, N] feeding MatMul) keep their blocks along axis 0, so [G, N].
 */
function blockLayout(v: ArrayLike<number>, rows: number, groups: number, transposed: boolean): number[] {
  if (!transposed || v.length !== rows * groups || groups === 1) return Array.from(v);
  const out = new Array<number>(v.length);
  for (let r = 0; r < rows; r++) for (let g = 0; g < groups; g++) out[g * rows + r] = v[r * groups + g];
  return out;
}

const i64Bytes = (v: ArrayLike<number>) => new Uint8Array(BigInt64Array.from(Array.from(v, BigInt)).buffer);
const f16Bytes = (v: ArrayLike<number>) => new Uint8Array(Uint16Array.from(v, (x) => floatToHalfBits(x)).buffer);

/**
 * The tensors and nodes that decode weight `w`: codes in the weight's own layout (2-D [rows, cols]
 * plus a Reshape for higher ranks with blocks), decoded by DequantizeLinear (scales, zero points; a
 * DequantizeLinear computing two-level scales; 2-D scale blocks expanded from their stored values)
 * or, for a per-row codebook (kmeans<B>), GatherElements; then the statistical parts: a Gather
 * undoing the permutation (-perm) and a ScatterElements adding the fp16 outlier channels (+o<P>).
 */
function dequantizeNodes(w: string, shape: number[], transposed: boolean, p: PackedWeight, f: NumberFormat): Emitted {
  const { rows, cols } = p;
  const inits: OnnxTensor[] = [];
  const nodes: OnnxNode[] = [];
  const t = (name: string, dataType: number, dims: number[], bytes: Uint8Array): string => {
    inits.push({
      name,
      dataType,
      dims,
      data: { kind: 'inline', bytes },
      docString: '',
      elements: dims.reduce((a, b) => a * b, 1),
    });
    return name;
  };
  let step = 0;
  /** Appends a node whose single output is the next value of the decoding chain. */
  const add = (op: string, inputs: string[], attrs: OnnxAttribute[] = [], out = `${w}_${op}_${++step}`) => {
    nodes.push(node(op, `${w}_${op}_${step}`, inputs, [out], attrs));
    return out;
  };
  const reshape = !transposed && shape.length > 2;
  const stored2d = reshape ? [rows, cols] : shape;
  // The reduction axis of the stored (2-D) layout: transposed weights are [cols, rows] (MatMul's [K, N]).
  const colAxis = transposed ? 0 : 1;
  const n = rows * cols;
  let value: string;
  if (f.element.kind === 'codebook') {
    // W[r, j] = codebook[r, code]: GatherElements over the row's fp16 centroids, in [rows, cols], transposed after.
    const bits = f.element.bits <= 4 ? 4 : 8;
    const codes = new Int32Array(n);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) codes[r * cols + c] = elementCode(p, r, c);
    const q = t(`${w}_quantized`, bits === 4 ? DataType.UINT4 : DataType.UINT8, [rows, cols], packBits(codes, bits));
    const cb = p.codebook!;
    const centroids = Array.from({ length: rows * cb.entries }, (_, i) =>
      decodeScale(readBits(cb.values.words, i * 16, 16), 'f16'),
    );
    const book = t(`${w}_codebook`, DataType.FLOAT16, [rows, cb.entries], f16Bytes(centroids));
    const index = add('Cast', [q], [intAttribute('to', DataType.INT32)]);
    const table = add('Cast', [book], [intAttribute('to', DataType.FLOAT)]);
    value = add('GatherElements', [table, index], [intAttribute('axis', 1)]);
    if (transposed) value = add('Transpose', [value], [intsAttribute('perm', [1, 0])]);
  } else {
    const el = elementType(f)!;
    const level = f.levels[0];
    const block = level.block;
    const groups = block > 0 ? Math.ceil(cols / block) : 1;
    // Codes in ONNX order: transposed weights are stored [cols, rows] (= [K, N]).
    const codes = new Int32Array(n);
    const off = el.signed && f.element.kind === 'int' ? 2 ** (el.bits - 1) : 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) codes[transposed ? c * rows + r : r * cols + c] = elementCode(p, r, c) - off;
    }
    const q = t(`${w}_quantized`, el.dtype, stored2d, packBits(codes, el.bits));
    const unit = elementUnit(f);
    const scales0 = levelValues(p, 0, 'scale');
    const scaleDims = block === -1 ? [] : block === 0 ? [rows] : transposed ? [groups, rows] : [rows, groups];
    const axis = block === 0 ? (transposed ? 1 : 0) : colAxis;
    const dqAttrs =
      block === -1
        ? []
        : [intAttribute('axis', axis), ...(block > 0 ? [intAttribute('block_size', Math.min(block, cols))] : [])];
    let scaleName: string;
    if (twoLevel(f)) {
      // r = γ · S_q · q: the scales are DequantizeLinear(uint8 multipliers, γ per row).
      const gamma = levelValues(p, 1, 'scale');
      const mult = t(
        `${w}_scale_quantized`,
        DataType.UINT8,
        scaleDims,
        packBits(blockLayout(scales0, rows, groups, transposed), 8),
      );
      const g = t(`${w}_scale_scale`, DataType.FLOAT, [rows], f32Bytes(gamma));
      scaleName = add('DequantizeLinear', [mult, g], [intAttribute('axis', transposed ? 1 : 0)], `${w}_scale`);
    } else if ((level.blockRows ?? 1) > 1) {
      // Two-dimensional blocks (fp8-e4m3-b128): one stored scale per R × block tile, expanded to every row.
      const R = level.blockRows!;
      const rb = Math.ceil(rows / R);
      const small = t(`${w}_scale`, DataType.FLOAT, [rb, 1, groups], f32Bytes(Array.from(scales0, (v) => v * unit)));
      const shape3 = t(`${w}_scale_expand`, DataType.INT64, [3], i64Bytes([rb, R, groups]));
      const shape2 = t(`${w}_scale_rows`, DataType.INT64, [2], i64Bytes([rb * R, groups]));
      const starts = t(`${w}_scale_starts`, DataType.INT64, [1], i64Bytes([0]));
      const ends = t(`${w}_scale_ends`, DataType.INT64, [1], i64Bytes([rows]));
      const axes = t(`${w}_scale_axes`, DataType.INT64, [1], i64Bytes([0]));
      let v = add('Expand', [small, shape3]);
      v = add('Reshape', [v, shape2]);
      v = add('Slice', [v, starts, ends, axes]);
      scaleName = transposed ? add('Transpose', [v], [intsAttribute('perm', [1, 0])]) : v;
    } else {
      scaleName = t(
        `${w}_scale`,
        DataType.FLOAT,
        scaleDims,
        f32Bytes(
          blockLayout(
            Array.from(scales0, (s) => s * unit),
            rows,
            groups,
            transposed,
          ),
        ),
      );
    }
    const inputs = [q, scaleName];
    if (zeroPointKind(f) === 'zero') {
      const z = levelValues(p, 0, 'min');
      inputs.push(
        t(`${w}_zero_point`, el.dtype, scaleDims, packBits(blockLayout(z, rows, groups, transposed), el.bits)),
      );
    }
    value = add('DequantizeLinear', inputs, dqAttrs);
  }
  if (p.perm) {
    // Stored position j holds input channel perm[j]: gather position inv[i] for channel i.
    const perm = permutation(p);
    const inv = new Array<number>(cols);
    perm.forEach((c, j) => (inv[c] = j));
    const idx = t(`${w}_permutation`, DataType.INT64, [cols], i64Bytes(inv));
    value = add('Gather', [value, idx], [intAttribute('axis', colAxis)]);
  }
  if (p.outliers) {
    // + the fp16 value of each outlier channel, per row (ScatterElements with reduction add).
    const o = outlierValues(p);
    const k = o.cols.length;
    const dims = transposed ? [k, rows] : [rows, k];
    const cols1 = t(`${w}_outlier_channels`, DataType.INT64, transposed ? [k, 1] : [1, k], i64Bytes(o.cols));
    const full = t(`${w}_outlier_shape`, DataType.INT64, [2], i64Bytes(dims));
    const vals = transposed
      ? Array.from({ length: k * rows }, (_, i) => o.values[(i % rows) * k + Math.floor(i / rows)])
      : Array.from(o.values);
    const stored = t(`${w}_outlier_values`, DataType.FLOAT16, dims, f16Bytes(vals));
    const indices = add('Expand', [cols1, full]);
    const updates = add('Cast', [stored], [intAttribute('to', DataType.FLOAT)]);
    value = add(
      'ScatterElements',
      [value, indices, updates],
      [intAttribute('axis', colAxis), stringAttribute('reduction', 'add')],
    );
  }
  if (reshape) {
    const s = t(`${w}_shape`, DataType.INT64, [shape.length], i64Bytes(shape));
    value = add('Reshape', [value, s]);
  }
  // The last node's output takes the weight's name, so its consumers read it unchanged.
  nodes[nodes.length - 1].outputs = [w];
  void value;
  return {
    initializers: inits,
    nodes,
    bytes: inits.reduce((s, x) => s + (x.data as { bytes: Uint8Array }).bytes.length, 0),
  };
}

/** MatMulNBits inputs for weight w ([K, N] feeding MatMul as B): B [N, K/block, block·bits/8], scales, zero points. */
function matMulNBitsTensors(
  w: string,
  p: PackedWeight,
  f: NumberFormat,
): { tensors: OnnxTensor[]; attrs: OnnxAttribute[]; bytes: number } {
  const el = elementType(f)!;
  const bits = el.bits;
  const { rows: N, cols: K } = p;
  const block = f.levels[0].block;
  const nb = Math.ceil(K / block);
  const bytesPerBlock = (block * bits) / 8;
  const asym = zeroPointKind(f) === 'zero';
  // Signed codes are offset binary (code = q + 2^(bits−1)), which is MatMulNBits' default zero point.
  const pad = asym ? 0 : 2 ** (bits - 1);
  const b = new Uint8Array(N * nb * bytesPerBlock);
  const scales = levelValues(p, 0, 'scale');
  const zeros = asym ? levelValues(p, 0, 'min') : undefined;
  const zpRow = Math.ceil((nb * bits) / 8);
  const zp = asym ? new Uint8Array(N * zpRow) : undefined;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < nb; g++) {
      const base = (n * nb + g) * bytesPerBlock;
      for (let j = 0; j < block; j++) {
        const k = g * block + j;
        // Past K (a last partial block): the zero point's code, which decodes to 0.
        const code = k < K ? elementCode(p, n, k) : asym ? zeros![n * nb + g] : pad;
        const bit = j * bits;
        b[base + (bit >> 3)] |= code << (bit & 7);
      }
      if (zp) {
        const bit = g * bits;
        zp[n * zpRow + (bit >> 3)] |= zeros![n * nb + g] << (bit & 7);
      }
    }
  }
  const mk = (name: string, dataType: number, dims: number[], bytes: Uint8Array): OnnxTensor => ({
    name,
    dataType,
    dims,
    data: { kind: 'inline', bytes },
    docString: '',
    elements: dims.reduce((a, c) => a * c, 1),
  });
  const tensors = [
    mk(`${w}_quantized`, DataType.UINT8, [N, nb, bytesPerBlock], b),
    mk(`${w}_scale`, DataType.FLOAT, [N * nb], f32Bytes(scales)),
    ...(zp ? [mk(`${w}_zero_point`, DataType.UINT8, [N * zpRow], zp)] : []),
  ];
  return {
    tensors,
    attrs: [intAttribute('K', K), intAttribute('N', N), intAttribute('bits', bits), intAttribute('block_size', block)],
    bytes: tensors.reduce((s, t) => s + (t.data as { bytes: Uint8Array }).bytes.length, 0),
  };
}

function floatTensor(name: string, dims: number[], values: Float32Array): OnnxTensor {
  return {
    name,
    dataType: DataType.FLOAT,
    dims,
    data: { kind: 'inline', bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) },
    docString: '',
    elements: values.length,
  };
}

/** Activation QDQ: uint8 with a zero point over the calibrated range, as activationError (observers.ts) measures it. */
export function activationQdqParams(min: number, max: number): { scale: number; zeroPoint: number } {
  const scale = Math.fround((max - min) / 255 || 1);
  const zeroPoint = Math.max(0, Math.min(255, Math.round(-min / scale)));
  return { scale, zeroPoint };
}

/**
 * Rewrites `model` (the parsed file; changed in place) into the quantized model. `graph` is the
 * ModelGraph built from the same parse (its weights point at the model's tensors).
 */
export async function exportQuantized(
  model: OnnxModel,
  graph: ModelGraph,
  source: ByteSource,
  siblings: SiblingResolver | undefined,
  options: QuantExportOptions,
): Promise<QuantExportReport> {
  const g = model.graph;
  const top = new Set(g.initializers);
  const blockedAs = options.blocked ?? 'matmulnbits';
  const weights: ExportedWeight[] = [];
  // Weights to quantize: top-level float32 initializers the format function names.
  const jobs: { t: GraphTensor; onnx: OnnxTensor; f: NumberFormat; layer: string; plan: Plan; matmulB: boolean }[] = [];
  for (const t of graph.tensors.values()) {
    if (!t.isWeight || !t.ref) continue;
    const layer = t.layer !== undefined ? (graph.layers[t.layer]?.name ?? '') : '';
    const name = options.formatOf(t, layer);
    if (name === undefined) continue;
    const f = parseFormat(name);
    if (!f) throw new InputError(source.name, `unknown number format '${name}'`);
    const onnx = (t.ref as OnnxTensorRef).tensor;
    const kept = (note: string) =>
      weights.push({
        name: t.name,
        layer,
        format: f.name,
        encoding: 'kept',
        note,
        bytes: t.bytes,
        originalBytes: t.bytes,
      });
    if (!top.has(onnx)) {
      kept('not an initializer of the main graph (a Constant value or inside a subgraph)');
      continue;
    }
    if (onnx.dataType !== DataType.FLOAT) {
      kept(`stored as ${t.dtype}; the export quantizes float32 weights`);
      continue;
    }
    const consumers = t.consumers.map((c) => graph.nodes[c]);
    const layout = weightLayout(graph, t);
    const matmulB =
      layout.transpose &&
      consumers.length > 0 &&
      consumers.every((n) => n.opType === 'MatMul' && n.inputs[1] === t.name && n.inputs[0] !== t.name && n.parent < 0);
    const plan: Plan = options.simulateAll
      ? { encoding: f.name === 'fp32' ? 'kept' : 'simulated', opset: 0, note: 'simulation (all formats dequantized)' }
      : planFormat(f, matmulB, blockedAs);
    jobs.push({ t, onnx, f, layer, plan, matmulB });
  }
  // One opset for the model: the highest any weight needs; formats it cannot reach fall back.
  const from = defaultOpset(model);
  const actOpset = (options.activations ?? []).some((a) => parseFormat(a.format)?.element.kind === 'float') ? 19 : 13;
  let target = Math.max(from, ...jobs.map((j) => j.plan.opset), options.activations?.length ? actOpset : 0);
  const problem = opsetUpgradeProblem(model, target);
  if (problem) {
    for (const j of jobs) {
      if (j.plan.encoding !== 'dequantize' || j.plan.opset <= from) continue;
      // MatMulNBits needs no opset: the fallback where it applies.
      const nbits = planFormat(j.f, j.matmulB, 'matmulnbits');
      j.plan =
        nbits.encoding === 'matmulnbits'
          ? nbits
          : { encoding: 'simulated', opset: 0, note: `needs opset ${j.plan.opset}, and ${problem}` };
    }
    if (options.activations?.length && actOpset > from) {
      throw new InputError(source.name, `activation quantization needs opset ${actOpset}: ${problem}`);
    }
    target = Math.max(from, ...jobs.map((j) => j.plan.opset));
  }
  const opset = upgradeOpset(model, target);

  const newInits: OnnxTensor[] = [];
  const newNodes: OnnxNode[] = [];
  const removed = new Set<OnnxTensor>();
  const nbitsFor = new Map<string, { tensors: string[]; attrs: OnnxAttribute[] }>();
  let done = 0;
  for (const { t, onnx, f, layer, plan } of jobs) {
    if (options.cancelled?.()) throw new ExportCancelled();
    options.onProgress?.(done, jobs.length, t.name);
    const shape = onnx.dims;
    const original = t.bytes;
    const entry: ExportedWeight = {
      name: t.name,
      layer,
      format: f.name,
      encoding: plan.encoding,
      bytes: original,
      originalBytes: original,
    };
    if (plan.note) entry.note = plan.note;
    weights.push(entry);
    if (plan.encoding === 'kept') {
      done++;
      continue;
    }
    let x = await loadWeightFloat32(t, source, siblings, graph);
    const layout = weightLayout(graph, t);
    if (layout.transpose) x = transpose2d(x, layout.cols, layout.rows);
    const { rows, cols } = layout;
    let emitted: Emitted;
    if (plan.encoding === 'simulated' || plan.encoding === 'cast') {
      const y = quantizeDequantize(x, rows, cols, f);
      const back = layout.transpose ? transpose2d(y, rows, cols) : y;
      if (plan.encoding === 'simulated') {
        emitted = { initializers: [floatTensor(t.name, shape, back)], nodes: [], bytes: back.byteLength };
      } else {
        const half = f.name === 'fp16';
        const bits = Uint16Array.from(back, (v) => (half ? floatToHalfBits(v) : floatToBf16Bits(v)));
        const stored: OnnxTensor = {
          name: `${t.name}_${f.name}`,
          dataType: half ? DataType.FLOAT16 : DataType.BFLOAT16,
          dims: shape,
          data: { kind: 'inline', bytes: new Uint8Array(bits.buffer) },
          docString: '',
          elements: bits.length,
        };
        emitted = {
          initializers: [stored],
          nodes: [node('Cast', `${t.name}_Cast`, [stored.name], [t.name], [intAttribute('to', DataType.FLOAT)])],
          bytes: bits.byteLength,
        };
      }
    } else {
      const { packed } = packWeight(x, rows, cols, f);
      if (plan.encoding === 'matmulnbits') {
        const m = matMulNBitsTensors(t.name, packed, f);
        nbitsFor.set(t.name, { tensors: m.tensors.map((x) => x.name), attrs: m.attrs });
        emitted = { initializers: m.tensors, nodes: [], bytes: m.bytes };
      } else emitted = dequantizeNodes(t.name, shape, layout.transpose, packed, f);
    }
    removed.add(onnx);
    for (const init of emitted.initializers) {
      const bytes = (init.data as { bytes: Uint8Array }).bytes;
      init.data = await options.store(init.name, bytes);
      newInits.push(init);
    }
    newNodes.push(...emitted.nodes);
    entry.bytes = emitted.bytes;
    done++;
  }
  options.onProgress?.(jobs.length, jobs.length, '');

  // The rest of the initializers: through `store` too (so external data lands in the new data file).
  const kept: OnnxTensor[] = [];
  for (const init of g.initializers) {
    if (removed.has(init)) continue;
    if (init.data.kind !== 'inline' && init.data.kind !== 'strings' && init.data.kind !== 'none') {
      init.data = await options.store(init.name, await loadTensorBytes(init, source, siblings));
    }
    kept.push(init);
  }
  // Initializers listed as graph inputs (IR < 4): the replaced ones are no longer inputs.
  const replacedNames = new Set([...removed].map((t) => t.name));
  g.inputs = g.inputs.filter((i) => !replacedNames.has(i.name));
  g.initializers = [...kept, ...newInits];

  // MatMuls reading a MatMulNBits weight become MatMulNBits.
  for (const n of g.nodes) {
    const nb = n.opType === 'MatMul' ? nbitsFor.get(n.inputs[1]) : undefined;
    if (!nb) continue;
    n.opType = 'MatMulNBits';
    n.domain = 'com.microsoft';
    n.inputs = [n.inputs[0], ...nb.tensors];
    n.attributes = nb.attrs.map((a) => ({ ...a }));
  }
  if (nbitsFor.size && !model.opsetImport.some((o) => o.domain === 'com.microsoft')) {
    model.opsetImport.push({ domain: 'com.microsoft', version: 1 });
  }

  // Activations: QuantizeLinear → DequantizeLinear in front of their compute consumers.
  const activations: QuantExportReport['activations'] = [];
  const actNodes: { before: OnnxNode; nodes: OnnxNode[] }[] = [];
  for (const a of options.activations ?? []) {
    const fmt = parseFormat(a.format);
    const fp8 = fmt?.element.kind === 'float' ? FP8[(fmt.element as { name: string }).name] : undefined;
    let scale: number;
    let zeroPoint = 0;
    let zpTensor: OnnxTensor | undefined;
    if (fp8) {
      const absmax = Math.max(Math.abs(a.min), Math.abs(a.max));
      scale = Math.fround(absmax / (fp8 === DataType.FLOAT8E4M3FN ? 448 : 57344) || 1);
      zpTensor = {
        name: `${a.tensor}_zero_point`,
        dataType: fp8,
        dims: [],
        data: { kind: 'inline', bytes: new Uint8Array(1) },
        docString: '',
        elements: 1,
      };
    } else {
      ({ scale, zeroPoint } = activationQdqParams(a.min, a.max));
      zpTensor = {
        name: `${a.tensor}_zero_point`,
        dataType: DataType.UINT8,
        dims: [],
        data: { kind: 'inline', bytes: Uint8Array.of(zeroPoint) },
        docString: '',
        elements: 1,
      };
    }
    const s = floatTensor(`${a.tensor}_scale`, [], Float32Array.of(scale));
    g.initializers.push(s, zpTensor);
    const qName = `${a.tensor}_quantized`;
    const dqName = `${a.tensor}_dequantized`;
    const consumers = g.nodes.filter((n) => a.consumers.includes(n.name) && n.inputs.includes(a.tensor));
    if (!consumers.length) continue;
    for (const n of consumers) n.inputs = n.inputs.map((i) => (i === a.tensor ? dqName : i));
    actNodes.push({
      before: consumers[0],
      nodes: [
        node('QuantizeLinear', `${a.tensor}_QuantizeLinear`, [a.tensor, s.name, zpTensor.name], [qName]),
        node('DequantizeLinear', `${a.tensor}_DequantizeLinear`, [qName, s.name, zpTensor.name], [dqName]),
      ],
    });
    activations.push({ ...a, scale, zeroPoint });
  }
  // Weight decoders first (they read initializers only); activation pairs right before their first consumer.
  const ordered: OnnxNode[] = [...newNodes];
  for (const n of g.nodes) {
    for (const a of actNodes) if (a.before === n) ordered.push(...a.nodes);
    ordered.push(n);
  }
  g.nodes = ordered;

  const simulated = new Map<string, { reason: string; weights: number }>();
  for (const w of weights) {
    if (w.encoding !== 'simulated') continue;
    const s = simulated.get(w.format) ?? { reason: w.note ?? '', weights: 0 };
    s.weights++;
    simulated.set(w.format, s);
  }
  return {
    opset,
    weights,
    activations,
    simulated: [...simulated].map(([format, s]) => ({ format, ...s })),
    weightBytes: weights.reduce((s, w) => s + w.bytes, 0),
    originalWeightBytes: weights.reduce((s, w) => s + w.originalBytes, 0),
  };
}
