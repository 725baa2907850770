import { symbolsIn } from './dims';
import type { GraphNode, GraphTensor, ModelGraph } from './model-graph';
import { topologicalOrder } from './shapes';

/**
 * Symbolic dims that the graph's shapes use and its bindings leave unbound. evalDim counts each as
 * 1 in FLOPs and bytes, so every front end that shows those numbers says which ones they are.
 */
export function unboundSymbols(graph: ModelGraph): string[] {
  const out = new Set<string>();
  // Each distinct symbolic dim once (a model has thousands of tensors and a handful of dims).
  const seen = new Set<string>();
  for (const t of graph.tensors.values()) {
    const shape = t.shape;
    if (!shape) continue;
    for (let i = 0; i < shape.length; i++) {
      const d = shape[i];
      if (typeof d !== 'string' || seen.has(d)) continue;
      seen.add(d);
      for (const s of symbolsIn(d)) if (graph.bindings[s] === undefined) out.add(s);
    }
  }
  return [...out].sort();
}

/**
 * What the graph's numbers miss, in words: the reader's warnings (a checkpoint without its
 * config.json), symbolic dims counted as 1 (unless `unboundDims: false`: a report that lists them
 * itself), dims of unknown size (also counted as 1), and ops whose shape rule failed (no FLOPs counted).
 */
export function graphWarnings(graph: ModelGraph, options: { unboundDims?: boolean } = {}): string[] {
  const out = [...(graph.warnings ?? [])];
  const unbound = options.unboundDims === false ? [] : unboundSymbols(graph);
  if (unbound.length) {
    out.push(`symbolic dims not bound, counted as 1 in FLOPs and bytes: ${unbound.join(', ')}`);
  }
  const unknownDims = [...graph.tensors.values()].filter((t) => t.shape?.some((d) => d === null));
  if (unknownDims.length) {
    out.push(
      `dims of unknown size (shape inference could not tell) counted as 1 in FLOPs and bytes, in ${unknownDims.length} tensor${unknownDims.length === 1 ? '' : 's'} (first: '${unknownDims[0].name}')`,
    );
  }
  const failed = graph.nodes.filter((n) => n.shapeError !== undefined);
  // Only a graph with an unsized tensor or an unknown op can have a place where inference stops.
  const stops =
    unknownDims.length ||
    graph.nodes.some((n) => !n.known && n.opType !== 'Constant') ||
    [...graph.tensors.values()].some((t) => t.producer !== undefined && !t.shape && t.consumers.length > 0)
      ? whereShapesStop(graph)
      : { origins: [], downstream: 0 };
  if (failed.length) {
    const first = failed[0];
    out.push(
      `shape inference failed at ${failed.length} node${failed.length === 1 ? '' : 's'} (first: '${first.name || first.opType}' (${first.opType}): ${first.shapeError}): their outputs have no shapes and no FLOPs are counted for them`,
    );
  }
  if (stops.origins.length) {
    const first = stops.origins[0];
    const why = first.known
      ? 'its output cannot be sized from what is known of its inputs (shapes and values)'
      : `shape inference does not know the op ${first.domain && first.domain !== 'ai.onnx' ? `${first.domain}.` : ''}${first.opType}`;
    const n = stops.origins.length;
    const m = stops.downstream;
    out.push(
      `shape inference stops at ${n} node${n === 1 ? '' : 's'} (first: '${first.name || first.opType}' (${first.opType}): ${why})` +
        (m
          ? `: ${m} node${m === 1 ? '' : 's'} after ${n === 1 ? 'it' : 'them'} ${m === 1 ? 'has' : 'have'} inputs of unknown shape, so ${m === 1 ? 'its' : 'their'} FLOPs are not known (counted as 0, or with the unknown dims as 1)`
          : ''),
    );
  }
  return out;
}

const incomplete = (t: GraphTensor | undefined) => !t || !t.shape || t.shape.some((d) => d === null);

/**
 * Where shape inference stops: nodes whose op it does not know, or whose output it cannot size
 * although every input is sized (a Reshape whose target is computed from values it cannot follow),
 * and how many nodes after them read a tensor of unknown shape. Nodes whose rule failed are
 * reported apart (shapeError); If / Loop / Scan bodies are left to their holders.
 */
export function whereShapesStop(graph: ModelGraph): { origins: GraphNode[]; downstream: number } {
  const tainted = new Set<string>();
  const origins: GraphNode[] = [];
  let downstream = 0;
  const used = (name: string) => {
    const t = graph.tensors.get(name);
    return t !== undefined && t.dtype !== 'map' && (t.consumers.length > 0 || graph.outputs.includes(name));
  };
  for (const node of topologicalOrder(graph)) {
    if (node.opType === 'Constant' || node.depth > 0) continue;
    const ins = node.inputs.filter((i) => i);
    const fromTaint = ins.some((i) => tainted.has(i));
    const outs = node.outputs.filter((o) => o && used(o));
    const unsized = outs.filter((o) => incomplete(graph.tensors.get(o)));
    if (fromTaint) downstream++;
    else if (node.shapeError === undefined && unsized.length) {
      const sized = ins.every((i) => !incomplete(graph.tensors.get(i)));
      if (!node.known || sized) origins.push(node);
      else continue;
    } else if (node.shapeError === undefined) continue;
    for (const o of unsized) tainted.add(o);
  }
  return { origins, downstream };
}
