import type { GraphNode, ModelGraph } from './model-graph';

/**
 * The graph's own structure, for models whose names carry no scope (Paddle's `p2o.Conv.12`, old
 * exporters' `Conv_3`, MXNet's `resnetv17_conv0_fwd`): constant-foldable nodes, the weights that
 * reach a node through them, and structural groups — blocks between the articulation points of the
 * data flow (the nodes every path from the inputs to the outputs passes: residual and skip merges),
 * repeated block patterns merged into units, stages where the feature map's resolution changes,
 * and the roles a vision or recognition model has (backbone, neck, head).
 */

/** Ops whose result depends on something other than their inputs, or that hold subgraphs: never folded. */
const NOT_FOLDABLE = new Set([
  'If',
  'Loop',
  'Scan',
  'SequenceMap',
  'RandomNormal',
  'RandomUniform',
  'RandomNormalLike',
  'RandomUniformLike',
  'Multinomial',
  'Bernoulli',
]);

/** Ops that do a layer's work with its weights (what starts a block). */
export const WEIGHT_COMPUTE_OPS = new Set([
  'Conv',
  'ConvTranspose',
  'ConvInteger',
  'QLinearConv',
  'Gemm',
  'MatMul',
  'MatMulInteger',
  'QLinearMatMul',
  'MatMulNBits',
  'Einsum',
  'LSTM',
  'GRU',
  'RNN',
  'Attention',
  'MultiHeadAttention',
  'GroupQueryAttention',
  'Gather',
  'GatherElements',
  'EmbedLayerNormalization',
]);
const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan', 'SequenceMap']);
/** Ops that only move or index data: left out of a block's signature. */
const PLUMBING = new Set([
  'Shape',
  'Size',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Concat',
  'Slice',
  'Cast',
  'Reshape',
  'Flatten',
  'Identity',
  'Transpose',
  'Expand',
  'ConstantOfShape',
  'Range',
]);

export interface GraphAnalysis {
  /** 1 where a node's inputs are all weights or outputs of foldable nodes (Constant, Identity of a weight, …). */
  foldable: Uint8Array;
  /**
   * The stored weights that reach each tensor through foldable chains (Identity, Cast, Transpose,
   * DequantizeLinear, Reshape, Concat of weights…); a weight is its own source.
   */
  sourcesOf(tensor: string): readonly string[];
  /** The weights a node reads, directly or through foldable chains. */
  nodeSources(node: number): string[];
  /**
   * The weights a tensor reaches through an `Identity` copy: torch's exporter stores identical
   * parameters once and hands each use its own Identity, so each copy stands for a parameter of its own.
   */
  copiesOf(tensor: string): readonly WeightCopy[];
}

/** A weight handed out by an Identity node: the copy (the Identity's output) and the stored weight behind it. */
export interface WeightCopy {
  copy: string;
  weight: string;
}

const cache = new WeakMap<ModelGraph, GraphAnalysis>();

export function analyzeGraph(graph: ModelGraph): GraphAnalysis {
  const hit = cache.get(graph);
  if (hit && hit.foldable.length === graph.nodes.length) return hit;
  const { nodes, tensors } = graph;
  const foldable = new Uint8Array(nodes.length);
  const derived = new Map<string, readonly string[]>();
  const copies = new Map<string, readonly WeightCopy[]>();
  const NO_COPIES: readonly WeightCopy[] = [];
  const EMPTY: readonly string[] = [];
  const sourcesOf = (name: string): readonly string[] => {
    const d = derived.get(name);
    if (d) return d;
    const t = tensors.get(name);
    if (!t) return EMPTY;
    if (t.isWeight && (t.producer === undefined || nodes[t.producer]?.opType === 'Constant')) return [name];
    return EMPTY;
  };
  // One pass in node order (ONNX nodes are topologically sorted; a subgraph's nodes follow their parent).
  for (const n of nodes) {
    const inputs = n.inputs.filter(Boolean);
    let fold = !NOT_FOLDABLE.has(n.opType) && (inputs.length > 0 || n.opType === 'Constant');
    for (const i of inputs) {
      if (!fold) break;
      const t = tensors.get(i);
      if (!t) fold = false;
      else if (t.producer !== undefined) fold = foldable[t.producer] === 1;
      else fold = t.isWeight;
    }
    if (!fold) continue;
    foldable[n.index] = 1;
    if (n.opType === 'Constant') continue;
    const set = new Set<string>();
    for (const i of inputs) for (const s of sourcesOf(i)) set.add(s);
    const list = [...set];
    for (const o of n.outputs) if (o) derived.set(o, list);
    const copied = new Map<string, WeightCopy>();
    if (n.opType === 'Identity' && inputs.length === 1 && n.outputs[0] && tensors.get(inputs[0])?.isWeight) {
      copied.set(n.outputs[0], { copy: n.outputs[0], weight: inputs[0] });
    }
    for (const i of inputs) for (const c of copies.get(i) ?? NO_COPIES) copied.set(c.copy, c);
    if (copied.size) for (const o of n.outputs) if (o) copies.set(o, [...copied.values()]);
  }
  // The nodes inside each subgraph holder, all levels down.
  const inside = new Map<number, number[]>();
  for (const n of nodes) {
    for (let p = n.parent, guard = 0; p >= 0 && guard < 1000; p = nodes[p].parent, guard++) {
      const list = inside.get(p) ?? [];
      list.push(n.index);
      inside.set(p, list);
    }
  }
  const analysis: GraphAnalysis = {
    foldable,
    sourcesOf,
    nodeSources(node) {
      const set = new Set<string>();
      for (const i of nodes[node].inputs) if (i) for (const s of sourcesOf(i)) set.add(s);
      // An If / Loop / Scan reads what its subgraphs read (their own weights, and the outer ones they capture).
      for (const d of inside.get(node) ?? []) {
        for (const i of nodes[d].inputs) if (i) for (const s of sourcesOf(i)) set.add(s);
      }
      return [...set];
    },
    copiesOf: (name) => copies.get(name) ?? NO_COPIES,
  };
  cache.set(graph, analysis);
  return analysis;
}

