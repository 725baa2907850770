import { groupLevel, runFlops } from '../engine/graph/layers';
import type { ModelGraph } from '../engine/graph/model-graph';
import { analyzeGraph, isParameter, levelAncestor, type GraphAnalysis } from '../engine/graph/structure';
import { graphWarnings } from '../engine/graph/warnings';
import type {
  Edge,
  IoEntry,
  LayerBox,
  LevelInfo,
  ModelSummary,
  NodeBox,
  NodeDetails,
  NodeRef,
  GraphSearchResult,
} from '../protocol';

/**
 * What the graph view shows of a model, one level at a time: the top level (the model's layers, as
 * the planner names them) or the body of an If / Loop / Scan (grouped the same way, by names or by
 * structure). Levels are computed once per graph and kept.
 */
const shapeText = (s: (number | string | null)[] | undefined) => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '?');

interface Level {
  id: string;
  nodes: number[];
  groups: { name: string; nodes: number[] }[];
  groupOf: Map<number, number>;
  inputs: string[];
  outputs: string[];
}

const levels = new WeakMap<ModelGraph, Map<string, Level>>();

const runs = new WeakMap<ModelGraph, ReturnType<typeof runFlops>>();
const runOf = (graph: ModelGraph) => {
  let r = runs.get(graph);
  if (!r) runs.set(graph, (r = runFlops(graph)));
  return r;
};

/** One level of the graph ('' the top, else a subgraph id), or undefined when there is no such subgraph. */
export function levelOf(graph: ModelGraph, id: string): Level | undefined {
  let byId = levels.get(graph);
  if (!byId) levels.set(graph, (byId = new Map()));
  const hit = byId.get(id);
  if (hit) return hit;
  let level: Level;
  if (id === '') {
    const nodes = graph.nodes.filter((n) => n.parent < 0).map((n) => n.index);
    const top = new Set(nodes);
    // The model's own layers (the planner's rows), each with its top-level nodes.
    const groups = graph.layers.map((l) => ({ name: l.name, nodes: l.nodes.filter((i) => top.has(i)) }));
    level = {
      id,
      nodes,
      groups,
      groupOf: new Map(),
      inputs: graph.inputs.filter((n) => !graph.tensors.get(n)?.isWeight),
      outputs: graph.outputs,
    };
  } else {
    const sg = graph.subgraphs?.get(id);
    if (!sg) return undefined;
    level = {
      id,
      nodes: sg.nodes,
      groups: groupLevel(graph, sg.nodes, sg.outputs),
      groupOf: new Map(),
      inputs: sg.inputs,
      outputs: sg.outputs,
    };
  }
  level.groups.forEach((g, k) => g.nodes.forEach((i) => level.groupOf.set(i, k)));
  byId.set(id, level);
  return level;
}

/** Where a node is: its level, and its layer at that level. */
export function nodeRef(graph: ModelGraph, index: number): NodeRef {
  const n = graph.nodes[index];
  const level = n.subgraph ?? '';
  return {
    node: index,
    name: n.name || `${n.opType}_${index}`,
    opType: n.opType,
    level,
    layer: levelOf(graph, level)?.groupOf.get(index) ?? -1,
  };
}

/** The breadcrumbs of a level: the model, then each If / Loop / Scan above it with the attribute entered. */
export function levelInfo(graph: ModelGraph, id: string, file: string): LevelInfo {
  const crumbs: LevelInfo['crumbs'] = [];
  for (let at = id, guard = 0; at && guard < 1000; guard++) {
    const sg = graph.subgraphs?.get(at);
    if (!sg) break;
    const holder = graph.nodes[sg.parent];
    crumbs.unshift({ id: at, label: `${holder.name || `${holder.opType}_${holder.index}`} · ${sg.attribute}` });
    at = holder.subgraph ?? '';
  }
  crumbs.unshift({ id: '', label: file.split(/[\\/]/).pop() ?? file });
  return { id, crumbs };
}

/** The nodes under a level node (itself and everything inside its subgraphs). */
function withInside(a: GraphAnalysis, nodes: number[]): number[] {
  const within = nodes.flatMap((i) => a.inside(i));
  return within.length ? [...nodes, ...within] : nodes;
}

function io(graph: ModelGraph, names: string[], level: Level, kind: 'input' | 'output'): IoEntry[] {
  const inLevel = new Set(level.nodes);
  return names.map((name) => {
    const t = graph.tensors.get(name);
    let node: NodeRef | undefined;
    if (kind === 'output' && t?.producer !== undefined) node = nodeRef(graph, t.producer);
    if (kind === 'input') {
      const c = t?.consumers.find((x) => levelAncestor(graph, x, (i) => inLevel.has(i)) >= 0);
      if (c !== undefined) node = nodeRef(graph, c);
    }
    return { name, dtype: t?.dtype ?? '?', shape: shapeText(t?.shape), ...(node ? { node } : {}) };
  });
}

