import type { Layer, ModelGraph, Subgraph } from './model-graph';
import { analyzeGraph, isParameter, levelAncestor, structuralGroups, type GraphAnalysis } from './structure';

/**
 * Layer grouping. Names first: a name is split on '/' and '.' into segments; the layer is the
 * prefix through the first numbered block segment (`layers.3`, `h.3`, `blk.3`, `layer.3`,
 * `block_3`), so `/model/layers.3/mlp/MatMul` and `model.layers.3.mlp.up_proj.weight` both land in
 * `model.layers.3`. Names without a block keep their scope minus the last segment (`lm_head`,
 * `transformer.ln_f`). A scope that only repeats the op type (Paddle's `p2o.Conv.12`) says nothing.
 * Weights whose names say nothing (`onnx::MatMul_462`) join the layer of the node that reads them,
 * also through foldable chains (torch's deduplicated initializers behind `Identity`, `Transpose`,
 * `Cast`, `DequantizeLinear`); the foldable nodes themselves join the layer of their consumer.
 * When names carry no scope for most of a graph's nodes, the graph's structure groups them
 * instead (structure.ts): blocks between articulation points, repeated patterns, stages, roles.
 */
export function scopeOf(name: string, isTensor: boolean, strip?: string): string | undefined {
  // Names repeat (every node of a block shares its prefix; grouping asks for each name several times): cached.
  const key = strip === undefined ? name : `${strip}\u0000${name}`;
  const hit = scopes.get(key);
  if (hit !== undefined || scopes.has(key)) return hit;
  const s = computeScope(name, strip);
  if (scopes.size > 200000) scopes.clear();
  scopes.set(key, s);
  void isTensor;
  return s;
}
const scopes = new Map<string, string | undefined>();

function computeScope(name: string, strip?: string): string | undefined {
  if (!name || name.startsWith('onnx::') || /^(val|_v|tmp|Constant)_?\d+$/.test(name)) return undefined;
  let segs = segments(name);
  // TensorFlow's function-call wrappers (tf2onnx of a SavedModel: `StatefulPartitionedCall/vad_model/lstm/…`).
  while (segs.length > 1 && TF_CALL.test(segs[0])) segs = segs.slice(1);
  if (strip !== undefined && segs[0] === strip) segs = segs.slice(1);
  if (segs.length < 2) return undefined;
  for (let i = 0; i < segs.length - 1; i++) {
    // A numbered block: `layers.3`, and Hugging Face TF's `layer_._3` (split on '.' into `layer_`, `_3`).
    if (/^_?\d+$/.test(segs[i + 1]) && i + 1 < segs.length - 1) return segs.slice(0, i + 2).join('.');
    if (BLOCK_SEGMENT.test(segs[i])) return segs.slice(0, i + 1).join('.');
  }
  // No numbered block: the scope without its last segment (the op or the parameter name), and without the name
  // scopes TensorFlow opens inside one Keras layer (`dense/Tensordot/MatMul`, `LayerNorm/moments/mean`).
  let end = segs.length - 1;
  // (Keras's separable convolutions open one more: `separable_conv1d/separable_conv2d/depthwise`.)
  while (end > 1 && (TF_OP_SCOPE.test(segs[end - 1]) || innerConv(segs[end - 2], segs[end - 1]))) end--;
  const scope = segs.slice(0, end);
  return scope.length ? scope.join('.') : undefined;
}

/**
 * A name's segments between '/' and '.' (none empty): `name.split(/[/.]+/).filter(Boolean)`, without
 * the regular-expression split, which took most of this function's time over a model's names.
 */
function segments(name: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    const c = i < name.length ? name.charCodeAt(i) : 0x2f;
    if (c === 0x2f || c === 0x2e) {
      if (i > start) out.push(name.slice(start, i));
      start = i + 1;
    }
  }
  return out;
}

/**
 * How far an unnamed weighted node's output may travel, through unnamed ops, to the next named module it joins:
 * GTCRN's GTConvBlock computes its temporal attention 9–16 ops after its two BN-folded convolutions (8 left them
 * as layers `Conv_139`, `Conv_147`); over the 211 ONNX fixtures only GTCRN's grouping changed from 8.
 */