const INDEX_TYPES = new Set(['int64', 'int32', 'uint64', 'uint32', 'bool']);

/** A weight that is a real parameter (not a shape, an index or a scalar constant). */
export function isParameter(graph: ModelGraph, name: string): boolean {
  const w = graph.tensors.get(name);
  return !!w && w.isWeight && w.elements > 1 && !INDEX_TYPES.has(w.dtype);
}

/** A group of one graph level's nodes (foldable nodes excluded: callers place them with their consumers). */
export interface NodeGroup {
  name: string;
  nodes: number[];
}

/**
 * The node of `level` that holds `index` (itself, or the subgraph node above it), or -1 when
 * `index` lies outside the level.
 */
export function levelAncestor(graph: ModelGraph, index: number, inLevel: (i: number) => boolean): number {
  let i = index;
  for (let guard = 0; guard < 1000 && i >= 0; guard++) {
    if (inLevel(i)) return i;
    i = graph.nodes[i].parent;
  }
  return -1;
}

interface Unit {
  nodes: number[];
  /** The last node doing weighted work (its output is the unit's feature map), else the unit's last node. */
  exit: number;
  kind: string;
  signature: string;
  /** No node inside merges two of the unit's own paths (not a residual, inception or dense unit). */
  simple: boolean;
}

/**
 * Structural groups of one graph level: `members` are its non-foldable nodes in topological order,
 * `outputs` the tensors the level hands on (graph or subgraph outputs).
 */
