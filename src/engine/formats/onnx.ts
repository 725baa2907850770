import type { ByteSource } from '../bytes';
import { AttributeType, DataLocation, DataType, F } from './onnx-schema.generated';
import { ProtoReader, Wire } from './protobuf';
import { dtypeBits, onnxDtypeName } from '../graph/dtypes';

/** Where a tensor's bytes live. Parsing never copies them; `loadTensorBytes` reads them on demand. */
export type TensorData =
  | { kind: 'none' }
  /** raw_data inside the model file. */
  | { kind: 'raw'; offset: number; length: number }
  /** external_data: a file beside the model; `length` undefined means "to the end of the file". */
  | { kind: 'external'; location: string; offset: number; length?: number }
  /** Typed repeated fields (float_data, int32_data, …) inside the model file, packed or not. */
  | { kind: 'fields'; field: TypedField; ranges: { offset: number; length: number; packed: boolean }[] }
  /** string_data, held in memory (strings are small and need decoding anyway). */
  | { kind: 'strings'; values: Uint8Array[] }
  /** Bytes in the raw_data layout held in memory: a tensor built by the writer's callers (onnx-write.ts), never by the reader. */
  | { kind: 'inline'; bytes: Uint8Array };

export type TypedField = 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data';

export interface OnnxTensor {
  name: string;
  dataType: number;
  dims: number[];
  data: TensorData;
  docString: string;
  /** Element count (product of dims); a float, so absurd declarations stay finite. */
  elements: number;
}

export interface OnnxSparseTensor {
  values?: OnnxTensor;
  indices?: OnnxTensor;
  dims: number[];
}

export type Dim = number | string | null;

export type OnnxType =
  | { kind: 'tensor'; elemType: number; shape?: Dim[]; denotation?: string }
  | { kind: 'sparse_tensor'; elemType: number; shape?: Dim[]; denotation?: string }
  | { kind: 'sequence'; elem?: OnnxType; denotation?: string }
  | { kind: 'optional'; elem?: OnnxType; denotation?: string }
  | { kind: 'map'; keyType: number; value?: OnnxType; denotation?: string }
  | { kind: 'unknown'; denotation?: string };

export interface OnnxValueInfo {
  name: string;
  type?: OnnxType;
  docString: string;
}

export interface OnnxAttribute {
  name: string;
  type: number;
  refAttrName?: string;
  docString?: string;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: OnnxTensor;
  g?: OnnxGraph;
  sparseTensor?: OnnxSparseTensor;
  tp?: OnnxType;
  floats: number[];
  ints: number[];
  strings: Uint8Array[];
  tensors: OnnxTensor[];
  graphs: OnnxGraph[];
  sparseTensors: OnnxSparseTensor[];
  typeProtos: OnnxType[];
}

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  overload: string;
  inputs: string[];
  outputs: string[];
  attributes: OnnxAttribute[];
  docString: string;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  sparseInitializers: OnnxSparseTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
  docString: string;
}

export interface OpsetId {
  domain: string;
  version: number;
}

export interface OnnxFunction {
  name: string;
  domain: string;
  overload: string;
  inputs: string[];
  outputs: string[];
  attributes: string[];
  attributeProtos: OnnxAttribute[];
  nodes: OnnxNode[];
  opsetImport: OpsetId[];
  valueInfo: OnnxValueInfo[];
  docString: string;
}

export interface OnnxModel {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  opsetImport: OpsetId[];
  metadata: Record<string, string>;
  graph: OnnxGraph;
  functions: OnnxFunction[];
  /** Training-info graphs (initialization / algorithm), rarely present. */
  trainingGraphs: OnnxGraph[];
}

/** Bounds that keep a malicious file from exhausting memory or the stack. */
const MAX_DEPTH = 48;
const MAX_REPEATED = 1 << 24;

const dataTypeFieldFor: Record<number, TypedField> = {
  [F.TensorProto.floatData]: 'floatData',
  [F.TensorProto.int32Data]: 'int32Data',
  [F.TensorProto.int64Data]: 'int64Data',
  [F.TensorProto.doubleData]: 'doubleData',
  [F.TensorProto.uint64Data]: 'uint64Data',
};