const NEAREST_HOPS = 16;

const BLOCK_SEGMENT = /^(block|blk|layer|h|layers)[_-]?\d+$/i;
const innerConv = (outer: string, inner: string) => inner === 'separable_conv2d' && /^separable_conv/.test(outer);
const TF_CALL = /^(StatefulPartitionedCall|PartitionedCall)(_\d+)?$/;
/** Name scopes TensorFlow ops open inside a Keras layer: they name no layer of their own. */
const TF_OP_SCOPE =
  /^(Tensordot|BiasAdd|MatMul|moments|batchnorm|ReadVariableOp|Reshape(_\d+)?|split|Squeeze|ExpandDims|transpose|PartitionedCall|StatefulPartitionedCall)$/;

/** A node's scope from its own name, unless the scope only repeats its op type (`p2o.Conv.12` → `p2o.Conv`). */
function nodeScope(name: string, opType: string, strip?: string): string | undefined {
  const s = scopeOf(name, false, strip);
  if (!s) return undefined;
  const last = s.slice(s.lastIndexOf('.') + 1);
  return last === opType ? undefined : s;
}

/** A scope that names a repeated block (`layer1.0`, `encoder.layers.3`, `blk.7`), not a single op. */
const blockLike = (scope: string) =>
  /(^|\.)\d+$/.test(scope) || BLOCK_SEGMENT.test(scope.slice(scope.lastIndexOf('.') + 1));

/** The longest dotted prefix every scope shares ('' or undefined among them: none). */
function commonScope(scopes: (string | undefined)[]): string | undefined {
  if (!scopes.length || scopes.some((x) => !x)) return undefined;
  let prefix = scopes[0]!.split('.');
  for (const s of scopes) {
    const segs = s!.split('.');
    let k = 0;
    while (k < prefix.length && k < segs.length && prefix[k] === segs[k]) k++;
    prefix = prefix.slice(0, k);
  }
  return prefix.length ? prefix.join('.') : undefined;
}

/** A group of one graph level: its name and its nodes (foldable ones included), in graph order. */
export interface LevelGroup {
  name: string;
  nodes: number[];
}

/**
 * Groups one level of the graph (the top level, or one subgraph's nodes) into layers: by name scope
 * when the names carry one, else by structure. Every node of `level` lands in exactly one group.
 */