export function structuralGroups(
  graph: ModelGraph,
  members: number[],
  outputs: readonly string[],
  a: GraphAnalysis,
): NodeGroup[] {
  const n = members.length;
  if (n === 0) return [];
  const pos = new Map<number, number>();
  members.forEach((m, k) => pos.set(m, k));
  const at = (i: number) => {
    const anc = levelAncestor(graph, i, (x) => pos.has(x));
    return anc < 0 ? -1 : pos.get(anc)!;
  };
  const outSet = new Set(outputs);
  // Predecessors inside the level; -1 stands for the level's inputs (graph inputs, outer scope).
  const preds: number[][] = members.map(() => []);
  const toSink = new Uint8Array(n);
  const hasSucc = new Uint8Array(n);
  members.forEach((m, k) => {
    const node = graph.nodes[m];
    let fromOutside = false;
    for (const i of node.inputs) {
      if (!i) continue;
      const t = graph.tensors.get(i);
      const p = t?.producer;
      if (p === undefined) {
        if (!t?.isWeight) fromOutside = true;
        continue;
      }
      if (a.foldable[p]) continue;
      const q = at(p);
      if (q < 0) fromOutside = true;
      else if (q < k && !preds[k].includes(q)) preds[k].push(q);
    }
    // Side inputs (masks, recurrent states, a sample rate) of a node fed from inside the level are not its data path.
    void fromOutside;
    if (preds[k].length === 0) preds[k].push(-1);
    for (const o of node.outputs) {
      if (!o) continue;
      if (outSet.has(o)) toSink[k] = 1;
      for (const c of graph.tensors.get(o)?.consumers ?? []) {
        const q = at(c);
        if (q > k) hasSucc[k] = 1;
        else if (q < 0) toSink[k] = 1; // consumed outside the level (an outer node reads it)
      }
    }
  });
  for (let k = 0; k < n; k++) if (!hasSucc[k]) toSink[k] = 1;
  // Immediate dominators from the inputs, in topological order (Cooper, Harvey & Kennedy's intersect on a DAG).
  const idom = new Int32Array(n);
  const intersect = (x: number, y: number) => {
    while (x !== y) {
      while (x > y) x = idom[x];
      while (y > x) y = idom[y];
    }
    return x;
  };
  for (let k = 0; k < n; k++) {
    let d = -2;
    for (const p of preds[k]) d = d === -2 ? p : intersect(d, p);
    idom[k] = d === -2 ? -1 : d;
  }
  let sinkDom = -2;
  for (let k = 0; k < n; k++) if (toSink[k]) sinkDom = sinkDom === -2 ? k : intersect(sinkDom, k);
  // The articulation chain: the nodes every path from the inputs to the outputs passes.
  const chain: number[] = [];
  for (let x = sinkDom; x >= 0; x = idom[x]) chain.push(x);
  chain.reverse();
  const chainIndex = new Map(chain.map((c, i) => [c, i]));
  const seg = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const d = idom[k];
    seg[k] = d < 0 ? 0 : chainIndex.has(d) ? chainIndex.get(d)! + 1 : seg[d];
  }
  const segments: number[][] = Array.from({ length: chain.length + 1 }, () => []);
  for (let k = 0; k < n; k++) segments[seg[k]].push(k);
  const nodeOf = (k: number) => graph.nodes[members[k]];
  // A node doing weighted work: a compute op reading a constant tensor (a stored weight, or one computed from
  // constants: ConstantOfShape, DequantizeLinear of an int8 weight, …), or a subgraph holder.
  const anchor = (k: number) => {
    const node = nodeOf(k);
    if (CONTROL_FLOW.has(node.opType)) return true;
    if (!WEIGHT_COMPUTE_OPS.has(node.opType)) return false;
    return node.inputs.some((i) => {
      const t = i ? graph.tensors.get(i) : undefined;
      if (!t || /^u?int(64|32)$|^bool$/.test(t.dtype)) return false;
      return t.producer === undefined ? t.isWeight : a.foldable[t.producer] === 1;
    });
  };
  // Blocks: a segment that does weighted work starts one; the others join the block before (or the first).
  let blocks: { ks: number[]; anchored: boolean }[] = [];
  for (const s of segments) {
    if (!s.length) continue;
    const anchored = s.some(anchor);
    const last = blocks[blocks.length - 1];
    if (!last || (anchored && last.anchored)) blocks.push({ ks: [...s], anchored });
    else {
      last.ks.push(...s);
      last.anchored ||= anchored;
    }
  }
  // One region with no articulation point inside (everything in parallel): split at each weighted node instead.
  if (blocks.length === 1 && n > 24) {
    blocks = [];
    for (let k = 0; k < n; k++) {
      const last = blocks[blocks.length - 1];
      if (!last || (anchor(k) && last.anchored)) blocks.push({ ks: [k], anchored: anchor(k) });
      else {
        last.ks.push(k);
        last.anchored ||= anchor(k);
      }
    }
  }
  const units: Unit[] = blocks.map((b) => {
    b.ks.sort((x, y) => x - y);
    const weighted = b.ks.filter(anchor);
    const exit = weighted.length ? weighted[weighted.length - 1] : b.ks[b.ks.length - 1];
    const inBlock = new Set(b.ks);
    const simple = b.ks.every((k) => preds[k].filter((p) => inBlock.has(p)).length < 2);
    return { nodes: b.ks, exit, kind: kindOf(b.ks.map(nodeOf)), signature: signatureOf(b.ks.map(nodeOf)), simple };
  });
  const merged = mergeRepeats(mergeBottlenecks(units));
  return nameUnits(graph, merged, (k) => members[k]);
}

/**
 * Inverted residual units without their residual (the stride-2 ones): an optional 1×1 expansion, a
 * depthwise convolution and a 1×1 projection with no activation after it (the linear bottleneck of
 * MobileNetV2 / V3) are one unit, although no merge closes them.
 */
