import { onnxDtypeName } from './dtypes';
import {
  addDims,
  broadcast,
  divDims,
  evalShape,
  mulDims,
  productOf,
  subDims,
  symbolsIn,
  type Dim,
  type Shape,
} from './dims';
import type { AttrValue, GraphNode, GraphTensor, ModelGraph } from './model-graph';

/**
 * Shape inference with symbolic dims, and FLOPs / bytes per node.
 *
 * FLOP conventions (documented so the cost engine and users can check them): a multiply-add is 2
 * FLOPs (MatMul, Gemm, Conv, attention's two matmuls, RNN gates); elementwise ops count 1 per
 * output element; Softmax counts 5 per element (max, sub, exp, sum, div); normalizations count 8
 * per element (mean, variance, normalize, scale, shift); pooling counts one per window element.
 * Data-movement ops (Reshape, Transpose, Gather, Concat, …) count 0 FLOPs but move bytes.
 */

interface Out {
  shape?: Shape;
  dtype?: string;
  value?: Dim[];
}

interface Ctx {
  node: GraphNode;
  ins: (GraphTensor | undefined)[];
  attr: (name: string) => AttrValue | undefined;
  int: (name: string, dflt: number) => number;
  ints: (name: string) => number[] | undefined;
  bind: (s: Shape | undefined) => number;
  flops: number;
}

/** A node's Ctx: methods on the prototype, not five closures for each of a model's nodes. */
class NodeCtx implements Ctx {
  flops = 0;
  constructor(
    readonly node: GraphNode,
    readonly ins: (GraphTensor | undefined)[],
    private readonly bindings: Record<string, number>,
  ) {}
  attr(name: string): AttrValue | undefined {
    return this.node.attributes[name];
  }
  int(name: string, dflt: number): number {
    const v = this.node.attributes[name];
    return typeof v === 'number' ? v : dflt;
  }
  ints(name: string): number[] | undefined {
    const v = this.node.attributes[name];
    return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined;
  }
  bind(s: Shape | undefined): number {
    return evalShape(s, this.bindings);
  }
}

type Handler = (c: Ctx) => Out[];

const norm = (axis: number, r: number) => (axis < 0 ? axis + r : axis);
const shapeOf = (c: Ctx, i: number) => c.ins[i]?.shape;
const dtypeOf = (c: Ctx, i: number) => c.ins[i]?.dtype ?? 'float';

/** Unary / same-shape ops: output = input 0, `perElement` FLOPs per element. */
function same(perElement: number, dtype?: string): Handler {
  return (c) => {
    const s = shapeOf(c, 0);
    c.flops = perElement * c.bind(s);
    return [{ shape: s, dtype: dtype ?? dtypeOf(c, 0) }];
  };
}

/** Broadcasting elementwise ops over all inputs. */
function elementwise(dtype?: string): Handler {
  return (c) => {
    let s: Shape | undefined = shapeOf(c, 0);
    for (let i = 1; i < c.ins.length; i++) {
      const t = shapeOf(c, i);
      s = s && t ? broadcast(s, t) : undefined;
    }
    c.flops = c.bind(s);
    const op = c.node.opType;
    const value = op === 'Where' ? foldWhere(c) : op === 'Equal' ? foldEqual(c) : foldArithmetic(c);
    return [{ shape: s, dtype: dtype ?? (op === 'Where' ? dtypeOf(c, 1) : dtypeOf(c, 0)), value }];
  };
}

/** Element i of a value broadcast to n elements (a 1-element value repeats), or undefined when it cannot be. */
function pick(v: Dim[], i: number, n: number): Dim | undefined {
  return v.length === n ? v[i] : v.length === 1 ? v[0] : undefined;
}

/**
 * Equal on shape values (torch's expand: Where(Equal(shape, -1), 1, shape)): 1 / 0 where it can
 * tell. A symbol is a size, so it is never negative; two equal symbol products are equal.
 */
function foldEqual(c: Ctx): Dim[] | undefined {
  const a = c.ins[0]?.value;
  const b = c.ins[1]?.value;
  if (!a || !b) return undefined;
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = pick(a, i, n);
    const y = pick(b, i, n);
    if (x === undefined || y === undefined) return undefined;
    if (x === null || y === null) out.push(null);
    else if (x === y) out.push(1);
    else if (typeof x === 'number' && typeof y === 'number') out.push(0);
    else if ((typeof x === 'number' && x < 0) || (typeof y === 'number' && y < 0)) out.push(0);
    else out.push(null);
  }
  return out;
}

function foldWhere(c: Ctx): Dim[] | undefined {
  const [cond, a, b] = [c.ins[0]?.value, c.ins[1]?.value, c.ins[2]?.value];
  if (!cond || !a || !b) return undefined;
  const n = Math.max(cond.length, a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const k = pick(cond, i, n);
    const x = pick(a, i, n);
    const y = pick(b, i, n);
    if (k === undefined || x === undefined || y === undefined) return undefined;
    out.push(typeof k !== 'number' ? null : k ? x : y);
  }
  return out;
}

/** Constant folding of small shape arithmetic (Add/Sub/Mul/Div on shape values). */
function foldArithmetic(c: Ctx): Dim[] | undefined {
  const a = c.ins[0]?.value;
  const b = c.ins[1]?.value;
  if (!a || !b || c.ins.length !== 2) return undefined;
  const n = Math.max(a.length, b.length);
  if ((a.length !== n && a.length !== 1) || (b.length !== n && b.length !== 1)) return undefined;
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length === 1 ? 0 : i];
    const y = b[b.length === 1 ? 0 : i];
    switch (c.node.opType) {
      case 'Add':
        out.push(addDims(x, y));
        break;
      case 'Sub':
        out.push(subDims(x, y));
        break;
      case 'Mul':
        out.push(mulDims(x, y));
        break;
      case 'Div':
        out.push(typeof x === 'number' && typeof y === 'number' ? Math.trunc(x / y) : divDims(x, y));
        break;
      default: {
        // The rest only on numbers (ONNX's expanded Attention tests heads with Mod / And / Not).
        if (typeof x !== 'number' || typeof y !== 'number') {
          out.push(null);
          break;
        }
        const op = c.node.opType;
        if (op === 'Mod') {
          // fmod = 0 (integers): the sign of the divisor, as Python's %.
          out.push(y === 0 ? null : c.int('fmod', 0) ? x % y : ((x % y) + y) % y);
        } else if (op === 'Max' || op === 'Min') out.push(op === 'Max' ? Math.max(x, y) : Math.min(x, y));
        else if (op === 'And' || op === 'Or') out.push((op === 'And' ? x && y : x || y) ? 1 : 0);
        else if (op === 'Less' || op === 'Greater') out.push((op === 'Less' ? x < y : x > y) ? 1 : 0);
        else return undefined;
      }
    }
  }
  return out;
}

