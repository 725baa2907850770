import type { ByteSource } from '../bytes';
import { symbol, type Dim } from '../graph/dims';
import { groupLayers } from '../graph/layers';
import type { AttrValue, GraphNode, GraphTensor, ModelGraph } from '../graph/model-graph';
import { inferShapes } from '../graph/shapes';
import { dtypeBits, onnxDtypeName, rawToNumbers } from '../graph/dtypes';
import { type OnnxAttribute, type OnnxGraph, type OnnxModel, type OnnxTensor, type OnnxValueInfo } from './onnx';
import { AttributeType, DataType } from './onnx-schema.generated';
import { loadTensorBytes } from './onnx-data';

const utf8 = new TextDecoder();
/** Integer tensors up to this many elements are read at build time so shape inference can use them. */
const SMALL_VALUE_ELEMENTS = 64;

/** The handle a weight's GraphTensor.ref holds for ONNX: load its bytes with loadTensorBytes. */
export interface OnnxTensorRef {
  format: 'onnx';
  tensor: OnnxTensor;
}

export interface OnnxGraphOptions {
  /** Values for symbolic dims (batch, sequence, …) when counting FLOPs; unbound symbols count as 1. */
  bindings?: Record<string, number>;
  /** Ignore value_info shapes for intermediate tensors (tests compare our inference with them). */
  ignoreValueInfo?: boolean;
}

/** Builds the format-neutral ModelGraph from a parsed ONNX model. */
export async function onnxToGraph(
  model: OnnxModel,
  source: ByteSource,
  options: OnnxGraphOptions = {},
): Promise<ModelGraph> {
  const opsets: Record<string, number> = {};
  for (const o of model.opsetImport) opsets[o.domain === '' ? 'ai.onnx' : o.domain] = o.version;
  const graph: ModelGraph = {
    format: 'onnx',
    producer: model.producerName,
    producerVersion: model.producerVersion,
    opsets,
    nodes: [],
    tensors: new Map(),
    layers: [],
    inputs: model.graph.inputs.map((i) => i.name),
    outputs: model.graph.outputs.map((o) => o.name),
    bindings: { ...(options.bindings ?? {}) },
    metadata: model.metadata,
  };
  const pending: Promise<void>[] = [];
  addGraph(graph, model.graph, -1, 0, source, pending, options.ignoreValueInfo ?? false);
  await Promise.all(pending);
  await loadResizeScales(graph, source);
  inferShapes(graph);
  groupLayers(graph);
  return graph;
}

function valueInfoTensor(v: OnnxValueInfo): GraphTensor {
  const t: GraphTensor = { name: v.name, dtype: 'unknown', isWeight: false, elements: 0, bytes: 0, consumers: [] };
  if (v.type && (v.type.kind === 'tensor' || v.type.kind === 'sparse_tensor')) {
    t.dtype = onnxDtypeName(v.type.elemType);
    // A negative dim_value (Paddle writes -1 for "any") is a dynamic dim of no name.
    if (v.type.shape) {
      t.shape = v.type.shape.map((d): Dim => (typeof d === 'string' ? symbol(d) : d !== null && d < 0 ? null : d));
    }
  }
  return t;
}

function weightTensor(name: string, tensor: OnnxTensor): GraphTensor {
  const bits = dtypeBits(tensor.dataType) ?? 8;
  return {
    name,
    dtype: onnxDtypeName(tensor.dataType),
    shape: [...tensor.dims],
    isWeight: true,
    elements: tensor.elements,
    bytes: Math.ceil((tensor.elements * bits) / 8),
    consumers: [],
    ref: { format: 'onnx', tensor } satisfies OnnxTensorRef,
  };
}

function isSmallInt(t: OnnxTensor): boolean {
  return (
    (t.dataType === DataType.INT64 || t.dataType === DataType.INT32) &&
    t.elements <= SMALL_VALUE_ELEMENTS &&
    t.dims.length <= 1
  );
}

/** Loads a small integer tensor's values into gt.value; `still` (when given) says whether gt is still this tensor's. */
function loadSmallValue(
  gt: GraphTensor,
  t: OnnxTensor,
  source: ByteSource,
  pending: Promise<void>[],
  still: () => boolean = () => true,
): void {
  if (!isSmallInt(t) || t.data.kind === 'external') return;
  smallTensorBytes(t, source, pending, (bytes) => {
    if (still()) gt.value = Array.from(rawToNumbers(bytes, t.dataType, t.elements));
  });
}

/**
 * Hands a small tensor's bytes to `use` once the graph's nodes are all added (a later node may take
 * over the tensor: `still()` in loadSmallValue). Raw data is read at once, with one positioned read
 * of a few bytes (awaiting each of a model's hundreds of shape constants was a trip through the
 * thread pool); any other storage as loadTensorBytes reads it.
 */
