import type { GraphNode, ModelGraph } from './model-graph';

/**
 * The graph's own structure, for models whose names carry no scope (Paddle's `p2o.Conv.12`, old
 * exporters' `Conv_3`, MXNet's `resnetv17_conv0_fwd`): constant-foldable nodes, the weights that
 * reach a node through them, and structural groups — blocks between the articulation points of the
 * data flow (the nodes every path from the inputs to the outputs passes: residual and skip merges),
 * repeated block patterns merged into units, stages where the feature map's resolution changes,
 * and the roles a vision or recognition model has (backbone, neck, head). A multi-scale model (a
 * feature pyramid, PAN or U-Net decoder) has no articulation point after its backbone fans out into
 * the neck: its backbone, neck and head are found from its first merge of an upsampled map (findNeck).
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
  /** The weights a node reads, directly or through foldable chains (worked out once per node: do not change it). */
  nodeSources(node: number): readonly string[];
  /**
   * The weights a tensor reaches through an `Identity` copy: torch's exporter stores identical
   * parameters once and hands each use its own Identity, so each copy stands for a parameter of its own.
   */
  copiesOf(tensor: string): readonly WeightCopy[];
  /** The nodes inside a subgraph holder (If / Loop / Scan), all levels down; none for other nodes. */
  inside(node: number): readonly number[];
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
  const NO_NODES: readonly number[] = [];
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
  const nodeSourcesOf: (readonly string[] | undefined)[] = new Array(nodes.length);
  const analysis: GraphAnalysis = {
    foldable,
    sourcesOf,
    nodeSources(node) {
      const known = nodeSourcesOf[node];
      if (known) return known;
      const inputs = nodes[node].inputs;
      const within = inside.get(node);
      // Most nodes read one weight or none, directly: no set needed.
      if (!within && inputs.length <= 2) {
        const a = inputs[0] ? sourcesOf(inputs[0]) : EMPTY;
        const b = inputs.length > 1 && inputs[1] ? sourcesOf(inputs[1]) : EMPTY;
        if (!a.length || !b.length) return (nodeSourcesOf[node] = a.length ? a : b);
      }
      const set = new Set<string>();
      for (const i of inputs) if (i) for (const s of sourcesOf(i)) set.add(s);
      // An If / Loop / Scan reads what its subgraphs read (their own weights, and the outer ones they capture).
      for (const d of within ?? NO_NODES) {
        for (const i of nodes[d].inputs) if (i) for (const s of sourcesOf(i)) set.add(s);
      }
      return (nodeSourcesOf[node] = [...set]);
    },
    copiesOf: (name) => copies.get(name) ?? NO_COPIES,
    inside: (node) => inside.get(node) ?? NO_NODES,
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
  const nodeOf = (k: number) => graph.nodes[members[k]];
  // A node doing weighted work: a compute op reading a constant tensor (a stored weight, or one computed from
  // constants: ConstantOfShape, DequantizeLinear of an int8 weight, …), or a subgraph holder.
  const weighted = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const node = nodeOf(k);
    if (CONTROL_FLOW.has(node.opType)) weighted[k] = 1;
    else if (WEIGHT_COMPUTE_OPS.has(node.opType)) {
      const reads = node.inputs.some((i) => {
        const t = i ? graph.tensors.get(i) : undefined;
        if (!t || /^u?int(64|32)$|^bool$/.test(t.dtype)) return false;
        return t.producer === undefined ? t.isWeight : a.foldable[t.producer] === 1;
      });
      weighted[k] = reads ? 1 : 0;
    }
  }
  const anchor = (k: number) => weighted[k] === 1;
  const toUnit = (ks: number[]): Unit => {
    ks.sort((x, y) => x - y);
    const work = ks.filter(anchor);
    const exit = work.length ? work[work.length - 1] : ks[ks.length - 1];
    const inBlock = new Set(ks);
    // A merge inside (a residual's or a dense layer's Add / Concat, also of the unit's input; two paths of its own
    // meeting in a product, such as hard-swish's x · relu6(x + 3)) makes a unit that is not one plain chain.
    const simple = ks.every((k) => {
      const inside = preds[k].filter((p) => inBlock.has(p)).length;
      return inside < 2 && !(inside === 1 && preds[k].length > 1 && RESIDUAL_MERGES.has(nodeOf(k).opType));
    });
    return { nodes: ks, exit, kind: kindOf(ks.map(nodeOf)), signature: signatureOf(ks.map(nodeOf)), simple };
  };
  // Blocks of a set of nodes (all of the level, or one part of it): the articulation chain from the set's entry to its
  // sinks, a block per stretch of it that does weighted work.
  const local = new Int32Array(n);
  const seg = new Int32Array(n);
  const inSet = new Uint8Array(n);
  const blocksOf = (ks: number[], sink: (k: number) => boolean): number[][] => {
    for (const k of ks) inSet[k] = 1;
    const intersect = (x: number, y: number) => {
      while (x !== y) {
        while (x > y) x = local[x];
        while (y > x) y = local[y];
      }
      return x;
    };
    let sinkDom = -2;
    for (const k of ks) {
      let d = -2;
      for (const p of preds[k]) {
        const q = p >= 0 && inSet[p] ? p : -1;
        d = d === -2 ? q : intersect(d, q);
      }
      local[k] = d === -2 ? -1 : d;
      if (sink(k)) sinkDom = sinkDom === -2 ? k : intersect(sinkDom, k);
    }
    for (const k of ks) inSet[k] = 0;
    // The articulation chain: the nodes every path from the inputs to the outputs passes.
    const chain: number[] = [];
    for (let x = sinkDom; x >= 0; x = local[x]) chain.push(x);
    chain.reverse();
    const chainIndex = new Map(chain.map((c, i) => [c, i]));
    const segments: number[][] = Array.from({ length: chain.length + 1 }, () => []);
    for (const k of ks) {
      const d = local[k];
      seg[k] = d < 0 ? 0 : chainIndex.has(d) ? chainIndex.get(d)! + 1 : seg[d];
      segments[seg[k]].push(k);
    }
    // Blocks: a segment that does weighted work starts one; the others join the block before (or the first).
    // A normalization right after a merge, with its activation, opens the next block (DenseNet's transition
    // layer and pre-activation units: BN, ReLU, conv), unless no weighted work follows it.
    let blocks: { ks: number[]; anchored: boolean }[] = [];
    let pending: number[] = [];
    for (let si = 0; si < segments.length; si++) {
      let s = segments[si];
      if (!s.length) continue;
      const anchored = s.some(anchor);
      const entry = si > 0 ? chain[si - 1] : -1;
      // (an affine Mul / Add by constants after the normalization is part of it: caffe2's SpatialBN, Paddle's)
      const preActivation = s.every((k) => {
        const op = nodeOf(k).opType;
        return NORMALIZATIONS.has(op) || PLAIN_ACTIVATIONS.has(op) || (AFFINE.has(op) && preds[k].length === 1);
      });
      if (
        !anchored &&
        preActivation &&
        (pending.length ||
          (entry >= 0 &&
            preds[entry].length > 1 &&
            RESIDUAL_MERGES.has(nodeOf(entry).opType) &&
            NORMALIZATIONS.has(nodeOf(s[0]).opType)))
      ) {
        pending.push(...s);
        continue;
      }
      if (pending.length) {
        s = [...pending, ...s];
        pending = [];
      }
      const last = blocks[blocks.length - 1];
      if (!last || (anchored && last.anchored)) blocks.push({ ks: [...s], anchored });
      else {
        last.ks.push(...s);
        last.anchored ||= anchored;
      }
    }
    if (pending.length) {
      if (blocks.length) blocks[blocks.length - 1].ks.push(...pending);
      else blocks.push({ ks: pending, anchored: false });
    }
    // One region with no articulation point inside (everything in parallel): split at each weighted node instead.
    if (blocks.length === 1 && ks.length > 24) {
      blocks = [];
      for (const k of ks) {
        const last = blocks[blocks.length - 1];
        if (!last || (anchor(k) && last.anchored)) blocks.push({ ks: [k], anchored: anchor(k) });
        else {
          last.ks.push(k);
          last.anchored ||= anchor(k);
        }
      }
    }
    return blocks.map((b) => b.ks);
  };
  const all = members.map((_, k) => k);
  const neck = findNeck(graph, members, preds, idom, anchor);
  if (!neck) {
    const units = blocksOf(all, (k) => toSink[k] === 1).map(toUnit);
    return nameUnits(graph, mergeRepeats(mergeBottlenecks(units)), (k) => members[k], idom);
  }
  // A detector or segmenter: the backbone up to the feature map its neck starts from, split like any network; the
  // neck's units (one per lateral, merge and resampling step) and the head's (one per output branch) after it.
  const backbone = all.filter((k) => neck.role[k] === BACKBONE);
  const end = backbone[backbone.length - 1];
  const units = mergeRepeats(mergeBottlenecks(blocksOf(backbone, (k) => k === end).map(toUnit)));
  const rest = [...neckUnits(neck, anchor), ...headUnits(neck, anchor, blocksOf)]
    .map(toUnit)
    .sort((x, y) => x.nodes[x.nodes.length - 1] - y.nodes[y.nodes.length - 1]);
  return nameUnits(
    graph,
    [...units, ...rest],
    (k) => members[k],
    idom,
    rest.map((u) => (neck.role[u.nodes[0]] === NECK ? 'neck' : 'head')),
  );
}