function matmulShape(a: Shape, b: Shape): Shape | undefined {
  if (!a.length || !b.length) return undefined;
  const a2 = a.length === 1 ? [1, a[0]] : a;
  const b2 = b.length === 1 ? [b[0], 1] : b;
  const batch = broadcast(a2.slice(0, -2), b2.slice(0, -2));
  const out: Shape = [...batch];
  if (a.length > 1) out.push(a2[a2.length - 2]);
  if (b.length > 1) out.push(b2[b2.length - 1]);
  return out;
}

const matmul: Handler = (c) => {
  const a = shapeOf(c, 0);
  const b = shapeOf(c, c.node.opType === 'QLinearMatMul' ? 3 : 1);
  const s = a && b ? matmulShape(a, b) : undefined;
  if (s && a) c.flops = 2 * c.bind(s) * c.bind([a[a.length - 1]]);
  const dtype =
    c.node.opType === 'MatMulInteger' ? 'int32' : c.node.opType === 'QLinearMatMul' ? dtypeOf(c, 7) : dtypeOf(c, 0);
  return [{ shape: s, dtype }];
};

const gemm: Handler = (c) => {
  const a = shapeOf(c, 0);
  const b = shapeOf(c, 1);
  if (!a || !b || a.length !== 2 || b.length !== 2) return [{ dtype: dtypeOf(c, 0) }];
  const m = c.int('transA', 0) ? a[1] : a[0];
  const k = c.int('transA', 0) ? a[0] : a[1];
  const n = c.int('transB', 0) ? b[0] : b[1];
  c.flops = 2 * c.bind([m, n, k]) + (c.ins[2] ? c.bind([m, n]) : 0);
  return [{ shape: [m, n], dtype: dtypeOf(c, 0) }];
};

/** com.microsoft MatMulNBits: A [..., K] × B packed [N, K/blk, blk*bits/8] → [..., N]. */
const matmulNBits: Handler = (c) => {
  const a = shapeOf(c, 0);
  const n = c.int('N', 0);
  const k = c.int('K', 0);
  if (!a || !n) return [{ dtype: dtypeOf(c, 0) }];
  const s = [...a.slice(0, -1), n];
  c.flops = 2 * c.bind(s) * k;
  return [{ shape: s, dtype: dtypeOf(c, 0) }];
};

function spatialOut(
  inDim: Dim,
  k: number,
  stride: number,
  dil: number,
  padBegin: number,
  padEnd: number,
  autoPad: string,
  ceil: boolean,
): Dim {
  if (typeof inDim !== 'number') {
    if (autoPad.startsWith('SAME')) return stride === 1 ? inDim : null;
    if (inDim === null) return null;
    // A symbolic length: (in + pads − window) / stride + 1 when the division is exact term by term.
    const span = addDims(inDim, padBegin + padEnd - dil * (k - 1) - 1);
    const q = stride === 1 ? span : divDims(span, stride);
    return q === null ? null : addDims(q, 1);
  }
  if (autoPad.startsWith('SAME')) return Math.ceil(inDim / stride);
  const eff = dil * (k - 1) + 1;
  const v = (inDim + padBegin + padEnd - eff) / stride + 1;
  return ceil ? Math.ceil(v) : Math.floor(v);
}

function windowed(c: Ctx, x: Shape, kernel: number[], outChannels: Dim, ceil = false): Shape {
  const nsp = kernel.length;
  const strides = c.ints('strides') ?? kernel.map(() => 1);
  const dil = c.ints('dilations') ?? kernel.map(() => 1);
  const pads = c.ints('pads') ?? kernel.map(() => 0).concat(kernel.map(() => 0));
  const autoPad = String(c.attr('auto_pad') ?? 'NOTSET');
  const out: Shape = [x[0], outChannels];
  for (let i = 0; i < nsp; i++) {
    out.push(
      spatialOut(x[2 + i], kernel[i], strides[i] ?? 1, dil[i] ?? 1, pads[i] ?? 0, pads[i + nsp] ?? 0, autoPad, ceil),
    );
  }
  return out;
}

const conv: Handler = (c) => {
  const integer = c.node.opType === 'ConvInteger';
  const qlinear = c.node.opType === 'QLinearConv';
  const x = shapeOf(c, 0);
  const w = shapeOf(c, qlinear ? 3 : 1);
  const dtype = integer ? 'int32' : qlinear ? dtypeOf(c, 7) : dtypeOf(c, 0);
  if (!x || !w || w.length < 3) return [{ dtype }];
  const kernel = c.ints('kernel_shape') ?? w.slice(2).map((d) => (typeof d === 'number' ? d : 1));
  const s = windowed(c, x, kernel, w[0]);
  const perOutput = c.bind([w[1]]) * kernel.reduce((p, k) => p * k, 1);
  c.flops = 2 * c.bind(s) * perOutput;
  return [{ shape: s, dtype }];
};

const convTranspose: Handler = (c) => {
  const x = shapeOf(c, 0);
  const w = shapeOf(c, 1);
  if (!x || !w || w.length < 3) return [{ dtype: dtypeOf(c, 0) }];
  const group = c.int('group', 1);
  const kernel = c.ints('kernel_shape') ?? w.slice(2).map((d) => (typeof d === 'number' ? d : 1));
  const nsp = kernel.length;
  const strides = c.ints('strides') ?? kernel.map(() => 1);
  const dil = c.ints('dilations') ?? kernel.map(() => 1);
  const pads = c.ints('pads') ?? kernel.map(() => 0).concat(kernel.map(() => 0));
  const outPad = c.ints('output_padding') ?? kernel.map(() => 0);
  const explicit = c.ints('output_shape');
  const s: Shape = [x[0], mulDims(w[1], group)];
  for (let i = 0; i < nsp; i++) {
    const d = x[2 + i];
    const autoPad = String(c.attr('auto_pad') ?? 'NOTSET');
    if (explicit) s.push(explicit[explicit.length - nsp + i]);
    else if (autoPad.startsWith('SAME')) s.push(mulDims(d, strides[i]));
    else if (typeof d !== 'number') s.push(null);
    else s.push(strides[i] * (d - 1) + outPad[i] + ((kernel[i] - 1) * dil[i] + 1) - pads[i] - pads[i + nsp]);
  }
  // Each input element scatters into C_out/group × kernel outputs.
  c.flops = 2 * c.bind(x) * c.bind([w[1]]) * kernel.reduce((p, k) => p * k, 1);
  return [{ shape: s, dtype: dtypeOf(c, 0) }];
};