/** Magic check: does this look like an ONNX ModelProto? (field 1 ir_version varint or 7 graph / 8 opset first) */
export function looksLikeOnnx(head: Uint8Array): boolean {
  if (head.length < 2) return false;
  const tag = head[0];
  const field = tag >> 3;
  const wire = tag & 7;
  return (wire === Wire.Varint && field === F.ModelProto.irVersion) || (wire === Wire.Len && field >= 2 && field <= 8);
}

/** Parses an ONNX ModelProto from a ByteSource without reading tensor payloads. */
export function readOnnxModel(source: ByteSource): OnnxModel {
  if (source.size === 0) throw new ProtoReader(source).fail('empty file, not an ONNX model');
  const r = new ProtoReader(source);
  const model = readModel(r, source.size);
  if (
    !model.graph.nodes.length &&
    !model.graph.initializers.length &&
    !model.graph.inputs.length &&
    !model.opsetImport.length
  ) {
    r.fail('not an ONNX model: no graph, nodes or opset imports found');
  }
  return model;
}

class Ctx {
  depth = 0;
  constructor(readonly r: ProtoReader) {}
  nested<T>(end: number, what: string, fn: (end: number) => T): T {
    const stop = this.r.lengthPrefix(end, what);
    if (++this.depth > MAX_DEPTH) this.r.fail(`${what} nested more than ${MAX_DEPTH} levels deep`);
    const value = fn(stop);
    this.depth--;
    if (this.r.pos !== stop) this.r.fail(`${what} ends at ${this.r.pos}, expected ${stop}`);
    return value;
  }
}

function expectLen(r: ProtoReader, wire: number, what: string): void {
  if (wire !== Wire.Len) {
    r.fail(`${what}: wire type ${wire} where a length-delimited field was expected at offset ${r.pos}`);
  }
}

function readModel(r: ProtoReader, end: number): OnnxModel {
  const c = new Ctx(r);
  const m: OnnxModel = {
    irVersion: 0,
    producerName: '',
    producerVersion: '',
    domain: '',
    modelVersion: 0,
    docString: '',
    opsetImport: [],
    metadata: {},
    graph: emptyGraph(),
    functions: [],
    trainingGraphs: [],
  };
  const M = F.ModelProto;
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    switch (field) {
      case M.irVersion:
        m.irVersion = r.scalar(wire, end);
        break;
      case M.producerName:
        expectLen(r, wire, 'producer_name');
        m.producerName = r.string(end);
        break;
      case M.producerVersion:
        expectLen(r, wire, 'producer_version');
        m.producerVersion = r.string(end);
        break;
      case M.domain:
        expectLen(r, wire, 'domain');
        m.domain = r.string(end);
        break;
      case M.modelVersion:
        m.modelVersion = r.scalar(wire, end);
        break;
      case M.docString:
        expectLen(r, wire, 'doc_string');
        m.docString = r.string(end);
        break;
      case M.graph:
        expectLen(r, wire, 'graph');
        m.graph = c.nested(end, 'graph', (e) => readGraph(c, e));
        break;
      case M.opsetImport:
        expectLen(r, wire, 'opset_import');
        m.opsetImport.push(c.nested(end, 'opset_import', (e) => readOpset(c, e)));
        break;
      case M.metadataProps: {
        expectLen(r, wire, 'metadata_props');
        const [k, v] = c.nested(end, 'metadata_props', (e) => readEntry(c, e));
        m.metadata[k] = v;
        break;
      }
      case M.functions:
        expectLen(r, wire, 'functions');
        m.functions.push(c.nested(end, 'function', (e) => readFunction(c, e)));
        break;
      case M.trainingInfo:
        expectLen(r, wire, 'training_info');
        m.trainingGraphs.push(...c.nested(end, 'training_info', (e) => readTrainingInfo(c, e)));
        break;
      default:
        r.skip(wire, end);
    }
  }
  if (r.pos !== end) r.fail(`model ends at ${r.pos}, expected ${end}`);
  return m;
}