const BACKBONE = 0;
const NECK = 1;
const HEAD = 2;

/** Where a detector's or segmenter's backbone ends: the role of each member, and the data flow it was found from. */
interface Neck {
  role: Uint8Array;
  idom: Int32Array;
  succs: number[][];
  /** Merges of feature maps at different scales (an FPN's top-down and bottom-up steps). */
  scaleMerge: Uint8Array;
}

const strides = (node: GraphNode) => {
  const s = node.attributes.strides;
  return Array.isArray(s) && s.some((v) => typeof v === 'number' && v > 1);
};
/** An op that enlarges a feature map (an FPN's top-down step). */
const upsamples = (node: GraphNode) =>
  node.opType === 'Resize' ||
  node.opType === 'Upsample' ||
  node.opType === 'DepthToSpace' ||
  (node.opType === 'ConvTranspose' && strides(node));
/** An op that changes a feature map's resolution either way (an FPN's bottom-up step is a strided convolution). */
const resamples = (node: GraphNode) =>
  upsamples(node) ||
  node.opType === 'SpaceToDepth' ||
  (/^(Conv|QLinearConv|ConvInteger|MaxPool|AveragePool|LpPool)$/.test(node.opType) && strides(node));

/**
 * The neck of a multi-scale model, found from its first merge of an upsampled map (feature pyramid networks, PAN,
 * U-Net decoders): the backbone is what the deepest feature map the neck reads is computed from. Where the
 * merge's other input reaches it through lateral convolutions, the upsampled side has the same ones before its
 * upsampling (FPN's lateral 1×1 convolution on the last stage too): they are the neck's. The neck is every other
 * node that leads to a merge of maps at different scales; the head what follows it (one branch per output).
 */