const pool: Handler = (c) => {
  const x = shapeOf(c, 0);
  if (!x) return [{ dtype: dtypeOf(c, 0) }];
  const kernel = c.ints('kernel_shape') ?? [];
  const s = windowed(c, x, kernel, x[1], c.int('ceil_mode', 0) === 1);
  c.flops = c.bind(s) * kernel.reduce((p, k) => p * k, 1);
  return c.node.opType === 'MaxPool' && c.node.outputs.length > 1
    ? [
        { shape: s, dtype: dtypeOf(c, 0) },
        { shape: s, dtype: 'int64' },
      ]
    : [{ shape: s, dtype: dtypeOf(c, 0) }];
};

const globalPool: Handler = (c) => {
  const x = shapeOf(c, 0);
  c.flops = c.bind(x);
  return [{ shape: x ? [x[0], x[1], ...x.slice(2).map(() => 1)] : undefined, dtype: dtypeOf(c, 0) }];
};

function normalization(perElement: number): Handler {
  return (c) => {
    const s = shapeOf(c, 0);
    c.flops = perElement * c.bind(s);
    const outs: Out[] = [{ shape: s, dtype: dtypeOf(c, 0) }];
    for (let i = 1; i < c.node.outputs.length; i++) outs.push({ dtype: 'float' });
    return outs;
  };
}

const reshape: Handler = (c) => {
  const x = shapeOf(c, 0);
  const target = c.ins[1]?.value ?? c.ints('shape');
  if (!target) return [{ dtype: dtypeOf(c, 0) }];
  const allowZero = c.int('allowzero', 0) === 1;
  const out: Shape = target.map((d, i) => (d === 0 && !allowZero && x ? (x[i] ?? null) : d));
  const neg = out.findIndex((d) => d === -1);
  if (neg >= 0) {
    const known = productOf(out.filter((_, i) => i !== neg));
    out[neg] = x ? divDims(productOf(x), known) : null;
  }
  return [{ shape: out, dtype: dtypeOf(c, 0), value: c.ins[0]?.value }];
};

const transpose: Handler = (c) => {
  const x = shapeOf(c, 0);
  if (!x) return [{ dtype: dtypeOf(c, 0) }];
  const perm = c.ints('perm') ?? x.map((_, i) => x.length - 1 - i);
  const s = perm.map((p) => x[p] ?? null);
  const v = c.ins[0]?.value;
  let value: Dim[] | undefined;
  if (v && isSizes(x) && v.length === x.reduce((p, d) => p * d, 1) && perm.length === x.length) {
    // Walk the output in order; each output index maps back through perm to a source offset.
    const strides = x.map((_, i) => x.slice(i + 1).reduce((p, d) => p * d, 1));
    value = [];
    const out = s as number[];
    const idx = new Array<number>(out.length).fill(0);
    for (let n = 0; n < v.length; n++) {
      let o = 0;
      for (let k = 0; k < out.length; k++) o += idx[k] * strides[perm[k]];
      value.push(v[o] ?? null);
      for (let k = out.length - 1; k >= 0 && ++idx[k] === out[k]; k--) idx[k] = 0;
    }
  }
  return [{ shape: s, dtype: dtypeOf(c, 0), value }];
};

const gather: Handler = (c) => {
  const x = shapeOf(c, 0);
  const idx = shapeOf(c, 1);
  if (!x || !idx) return [{ dtype: dtypeOf(c, 0) }];
  const axis = norm(c.int('axis', 0), x.length);
  const s = [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)];
  let value: Dim[] | undefined;
  const data = c.ins[0]?.value;
  const indices = c.ins[1]?.value;
  if (data && indices && x.length === 1) {
    value = indices.map((i) => (typeof i === 'number' ? (data[i < 0 ? i + data.length : i] ?? null) : null));
  }
  return [{ shape: s, dtype: dtypeOf(c, 0), value }];
};

const concat: Handler = (c) => {
  const shapes = c.ins.map((t) => t?.shape);
  if (shapes.some((s) => !s) || !shapes.length) return [{ dtype: dtypeOf(c, 0) }];
  const r = shapes[0]!.length;
  const axis = norm(c.int('axis', 0), r);
  const s = [...shapes[0]!];
  for (let i = 1; i < shapes.length; i++) s[axis] = addDims(s[axis], shapes[i]![axis] ?? null);
  let value: Dim[] | undefined;
  if (r === 1 && c.ins.every((t) => t?.value)) value = c.ins.flatMap((t) => t!.value!);
  return [{ shape: s, dtype: dtypeOf(c, 0), value }];
};

const shapeOp: Handler = (c) => {
  const x = shapeOf(c, 0);
  if (!x) return [{ dtype: 'int64' }];
  let start = c.int('start', 0);
  let end = c.int('end', x.length);
  start = Math.max(0, Math.min(x.length, norm(start, x.length)));
  end = Math.max(0, Math.min(x.length, norm(end, x.length)));
  const value = x.slice(start, end);
  return [{ shape: [value.length], dtype: 'int64', value }];
};

const unsqueeze: Handler = (c) => {
  const x = shapeOf(c, 0);
  const axes = (c.ins[1]?.value as number[] | undefined) ?? c.ints('axes');
  if (!x || !axes || axes.some((a) => typeof a !== 'number')) return [{ dtype: dtypeOf(c, 0) }];
  const r = x.length + axes.length;
  const set = new Set(axes.map((a) => norm(a, r)));
  const s: Shape = [];
  let j = 0;
  for (let i = 0; i < r; i++) s.push(set.has(i) ? 1 : x[j++]);
  return [{ shape: s, dtype: dtypeOf(c, 0), value: c.ins[0]?.value }];
};

const squeeze: Handler = (c) => {
  const x = shapeOf(c, 0);
  const axes = (c.ins[1]?.value as number[] | undefined) ?? c.ints('axes');
  if (!x) return [{ dtype: dtypeOf(c, 0) }];
  const set = new Set(
    (axes ?? x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)).map((a) => norm(a as number, x.length)),
  );
  return [{ shape: x.filter((_, i) => !set.has(i)), dtype: dtypeOf(c, 0), value: c.ins[0]?.value }];
};