function emptyGraph(): OnnxGraph {
  return {
    name: '',
    nodes: [],
    initializers: [],
    sparseInitializers: [],
    inputs: [],
    outputs: [],
    valueInfo: [],
    docString: '',
  };
}

function readTrainingInfo(c: Ctx, end: number): OnnxGraph[] {
  const r = c.r;
  const graphs: OnnxGraph[] = [];
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    if (
      (field === F.TrainingInfoProto.initialization || field === F.TrainingInfoProto.algorithm) &&
      wire === Wire.Len
    ) {
      graphs.push(c.nested(end, 'training graph', (e) => readGraph(c, e)));
    } else r.skip(wire, end);
  }
  return graphs;
}

function readOpset(c: Ctx, end: number): OpsetId {
  const r = c.r;
  const o: OpsetId = { domain: '', version: 0 };
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    if (field === F.OperatorSetIdProto.domain && wire === Wire.Len) o.domain = r.string(end);
    else if (field === F.OperatorSetIdProto.version) o.version = r.scalar(wire, end);
    else r.skip(wire, end);
  }
  return o;
}

function readEntry(c: Ctx, end: number): [string, string] {
  const r = c.r;
  let key = '';
  let value = '';
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    if (field === F.StringStringEntryProto.key && wire === Wire.Len) key = r.string(end);
    else if (field === F.StringStringEntryProto.value && wire === Wire.Len) value = r.string(end);
    else r.skip(wire, end);
  }
  return [key, value];
}

function readGraph(c: Ctx, end: number): OnnxGraph {
  const r = c.r;
  const g = emptyGraph();
  const G = F.GraphProto;
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    switch (field) {
      case G.node:
        expectLen(r, wire, 'node');
        g.nodes.push(c.nested(end, 'node', (e) => readNode(c, e)));
        break;
      case G.name:
        expectLen(r, wire, 'graph name');
        g.name = r.string(end);
        break;
      case G.initializer:
        expectLen(r, wire, 'initializer');
        g.initializers.push(c.nested(end, 'initializer', (e) => readTensor(c, e)));
        break;
      case G.sparseInitializer:
        expectLen(r, wire, 'sparse_initializer');
        g.sparseInitializers.push(c.nested(end, 'sparse_initializer', (e) => readSparse(c, e)));
        break;
      case G.docString:
        expectLen(r, wire, 'doc_string');
        g.docString = r.string(end);
        break;
      case G.input:
        expectLen(r, wire, 'input');
        g.inputs.push(c.nested(end, 'input', (e) => readValueInfo(c, e)));
        break;
      case G.output:
        expectLen(r, wire, 'output');
        g.outputs.push(c.nested(end, 'output', (e) => readValueInfo(c, e)));
        break;
      case G.valueInfo:
        expectLen(r, wire, 'value_info');
        g.valueInfo.push(c.nested(end, 'value_info', (e) => readValueInfo(c, e)));
        break;
      default:
        r.skip(wire, end);
    }
    if (g.nodes.length > MAX_REPEATED) r.fail(`graph has more than ${MAX_REPEATED} nodes`);
  }
  return g;
}

function readNode(c: Ctx, end: number): OnnxNode {
  const r = c.r;
  const n: OnnxNode = {
    name: '',
    opType: '',
    domain: '',
    overload: '',
    inputs: [],
    outputs: [],
    attributes: [],
    docString: '',
  };
  const N = F.NodeProto;
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    switch (field) {
      case N.input:
        expectLen(r, wire, 'node input');
        n.inputs.push(r.string(end));
        break;
      case N.output:
        expectLen(r, wire, 'node output');
        n.outputs.push(r.string(end));
        break;
      case N.name:
        expectLen(r, wire, 'node name');
        n.name = r.string(end);
        break;
      case N.opType:
        expectLen(r, wire, 'op_type');
        n.opType = r.string(end);
        break;
      case N.domain:
        expectLen(r, wire, 'node domain');
        n.domain = r.string(end);
        break;
      case N.overload:
        expectLen(r, wire, 'node overload');
        n.overload = r.string(end);
        break;
      case N.docString:
        expectLen(r, wire, 'doc_string');
        n.docString = r.string(end);
        break;
      case N.attribute:
        expectLen(r, wire, 'attribute');
        n.attributes.push(c.nested(end, 'attribute', (e) => readAttribute(c, e)));
        break;
      default:
        r.skip(wire, end);
    }
    if (n.inputs.length + n.outputs.length + n.attributes.length > MAX_REPEATED) {
      r.fail('node has too many inputs, outputs or attributes');
    }
  }
  return n;
}