function smallTensorBytes(
  t: OnnxTensor,
  source: ByteSource,
  pending: Promise<void>[],
  use: (bytes: Uint8Array) => void,
): void {
  const bytes = t.data.kind === 'raw' ? source.readSync(t.data.offset, t.data.length) : loadTensorBytes(t, source);
  pending.push(Promise.resolve(bytes).then(use));
}

/**
 * Resize / Upsample scales are float: read the few stored ones (Paddle's and torch's constant ×2
 * upsampling) so shape inference can size the output. Only these, so opening reads no other weights.
 */
async function loadResizeScales(graph: ModelGraph, source: ByteSource): Promise<void> {
  const loads: Promise<void>[] = [];
  for (const n of graph.nodes) {
    if (n.opType !== 'Resize' && n.opType !== 'Upsample') continue;
    const t = graph.tensors.get(n.inputs[n.inputs.length === 2 ? 1 : 2] ?? '');
    const ref = t?.ref as OnnxTensorRef | undefined;
    if (!t || t.value || !ref || ref.format !== 'onnx') continue;
    const x = ref.tensor;
    if (x.elements > SMALL_VALUE_ELEMENTS || x.dims.length > 1 || x.data.kind === 'external') continue;
    if (x.dataType !== DataType.FLOAT && x.dataType !== DataType.DOUBLE && x.dataType !== DataType.FLOAT16) continue;
    smallTensorBytes(x, source, loads, (bytes) => {
      t.value = Array.from(rawToNumbers(bytes, x.dataType, x.elements));
    });
  }
  await Promise.all(loads);
}

/** ConstantOfShape's fill value and type (one element), so that shape arithmetic built on it can be followed. */
function loadFillValue(node: GraphNode, attributes: OnnxAttribute[], source: ByteSource, pending: Promise<void>[]) {
  const a = attributes.find((x) => x.name === 'value');
  const held = node.attributes.value;
  const t = a?.t;
  if (
    !t ||
    t.elements !== 1 ||
    t.data.kind === 'external' ||
    !held ||
    typeof held !== 'object' ||
    !('tensor' in held)
  ) {
    return;
  }
  held.dtype = onnxDtypeName(t.dataType);
  smallTensorBytes(t, source, pending, (bytes) => {
    held.values = Array.from(rawToNumbers(bytes, t.dataType, 1));
  });
}

/** The value of an attribute of the node about to be added (its index is graph.nodes.length at that point). */
function attrValue(a: OnnxAttribute, graph: ModelGraph): AttrValue {
  switch (a.type) {
    case AttributeType.INT:
      return a.i ?? 0;
    case AttributeType.FLOAT:
      return a.f ?? 0;
    case AttributeType.STRING:
      return a.s ? utf8.decode(a.s) : '';
    case AttributeType.INTS:
      return a.ints;
    case AttributeType.FLOATS:
      return a.floats;
    case AttributeType.STRINGS:
      return a.strings.map((s) => utf8.decode(s));
    case AttributeType.TENSOR:
      return { tensor: a.t?.name ?? '' };
    case AttributeType.GRAPH:
      return { graph: `${graph.nodes.length}:${a.name}` };
    default:
      return null;
  }
}

/** Element count of a Constant node's value, whichever attribute holds it. */
function constantTensor(node: {
  attributes: OnnxAttribute[];
}): { tensor?: OnnxTensor; elements: number; dtype: string; dims: number[] } | undefined {
  for (const a of node.attributes) {
    switch (a.name) {
      case 'value':
        if (a.t) return { tensor: a.t, elements: a.t.elements, dtype: onnxDtypeName(a.t.dataType), dims: a.t.dims };
        break;
      case 'sparse_value':
        if (a.sparseTensor) {
          const dims = a.sparseTensor.dims;
          return {
            elements: dims.reduce((p, d) => p * d, 1),
            dtype: onnxDtypeName(a.sparseTensor.values?.dataType ?? 0),
            dims,
          };
        }
        break;
      case 'value_float':
        return { elements: 1, dtype: 'float', dims: [] };
      case 'value_int':
        return { elements: 1, dtype: 'int64', dims: [] };
      case 'value_string':
        return { elements: 1, dtype: 'string', dims: [] };
      case 'value_floats':
        return { elements: a.floats.length, dtype: 'float', dims: [a.floats.length] };
      case 'value_ints':
        return { elements: a.ints.length, dtype: 'int64', dims: [a.ints.length] };
      case 'value_strings':
        return { elements: a.strings.length, dtype: 'string', dims: [a.strings.length] };
    }
  }
  return undefined;
}