const slice: Handler = (c) => {
  const x = shapeOf(c, 0);
  if (!x) return [{ dtype: dtypeOf(c, 0) }];
  const starts = (c.ins[1]?.value as number[] | undefined) ?? c.ints('starts');
  const ends = (c.ins[2]?.value as number[] | undefined) ?? c.ints('ends');
  const axes = (c.ins[3]?.value as number[] | undefined) ?? c.ints('axes') ?? starts?.map((_, i) => i);
  const steps = (c.ins[4]?.value as number[] | undefined) ?? starts?.map(() => 1);
  if (!starts || !ends || !axes || !steps) return [{ shape: x.map(() => null), dtype: dtypeOf(c, 0) }];
  const s = [...x];
  for (let i = 0; i < axes.length; i++) {
    const ax = norm(axes[i], x.length);
    const d = x[ax];
    const st = starts[i],
      en = ends[i],
      step = steps[i] ?? 1;
    if (typeof d !== 'number' || typeof st !== 'number' || typeof en !== 'number' || typeof step !== 'number') {
      s[ax] = step === 1 ? symbolicSlice(d, st, en) : null;
      continue;
    }
    const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));
    const b = step > 0 ? clamp(st < 0 ? st + d : st, 0, d) : clamp(st < 0 ? st + d : st, -1, d - 1);
    const e = step > 0 ? clamp(en < 0 ? en + d : en, 0, d) : clamp(en < 0 ? en + d : en, -1, d - 1);
    s[ax] = Math.max(0, Math.ceil((e - b) / step));
  }
  let value: Dim[] | undefined;
  const v = c.ins[0]?.value;
  if (v && x.length === 1 && typeof s[0] === 'number' && typeof starts[0] === 'number' && steps[0] === 1) {
    const b = starts[0] < 0 ? Math.max(0, starts[0] + v.length) : Math.min(starts[0], v.length);
    value = v.slice(b, b + s[0]);
  } else if (v && isSizes(x) && v.length === x.reduce((p, d) => p * d, 1)) {
    // An N-d value (torch's F.pad flips its pads: Reshape(-1, 2) → Slice(step -1) → Transpose).
    const picks = x.map((d) => Array.from({ length: d }, (_, i) => i));
    let ok = true;
    axes.forEach((a, i) => {
      const [ax, st, en, step] = [norm(a, x.length), starts[i], ends[i], steps[i] ?? 1];
      if (typeof st !== 'number' || typeof en !== 'number' || typeof step !== 'number' || !step) return (ok = false);
      const d = x[ax];
      const lo = step > 0 ? 0 : -1;
      const hi = step > 0 ? d : d - 1;
      const clamp = (u: number) => Math.max(lo, Math.min(hi, u < 0 ? u + d : u));
      const idx: number[] = [];
      for (let k = clamp(st); step > 0 ? k < clamp(en) : k > clamp(en); k += step) idx.push(k);
      picks[ax] = idx;
    });
    if (ok) value = gatherValue(v, x, picks);
  }
  return [{ shape: s, dtype: dtypeOf(c, 0), value }];
};

const isSizes = (x: Shape): x is number[] => x.every((d) => typeof d === 'number');

/** The elements of a row-major value of shape x at the cartesian product of picks[axis] (index lists). */
function gatherValue(v: Dim[], x: number[], picks: number[][]): Dim[] {
  const strides = x.map((_, i) => x.slice(i + 1).reduce((p, d) => p * d, 1));
  let offsets = [0];
  picks.forEach((idx, ax) => {
    const next: number[] = [];
    for (const o of offsets) for (const i of idx) next.push(o + i * strides[ax]);
    offsets = next;
  });
  return offsets.map((o) => v[o] ?? null);
}

/**
 * The length of x[st:en] (step 1) when a bound or the dim is symbolic. Symbolic bounds are taken to
 * lie inside the dim (torch's `bias[:, :, ns - nd:ns, :ns]` in GPT-2 with a KV cache): what a
 * valid model computes; a constant end on a symbolic dim likewise.
 */
function symbolicSlice(d: Dim, st: Dim, en: Dim): Dim {
  if (d === null || st === null || en === null) return null;
  const big = 2 ** 31 - 1;
  const begin = typeof st === 'number' && st < 0 ? addDims(d, st) : st;
  const end =
    typeof en === 'number' ? (en >= big || (typeof d === 'number' && en > d) ? d : en < 0 ? addDims(d, en) : en) : en;
  if (typeof begin === 'number' && begin >= big) return 0;
  const n = subDims(end, begin);
  return typeof n === 'number' && n < 0 ? 0 : n;
}

const split: Handler = (c) => {
  const x = shapeOf(c, 0);
  const n = c.node.outputs.length;
  if (!x) return c.node.outputs.map(() => ({ dtype: dtypeOf(c, 0) }));
  const axis = norm(c.int('axis', 0), x.length);
  const sizes = (c.ins[1]?.value as number[] | undefined) ?? c.ints('split');
  return c.node.outputs.map((_, i) => {
    const s = [...x];
    s[axis] = sizes
      ? (sizes[i] ?? null)
      : typeof x[axis] === 'number'
        ? Math.ceil((x[axis] as number) / n)
        : divDims(x[axis], n);
    return { shape: s, dtype: dtypeOf(c, 0) };
  });
};

const expand: Handler = (c) => {
  const x = shapeOf(c, 0);
  const target = c.ins[1]?.value;
  return [{ shape: x && target ? broadcast(x, target) : undefined, dtype: dtypeOf(c, 0) }];
};

const flatten: Handler = (c) => {
  const x = shapeOf(c, 0);
  if (!x) return [{ dtype: dtypeOf(c, 0) }];
  const axis = norm(c.int('axis', 1), x.length);
  return [{ shape: [productOf(x.slice(0, axis)), productOf(x.slice(axis))], dtype: dtypeOf(c, 0) }];
};

function reduce(c: Ctx): Out[] {
  const x = shapeOf(c, 0);
  if (!x) return [{ dtype: dtypeOf(c, 0) }];
  const keep = c.int('keepdims', 1);
  let axes = (c.ins[1]?.value as number[] | undefined) ?? c.ints('axes');
  if (!axes || !axes.length) axes = c.int('noop_with_empty_axes', 0) ? [] : x.map((_, i) => i);
  const set = new Set(axes.map((a) => norm(a, x.length)));
  c.flops = c.bind(x);
  const s = keep ? x.map((d, i) => (set.has(i) ? 1 : d)) : x.filter((_, i) => !set.has(i));
  // Keras' Dense (Tensordot) sizes its Reshape with ReduceProd over a Shape: fold it on a known 1-D value.
  const v = c.ins[0]?.value;
  let value: Dim[] | undefined;
  if (v && x.length === 1 && set.has(0) && v.length) {
    const op = c.node.opType;
    if (op === 'ReduceProd') value = [productOf(v)];
    else if (op === 'ReduceSum') value = [v.reduce<Dim>((p, d) => addDims(p, d), 0)];
    else if ((op === 'ReduceMax' || op === 'ReduceMin') && v.every((d) => typeof d === 'number')) {
      value = [(op === 'ReduceMax' ? Math.max : Math.min)(...(v as number[]))];
    }
  }
  return [{ shape: s, dtype: dtypeOf(c, 0), value }];
}

function argReduce(c: Ctx): Out[] {
  const x = shapeOf(c, 0);
  if (!x) return [{ dtype: 'int64' }];
  const axis = norm(c.int('axis', 0), x.length);
  c.flops = c.bind(x);
  const s = c.int('keepdims', 1) ? x.map((d, i) => (i === axis ? 1 : d)) : x.filter((_, i) => i !== axis);
  return [{ shape: s, dtype: 'int64' }];
}

