import { graphWarnings, unboundSymbols } from '../graph/warnings';
import type { ModelGraph } from '../graph/model-graph';

/** The `layerplan inspect --json` document (docs/ARCHITECTURE.md), plus a few extra fields. */
export interface InspectReport {
  format: string;
  producer: string;
  producerVersion: string;
  opsets: Record<string, number>;
  nodes: number;
  ops: Record<string, number>;
  tensors: number;
  parameters: number;
  bytes: number;
  dtypes: Record<string, number>;
  parametersByDtype: Record<string, number>;
  unknownOps: string[];
  inputs: { name: string; dtype: string; shape: (number | string | null)[] }[];
  outputs: { name: string; dtype: string; shape: (number | string | null)[] }[];
  bindings: Record<string, number>;
  layers: { name: string; parameters: number; flops: number; nodes: number }[];
  /** FLOPs of one run: the layers' FLOPs, except that an If counts only its dearer branch. */
  flops: number;
  /** Symbolic dims the shapes use that `bindings` leaves unbound: FLOPs and bytes count each as 1. */
  unboundDims: string[];
  /** What the numbers miss and why (a checkpoint without its config.json, ops whose shape rule failed). */
  warnings: string[];
}

/** Summarizes a graph: counts include nodes inside subgraphs; parameters are all stored weight elements. */
export function inspectGraph(graph: ModelGraph): InspectReport {
  const ops: Record<string, number> = {};
  const unknown = new Set<string>();
  for (const n of graph.nodes) {
    ops[n.opType] = (ops[n.opType] ?? 0) + 1;
    if (!n.known) unknown.add(n.domain ? `${n.domain}.${n.opType}` : n.opType);
  }
  let tensors = 0;
  let parameters = 0;
  let bytes = 0;
  const dtypes: Record<string, number> = {};
  const parametersByDtype: Record<string, number> = {};
  for (const t of graph.tensors.values()) {
    if (!t.isWeight) continue;
    tensors++;
    parameters += t.elements;
    bytes += t.bytes;
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    parametersByDtype[t.dtype] = (parametersByDtype[t.dtype] ?? 0) + t.elements;
  }
  const io = (name: string) => {
    const t = graph.tensors.get(name);
    return { name, dtype: t?.dtype ?? 'unknown', shape: t?.shape ?? [] };
  };
  return {
    format: graph.format,
    producer: graph.producer,
    producerVersion: graph.producerVersion,
    opsets: graph.opsets,
    nodes: graph.nodes.length,
    ops,
    tensors,
    parameters,
    bytes,
    dtypes,
    parametersByDtype,
    unknownOps: [...unknown].sort(),
    inputs: graph.inputs.filter((n) => !graph.tensors.get(n)?.isWeight).map(io),
    outputs: graph.outputs.map(io),
    bindings: graph.bindings,
    layers: graph.layers.map((l) => ({
      name: l.name,
      parameters: l.parameters,
      flops: l.flops,
      nodes: l.nodes.length,
    })),
    flops: graph.flops ?? graph.layers.reduce((sum, l) => sum + l.flops, 0),
    unboundDims: unboundSymbols(graph),
    warnings: graphWarnings(graph, { unboundDims: false }),
  };
}