function findNeck(
  graph: ModelGraph,
  members: number[],
  preds: number[][],
  idom: Int32Array,
  anchor: (k: number) => boolean,
): Neck | undefined {
  const n = members.length;
  const nodeOf = (k: number) => graph.nodes[members[k]];
  // Whether a merge's input comes from `test`'s kind of node on its own path (its dominators up to the merge's).
  const along = (m: number, p: number, test: (node: GraphNode) => boolean) => {
    for (let x = p, steps = 0; x >= 0 && x !== idom[m] && steps < 16; x = idom[x], steps++) {
      if (test(nodeOf(x))) return true;
    }
    return false;
  };
  const inputs = (k: number) => preds[k].filter((p) => p >= 0);
  let m0 = -1;
  for (let k = 0; k < n && m0 < 0; k++) {
    const ps = inputs(k);
    if (ps.length >= 2 && ps.some((p) => along(k, p, upsamples))) m0 = k;
  }
  if (m0 < 0) return undefined;
  const d = idom[m0];
  const ps = inputs(m0);
  const up = ps.find((p) => along(m0, p, upsamples))!;
  const lateral = ps.find((p) => !along(m0, p, upsamples));
  let lateralWork = 0;
  if (lateral !== undefined) {
    for (let x = lateral, steps = 0; x >= 0 && x !== d && steps < 64; x = idom[x], steps++) {
      if (anchor(x)) lateralWork++;
    }
  }
  let end = d;
  let passed = false;
  let work = 0;
  for (let x = up, steps = 0; x >= 0 && x !== d && steps < 256; x = idom[x], steps++) {
    const node = nodeOf(x);
    if (upsamples(node)) {
      passed = true;
      if (lateralWork === 0) {
        end = idom[x];
        break;
      }
      continue;
    }
    if (passed && anchor(x) && ++work === lateralWork) {
      end = idom[x];
      break;
    }
  }
  if (end < 0) return undefined;
  const role = new Uint8Array(n).fill(HEAD);
  const succs: number[][] = members.map(() => []);
  for (let k = 0; k < n; k++) for (const p of inputs(k)) succs[p].push(k);
  // The backbone: the end and everything it is computed from.
  role[end] = BACKBONE;
  const stack = [end];
  while (stack.length) {
    for (const p of inputs(stack.pop()!)) {
      if (role[p] === BACKBONE) continue;
      role[p] = BACKBONE;
      stack.push(p);
    }
  }
  const scaleMerge = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    if (role[k] === BACKBONE) continue;
    const ks = inputs(k);
    if (ks.length >= 2 && ks.some((p) => along(k, p, resamples))) {
      scaleMerge[k] = 1;
      role[k] = NECK;
      stack.push(k);
    }
  }
  scaleMerge[m0] = 1;
  role[m0] = NECK;
  stack.push(m0);
  while (stack.length) {
    for (const p of inputs(stack.pop()!)) {
      if (role[p] !== HEAD) continue;
      role[p] = NECK;
      stack.push(p);
    }
  }
  return { role, idom, succs, scaleMerge };
}