/** ONNX Attention (opset 23/24) and com.microsoft Attention / MultiHeadAttention / GroupQueryAttention. */
const attention: Handler = (c) => {
  const q = shapeOf(c, 0);
  const dtype = dtypeOf(c, 0);
  const rest = (outs: Out[]) => [...outs, ...c.node.outputs.slice(outs.length).map(() => ({ dtype }))];
  if (!q) return rest([]);
  if (c.node.domain === 'com.microsoft' && c.node.opType === 'Attention') {
    // input [B, S, hidden_in], packed QKV weights [hidden_in, 3*hidden]
    const w = shapeOf(c, 1);
    const hidden = w ? divDims(w[1], 3) : null;
    if (w) c.flops = 2 * c.bind([q[0], q[1], w[0], w[1]]) + 4 * c.bind([q[0], q[1], q[1], hidden]);
    return rest([{ shape: [q[0], q[1], hidden], dtype }]);
  }
  const k = shapeOf(c, 1);
  const v = shapeOf(c, 2);
  if (!k || !v) return rest([]);
  // Bring Q, K, V to [B, heads, S, head_dim].
  const qHeads = c.int('q_num_heads', c.int('num_heads', 0));
  const kvHeads = c.int('kv_num_heads', qHeads);
  const to4d = (s: Shape, heads: number): Shape | undefined =>
    s.length === 4 ? s : s.length === 3 && heads ? [s[0], heads, s[1], divDims(s[2], heads)] : undefined;
  const q4 = to4d(q, qHeads);
  const k4 = to4d(k, kvHeads);
  const v4 = to4d(v, kvHeads);
  if (!q4 || !k4 || !v4) return rest([]);
  const pastKey = c.node.domain === '' ? shapeOf(c, 4) : undefined;
  const total = pastKey && pastKey.length === 4 ? addDims(pastKey[2], k4[2]) : k4[2];
  const [b, h, sq, d] = q4;
  c.flops = 2 * c.bind([b, h, sq, total, d]) + 2 * c.bind([b, h, sq, total, v4[3]]) + 5 * c.bind([b, h, sq, total]);
  const y: Shape = q.length === 4 ? [b, h, sq, v4[3]] : [q[0], q[1], mulDims(v4[3], h)];
  return rest([
    { shape: y, dtype },
    { shape: [k4[0], k4[1], total, k4[3]], dtype },
    { shape: [v4[0], v4[1], total, v4[3]], dtype },
    { shape: [b, h, sq, total], dtype },
  ]);
};

/** Einsum with explicit letters (no ellipsis): FLOPs are 2 × the product of every index's extent. */
const einsum: Handler = (c) => {
  const eq = String(c.attr('equation') ?? '').replace(/\s/g, '');
  if (!eq || eq.includes('...')) return [{ dtype: dtypeOf(c, 0) }];
  const [lhs, rhs] = eq.split('->');
  const terms = lhs.split(',');
  const extent = new Map<string, Dim>();
  const counts = new Map<string, number>();
  terms.forEach((term, i) => {
    const s = shapeOf(c, i);
    [...term].forEach((ch, j) => {
      counts.set(ch, (counts.get(ch) ?? 0) + 1);
      const d = s?.[j] ?? null;
      if (!extent.has(ch) || extent.get(ch) === 1 || extent.get(ch) === null) extent.set(ch, d);
    });
  });
  const outLetters = rhs !== undefined ? [...rhs] : [...counts.keys()].filter((ch) => counts.get(ch) === 1).sort();
  c.flops = 2 * c.bind([...extent.values()]);
  return [{ shape: outLetters.map((ch) => extent.get(ch) ?? null), dtype: dtypeOf(c, 0) }];
};

/**
 * LSTM / GRU / RNN: X [S, B, I] (layout 0), W [dirs, gates*H, I], R [dirs, gates*H, H], initial_h
 * [dirs, B, H]. When X's shape is unknown (a frame handed in by a Loop, say), the sizes come from
 * W, R and the states: the output keeps H and the directions, with unknown dims left unknown.
 */
const recurrent: Handler = (c) => {
  const x = shapeOf(c, 0);
  const w = shapeOf(c, 1);
  const r = shapeOf(c, 2);
  const gates = c.node.opType === 'LSTM' ? 4 : c.node.opType === 'GRU' ? 3 : 1;
  const fromW = w && typeof w[1] === 'number' ? (w[1] as number) / gates : r && typeof r[2] === 'number' ? r[2] : 0;
  const h = c.int('hidden_size', 0) || fromW;
  const dirs = String(c.attr('direction') ?? 'forward') === 'bidirectional' ? 2 : 1;
  const layout = c.int('layout', 0);
  const initial = shapeOf(c, 5) ?? shapeOf(c, 6);
  const stateBatch = initial ? (layout ? initial[0] : initial[1]) : null;
  if (!x && !w) return c.node.outputs.map(() => ({ dtype: dtypeOf(c, 0) }));
  const [seq, batch] = x ? (layout ? [x[1], x[0]] : [x[0], x[1]]) : [null, stateBatch];
  const input = x?.[2] ?? w?.[2] ?? null;
  c.flops = 2 * dirs * gates * h * c.bind([seq, batch]) * (c.bind([input]) + h);
  const y: Shape = layout ? [batch, seq, dirs, h] : [seq, dirs, batch, h];
  const state: Shape = layout ? [batch, dirs, h] : [dirs, batch, h];
  return [
    { shape: y, dtype: dtypeOf(c, 0) },
    { shape: state, dtype: dtypeOf(c, 0) },
    { shape: state, dtype: dtypeOf(c, 0) },
  ];
};

const quantizeLinear: Handler = (c) => {
  const s = shapeOf(c, 0);
  const zp = c.ins[2];
  const outType = c.int('output_dtype', 0);
  c.flops = 2 * c.bind(s);
  return [{ shape: s, dtype: zp?.dtype ?? (outType ? onnxDtypeName(outType) : 'uint8') }];
};

const dequantizeLinear: Handler = (c) => {
  const s = shapeOf(c, 0);
  c.flops = 2 * c.bind(s);
  return [{ shape: s, dtype: c.ins[1]?.dtype ?? 'float' }];
};

const dynamicQuantizeLinear: Handler = (c) => {
  const s = shapeOf(c, 0);
  c.flops = 4 * c.bind(s);
  return [
    { shape: s, dtype: 'uint8' },
    { shape: [], dtype: 'float' },
    { shape: [], dtype: 'uint8' },
  ];
};

const constantOfShape: Handler = (c) => {
  const v = c.ins[0]?.value;
  const fill = c.attr('value');
  const held = fill && typeof fill === 'object' && 'tensor' in fill ? fill : undefined;
  // The fill value (0 when absent), as a value when it is an integer and the output is a short vector.
  const x = held ? held.values?.[0] : 0;
  const n = v?.length === 1 ? v[0] : undefined;
  const value =
    typeof n === 'number' && n <= 64 && x !== undefined && Number.isInteger(x) ? new Array<Dim>(n).fill(x) : undefined;
  return [{ shape: v, dtype: held?.dtype ?? 'float', value }];
};