function mergeBottlenecks(units: Unit[]): Unit[] {
  const out: Unit[] = [];
  for (const u of units) {
    // A squeeze-and-excitation gate (pool, two small convs, a sigmoid, a product) belongs to the block it gates.
    const prev = out[out.length - 1];
    if (prev && /^(GlobalAveragePool|ReduceMean)\b/.test(u.signature) && lastOp(u.signature) === 'Mul') {
      out[out.length - 1] = {
        ...prev,
        nodes: [...prev.nodes, ...u.nodes].sort((x, y) => x - y),
        signature: `${prev.signature},${u.signature}`,
        simple: false,
      };
      continue;
    }
    const ops = u.signature.split(',');
    const closes = ops[0] === 'Conv1x1' && !ACTIVATIONS.has(ops[ops.length - 1]) && !u.signature.includes('DwConv');
    const dw = out[out.length - 1];
    if (closes && dw && dw.signature.startsWith('DwConv')) {
      const expand = out[out.length - 2];
      const take =
        expand && expand.signature.startsWith('Conv1x1') && ACTIVATIONS.has(lastOp(expand.signature)) ? 2 : 1;
      const part = [...out.splice(out.length - take, take), u];
      out.push({
        nodes: part.flatMap((x) => x.nodes).sort((x, y) => x - y),
        exit: u.exit,
        kind: 'conv',
        signature: part.map((x) => x.signature).join('+'),
        simple: false,
      });
    } else out.push(u);
  }
  return out;
}

const ACTIVATIONS = new Set([
  'Relu',
  'HardSwish',
  'HardSigmoid',
  'Sigmoid',
  'Tanh',
  'LeakyRelu',
  'PRelu',
  'Elu',
  'Selu',
  'Gelu',
  'Clip',
  'Mul',
  'Softplus',
  'Mish',
]);
const lastOp = (signature: string) => signature.slice(signature.lastIndexOf(',') + 1);
const POOLING = new Set(['MaxPool', 'AveragePool', 'LpPool', 'Dropout']);
const withoutPooling = (signature: string) =>
  signature
    .split(',')
    .filter((op) => !POOLING.has(op))
    .join(',');
/** The ops of a signature that compute with weights (convolutions of each kind, matrix products, recurrences). */
const weightedOps = (signature: string) =>
  signature
    .split(',')
    .filter((op) => /Conv|MatMul|Gemm|LSTM|GRU|RNN|Attention|Einsum/.test(op))
    .join(',');

function kindOf(nodes: GraphNode[]): string {
  for (const op of ['LSTM', 'GRU', 'RNN']) if (nodes.some((x) => x.opType === op)) return op.toLowerCase();
  for (const op of ['If', 'Loop', 'Scan']) if (nodes.some((x) => x.opType === op)) return op.toLowerCase();
  if (nodes.some((x) => x.opType === 'Conv' || x.opType === 'ConvTranspose' || x.opType === 'QLinearConv')) {
    return 'conv';
  }
  if (nodes.some((x) => /MatMul|Gemm|Attention/.test(x.opType))) return 'fc';
  if (nodes.some((x) => x.opType === 'Gather' || x.opType === 'GatherElements')) return 'embedding';
  return 'block';
}

/** What a block does, for finding repeats: its compute ops in order (a depthwise or 1×1 conv said so), without the plumbing. */
function signatureOf(nodes: GraphNode[]): string {
  const parts: string[] = [];
  for (const x of nodes) {
    if (PLUMBING.has(x.opType)) continue;
    let op = x.opType;
    if (op === 'Conv') {
      const group = typeof x.attributes.group === 'number' ? x.attributes.group : 1;
      const k = x.attributes.kernel_shape;
      op = group > 1 ? 'DwConv' : Array.isArray(k) && k.every((v) => v === 1) ? 'Conv1x1' : 'Conv';
    }
    if (parts[parts.length - 1] !== op) parts.push(op);
  }
  return parts.join(',');
}

/**
 * Repeated patterns: a run of blocks whose signatures repeat with a period of 2–4 (a depthwise
 * separable unit's depthwise and pointwise convolutions, an inverted residual's expand / depthwise /
 * project) becomes one unit per repetition.
 */