/**
 * The nodes of one role (`of`: NECK or HEAD) in units along the dominator tree: a node starts a unit
 * when its immediate dominator `d` is not of the role, or when `starts(k, d)` says so; else it joins
 * its dominator's unit. `unit[k]` is node k's unit (-1: another role).
 */
function dominatorUnits(
  neck: Neck,
  of: number,
  starts: (k: number, d: number) => boolean,
): { unit: Int32Array; units: number[][] } {
  const { role, idom } = neck;
  const unit = new Int32Array(role.length).fill(-1);
  const units: number[][] = [];
  for (let k = 0; k < role.length; k++) {
    if (role[k] !== of) continue;
    const d = idom[k];
    if (d < 0 || role[d] !== of || starts(k, d)) {
      unit[k] = units.length;
      units.push([k]);
    } else {
      unit[k] = unit[d];
      units[unit[k]].push(k);
    }
  }
  return { unit, units };
}

/**
 * The neck's units: one per merge of scales with what follows it up to the next merge or fan-out, one per lateral
 * or resampling path; a path that only feeds one merge (a lateral 1×1 convolution, a strided downsampling) is part
 * of that merge's unit.
 */
function neckUnits(neck: Neck, anchor: (k: number) => boolean): number[][] {
  const { role, succs, scaleMerge } = neck;
  const { unit, units } = dominatorUnits(
    neck,
    NECK,
    (k, d) => scaleMerge[k] !== 0 || (anchor(k) && succs[d].length >= 2),
  );
  const parent = units.map((_, i) => i);
  const find = (u: number): number => {
    while (parent[u] !== u) u = parent[u] = parent[parent[u]];
    return u;
  };
  for (let u = 0; u < units.length; u++) {
    const consumers = new Set<number>();
    let elsewhere = false;
    for (const k of units[u]) {
      for (const s of succs[k]) {
        if (role[s] !== NECK) elsewhere = true;
        else if (find(unit[s]) !== find(u)) consumers.add(find(unit[s]));
      }
    }
    if (elsewhere || consumers.size !== 1) continue;
    const v = [...consumers][0];
    const starter = units[v][0];
    if ((scaleMerge[starter] && !scaleMerge[units[u][0]]) || !units[u].some(anchor)) parent[find(u)] = v;
  }
  const out = new Map<number, number[]>();
  units.forEach((ks, u) => {
    const r = find(u);
    const list = out.get(r);
    if (list) for (const k of ks) list.push(k);
    else out.set(r, [...ks]);
  });
  return [...out.values()];
}

