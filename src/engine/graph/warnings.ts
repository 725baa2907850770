import { symbolsIn } from './dims';
import type { ModelGraph } from './model-graph';

/**
 * Symbolic dims that the graph's shapes use and its bindings leave unbound. evalDim counts each as
 * 1 in FLOPs and bytes, so every front end that shows those numbers says which ones they are.
 */
export function unboundSymbols(graph: ModelGraph): string[] {
  const out = new Set<string>();
  for (const t of graph.tensors.values()) {
    for (const d of t.shape ?? []) {
      if (typeof d !== 'string') continue;
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
  if (failed.length) {
    const first = failed[0];
    out.push(
      `shape inference failed at ${failed.length} node${failed.length === 1 ? '' : 's'} (first: '${first.name || first.opType}' (${first.opType}): ${first.shapeError}): their outputs have no shapes and no FLOPs are counted for them`,
    );
  }
  return out;
}