/** The collapsed graph of one level: one box per layer, edges where a tensor crosses from one layer to another. */
export function modelSummary(file: string, graph: ModelGraph, levelId = ''): ModelSummary {
  const level = levelOf(graph, levelId) ?? levelOf(graph, '')!;
  const a = analyzeGraph(graph);
  const run = runOf(graph);
  const boxes: LayerBox[] = level.groups.map((g, index) => {
    const all = withInside(a, g.nodes);
    const ops = new Map<string, number>();
    for (const i of all) if (!a.foldable[i]) ops.set(graph.nodes[i].opType, (ops.get(graph.nodes[i].opType) ?? 0) + 1);
    const top = [...ops]
      .sort((x, y) => y[1] - x[1])
      .slice(0, 3)
      .map(([op, n]) => `${n} ${op}`)
      .join(', ');
    let parameters: number;
    let flops = 0;
    if (level.id === '' && all.length === graph.layers[index].nodes.length) {
      [parameters, flops] = [graph.layers[index].parameters, graph.layers[index].flops];
    } else {
      // A box holding subgraphs: one run of them (an If's dearer branch), and every weight they read.
      const weights = new Set<string>();
      for (const i of g.nodes) flops += graph.nodes[i].flops + (run.inside.get(i) ?? 0);
      for (const i of all) for (const w of a.nodeSources(i)) if (isParameter(graph, w)) weights.add(w);
      parameters = [...weights].reduce((s, w) => s + graph.tensors.get(w)!.elements, 0);
    }
    return { index, name: g.name, nodes: all.length, parameters, flops, ops: top };
  });
  // A layer made of a subgraph's nodes only (an If's branch, when its bodies hold the model) has no box at the top:
  // its nodes show in the box of the If that holds them, and as a group when the user enters the branch.
  const layers = boxes.filter((b) => level.groups[b.index].nodes.length > 0);
  const inLevel = new Set(level.nodes);
  const at = (i: number) => levelAncestor(graph, i, (x) => inLevel.has(x));
  const seen = new Set<string>();
  const edges: Edge[] = [];
  for (const p of level.nodes) {
    const from = level.groupOf.get(p)!;
    for (const o of graph.nodes[p].outputs) {
      for (const c of graph.tensors.get(o)?.consumers ?? []) {
        const q = at(c);
        if (q < 0) continue;
        const to = level.groupOf.get(q)!;
        const key = `${from}>${to}`;
        if (from !== to && !seen.has(key)) {
          seen.add(key);
          edges.push({ from, to });
        }
      }
    }
  }
  let parameters = 0;
  let bytes = 0;
  for (const t of graph.tensors.values()) {
    if (t.isWeight) [parameters, bytes] = [parameters + t.elements, bytes + t.bytes];
  }
  return {
    file,
    format: graph.format,
    producer: graph.producer,
    nodes: graph.nodes.length,
    parameters,
    bytes,
    layers,
    edges,
    level: levelInfo(graph, level.id, file),
    inputs: io(graph, level.inputs, level, 'input'),
    outputs: io(graph, level.outputs, level, 'output'),
    warnings: graphWarnings(graph),
  };
}

/**
 * The nodes of one layer of a level and the edges between them. Constant-foldable nodes (Constants,
 * and the Identity / Transpose / Cast / DequantizeLinear chains that hand weights to their consumer)
 * are left out unless `constants`: their weights show in the consumer's details.
 */
export function layerNodes(
  graph: ModelGraph,
  layer: number,
  levelId = '',
  constants = true,
): { nodes: NodeBox[]; edges: Edge[]; hidden: number } {
  const level = levelOf(graph, levelId);
  const group = level?.groups[layer];
  if (!group) return { nodes: [], edges: [], hidden: 0 };
  const a = analyzeGraph(graph);
  const shown = group.nodes.filter((i) => constants || !a.foldable[i]);
  const inLayer = new Set(shown);
  const nodes = shown.map((i) => {
    const n = graph.nodes[i];
    const subgraphs = [...(graph.subgraphs?.values() ?? [])]
      .filter((sg) => sg.parent === i)
      .map((sg) => ({ id: sg.id, label: sg.attribute, nodes: sg.nodes.length }));
    return {
      index: i,
      name: n.name || `${n.opType}_${i}`,
      opType: n.opType,
      shape: shapeText(graph.tensors.get(n.outputs[0])?.shape),
      flops: n.flops,
      known: n.known,
      constant: a.foldable[i] === 1,
      ...(subgraphs.length ? { subgraphs } : {}),
    };
  });
  const edges: Edge[] = [];
  for (const i of shown) {
    for (const o of graph.nodes[i].outputs) {
      const t = graph.tensors.get(o);
      for (const c of t?.consumers ?? []) if (inLayer.has(c)) edges.push({ from: i, to: c });
    }
  }
  return { nodes, edges, hidden: group.nodes.length - shown.length };
}