function readAttribute(c: Ctx, end: number): OnnxAttribute {
  const r = c.r;
  const a: OnnxAttribute = {
    name: '',
    type: 0,
    floats: [],
    ints: [],
    strings: [],
    tensors: [],
    graphs: [],
    sparseTensors: [],
    typeProtos: [],
  };
  const A = F.AttributeProto;
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    switch (field) {
      case A.name:
        expectLen(r, wire, 'attribute name');
        a.name = r.string(end);
        break;
      case A.refAttrName:
        expectLen(r, wire, 'ref_attr_name');
        a.refAttrName = r.string(end);
        break;
      case A.docString:
        expectLen(r, wire, 'doc_string');
        a.docString = r.string(end);
        break;
      case A.type:
        a.type = r.scalar(wire, end);
        break;
      case A.f:
        a.f = r.float(wire, end);
        break;
      case A.i:
        a.i = r.scalar(wire, end);
        break;
      case A.s:
        expectLen(r, wire, 'attribute s');
        a.s = r.byteString(end);
        break;
      case A.t:
        expectLen(r, wire, 'attribute t');
        a.t = c.nested(end, 'attribute tensor', (e) => readTensor(c, e));
        break;
      case A.g:
        expectLen(r, wire, 'attribute g');
        a.g = c.nested(end, 'subgraph', (e) => readGraph(c, e));
        break;
      case A.sparseTensor:
        expectLen(r, wire, 'sparse_tensor');
        a.sparseTensor = c.nested(end, 'sparse tensor', (e) => readSparse(c, e));
        break;
      case A.tp:
        expectLen(r, wire, 'tp');
        a.tp = c.nested(end, 'type', (e) => readType(c, e));
        break;
      case A.floats:
        r.floats(wire, end, a.floats, MAX_REPEATED);
        break;
      case A.ints:
        r.int64s(wire, end, a.ints, MAX_REPEATED);
        break;
      case A.strings:
        expectLen(r, wire, 'strings');
        a.strings.push(r.byteString(end));
        break;
      case A.tensors:
        expectLen(r, wire, 'tensors');
        a.tensors.push(c.nested(end, 'attribute tensor', (e) => readTensor(c, e)));
        break;
      case A.graphs:
        expectLen(r, wire, 'graphs');
        a.graphs.push(c.nested(end, 'subgraph', (e) => readGraph(c, e)));
        break;
      case A.sparseTensors:
        expectLen(r, wire, 'sparse_tensors');
        a.sparseTensors.push(c.nested(end, 'sparse tensor', (e) => readSparse(c, e)));
        break;
      case A.typeProtos:
        expectLen(r, wire, 'type_protos');
        a.typeProtos.push(c.nested(end, 'type', (e) => readType(c, e)));
        break;
      default:
        r.skip(wire, end);
    }
    if (a.strings.length + a.tensors.length + a.graphs.length > MAX_REPEATED) r.fail('attribute has too many values');
  }
  if (!a.type) a.type = inferAttributeType(a);
  return a;
}

/** IR < 3 models may omit AttributeProto.type; infer it from the field that is set. */
function inferAttributeType(a: OnnxAttribute): number {
  const T = AttributeType;
  if (a.f !== undefined) return T.FLOAT;
  if (a.i !== undefined) return T.INT;
  if (a.s !== undefined) return T.STRING;
  if (a.t) return T.TENSOR;
  if (a.g) return T.GRAPH;
  if (a.floats.length) return T.FLOATS;
  if (a.ints.length) return T.INTS;
  if (a.strings.length) return T.STRINGS;
  if (a.tensors.length) return T.TENSORS;
  if (a.graphs.length) return T.GRAPHS;
  return T.UNDEFINED;
}