export function groupLevel(
  graph: ModelGraph,
  level: number[],
  outputs: readonly string[],
  a: GraphAnalysis = analyzeGraph(graph),
): LevelGroup[] {
  const members = level.filter((i) => !a.foldable[i]);
  // A prefix that every name shares (caffe2's 'gpu_0/…') says nothing about layers: strip it.
  const scopes = new Set<string | undefined>();
  // Indexed loops: every node and input of the level, mostly before V8 optimizes this (for…of allocates per step).
  for (let k = 0; k < level.length; k++) {
    const node = graph.nodes[level[k]];
    if (node.name) scopes.add(scopeOf(node.name, false));
    for (let j = 0; j < node.inputs.length; j++) {
      const inp = node.inputs[j];
      if (graph.tensors.get(inp)?.isWeight) scopes.add(scopeOf(inp, true));
    }
  }
  scopes.delete(undefined);
  const only = scopes.size === 1 ? [...scopes][0] : undefined;
  const strip = only && !only.includes('.') && level.length > 20 ? only : undefined;

  // Each member's own scope and the parameters it reads, worked out once.
  const own = members.map((i) => nodeScope(graph.nodes[i].name, graph.nodes[i].opType, strip));
  const params = members.map((i) => a.nodeSources(i).filter((w) => isParameter(graph, w)));
  let named = 0;
  let weighted = 0;
  let blockScoped = 0;
  members.forEach((_, k) => {
    if (own[k]) named++;
    if (!params[k].length) return;
    weighted++;
    if (params[k].some((w) => blockLike(scopeOf(w, true, strip) ?? ''))) blockScoped++;
  });
  // Structure says little about a handful of nodes: small levels keep the names they have.
  const byName = members.length < 8 || named >= members.length / 2 || (weighted > 0 && blockScoped >= weighted / 3);
  const groupOf = new Map<number, number>();
  const groups: LevelGroup[] = [];
  if (byName) {
    const index = new Map<string, number>();
    const get = (name: string) => {
      let g = index.get(name);
      if (g === undefined) {
        g = groups.length;
        groups.push({ name, nodes: [] });
        index.set(name, g);
      }
      return g;
    };
    const holders = new Set([...(graph.subgraphs?.values() ?? [])].map((sg) => sg.parent));
    // Each member's scope: its own, or its weights' (an If / Loop / Scan: the scope all the weights inside share).
    // A weight names the layer of its first user only: a later user (BERT's MLM head, tied to the word embeddings
    // it multiplies by) goes by its neighbours, not into the embedding layer.
    const firstUse = new Map<string, number>();
    const scope = members.map((i, k) => {
      if (own[k] || holders.has(i)) return own[k] ?? commonScope(params[k].map((w) => scopeOf(w, true, strip)));
      let found: string | undefined;
      for (const w of a.nodeSources(i)) {
        const first = firstUse.get(w) ?? k;
        firstUse.set(w, first);
        const s = first === k ? scopeOf(w, true, strip) : undefined;
        if (s && !found) found = s;
      }
      return found;
    });
    const at = new Map<number, number>();
    members.forEach((i, k) => at.set(i, k));
    // Members that feed member k / that k feeds, along the data flow (foldable chains left out).
    const producers = (k: number): number[] =>
      graph.nodes[members[k]].inputs.flatMap((t) => {
        const p = t ? graph.tensors.get(t)?.producer : undefined;
        return p !== undefined && at.has(p) ? [at.get(p)!] : [];
      });
    const consumers = (k: number) =>
      graph.nodes[members[k]].outputs.flatMap((t) =>
        (graph.tensors.get(t)?.consumers ?? []).flatMap((c) => (at.has(c) ? [at.get(c)!] : [])),
      );
    // A node doing weighted work whose name and weights say nothing (tf2onnx's `LSTM__73`, torch 1.x's `Conv_149` on
    // BN-folded `onnx::Conv_3392`) belongs to the next named module in the file when its output reaches that module
    // within NEAREST_HOPS ops through unnamed ones (exporters write a module's unnamed ops before its named ones: the
    // Keras LSTM's Transpose, the block's attention). Otherwise it keeps its own name: a skip connection reaching a
    // far module says nothing.
    const nextNamed = new Int32Array(members.length + 1).fill(-1);
    for (let k = members.length - 1; k >= 0; k--) nextNamed[k] = scope[k + 1] ? k + 1 : nextNamed[k + 1];
    const nearest = (k: number): string | undefined => {
      const want = nextNamed[k] >= 0 ? scope[nextNamed[k]] : undefined;
      if (!want) return undefined;
      let frontier = [k];
      const seen = new Set(frontier);
      for (let hop = 0; hop < NEAREST_HOPS && frontier.length; hop++) {
        const next: number[] = [];
        for (const x of frontier) {
          for (const y of consumers(x)) {
            if (seen.has(y)) continue;
            seen.add(y);
            if (scope[y] === want) return want;
            if (!scope[y]) next.push(y);
          }
        }
        frontier = next.slice(0, 64);
      }
      return undefined;
    };
    let current: number | undefined;
    members.forEach((i, k) => {
      const node = graph.nodes[i];
      let g: number;
      if (scope[k]) g = get(scope[k]!);
      else if (params[k].length) g = get(nearest(k) ?? (node.name || params[k][0] || `${node.opType}_${i}`));
      else {
        // A node with neither joins the node before it in the file, unless the file has it out of order (onnxruntime's
        // optimizer writes GPT-2's `Split_72` of h.0's QKV after the whole graph, though h.0 reads it): then it joins
        // its latest producer.
        const from = consumers(k).some((c) => c < k) ? producers(k).filter((p) => groupOf.has(members[p])) : [];
        g = from.length ? groupOf.get(members[Math.max(...from)])! : (current ?? get('(input)'));
      }
      groupOf.set(i, g);
      current = g;
    });
    // keras2onnx drops the model's scope from some nodes (`conv1d_3` beside `model_2/conv1d_3/Pad`): a top-level
    // name that exactly one scoped group ends with is that group.
    const byLast = new Map<string, string[]>();
    for (const n of index.keys()) {
      if (!n.includes('.')) continue;
      const last = n.slice(n.lastIndexOf('.') + 1);
      byLast.set(last, [...(byLast.get(last) ?? []), n]);
    }
    for (const [name, g] of index) {
      const longer = name.includes('.') ? [] : (byLast.get(name) ?? []);
      if (longer.length !== 1) continue;
      const to = index.get(longer[0])!;
      for (const [i, x] of groupOf) if (x === g) groupOf.set(i, to);
      index.set(name, to);
    }
    // Foldable nodes with a scope of their own that names a group (torch's `/h.0/attn/Constant`) join it.
    for (const i of level) {
      if (!a.foldable[i]) continue;
      const s = scopeOf(graph.nodes[i].name, false, strip);
      if (s !== undefined && index.has(s)) groupOf.set(i, index.get(s)!);
    }
  } else {
    for (const g of structuralGroups(graph, members, outputs, a)) {
      for (const i of g.nodes) groupOf.set(i, groups.length);
      groups.push({ name: g.name, nodes: [] });
    }
  }
  // The other foldable nodes (Constants, Identity / Transpose / Cast of weights) join the group of the node that consumes them.
  const inLevel = new Set(level);
  const isLevel = (x: number) => inLevel.has(x);
  for (let k = level.length - 1; k >= 0; k--) {
    const i = level[k];
    if (groupOf.has(i)) continue;
    let g: number | undefined;
    for (const o of graph.nodes[i].outputs) {
      for (const c of graph.tensors.get(o)?.consumers ?? []) {
        const anc = levelAncestor(graph, c, isLevel);
        if (anc >= 0 && groupOf.has(anc)) {
          g = groupOf.get(anc);
          break;
        }
      }
      if (g !== undefined) break;
    }
    if (g === undefined) {
      // Consumed by nothing at this level (dead, or the level's output): the group of the node before it.
      for (let j = k - 1; j >= 0 && g === undefined; j--) g = groupOf.get(level[j]);
      for (let j = k + 1; j < level.length && g === undefined; j++) g = groupOf.get(level[j]);
    }
    if (g === undefined) {
      g = groups.length;
      groups.push({ name: groups.length ? '(constants)' : '(input)', nodes: [] });
    }
    groupOf.set(i, g);
  }
  for (const i of level) groups[groupOf.get(i)!].nodes.push(i);
  // spox inlines a function into a branch with the prefix `If_0_then_branch__Inline_0__` on every name: a
  // body's groups are named without it (the body itself says which branch).
  for (const g of groups) g.name = g.name.replace(INLINED, '') || BODY;
  return groups.filter((g) => g.nodes.length > 0);
}
const INLINED = /^[^.]*_(then|else)_branch__Inline_\d+__\.?/;
/** The group of a body's nodes outside any of its scopes. */
const BODY = '(body)';