const range: Handler = (c) => {
  const [a, b, d] = [c.ins[0]?.value?.[0], c.ins[1]?.value?.[0], c.ins[2]?.value?.[0]];
  const n =
    typeof a === 'number' && typeof b === 'number' && typeof d === 'number' && d !== 0
      ? Math.max(0, Math.ceil((b - a) / d))
      : d === 1 && a !== undefined && b !== undefined
        ? subDims(b, a)
        : null;
  const value =
    typeof n === 'number' && n <= 64 && typeof a === 'number' && typeof d === 'number'
      ? Array.from({ length: n }, (_, i) => a + i * d)
      : undefined;
  return [{ shape: [n], dtype: dtypeOf(c, 0), value }];
};

const cast: Handler = (c) => {
  const s = shapeOf(c, 0);
  const dtype = onnxDtypeName(c.int('to', 1));
  const v = c.ins[0]?.value;
  // Casting to an integer type truncates toward zero (what onnxruntime does).
  const value = v && /int/.test(dtype) ? v.map((d) => (typeof d === 'number' ? Math.trunc(d) : d)) : v;
  return [{ shape: s, dtype, value }];
};

const identity: Handler = (c) => [{ shape: shapeOf(c, 0), dtype: dtypeOf(c, 0), value: c.ins[0]?.value }];

const pad: Handler = (c) => {
  const x = shapeOf(c, 0);
  const pads = (c.ins[1]?.value as number[] | undefined) ?? c.ints('pads');
  if (!x || !pads || pads.some((p) => typeof p !== 'number')) {
    return [{ shape: x?.map(() => null), dtype: dtypeOf(c, 0) }];
  }
  const axes = (c.ins[3]?.value as number[] | undefined) ?? x.map((_, i) => i);
  const s = [...x];
  axes.forEach((a, i) => {
    const ax = norm(a, x.length);
    s[ax] = addDims(addDims(s[ax], pads[i]), pads[i + axes.length]);
  });
  return [{ shape: s, dtype: dtypeOf(c, 0) }];
};

const tile: Handler = (c) => {
  const x = shapeOf(c, 0);
  const reps = c.ins[1]?.value;
  return [{ shape: x && reps ? x.map((d, i) => mulDims(d, reps[i] ?? null)) : undefined, dtype: dtypeOf(c, 0) }];
};

/**
 * Resize (opset 10: X, scales; 11+: X, roi, scales, sizes; 18: axes, keep_aspect_ratio_policy) and
 * Upsample (scales input, or attribute before opset 9). Output dims are floor(in × scale), or the
 * sizes. FLOPs: nearest copies (0); linear interpolates 2^k inputs per output over the k resized
 * axes (2 FLOPs each: a multiply-add), cubic 4^k.
 */
const resize: Handler = (c) => {
  const x = shapeOf(c, 0);
  const dtype = dtypeOf(c, 0);
  if (!x) return [{ dtype }];
  const opset10 = c.node.opType === 'Upsample' || c.node.inputs.length === 2;
  const scalesIn = c.ins[opset10 ? 1 : 2];
  const scales = scalesIn?.value?.length ? scalesIn.value : c.node.opType === 'Upsample' ? c.ints('scales') : undefined;
  const floats = c.attr('scales');
  const scaleList = scales ?? (Array.isArray(floats) && floats.length ? (floats as number[]) : undefined);
  const sizes = opset10 ? undefined : c.ins[3]?.value;
  const axes = (c.ints('axes') ?? x.map((_, i) => i)).map((a) => norm(a, x.length));
  let s: Shape | undefined;
  if (sizes && sizes.length === axes.length) {
    s = [...x];
    const policy = String(c.attr('keep_aspect_ratio_policy') ?? 'stretch');
    if (policy !== 'stretch') {
      // One scale for every axis: the smallest (not_larger) or largest (not_smaller) of sizes / in.
      const ratios = axes.map((a, i) => {
        const [n, d] = [sizes[i], x[a]];
        return typeof n === 'number' && typeof d === 'number' && d > 0 ? n / d : null;
      });
      if (ratios.some((r) => r === null)) axes.forEach((a) => (s![a] = null));
      else {
        const r = (policy === 'not_larger' ? Math.min : Math.max)(...(ratios as number[]));
        axes.forEach((a) => (s![a] = Math.round(r * (x[a] as number))));
      }
    } else axes.forEach((a, i) => (s![a] = sizes[i]));
  } else if (scaleList && scaleList.length === axes.length) {
    s = [...x];
    axes.forEach((a, i) => {
      const k = scaleList[i];
      const d = x[a];
      if (typeof k !== 'number') s![a] = null;
      else if (typeof d === 'number') s![a] = Math.floor(d * k + 1e-9);
      else s![a] = Number.isInteger(k) ? mulDims(d, k) : null;
    });
  }
  if (!s) return [{ shape: x.map(() => null), dtype }];
  const mode = String(c.attr('mode') ?? 'nearest');
  const resized = s.filter((d, i) => d !== x[i]).length;
  const taps = mode === 'nearest' ? 0 : (mode === 'cubic' ? 4 : 2) ** resized;
  c.flops = 2 * taps * c.bind(s);
  return [{ shape: s, dtype }];
};

/** Scatter / ScatterND / ScatterElements: the output is `data` with some elements replaced (one copy per update). */
const scatter: Handler = (c) => [{ shape: shapeOf(c, 0), dtype: dtypeOf(c, 0) }];

/** GatherND: indices [..., k] pick slices of data past its first batch_dims + k axes. */
const gatherND: Handler = (c) => {
  const x = shapeOf(c, 0);
  const idx = shapeOf(c, 1);
  const k = idx?.[idx.length - 1];
  if (!x || !idx || typeof k !== 'number') return [{ dtype: dtypeOf(c, 0) }];
  const b = c.int('batch_dims', 0);
  return [{ shape: [...idx.slice(0, -1), ...x.slice(b + k)], dtype: dtypeOf(c, 0) }];
};

/** ai.onnx.ml ArrayFeatureExtractor: picks entries of the last axis (one row of indices). */
const arrayFeatureExtractor: Handler = (c) => {
  const x = shapeOf(c, 0);
  const idx = shapeOf(c, 1);
  if (!x || !idx) return [{ dtype: dtypeOf(c, 0) }];
  const n = productOf(idx);
  return [{ shape: x.length === 1 ? [1, n] : [...x.slice(0, -1), n], dtype: dtypeOf(c, 0) }];
};