/**
 * The head's units: one per branch off the neck (a detector's per-level classification and box branches); a branch
 * that is one chain to one output (a segmenter's convolution and upsampling layers) is split into its blocks.
 */
function headUnits(
  neck: Neck,
  anchor: (k: number) => boolean,
  blocksOf: (ks: number[], sink: (k: number) => boolean) => number[][],
): number[][] {
  const { succs } = neck;
  const { units } = dominatorUnits(neck, HEAD, () => false);
  return units.flatMap((ks) => {
    const mine = new Set(ks);
    const sinks = ks.filter((k) => !succs[k].some((s) => mine.has(s)));
    return sinks.length === 1 && ks.filter(anchor).length > 1 ? blocksOf(ks, (k) => k === sinks[0]) : [ks];
  });
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
    // A 1×1 convolution after a depthwise one closes the unit: the pointwise half of a depthwise separable
    // convolution (MobileNetV1, LCNet: activated), or an inverted residual's linear projection, whose unit also
    // holds the activated 1×1 expansion before the depthwise convolution (MobileNetV2 / V3).
    const closes = u.signature.split(',')[0] === 'Conv1x1' && !u.signature.includes('DwConv');
    const dw = out[out.length - 1];
    if (closes && dw && dw.signature.startsWith('DwConv')) {
      const expand = out[out.length - 2];
      const linear = !endsActivated(u.signature);
      const take =
        linear && expand && expand.signature.startsWith('Conv1x1') && endsActivated(expand.signature) ? 2 : 1;
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
const RESIDUAL_MERGES = new Set(['Add', 'Sum', 'Concat']);
const NORMALIZATIONS = new Set([
  'BatchNormalization',
  'InstanceNormalization',
  'LayerNormalization',
  'GroupNormalization',
  'LpNormalization',
]);
const AFFINE = new Set(['Mul', 'Add', 'Sub', 'Div']);
const PLAIN_ACTIVATIONS = new Set([...ACTIVATIONS].filter((op) => op !== 'Mul'));
/**
 * A signature that ends in an activation: one op (Relu, HardSwish, …), or hard-swish written out as
 * x · relu6(x + 3) / 6 (Paddle2ONNX: Add, Clip, Mul, Div) or x · hardsigmoid(x).
 */
const endsActivated = (signature: string) =>
  ACTIVATIONS.has(lastOp(signature)) || /(^|,)(Add,Clip|Clip|HardSigmoid|Sigmoid),Mul,Div$/.test(signature);
// Pooling, with the padding an exporter puts before it (CoreML's SqueezeNet: Pad, MaxPool) and the global pool and
// flattening that end a backbone.
const POOLING = new Set(['MaxPool', 'AveragePool', 'LpPool', 'Dropout', 'Pad', 'GlobalAveragePool', 'GlobalMaxPool']);
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
function nameUnits(
  graph: ModelGraph,
  units: Unit[],
  member: (k: number) => number,
  idom: Int32Array,
  roles?: readonly ('neck' | 'head')[],
): NodeGroup[] {
  const outShape = (u: Unit) => {
    const node = graph.nodes[member(u.exit)];
    const t = graph.tensors.get(node.outputs.find(Boolean) ?? '');
    return t?.shape;
  };
  const shapes = units.map(outShape);
  // Feature maps: convolution units with an [N, C, H, W] output (an LSTM's output is 4-D too, but not a map).
  // Without shapes (an op shape inference does not know came first), a convolution unit is taken for a map.
  const isMap = shapes.map((s, i) => (s === undefined || s.length === 4) && units[i].kind === 'conv');
  let backbone = 0;
  if (roles) backbone = units.length - roles.length;
  else while (backbone < units.length && isMap[backbone]) backbone++;
  // Last convolutions that classify are the head: a plain 1×1 convolution unit ending in a global pool or a softmax (SqueezeNet's
  // conv10), or one on a 1×1 map (DenseNet's fc6, a 1×1 convolution after the global pool).
  const classifies = (i: number) =>
    units[i].simple &&
    weightedOps(units[i].signature) === 'Conv1x1' &&
    (/(^|,)(GlobalAveragePool|GlobalMaxPool|ReduceMean|Softmax|LogSoftmax)(,|$)/.test(units[i].signature) ||
      (!!shapes[i]?.slice(2).every((d) => d === 1) && !!shapes[i - 1]?.slice(2).some((d) => d !== 1)) ||
      /^(GlobalAveragePool|GlobalMaxPool|ReduceMean)$/.test(lastOp(units[i - 1].signature)));
  if (!roles && backbone === units.length) while (backbone > 2 && classifies(backbone - 1)) backbone--;
  const names: string[] = new Array(units.length);
  const counters = new Map<string, number>();
  const next = (prefix: string) => {
    const c = counters.get(prefix) ?? 0;
    counters.set(prefix, c + 1);
    return c;
  };
  if (backbone >= 2) {
    // A stage is a run of units at one resolution: the output's spatial size, or where shapes are unknown, the units
    // that downsample (a strided convolution or pool before the unit's output; one after it, such as the max pool
    // after SqueezeNet's fire3 or ZFNet's conv2, counts for the next unit). A unit's parallel strided branches count once.
    const known = shapes.slice(0, backbone).every((s) => s?.length === 4);
    const level: number[] = [];
    let carry = false;
    for (let i = 0; i < backbone; i++) {
      const strided = units[i].nodes.filter((k) => {
        const node = graph.nodes[member(k)];
        return resamples(node) && !upsamples(node);
      });
      const down = strided.some((k) => k <= units[i].exit);
      level.push((level[i - 1] ?? 0) + (down || carry ? 1 : 0));
      // Only a strided op the unit's output passes (its dominators after the exit), not a parallel shortcut's pool.
      carry = false;
      for (let x = units[i].nodes[units[i].nodes.length - 1]; x > units[i].exit && !carry; x = idom[x]) {
        carry = strided.includes(x);
      }
    }
    const key = (i: number) => (known ? shapes[i]!.slice(2).join('x') : String(level[i]));
    // The first unit is a stem when the map it makes differs from the next unit's (ResNet's strided conv1); a first
    // unit at the next one's resolution (VGG's conv1_1 before conv1_2) opens the first stage.
    // A single convolution before units of another kind (LCNet's and MobileNetV3's strided 3×3 convolution before
    // their depthwise separable units at the same resolution) is a stem too.
    const stem =
      key(0) !== key(1) || (weightedOps(units[0].signature) === 'Conv' && weightedOps(units[1].signature) !== 'Conv');
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
      const role = roles ? roles[i - backbone] : i >= headStart ? 'head' : 'neck';
      const kind = units[i].kind === 'block' ? 'out' : units[i].kind;
      names[i] = `${role}.${kind}${next(`${role}.${kind}`)}`;
    }
  } else {
    for (let i = 0; i < units.length; i++) names[i] = `${units[i].kind}${next(units[i].kind)}`;
  }
  return units.map((u, i) => ({ name: names[i], nodes: u.nodes.map(member) }));
}