function readTensor(c: Ctx, end: number): OnnxTensor {
  const r = c.r;
  const t: OnnxTensor = { name: '', dataType: 0, dims: [], data: { kind: 'none' }, docString: '', elements: 1 };
  const T = F.TensorProto;
  let location = DataLocation.DEFAULT as number;
  const external: Record<string, string> = {};
  const strings: Uint8Array[] = [];
  let fields: Extract<TensorData, { kind: 'fields' }> | undefined;
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    switch (field) {
      case T.dims:
        r.int64s(wire, end, t.dims, 64);
        break;
      case T.dataType:
        t.dataType = r.scalar(wire, end);
        break;
      case T.name:
        expectLen(r, wire, 'tensor name');
        t.name = r.string(end);
        break;
      case T.docString:
        expectLen(r, wire, 'doc_string');
        t.docString = r.string(end);
        break;
      case T.rawData: {
        expectLen(r, wire, 'raw_data');
        const stop = r.lengthPrefix(end, 'raw_data');
        t.data = { kind: 'raw', offset: r.pos, length: stop - r.pos };
        r.pos = stop;
        break;
      }
      case T.externalData: {
        expectLen(r, wire, 'external_data');
        const [k, v] = c.nested(end, 'external_data', (e) => readEntry(c, e));
        external[k] = v;
        break;
      }
      case T.dataLocation:
        location = r.scalar(wire, end);
        break;
      case T.stringData:
        expectLen(r, wire, 'string_data');
        strings.push(r.byteString(end));
        if (strings.length > MAX_REPEATED) r.fail('too many strings in a tensor');
        break;
      case T.floatData:
      case T.int32Data:
      case T.int64Data:
      case T.doubleData:
      case T.uint64Data: {
        const name = dataTypeFieldFor[field];
        if (!fields || fields.field !== name) fields = { kind: 'fields', field: name, ranges: [] };
        const start = r.pos;
        if (wire === Wire.Len) {
          const stop = r.lengthPrefix(end, name);
          fields.ranges.push({ offset: r.pos, length: stop - r.pos, packed: true });
          r.pos = stop;
        } else {
          r.skip(wire, end);
          fields.ranges.push({ offset: start, length: r.pos - start, packed: false });
          if (fields.ranges.length > MAX_REPEATED) r.fail('too many unpacked values in a tensor');
        }
        break;
      }
      default:
        r.skip(wire, end);
    }
  }
  for (const d of t.dims) {
    if (d < 0) r.fail(`tensor '${t.name}' has a negative dimension ${d}`);
    t.elements *= d;
  }
  if (location === DataLocation.EXTERNAL) {
    const loc = external.location;
    if (!loc) r.fail(`tensor '${t.name}' is stored externally but names no location`);
    const offset = external.offset !== undefined ? Number(external.offset) : 0;
    const length = external.length !== undefined ? Number(external.length) : undefined;
    if (
      !Number.isSafeInteger(offset) ||
      offset < 0 ||
      (length !== undefined && (!Number.isSafeInteger(length) || length < 0))
    ) {
      r.fail(`tensor '${t.name}' has an invalid external offset/length (${external.offset}, ${external.length})`);
    }
    t.data = { kind: 'external', location: loc, offset, length };
  } else if (strings.length) t.data = { kind: 'strings', values: strings };
  else if (fields && t.data.kind === 'none') t.data = fields;
  checkDeclaredSize(r, t);
  return t;
}

