import type { ModelGraph } from '../engine/graph/model-graph';
import { graphWarnings } from '../engine/graph/warnings';
import type { Edge, LayerBox, ModelSummary, NodeBox, NodeDetails } from '../protocol';

const shapeText = (s: (number | string | null)[] | undefined) => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '?');

/** The collapsed graph: one box per layer, edges where a tensor crosses from one layer to another. */
export function modelSummary(file: string, graph: ModelGraph): ModelSummary {
  const layers: LayerBox[] = graph.layers.map((l) => {
    const ops = new Map<string, number>();
    for (const i of l.nodes) ops.set(graph.nodes[i].opType, (ops.get(graph.nodes[i].opType) ?? 0) + 1);
    const top = [...ops]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([op, n]) => `${n} ${op}`)
      .join(', ');
    return { index: l.index, name: l.name, nodes: l.nodes.length, parameters: l.parameters, flops: l.flops, ops: top };
  });
  const seen = new Set<string>();
  const edges: Edge[] = [];
  for (const t of graph.tensors.values()) {
    if (t.producer === undefined) continue;
    const from = graph.nodes[t.producer].layer;
    for (const c of t.consumers) {
      const to = graph.nodes[c].layer;
      const key = `${from}>${to}`;
      if (from !== to && !seen.has(key)) {
        seen.add(key);
        edges.push({ from, to });
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
    warnings: graphWarnings(graph),
  };
}

/** The nodes of one layer and the edges between them (top-level nodes; subgraph nodes stay inside their If/Loop). */
export function layerNodes(graph: ModelGraph, layer: number): { nodes: NodeBox[]; edges: Edge[] } {
  const l = graph.layers[layer];
  if (!l) return { nodes: [], edges: [] };
  const inLayer = new Set(l.nodes);
  const nodes = l.nodes.map((i) => {
    const n = graph.nodes[i];
    return {
      index: i,
      name: n.name || `${n.opType}_${i}`,
      opType: n.opType,
      shape: shapeText(graph.tensors.get(n.outputs[0])?.shape),
      flops: n.flops,
      known: n.known,
    };
  });
  const edges: Edge[] = [];
  for (const i of l.nodes) {
    for (const o of graph.nodes[i].outputs) {
      const t = graph.tensors.get(o);
      for (const c of t?.consumers ?? []) if (inLayer.has(c)) edges.push({ from: i, to: c });
    }
  }
  return { nodes, edges };
}

export function nodeDetails(graph: ModelGraph, index: number): NodeDetails | undefined {
  const n = graph.nodes[index];
  if (!n) return undefined;
  const io = (name: string) => {
    const t = graph.tensors.get(name);
    return { name, shape: shapeText(t?.shape), dtype: t?.dtype ?? '?', weight: !!t?.isWeight };
  };
  let parameters = 0;
  for (const i of n.inputs) {
    const t = graph.tensors.get(i);
    if (t?.isWeight) parameters += t.elements;
  }
  return {
    index,
    name: n.name,
    opType: n.opType,
    domain: n.domain,
    layer: graph.layers[n.layer]?.name ?? '',
    attributes: Object.entries(n.attributes).map(([k, v]) => [k, JSON.stringify(v).slice(0, 200)]),
    inputs: n.inputs.filter(Boolean).map(io),
    outputs: n.outputs.filter(Boolean).map(io),
    flops: n.flops,
    parameters,
    ...(n.shapeError !== undefined ? { shapeError: n.shapeError } : {}),
  };
}

/** Layers and nodes whose node name, op or any input/output tensor name contains the query. */
export function searchGraph(graph: ModelGraph, query: string): { layers: number[]; nodes: number[] } {
  const q = query.trim().toLowerCase();
  if (!q) return { layers: [], nodes: [] };
  const layers = new Set<number>();
  const nodes: number[] = [];
  for (const n of graph.nodes) {
    const hit =
      n.name.toLowerCase().includes(q) ||
      n.opType.toLowerCase().includes(q) ||
      [...n.inputs, ...n.outputs].some((t) => t.toLowerCase().includes(q));
    if (hit) {
      layers.add(n.layer);
      if (nodes.length < 5000) nodes.push(n.index);
    }
  }
  for (const l of graph.layers) if (l.name.toLowerCase().includes(q)) layers.add(l.index);
  return { layers: [...layers].sort((a, b) => a - b), nodes };
}