function addGraph(
  graph: ModelGraph,
  g: OnnxGraph,
  parent: number,
  depth: number,
  source: ByteSource,
  pending: Promise<void>[],
  ignoreValueInfo: boolean,
  attribute = '',
): void {
  const subgraphId = parent >= 0 ? `${parent}:${attribute}` : undefined;
  if (subgraphId) {
    graph.subgraphs ??= new Map();
    graph.subgraphs.set(subgraphId, {
      id: subgraphId,
      parent,
      attribute,
      name: g.name,
      inputs: g.inputs.map((i) => i.name),
      outputs: g.outputs.map((o) => o.name),
      nodes: [],
    });
  }
  const tensors = graph.tensors;
  const ensure = (name: string): GraphTensor => {
    let t = tensors.get(name);
    if (!t) {
      t = { name, dtype: 'unknown', isWeight: false, elements: 0, bytes: 0, consumers: [] };
      tensors.set(name, t);
    }
    return t;
  };
  for (const v of [...g.inputs, ...(ignoreValueInfo ? [] : [...g.valueInfo, ...g.outputs])]) {
    if (!v.name) continue;
    const existing = tensors.get(v.name);
    if (!existing) tensors.set(v.name, valueInfoTensor(v));
    else if (!existing.shape && !existing.isWeight) {
      Object.assign(existing, { ...valueInfoTensor(v), consumers: existing.consumers, producer: existing.producer });
    }
  }
  for (const init of g.initializers) {
    const t = weightTensor(init.name, init);
    tensors.set(init.name, t);
    loadSmallValue(t, init, source, pending);
  }
  for (const sp of g.sparseInitializers) {
    const name = sp.values?.name ?? '';
    const elements = sp.dims.reduce((p, d) => p * d, 1);
    const t: GraphTensor = {
      name,
      dtype: onnxDtypeName(sp.values?.dataType ?? 0),
      shape: [...sp.dims],
      isWeight: true,
      elements,
      bytes:
        Math.ceil(((sp.values?.elements ?? 0) * (dtypeBits(sp.values?.dataType ?? 0) ?? 8)) / 8) +
        Math.ceil(((sp.indices?.elements ?? 0) * (dtypeBits(sp.indices?.dataType ?? 0) ?? 64)) / 8),
      consumers: [],
      ref: sp.values ? { format: 'onnx', tensor: sp.values } : undefined,
    };
    tensors.set(name, t);
  }
  for (const n of g.nodes) {
    const node: GraphNode = {
      index: graph.nodes.length,
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      inputs: n.inputs,
      outputs: n.outputs,
      attributes: {},
      parent,
      depth,
      layer: 0,
      known: false,
      flops: 0,
      bytesMoved: 0,
    };
    if (subgraphId) {
      node.subgraph = subgraphId;
      graph.subgraphs!.get(subgraphId)!.nodes.push(node.index);
    }
    graph.nodes.push(node);
    // Indexed loops: once per node and input while a model opens, mostly before V8 optimizes this.
    for (let k = 0; k < n.attributes.length; k++) {
      node.attributes[n.attributes[k].name] = attrValue(n.attributes[k], graph);
    }
    for (let k = 0; k < n.inputs.length; k++) if (n.inputs[k]) ensure(n.inputs[k]).consumers.push(node.index);
    for (let k = 0; k < n.outputs.length; k++) if (n.outputs[k]) ensure(n.outputs[k]).producer = node.index;
    if (n.opType === 'Constant' && (n.domain === '' || n.domain === 'ai.onnx') && n.outputs[0]) {
      const c = constantTensor(n);
      if (c) {
        const out = tensors.get(n.outputs[0])!;
        const bits = c.tensor ? (dtypeBits(c.tensor.dataType) ?? 8) : c.dtype === 'string' ? 8 : 32;
        Object.assign(out, {
          dtype: c.dtype,
          shape: [...c.dims],
          isWeight: true,
          elements: c.elements,
          bytes: Math.ceil((c.elements * bits) / 8),
          ref: c.tensor ? { format: 'onnx', tensor: c.tensor } : undefined,
        });
        // Exporters may write two Constants with one output name (onnxruntime's GPT-2 test model): the
        // last one is the tensor's value, as in onnxruntime ("the model will use the latest encountered").
        delete out.value;
        const index = node.index;
        if (c.tensor) loadSmallValue(out, c.tensor, source, pending, () => out.producer === index);
        const a = n.attributes.find((x) => x.name === 'value_ints' || x.name === 'value_int');
        if (a) out.value = a.name === 'value_int' ? [a.i ?? 0] : [...a.ints];
      }
    }
    if (n.opType === 'ConstantOfShape') loadFillValue(node, n.attributes, source, pending);
    for (let k = 0; k < n.attributes.length; k++) {
      const a = n.attributes[k];
      if (a.g) addGraph(graph, a.g, node.index, depth + 1, source, pending, ignoreValueInfo, a.name);
      for (let i = 0; i < a.graphs.length; i++) {
        addGraph(graph, a.graphs[i], node.index, depth + 1, source, pending, ignoreValueInfo, `${a.name}[${i}]`);
      }
    }
  }
}