/** DepthToSpace / SpaceToDepth: [N, C, H, W] ↔ [N, C/b², H·b, W·b]. */
function spaceDepth(toSpace: boolean): Handler {
  return (c) => {
    const x = shapeOf(c, 0);
    const b = c.int('blocksize', 1);
    if (!x || x.length !== 4) return [{ dtype: dtypeOf(c, 0) }];
    const [n, ch, h, w] = x;
    const s = toSpace
      ? [n, divDims(ch, b * b), mulDims(h, b), mulDims(w, b)]
      : [n, mulDims(ch, b * b), divDims(h, b), divDims(w, b)];
    return [{ shape: s, dtype: dtypeOf(c, 0) }];
  };
}

/** TopK: the axis becomes K (input 1, or the attribute before opset 10); values and int64 indices. */
const topK: Handler = (c) => {
  const x = shapeOf(c, 0);
  const k = c.ins[1]?.value?.[0] ?? c.attr('k');
  if (!x) return [{ dtype: dtypeOf(c, 0) }, { dtype: 'int64' }];
  const axis = norm(c.int('axis', -1), x.length);
  const s = x.map((d, i) => (i === axis ? (typeof k === 'number' || typeof k === 'string' ? k : null) : d));
  c.flops = c.bind(x);
  return [
    { shape: s, dtype: dtypeOf(c, 0) },
    { shape: s, dtype: 'int64' },
  ];
};

const handlers: Record<string, Handler> = {
  MatMul: matmul,
  MatMulInteger: matmul,
  QLinearMatMul: matmul,
  FusedMatMul: matmul,
  Gemm: gemm,
  MatMulNBits: matmulNBits,
  Conv: conv,
  ConvInteger: conv,
  QLinearConv: conv,
  ConvTranspose: convTranspose,
  MaxPool: pool,
  AveragePool: pool,
  LpPool: pool,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  GlobalLpPool: globalPool,
  BatchNormalization: normalization(4),
  InstanceNormalization: normalization(8),
  LayerNormalization: normalization(8),
  GroupNormalization: normalization(8),
  RMSNormalization: normalization(4),
  SimplifiedLayerNormalization: normalization(4),
  SkipLayerNormalization: normalization(9),
  SkipSimplifiedLayerNormalization: normalization(5),
  LRN: normalization(8),
  MeanVarianceNormalization: normalization(8),
  Softmax: same(5),
  LogSoftmax: same(6),
  Hardmax: same(2),
  Relu: same(1),
  LeakyRelu: same(2),
  PRelu: elementwise(),
  Elu: same(3),
  Selu: same(3),
  Celu: same(3),
  Sigmoid: same(4),
  HardSigmoid: same(3),
  HardSwish: same(4),
  Tanh: same(5),
  Softplus: same(3),
  Softsign: same(3),
  Gelu: same(8),
  FastGelu: same(8),
  BiasGelu: elementwise(),
  QuickGelu: same(5),
  Mish: same(6),
  Swish: same(5),
  Erf: same(6),
  Exp: same(1),
  Log: same(1),
  Sqrt: same(1),
  Reciprocal: same(1),
  Neg: same(1),
  Abs: same(1),
  Floor: same(1),
  Ceil: same(1),
  Round: same(1),
  Sign: same(1),
  Sin: same(1),
  Cos: same(1),
  Tan: same(1),
  Not: (c) => {
    const v = c.ins[0]?.value;
    c.flops = c.bind(shapeOf(c, 0));
    return [
      { shape: shapeOf(c, 0), dtype: 'bool', value: v?.map((d) => (typeof d === 'number' ? (d ? 0 : 1) : null)) },
    ];
  },
  IsNaN: same(1, 'bool'),
  IsInf: same(1, 'bool'),
  Clip: same(2),
  Dropout: same(0),
  Identity: identity,
  Cast: cast,
  CastLike: (c) => [{ shape: shapeOf(c, 0), dtype: dtypeOf(c, 1) }],
  Add: elementwise(),
  Sub: elementwise(),
  Mul: elementwise(),
  Div: elementwise(),
  Pow: elementwise(),
  Mod: elementwise(),
  Max: elementwise(),
  Min: elementwise(),
  Sum: elementwise(),
  Mean: elementwise(),
  Where: elementwise(),
  BitShift: elementwise(),
  Equal: elementwise('bool'),
  Less: elementwise('bool'),
  Greater: elementwise('bool'),
  LessOrEqual: elementwise('bool'),
  GreaterOrEqual: elementwise('bool'),
  And: elementwise('bool'),
  Or: elementwise('bool'),
  Xor: elementwise('bool'),
  Reshape: reshape,
  Transpose: transpose,
  Gather: gather,
  Concat: concat,
  Split: split,
  Slice: slice,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Expand: expand,
  Flatten: flatten,
  Shape: shapeOp,
  Size: (c) => {
    const x = shapeOf(c, 0);
    return [{ shape: [], dtype: 'int64', value: x ? [productOf(x)] : undefined }];
  },
  ConstantOfShape: constantOfShape,
  Range: range,
  Pad: pad,
  Tile: tile,
  ReduceMean: reduce,
  ReduceSum: reduce,
  ReduceMax: reduce,
  ReduceMin: reduce,
  ReduceProd: reduce,
  ReduceL2: reduce,
  ReduceL1: reduce,
  ReduceLogSumExp: reduce,
  ReduceSumSquare: reduce,
  ArgMax: argReduce,
  ArgMin: argReduce,
  Attention: attention,
  MultiHeadAttention: attention,
  GroupQueryAttention: attention,
  LSTM: recurrent,
  GRU: recurrent,
  RNN: recurrent,
  QuantizeLinear: quantizeLinear,
  DequantizeLinear: dequantizeLinear,
  DynamicQuantizeLinear: dynamicQuantizeLinear,
  Trilu: same(1),
  CumSum: same(1),
  Einsum: einsum,
  Resize: resize,
  Upsample: resize,
  Scatter: scatter,
  ScatterND: scatter,
  ScatterElements: scatter,
  GatherND: gatherND,
  GatherElements: (c) => [{ shape: shapeOf(c, 1), dtype: dtypeOf(c, 0) }],
  DepthToSpace: spaceDepth(true),
  SpaceToDepth: spaceDepth(false),
  TopK: topK,
  LpNormalization: normalization(3),
  ReduceLogSum: reduce,
  ThresholdedRelu: same(1),
  Shrink: same(2),
  // Caffe / CoreML's ImageScaler (experimental, removed in opset 10): scale × x + per-channel bias.
  ImageScaler: same(2),
  ArrayFeatureExtractor: arrayFeatureExtractor,
  // ai.onnx.ml ZipMap: its output is a sequence of maps, not a tensor: known, with no shape.
  ZipMap: () => [{ dtype: 'map' }],
};

/**
 * A declared shape (value_info, graph output) completed by the inferred one: a dynamic dim of no
 * name, or a name the exporter made up for an output ("N", "Transposeenh_dim_0"), gives way to a
 * size inference knows.
 */