/**
 * An If / Loop / Scan whose bodies hold at least this share of the graph's nodes (Silero VAD v5: the
 * whole model in the branches of one If on the sample rate) has its bodies' groups as layers: one
 * layer holding the model would leave the planner nothing to place.
 */
const DOMINANT_SHARE = 0.5;

/** The group name a body's group gets as a layer: the holder's layer, the body (then, else, body), the group. */
const bodyLabel = (attribute: string) => attribute.replace(/_branch$/, '');

/** Top-level groups, with the groups of dominant subgraph holders' bodies after the group that holds them. */
function layerGroups(graph: ModelGraph, top: number[], a: GraphAnalysis): LevelGroup[] {
  const groups = groupLevel(graph, top, graph.outputs, a);
  if (!graph.subgraphs?.size) return groups;
  const bodies = new Map<number, Subgraph[]>();
  for (const sg of graph.subgraphs.values()) bodies.set(sg.parent, [...(bodies.get(sg.parent) ?? []), sg]);
  const out: LevelGroup[] = [];
  // A body's group is named after the holder's layer and the body: `If_0.then.encoder.0`; a name that already
  // starts with the holder's layer (torch's `model.decoder.rnn` in model.decoder's If) says it once:
  // `model.decoder.then.rnn`; the body's own leftovers are the body (`If_0.then`).
  const expand = (level: LevelGroup[], prefix: string, holder: string, depth: number) => {
    for (const g of level) {
      let rest = g.name === BODY ? '' : g.name;
      if (holder && (rest === holder || rest.startsWith(`${holder}.`))) rest = rest.slice(holder.length + 1);
      const name = prefix && rest ? `${prefix}.${rest}` : prefix || rest;
      out.push({ name, nodes: g.nodes });
      if (depth > 8) continue;
      for (const i of g.nodes) {
        if (a.inside(i).length < DOMINANT_SHARE * graph.nodes.length) continue;
        for (const sg of bodies.get(i) ?? []) {
          expand(groupLevel(graph, sg.nodes, sg.outputs, a), `${name}.${bodyLabel(sg.attribute)}`, name, depth + 1);
        }
      }
    }
  };
  expand(groups, '', '', 0);
  return out;
}