/** A tensor's declared element count must match the bytes it holds (catches 10^15-element claims). */
function checkDeclaredSize(r: ProtoReader, t: OnnxTensor): void {
  const bits = dtypeBits(t.dataType);
  const label = `tensor '${t.name}' (${onnxDtypeName(t.dataType)}, dims [${t.dims.join(', ')}])`;
  if (t.data.kind === 'raw') {
    if (bits === undefined) r.fail(`${label} has raw data but an unknown data type ${t.dataType}`);
    const expected = Math.ceil((t.elements * bits) / 8);
    if (expected !== t.data.length) {
      r.fail(`${label} declares ${t.elements} elements (${expected} bytes) but holds ${t.data.length} bytes`);
    }
  } else if (t.data.kind === 'external') {
    if (bits !== undefined && t.data.length !== undefined) {
      const expected = Math.ceil((t.elements * bits) / 8);
      if (expected !== t.data.length) {
        r.fail(
          `${label} declares ${t.elements} elements (${expected} bytes) but its external data has ${t.data.length} bytes`,
        );
      }
    }
  } else if (t.data.kind === 'none') {
    if (t.elements > 0 && t.dims.length > 0 && t.dataType !== DataType.UNDEFINED) {
      // A tensor with a shape and no data at all is invalid (onnx.checker agrees); empty tensors are fine.
      r.fail(`${label} declares ${t.elements} elements but holds no data`);
    }
  } else if (t.data.kind === 'strings') {
    if (t.data.values.length !== t.elements) {
      r.fail(`${label} declares ${t.elements} strings but holds ${t.data.values.length}`);
    }
  } else if (t.data.kind === 'fields') {
    const total = t.data.ranges.reduce((s, x) => s + x.length, 0);
    // Each element takes at least one byte in any typed field; 4-bit and 2-bit types pack into int32_data per byte.
    const perElement = bits !== undefined && bits < 8 ? bits / 8 : 1;
    if (t.elements * perElement > total * 1) {
      r.fail(`${label} declares ${t.elements} elements but its ${t.data.field} holds only ${total} bytes`);
    }
  }
}

function readSparse(c: Ctx, end: number): OnnxSparseTensor {
  const r = c.r;
  const s: OnnxSparseTensor = { dims: [] };
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    if (field === F.SparseTensorProto.values && wire === Wire.Len) {
      s.values = c.nested(end, 'sparse values', (e) => readTensor(c, e));
    } else if (field === F.SparseTensorProto.indices && wire === Wire.Len) {
      s.indices = c.nested(end, 'sparse indices', (e) => readTensor(c, e));
    } else if (field === F.SparseTensorProto.dims) r.int64s(wire, end, s.dims, 64);
    else r.skip(wire, end);
  }
  return s;
}

function readValueInfo(c: Ctx, end: number): OnnxValueInfo {
  const r = c.r;
  const v: OnnxValueInfo = { name: '', docString: '' };
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    if (field === F.ValueInfoProto.name && wire === Wire.Len) v.name = r.string(end);
    else if (field === F.ValueInfoProto.type && wire === Wire.Len) {
      v.type = c.nested(end, 'type', (e) => readType(c, e));
    } else if (field === F.ValueInfoProto.docString && wire === Wire.Len) v.docString = r.string(end);
    else r.skip(wire, end);
  }
  return v;
}

function readType(c: Ctx, end: number): OnnxType {
  const r = c.r;
  let t: OnnxType = { kind: 'unknown' };
  let denotation: string | undefined;
  const P = F.TypeProto;
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    if (field === P.denotation && wire === Wire.Len) denotation = r.string(end);
    else if ((field === P.tensorType || field === P.sparseTensorType) && wire === Wire.Len) {
      const kind = field === P.tensorType ? 'tensor' : 'sparse_tensor';
      t = c.nested(end, 'tensor type', (e) => {
        const out: { kind: 'tensor' | 'sparse_tensor'; elemType: number; shape?: Dim[] } = { kind, elemType: 0 };
        while (r.pos < e) {
          const f2 = r.field(e);
          const w2 = r.wire;
          if (f2 === F.TypeProtoTensor.elemType) out.elemType = r.scalar(w2, e);
          else if (f2 === F.TypeProtoTensor.shape && w2 === Wire.Len) {
            out.shape = c.nested(e, 'shape', (e2) => readShape(c, e2));
          } else r.skip(w2, e);
        }
        return out;
      });
    } else if ((field === P.sequenceType || field === P.optionalType) && wire === Wire.Len) {
      const kind = field === P.sequenceType ? 'sequence' : 'optional';
      t = c.nested(end, `${kind} type`, (e) => {
        let elem: OnnxType | undefined;
        while (r.pos < e) {
          const f2 = r.field(e);
          const w2 = r.wire;
          if (f2 === 1 && w2 === Wire.Len) elem = c.nested(e, 'element type', (e2) => readType(c, e2));
          else r.skip(w2, e);
        }
        return { kind, elem };
      });
    } else if (field === P.mapType && wire === Wire.Len) {
      t = c.nested(end, 'map type', (e) => {
        const out: { kind: 'map'; keyType: number; value?: OnnxType } = { kind: 'map', keyType: 0 };
        while (r.pos < e) {
          const f2 = r.field(e);
          const w2 = r.wire;
          if (f2 === F.TypeProtoMap.keyType) out.keyType = r.scalar(w2, e);
          else if (f2 === F.TypeProtoMap.valueType && w2 === Wire.Len) {
            out.value = c.nested(e, 'value type', (e2) => readType(c, e2));
          } else r.skip(w2, e);
        }
        return out;
      });
    } else r.skip(wire, end);
  }
  if (denotation !== undefined) t.denotation = denotation;
  return t;
}