function merged(declared: Shape, inferred: Shape, given: Set<string>): Shape {
  let out: Shape | undefined;
  for (let i = 0; i < declared.length; i++) {
    const d = declared[i];
    const u = inferred[i];
    if (typeof d === 'number' || u === null || u === d) continue;
    // A name the model's inputs use (batch, sequence) stays; a name only an output uses ("seq_len_plus_1")
    // gives way to what inference computed from the inputs ("seq_len + 1"), which the inputs' bindings size.
    if (typeof d === 'string' && typeof u !== 'number' && symbolsIn(d).some((x) => given.has(x))) continue;
    out ??= [...declared];
    out[i] = u;
  }
  return out ?? declared;
}

/** A dim a handler may produce: a non-negative integer, a symbol product, or null (unknown). */
const validDim = (d: unknown) =>
  d === null || typeof d === 'string' || (typeof d === 'number' && Number.isInteger(d) && d >= 0);
const shapeText = (s: Shape | undefined) => (s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(', ')}]` : '?');

export function isKnownOp(opType: string): boolean {
  return opType in handlers || opType === 'Constant';
}

/**
 * The nodes in an order where every producer comes before its consumers (and an If / Loop / Scan
 * before its subgraph's nodes). ONNX requires file order to be one, but exporters break it and
 * onnxruntime sorts anyway: torch 1.6 writes GPT-2's qkv Split nodes at the end of the file, after
 * the nodes that read them. File order is kept where it is already valid (one pass to check).
 */
function isSorted(graph: ModelGraph): boolean {
  const tensors = graph.tensors;
  const nodes = graph.nodes;
  // Indexed loops: every input of every node, while a model opens (an unoptimized for…of allocates per step).
  for (let k = 0; k < nodes.length; k++) {
    const n = nodes[k];
    if (n.parent >= n.index) return false;
    const inputs = n.inputs;
    for (let j = 0; j < inputs.length; j++) {
      const i = inputs[j];
      if (!i) continue;
      const p = tensors.get(i)?.producer;
      if (p !== undefined && p > n.index) return false;
    }
  }
  return true;
}

export function topologicalOrder(graph: ModelGraph): GraphNode[] {
  const nodes = graph.nodes;
  const producerOf = (name: string) => (name ? graph.tensors.get(name)?.producer : undefined);
  const before = (n: GraphNode) => {
    const deps: number[] = [];
    if (n.parent >= 0) deps.push(n.parent);
    for (const i of n.inputs) {
      const p = producerOf(i);
      if (p !== undefined && p !== n.index) deps.push(p);
    }
    return deps;
  };
  if (isSorted(graph)) return nodes;
  // Depth-first, iteratively (a chain may be 100,000 nodes long), visiting nodes in file order.
  const state = new Uint8Array(nodes.length); // 0 new, 1 on the stack, 2 placed
  const order: GraphNode[] = [];
  for (const root of nodes) {
    if (state[root.index]) continue;
    const stack: [GraphNode, number[]][] = [[root, before(root)]];
    state[root.index] = 1;
    while (stack.length) {
      const [n, deps] = stack[stack.length - 1];
      const d = deps.pop();
      if (d === undefined) {
        stack.pop();
        state[n.index] = 2;
        order.push(n);
      } else if (!state[d]) {
        state[d] = 1;
        stack.push([nodes[d], before(nodes[d])]);
      }
      // state 1 on a dependency: a cycle (not a valid model); the node runs without that input's shape.
    }
  }
  return order;
}

/**
 * Runs shape inference over the graph's nodes in order (ONNX nodes are topologically sorted),
 * filling output tensors' shapes, dtypes and known small values, and each node's FLOPs and bytes.
 */
export function inferShapes(graph: ModelGraph): void {
  const bindings = graph.bindings;
  const given = new Set<string>();
  for (const name of graph.inputs) {
    for (const d of graph.tensors.get(name)?.shape ?? []) for (const x of symbolsIn(d)) given.add(x);
  }
  for (const node of topologicalOrder(graph)) {
    const ins: (GraphTensor | undefined)[] = new Array(node.inputs.length);
    for (let k = 0; k < ins.length; k++) ins[k] = node.inputs[k] ? graph.tensors.get(node.inputs[k]) : undefined;
    const handler = handlers[node.opType];
    const ctx = new NodeCtx(node, ins, bindings);
    let outs: Out[] = [];
    if (node.opType === 'Constant') {
      node.known = true;
    } else if (handler) {
      try {
        outs = handler(ctx);
        const bad = outs.find((o) => o.shape?.some((d) => !validDim(d)));
        if (bad) throw new Error(`output shape ${shapeText(bad.shape)} is not a shape`);
        node.known = true;
      } catch (e) {
        // The rule failed on this node: no shapes, no FLOPs, and it is listed with the unknown ops, with the reason.
        outs = [];
        ctx.flops = 0;
        node.known = false;
        node.shapeError = `inputs ${ins.map((t) => shapeText(t?.shape)).join(', ') || 'none'}: ${e instanceof Error ? e.message : String(e)}`;
      }
    } else node.known = false;
    node.flops = Number.isFinite(ctx.flops) ? ctx.flops : 0;
    let moved = 0;
    for (let k = 0; k < ins.length; k++) {
      const t = ins[k];
      if (t?.shape) moved += ctx.bind(t.shape) * bytesPerElement(t.dtype);
    }
    for (let i = 0; i < node.outputs.length; i++) {
      const name = node.outputs[i];
      if (!name) continue;
      const t = graph.tensors.get(name);
      if (!t) continue;
      const o = outs[i];
      if (o && !t.isWeight) {
        if (o.shape && !t.shape) t.shape = o.shape;
        else if (o.shape && t.shape && o.shape.length === t.shape.length) t.shape = merged(t.shape, o.shape, given);
        if (o.dtype && (t.dtype === 'unknown' || !t.dtype)) t.dtype = o.dtype;
        if (o.value && !t.value && o.value.length <= 64) t.value = o.value;
      }
      if (t.shape) moved += ctx.bind(t.shape) * bytesPerElement(t.dtype);
    }
    node.bytesMoved = moved;
  }
}

export function bytesPerElement(dtype: string): number {
  switch (dtype) {
    case 'double':
    case 'int64':
    case 'uint64':
    case 'complex64':
      return 8;
    case 'complex128':
      return 16;
    case 'float':
    case 'int32':
    case 'uint32':
      return 4;
    case 'float16':
    case 'bfloat16':
    case 'int16':
    case 'uint16':
      return 2;
    case 'int4':
    case 'uint4':
    case 'float4e2m1':
      return 0.5;
    case 'int2':
    case 'uint2':
      return 0.25;
    default:
      return 1;
  }
}