export function groupLayers(graph: ModelGraph): void {
  const a = analyzeGraph(graph);
  const top: number[] = [];
  for (const n of graph.nodes) if (n.parent < 0) top.push(n.index);
  const groups = layerGroups(graph, top, a);
  const layers: Layer[] = [];
  const byName = new Map<string, Layer>();
  const get = (name: string): Layer => {
    let l = byName.get(name);
    if (!l) {
      l = { index: layers.length, name, nodes: [], weights: [], parameters: 0, flops: 0 };
      layers.push(l);
      byName.set(name, l);
    }
    return l;
  };
  const placed = new Uint8Array(graph.nodes.length);
  for (const g of groups) {
    const l = get(g.name);
    for (const i of g.nodes) {
      graph.nodes[i].layer = l.index;
      placed[i] = 1;
    }
  }
  // Other subgraph nodes belong to the layer of the If / Loop / Scan that holds them.
  for (const node of graph.nodes) {
    if (node.parent >= 0 && !placed[node.index]) node.layer = graph.nodes[node.parent].layer;
    layers[node.layer].nodes.push(node.index);
  }
  // The scope every top-level name shares, if any, to match weight names against layer names.
  const strip = (() => {
    const s = new Set(top.map((i) => scopeOf(graph.nodes[i].name, false)).filter(Boolean));
    const only = s.size === 1 ? [...s][0] : undefined;
    return only && !only.includes('.') && top.length > 20 ? only : undefined;
  })();
  // A weight belongs to the first node that computes with it (directly or through foldable chains), unless its
  // name names a layer; a copy handed out by an Identity (torch's deduplicated initializers) counts in each layer using it.
  const owner = new Map<string, Layer>();
  // Each use of a stored weight: directly ('') or through one Identity copy (the copy's name). The first counts
  // where the weight lives; every other instance counts once more, in the layer that first uses it.
  const instances = new Map<string, Set<string>>();
  const extra = new Map<Layer, Map<string, string>>();
  const use = (l: Layer, weight: string, key: string) => {
    if (!owner.has(weight)) owner.set(weight, l);
    const seen = instances.get(weight) ?? new Set<string>();
    if (seen.has(key)) return;
    seen.add(key);
    instances.set(weight, seen);
    if (seen.size === 1) return;
    const more = extra.get(l) ?? new Map<string, string>();
    more.set(key, weight);
    extra.set(l, more);
  };
  for (const node of graph.nodes) {
    if (a.foldable[node.index]) continue;
    const l = layers[node.layer];
    const inputs = node.inputs;
    // Indexed loops: this runs for every input of every node while a model opens, mostly unoptimized.
    for (let k = 0; k < inputs.length; k++) {
      const i = inputs[k];
      if (!i) continue;
      const copies = a.copiesOf(i);
      const direct = a.sourcesOf(i);
      if (!copies.length) {
        for (let j = 0; j < direct.length; j++) use(l, direct[j], '');
        continue;
      }
      const behindCopy = new Set(copies.map((c) => c.weight));
      for (const w of direct) if (!behindCopy.has(w)) use(l, w, '');
      for (const c of copies) use(l, c.weight, c.copy);
    }
  }
  // Only the layers the graph's nodes form are named by weights: an unused initializer (caffe2's
  // `gpu_0/imagenet1k_blobs_queue_…`) must not open a layer that every later `gpu_0/…` weight then joins.
  const grouped = new Map(byName);
  for (const t of graph.tensors.values()) {
    if (!t.isWeight) continue;
    const weightScope = scopeOf(t.name, true, strip);
    let layer: Layer | undefined;
    if (weightScope && grouped.has(weightScope)) layer = grouped.get(weightScope);
    else if (owner.has(t.name)) layer = owner.get(t.name);
    else if (t.consumers.length) layer = layers[graph.nodes[t.consumers[0]].layer];
    else if (t.producer !== undefined) layer = layers[graph.nodes[t.producer].layer];
    else if (graph.nodes.length) layer = get('(unused weights)');
    else layer = get(weightScope ?? t.name.replace(/\.(weight|bias)$/, ''));
    t.layer = layer!.index;
    layer!.weights.push(t.name);
    layer!.parameters += t.elements;
  }
  for (const [l, copies] of extra) {
    for (const w of copies.values()) {
      if (!l.weights.includes(w)) l.weights.push(w);
      l.parameters += graph.tensors.get(w)!.elements;
    }
  }
  const run = runFlops(graph);
  layers.forEach((l, k) => (l.flops = run.layers[k] ?? 0));
  graph.flops = run.total;
  graph.layers = layers;
}