function mergeRepeats(units: Unit[]): Unit[] {
  // A pooling or dropout that ends a repetition (SqueezeNet's fire3 before its max pool) does not change the pattern.
  const sig = units.map((u) => withoutPooling(u.signature));
  // Units that do the same weighted work (VGG's conv, conv + pool) are not a pattern of their own: each stays a unit.
  const work = units.map((u) => weightedOps(u.signature));
  for (let p = 2; p <= 4; p++) {
    const out: Unit[] = [];
    let merged = false;
    let i = 0;
    while (i < units.length) {
      const window = sig.slice(i, i + p);
      let reps = 0;
      if (
        window.length === p &&
        new Set(work.slice(i, i + p)).size > 1 &&
        units.slice(i, i + p - 1).every((u) => u.simple)
      ) {
        while (
          i + (reps + 1) * p <= units.length &&
          sig.slice(i + reps * p, i + (reps + 1) * p).join('|') === window.join('|')
        ) {
          reps++;
        }
      }
      if (reps >= 2) {
        for (let r = 0; r < reps; r++) {
          const part = units.slice(i + r * p, i + (r + 1) * p);
          const nodes = part.flatMap((u) => u.nodes).sort((x, y) => x - y);
          out.push({
            nodes,
            exit: part[p - 1].exit,
            kind: part.find((u) => u.kind !== 'block')?.kind ?? 'block',
            signature: window.join('+'),
            simple: false,
          });
        }
        i += reps * p;
        merged = true;
      } else out.push(units[i++]);
    }
    if (merged) return out;
  }
  return units;
}

/**
 * Names: feature-map units (4-D outputs) are the backbone, in stages that change where the
 * resolution changes (the first unit alone is the stem); after it, the units up to the last one
 * with weighted work are the neck, that one and what follows the head. Models without feature maps
 * (recurrent, MLP) name each unit by what it is: lstm0, gru1, fc2.
 */
function nameUnits(graph: ModelGraph, units: Unit[], member: (k: number) => number): NodeGroup[] {
  const outShape = (u: Unit) => {
    const node = graph.nodes[member(u.exit)];
    const t = graph.tensors.get(node.outputs.find(Boolean) ?? '');
    return t?.shape;
  };
  const shapes = units.map(outShape);
  // Feature maps: convolution units with an [N, C, H, W] output (an LSTM's output is 4-D too, but not a map).
  const isMap = shapes.map((s, i) => s?.length === 4 && units[i].kind === 'conv');
  let backbone = 0;
  while (backbone < units.length && isMap[backbone]) backbone++;
  // Last convolutions that classify are the head: a plain 1×1 convolution unit ending in a global pool or a softmax (SqueezeNet's
  // conv10), or one on a 1×1 map (DenseNet's fc6, a 1×1 convolution after the global pool).
  const classifies = (i: number) =>
    units[i].simple &&
    weightedOps(units[i].signature) === 'Conv1x1' &&
    (/(^|,)(GlobalAveragePool|GlobalMaxPool|ReduceMean|Softmax|LogSoftmax)(,|$)/.test(units[i].signature) ||
      (shapes[i]!.slice(2).every((d) => d === 1) && shapes[i - 1]!.slice(2).some((d) => d !== 1)));
  if (backbone === units.length) while (backbone > 2 && classifies(backbone - 1)) backbone--;
  const names: string[] = new Array(units.length);
  const counters = new Map<string, number>();
  const next = (prefix: string) => {
    const c = counters.get(prefix) ?? 0;
    counters.set(prefix, c + 1);
    return c;
  };
  if (backbone >= 2) {
    const key = (i: number) => (shapes[i] ?? []).slice(2).join('x');
    // The first unit is a stem when the map it makes differs from the next unit's (ResNet's strided conv1); a first
    // unit at the next one's resolution (VGG's conv1_1 before conv1_2) opens the first stage.
    const stem = key(0) !== key(1);
    const stageOf: number[] = [];
    let stage = stem ? 0 : 1;
    for (let i = 0; i < backbone; i++) {
      if ((stem && i === 1) || (i > 1 && key(i) !== key(i - 1))) stage++;
      stageOf.push(stage);
    }
    for (let i = 0; i < backbone; i++) {
      if (stageOf[i] === 0) names[i] = 'backbone.stem';
      else {
        const prefix = `backbone.stage${stageOf[i]}`;
        names[i] = `${prefix}.block${next(prefix)}`;
      }
    }
    // The head: the trailing plain units (fully connected layers, the output's reshapes and softmax) after the backbone.
    let headStart = units.length;
    while (headStart > backbone && units[headStart - 1].simple && /^(fc|block)$/.test(units[headStart - 1].kind)) {
      headStart--;
    }
    if (headStart === units.length && headStart > backbone) headStart--;
    for (let i = backbone; i < units.length; i++) {
      const role = i >= headStart ? 'head' : 'neck';
      const kind = units[i].kind === 'block' ? 'out' : units[i].kind;
      names[i] = `${role}.${kind}${next(`${role}.${kind}`)}`;
    }
  } else {
    for (let i = 0; i < units.length; i++) names[i] = `${units[i].kind}${next(units[i].kind)}`;
  }
  return units.map((u, i) => ({ name: names[i], nodes: u.nodes.map(member) }));
}