export function nodeDetails(graph: ModelGraph, index: number): NodeDetails | undefined {
  const n = graph.nodes[index];
  if (!n) return undefined;
  const a = analyzeGraph(graph);
  const input = (name: string) => {
    const t = graph.tensors.get(name);
    const sources = a.sourcesOf(name).filter((w) => w !== name && isParameter(graph, w));
    const producer = t?.producer !== undefined ? nodeRef(graph, t.producer) : undefined;
    return {
      name,
      shape: shapeText(t?.shape),
      dtype: t?.dtype ?? '?',
      weight: !!t?.isWeight || sources.length > 0,
      ...(producer ? { producer } : {}),
      ...(sources.length ? { sources } : {}),
    };
  };
  const output = (name: string) => {
    const t = graph.tensors.get(name);
    return {
      name,
      shape: shapeText(t?.shape),
      dtype: t?.dtype ?? '?',
      weight: !!t?.isWeight,
      consumers: (t?.consumers ?? []).slice(0, 50).map((c) => nodeRef(graph, c)),
    };
  };
  // Parameters: the weights the node reads, directly or through Identity / Transpose / Cast / DequantizeLinear chains.
  const parameters = a
    .nodeSources(index)
    .filter((w) => graph.tensors.get(w) && !/^u?int(64|32)$|^bool$/.test(graph.tensors.get(w)!.dtype))
    .reduce((s, w) => s + graph.tensors.get(w)!.elements, 0);
  const ref = nodeRef(graph, index);
  return {
    index,
    name: n.name,
    opType: n.opType,
    domain: n.domain,
    layer: (n.subgraph ? levelOf(graph, n.subgraph)?.groups[ref.layer]?.name : graph.layers[n.layer]?.name) ?? '',
    level: ref.level,
    layerIndex: ref.layer,
    attributes: Object.entries(n.attributes).map(([k, v]) => [k, JSON.stringify(v).slice(0, 200)]),
    inputs: n.inputs.filter(Boolean).map(input),
    outputs: n.outputs.filter(Boolean).map(output),
    subgraphs: [...(graph.subgraphs?.values() ?? [])]
      .filter((sg) => sg.parent === index)
      .map((sg) => ({ id: sg.id, label: sg.attribute, nodes: sg.nodes.length })),
    flops: n.flops,
    parameters,
    ...(n.shapeError !== undefined ? { shapeError: n.shapeError } : {}),
  };
}

/**
 * Nodes that match a query (case-insensitive substring), in graph order: by the node's name or op
 * type, by the name of a weight it reads (also through foldable chains), or by the name of a tensor
 * it produces — not by the tensors it merely consumes (searching "MatMul" finds the MatMuls, not
 * the Div that reads a MatMul's output). Constant-foldable nodes are not hits: they are hidden by
 * default, and their weights find their consumer. Also the layers of `levelId` to highlight: those
 * whose name matches or that hold a hit at or below the level.
 */
export function searchGraph(graph: ModelGraph, query: string, levelId = ''): GraphSearchResult {
  const q = query.trim().toLowerCase();
  if (!q) return { query, level: levelId, layers: [], nodes: [], hits: [], total: 0 };
  const a = analyzeGraph(graph);
  const hits: NodeRef[] = [];
  let total = 0;
  const level = levelOf(graph, levelId) ?? levelOf(graph, '')!;
  const inLevel = new Set(level.nodes);
  const layers = new Set<number>();
  const nodes = new Set<number>();
  for (const n of graph.nodes) {
    if (a.foldable[n.index]) continue;
    const hit =
      n.name.toLowerCase().includes(q) ||
      n.opType.toLowerCase().includes(q) ||
      a.nodeSources(n.index).some((w) => w.toLowerCase().includes(q)) ||
      n.outputs.some((o) => o.toLowerCase().includes(q));
    if (!hit) continue;
    total++;
    if (hits.length < 5000) hits.push(nodeRef(graph, n.index));
    const anc = levelAncestor(graph, n.index, (i) => inLevel.has(i));
    if (anc >= 0) {
      nodes.add(anc);
      layers.add(level.groupOf.get(anc)!);
    }
  }
  level.groups.forEach((g, k) => g.name.toLowerCase().includes(q) && layers.add(k));
  return {
    query,
    level: level.id,
    layers: [...layers].sort((x, y) => x - y),
    nodes: [...nodes],
    hits,
    total,
  };
}