/**
 * FLOPs of one run, per layer and in all: an If runs one of its branches, so it counts the dearer
 * one (per layer, where a layer holds both branches, and in the total); a Loop's or Scan's body
 * counts once (its trip count is not known before it runs).
 */
export function runFlops(graph: ModelGraph): {
  layers: number[];
  total: number;
  /** Per subgraph holder: the FLOPs of one run of what it holds (an If: its dearer branch), itself not included. */
  inside: Map<number, number>;
} {
  const layers: number[] = [];
  const inside = new Map<number, number>();
  let total = 0;
  // Per holder, per body, per layer (the key -1: all layers) the FLOPs of its nodes, filled children first.
  const pending = new Map<number, Map<string, Map<number, number>>>();
  const add = (into: Map<number, number>, layer: number, flops: number) =>
    into.set(layer, (into.get(layer) ?? 0) + flops);
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    let own: Map<number, number> | undefined;
    const sub = pending.get(i);
    if (sub) {
      own = new Map();
      const pick = node.opType === 'If' ? Math.max : (x: number, y: number) => x + y;
      for (const body of sub.values()) for (const [layer, f] of body) own.set(layer, pick(own.get(layer) ?? 0, f));
      pending.delete(i);
      inside.set(i, own.get(-1) ?? 0);
    }
    if (node.parent < 0) {
      layers[node.layer] = (layers[node.layer] ?? 0) + node.flops;
      total += node.flops;
      for (const [layer, f] of own ?? []) {
        if (layer < 0) total += f;
        else layers[layer] = (layers[layer] ?? 0) + f;
      }
      continue;
    }
    const bodies = pending.get(node.parent) ?? new Map<string, Map<number, number>>();
    pending.set(node.parent, bodies);
    const body = bodies.get(node.subgraph ?? '') ?? new Map<number, number>();
    bodies.set(node.subgraph ?? '', body);
    add(body, node.layer, node.flops);
    add(body, -1, node.flops);
    for (const [layer, f] of own ?? []) add(body, layer, f);
  }
  return { layers, total, inside };
}
