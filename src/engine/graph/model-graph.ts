import type { Dim, Shape } from './dims';
import type { TransformerSpec } from './transformer-spec';

/** An attribute value in a format-neutral form (subgraphs are expanded into the node list; `graph` is the subgraph's id). */
export type AttrValue =
  | number
  | string
  | number[]
  | string[]
  | { tensor: string; dtype?: string; values?: number[] }
  | { graph: string }
  | null;

/** A tensor of the graph: a weight (initializer / Constant), a graph input, or an intermediate value. */
export interface GraphTensor {
  name: string;
  /** Element type name: float, float16, bfloat16, int8, … */
  dtype: string;
  shape?: Shape;
  /** A stored weight (initializer, Constant-node value, checkpoint tensor). */
  isWeight: boolean;
  /** Stored element count and bytes (weights only). */
  elements: number;
  bytes: number;
  /** Small integer tensors known at plan time (Constant shapes), as dims. */
  value?: Dim[];
  producer?: number;
  consumers: number[];
  /** Layer that owns this weight. */
  layer?: number;
  /** Format-specific handle used to load the values on demand. */
  ref?: unknown;
}

export interface GraphNode {
  index: number;
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttrValue>;
  /** Index of the node whose subgraph holds this one, or -1 at top level. */
  parent: number;
  /** Subgraph nesting depth (0 at top level). */
  depth: number;
  /** The id of the subgraph holding this node (`<parent index>:<attribute>`, see ModelGraph.subgraphs); absent at top level. */
  subgraph?: string;
  layer: number;
  /** False when shape inference does not know this op, or its rule failed: it is kept, with unknown output shapes. */
  known: boolean;
  /** Why this op's shape rule failed on this node (bad attributes, inputs it cannot take); its FLOPs are not counted. */
  shapeError?: string;
  /** FLOPs of one execution (symbolic dims bound as the graph's bindings say). */
  flops: number;
  /** Bytes read and written (inputs + outputs) of one execution. */
  bytesMoved: number;
}

export interface Layer {
  index: number;
  name: string;
  nodes: number[];
  weights: string[];
  parameters: number;
  flops: number;
}

export interface ModelGraph {
  /** File format: onnx, safetensors, gguf, hf-config, arch. */
  format: string;
  producer: string;
  producerVersion: string;
  /** Opset per domain ("ai.onnx" for the default domain). */
  opsets: Record<string, number>;
  nodes: GraphNode[];
  tensors: Map<string, GraphTensor>;
  layers: Layer[];
  inputs: string[];
  outputs: string[];
  /** FLOPs of one run (an If counts its dearer branch; see runFlops in layers.ts), set with the layers. */
  flops?: number;
  /** Values bound to symbolic dims when counting FLOPs and bytes. */
  bindings: Record<string, number>;
  metadata: Record<string, string>;
  /** Set when the graph was synthesized from (or joined with) a transformer description. */
  transformer?: TransformerSpec;
  /**
   * What the reader could not know and the numbers therefore miss (a checkpoint without its
   * config.json has no FLOPs): shown by inspect, carried into estimates and the plan's diagnostics.
   */
  warnings?: string[];
  /** The subgraphs of If / Loop / Scan nodes, by id `<parent index>:<attribute>` (`body`, `then_branch`, `branches[1]`). */
  subgraphs?: Map<string, Subgraph>;
}

/** One subgraph: the node holding it, the attribute, its formal inputs and outputs, its own nodes (not deeper ones). */
export interface Subgraph {
  id: string;
  parent: number;
  attribute: string;
  name: string;
  inputs: string[];
  outputs: string[];
  nodes: number[];
}

export function layerOf(graph: ModelGraph, name: string): Layer | undefined {
  return graph.layers.find((l) => l.name === name);
}