function readShape(c: Ctx, end: number): Dim[] {
  const r = c.r;
  const dims: Dim[] = [];
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    if (field === F.TensorShapeProto.dim && wire === Wire.Len) {
      dims.push(
        c.nested(end, 'dimension', (e) => {
          let d: Dim = null;
          while (r.pos < e) {
            const f2 = r.field(e);
            const w2 = r.wire;
            if (f2 === F.Dimension.dimValue) d = r.scalar(w2, e);
            else if (f2 === F.Dimension.dimParam && w2 === Wire.Len) d = r.string(e);
            else r.skip(w2, e);
          }
          return d;
        }),
      );
      if (dims.length > 64) r.fail('a shape with more than 64 dimensions');
    } else r.skip(wire, end);
  }
  return dims;
}

function readFunction(c: Ctx, end: number): OnnxFunction {
  const r = c.r;
  const fn: OnnxFunction = {
    name: '',
    domain: '',
    overload: '',
    inputs: [],
    outputs: [],
    attributes: [],
    attributeProtos: [],
    nodes: [],
    opsetImport: [],
    valueInfo: [],
    docString: '',
  };
  const P = F.FunctionProto;
  while (r.pos < end) {
    const field = r.field(end);
    const wire = r.wire;
    if (wire === Wire.Len) {
      switch (field) {
        case P.name:
          fn.name = r.string(end);
          continue;
        case P.domain:
          fn.domain = r.string(end);
          continue;
        case P.overload:
          fn.overload = r.string(end);
          continue;
        case P.docString:
          fn.docString = r.string(end);
          continue;
        case P.input:
          fn.inputs.push(r.string(end));
          continue;
        case P.output:
          fn.outputs.push(r.string(end));
          continue;
        case P.attribute:
          fn.attributes.push(r.string(end));
          continue;
        case P.attributeProto:
          fn.attributeProtos.push(c.nested(end, 'attribute', (e) => readAttribute(c, e)));
          continue;
        case P.node:
          fn.nodes.push(c.nested(end, 'node', (e) => readNode(c, e)));
          continue;
        case P.opsetImport:
          fn.opsetImport.push(c.nested(end, 'opset_import', (e) => readOpset(c, e)));
          continue;
        case P.valueInfo:
          fn.valueInfo.push(c.nested(end, 'value_info', (e) => readValueInfo(c, e)));
          continue;
      }
    }
    r.skip(wire, end);
  }
  return fn;
}

/** Subgraphs held by a node's attributes (If branches, Loop/Scan bodies). */
export function subgraphsOf(node: OnnxNode): OnnxGraph[] {
  const out: OnnxGraph[] = [];
  for (const a of node.attributes) {
    if (a.g) out.push(a.g);
    out.push(...a.graphs);
  }
  return out;
}

/** Parses a standalone TensorProto (the ONNX test data `.pb` files), lazily like initializers. */
export function readOnnxTensor(source: ByteSource): OnnxTensor {
  const r = new ProtoReader(source);
  return readTensor(new Ctx(r), source.size);
}
