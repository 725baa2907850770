import { AttributeType, DataLocation, F } from './onnx-schema.generated';
import type {
  OnnxAttribute,
  OnnxFunction,
  OnnxGraph,
  OnnxModel,
  OnnxNode,
  OnnxSparseTensor,
  OnnxTensor,
  OnnxType,
  OnnxValueInfo,
} from './onnx';

/**
 * Writes an ONNX ModelProto: what the reader (onnx.ts) parses, back to protobuf. Tensor payloads
 * are written as raw_data (typed repeated fields are converted; strings stay string_data) or as
 * external-data references; bytes that live in the source model are fetched through `load` while
 * encoding, so a caller decides where they come from. Nested messages are kept as lists of chunks
 * and joined once, so a tensor's bytes are copied a single time. Training-info graphs are not
 * written (the reader flattens them; an exported inference model does not need them).
 */
export type TensorLoader = (t: OnnxTensor) => Promise<Uint8Array>;

const utf8 = new TextEncoder();

/** A message being built: chunks plus their total length; small scalars collect in `pending`. */
class Msg {
  private readonly parts: Uint8Array[] = [];
  private pending: number[] = [];
  length = 0;

  private flush(): void {
    if (!this.pending.length) return;
    this.parts.push(Uint8Array.from(this.pending));
    this.pending = [];
  }

  private byte(b: number): void {
    this.pending.push(b);
    this.length++;
  }

  varint(n: number): void {
    if (n < 0) {
      // int64 two's complement: ten bytes.
      let v = BigInt.asUintN(64, BigInt(n));
      for (let i = 0; i < 10; i++) {
        const b = Number(v & 0x7fn);
        v >>= 7n;
        this.byte(v ? b | 0x80 : b);
        if (!v) return;
      }
      return;
    }
    if (!Number.isSafeInteger(n)) throw new Error(`cannot encode ${n} as a protobuf varint`);
    while (n > 127) {
      this.byte((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    this.byte(n);
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  raw(b: Uint8Array): void {
    if (b.length < 64) {
      for (const x of b) this.byte(x);
      return;
    }
    this.flush();
    this.parts.push(b);
    this.length += b.length;
  }

  int(field: number, n: number | undefined): void {
    if (n === undefined || n === 0) return;
    this.tag(field, 0);
    this.varint(n);
  }

  float(field: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.tag(field, 5);
    this.raw(b);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.raw(b);
  }

  string(field: number, s: string | undefined): void {
    if (s) this.bytes(field, utf8.encode(s));
  }

  message(field: number, m: Msg): void {
    this.tag(field, 2);
    this.varint(m.length);
    m.flush();
    this.flush();
    this.parts.push(...m.parts);
    this.length += m.length;
  }

  packedInts(field: number, values: readonly number[]): void {
    if (!values.length) return;
    const inner = new Msg();
    for (const v of values) inner.varint(v);
    this.message(field, inner);
  }

  packedFloats(field: number, values: readonly number[]): void {
    if (!values.length) return;
    const b = new Uint8Array(values.length * 4);
    const dv = new DataView(b.buffer);
    values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    this.bytes(field, b);
  }

  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

export async function encodeOnnxModel(model: OnnxModel, load: TensorLoader): Promise<Uint8Array> {
  const M = F.ModelProto;
  const m = new Msg();
  m.int(M.irVersion, model.irVersion);
  for (const o of model.opsetImport) m.message(M.opsetImport, opset(o.domain, o.version));
  m.string(M.producerName, model.producerName);
  m.string(M.producerVersion, model.producerVersion);
  m.string(M.domain, model.domain);
  m.int(M.modelVersion, model.modelVersion);
  m.string(M.docString, model.docString);
  m.message(M.graph, await graph(model.graph, load));
  for (const [k, v] of Object.entries(model.metadata)) m.message(M.metadataProps, entry(k, v));
  for (const f of model.functions) m.message(M.functions, await fn(f, load));
  return m.finish();
}

/** One TensorProto on its own (the ONNX test-data `.pb` layout). */
export async function encodeOnnxTensor(t: OnnxTensor, load: TensorLoader): Promise<Uint8Array> {
  return (await tensor(t, load)).finish();
}

function opset(domain: string, version: number): Msg {
  const m = new Msg();
  m.string(F.OperatorSetIdProto.domain, domain);
  m.int(F.OperatorSetIdProto.version, version);
  return m;
}

function entry(k: string, v: string): Msg {
  const m = new Msg();
  m.string(F.StringStringEntryProto.key, k);
  m.string(F.StringStringEntryProto.value, v);
  return m;
}

async function graph(g: OnnxGraph, load: TensorLoader): Promise<Msg> {
  const G = F.GraphProto;
  const m = new Msg();
  for (const n of g.nodes) m.message(G.node, await node(n, load));
  m.string(G.name, g.name);
  for (const t of g.initializers) m.message(G.initializer, await tensor(t, load));
  for (const s of g.sparseInitializers) m.message(G.sparseInitializer, await sparse(s, load));
  m.string(G.docString, g.docString);
  for (const v of g.inputs) m.message(G.input, valueInfo(v));
  for (const v of g.outputs) m.message(G.output, valueInfo(v));
  for (const v of g.valueInfo) m.message(G.valueInfo, valueInfo(v));
  return m;
}

async function node(n: OnnxNode, load: TensorLoader): Promise<Msg> {
  const N = F.NodeProto;
  const m = new Msg();
  // Empty names are optional inputs and outputs left out: they keep their place.
  for (const i of n.inputs) m.bytes(N.input, utf8.encode(i));
  for (const o of n.outputs) m.bytes(N.output, utf8.encode(o));
  m.string(N.name, n.name);
  m.string(N.opType, n.opType);
  for (const a of n.attributes) m.message(N.attribute, await attribute(a, load));
  m.string(N.docString, n.docString);
  m.string(N.domain, n.domain);
  m.string(N.overload, n.overload);
  return m;
}

async function attribute(a: OnnxAttribute, load: TensorLoader): Promise<Msg> {
  const A = F.AttributeProto;
  const m = new Msg();
  m.string(A.name, a.name);
  m.string(A.refAttrName, a.refAttrName);
  m.string(A.docString, a.docString);
  m.int(A.type, a.type);
  // The value field of the attribute's type is written even when it is zero (f = 0, i = 0 are values).
  if (a.f !== undefined) m.float(A.f, a.f);
  else if (a.type === AttributeType.FLOAT) m.float(A.f, 0);
  if (a.i !== undefined || a.type === AttributeType.INT) {
    m.tag(A.i, 0);
    m.varint(a.i ?? 0);
  }
  if (a.s !== undefined) m.bytes(A.s, a.s);
  if (a.t) m.message(A.t, await tensor(a.t, load));
  if (a.g) m.message(A.g, await graph(a.g, load));
  if (a.sparseTensor) m.message(A.sparseTensor, await sparse(a.sparseTensor, load));
  if (a.tp) m.message(A.tp, type(a.tp));
  m.packedFloats(A.floats, a.floats);
  m.packedInts(A.ints, a.ints);
  for (const s of a.strings) m.bytes(A.strings, s);
  for (const t of a.tensors) m.message(A.tensors, await tensor(t, load));
  for (const g of a.graphs) m.message(A.graphs, await graph(g, load));
  for (const s of a.sparseTensors) m.message(A.sparseTensors, await sparse(s, load));
  for (const t of a.typeProtos) m.message(A.typeProtos, type(t));
  return m;
}

async function tensor(t: OnnxTensor, load: TensorLoader): Promise<Msg> {
  const T = F.TensorProto;
  const m = new Msg();
  m.packedInts(T.dims, t.dims);
  m.int(T.dataType, t.dataType);
  m.string(T.name, t.name);
  m.string(T.docString, t.docString);
  const d = t.data;
  switch (d.kind) {
    case 'none':
      break;
    case 'strings':
      for (const s of d.values) m.bytes(T.stringData, s);
      break;
    case 'inline':
      m.bytes(T.rawData, d.bytes);
      break;
    case 'external':
      m.message(T.externalData, entry('location', d.location));
      if (d.offset) m.message(T.externalData, entry('offset', String(d.offset)));
      if (d.length !== undefined) m.message(T.externalData, entry('length', String(d.length)));
      m.int(T.dataLocation, DataLocation.EXTERNAL);
      break;
    case 'raw':
    case 'fields':
      m.bytes(T.rawData, await load(t));
      break;
  }
  return m;
}

async function sparse(s: OnnxSparseTensor, load: TensorLoader): Promise<Msg> {
  const S = F.SparseTensorProto;
  const m = new Msg();
  if (s.values) m.message(S.values, await tensor(s.values, load));
  if (s.indices) m.message(S.indices, await tensor(s.indices, load));
  m.packedInts(S.dims, s.dims);
  return m;
}

function valueInfo(v: OnnxValueInfo): Msg {
  const V = F.ValueInfoProto;
  const m = new Msg();
  m.string(V.name, v.name);
  if (v.type) m.message(V.type, type(v.type));
  m.string(V.docString, v.docString);
  return m;
}

function type(t: OnnxType): Msg {
  const P = F.TypeProto;
  const m = new Msg();
  switch (t.kind) {
    case 'tensor':
    case 'sparse_tensor': {
      const inner = new Msg();
      inner.int(F.TypeProtoTensor.elemType, t.elemType);
      if (t.shape) {
        const shape = new Msg();
        for (const d of t.shape) {
          const dim = new Msg();
          if (typeof d === 'number') {
            dim.tag(F.Dimension.dimValue, 0);
            dim.varint(d);
          } else if (typeof d === 'string') dim.string(F.Dimension.dimParam, d);
          shape.message(F.TensorShapeProto.dim, dim);
        }
        inner.message(F.TypeProtoTensor.shape, shape);
      }
      m.message(t.kind === 'tensor' ? P.tensorType : P.sparseTensorType, inner);
      break;
    }
    case 'sequence':
    case 'optional': {
      const inner = new Msg();
      if (t.elem) inner.message(1, type(t.elem));
      m.message(t.kind === 'sequence' ? P.sequenceType : P.optionalType, inner);
      break;
    }
    case 'map': {
      const inner = new Msg();
      inner.int(F.TypeProtoMap.keyType, t.keyType);
      if (t.value) inner.message(F.TypeProtoMap.valueType, type(t.value));
      m.message(P.mapType, inner);
      break;
    }
    case 'unknown':
      break;
  }
  m.string(P.denotation, t.denotation);
  return m;
}

async function fn(f: OnnxFunction, load: TensorLoader): Promise<Msg> {
  const P = F.FunctionProto;
  const m = new Msg();
  m.string(P.name, f.name);
  for (const i of f.inputs) m.bytes(P.input, utf8.encode(i));
  for (const o of f.outputs) m.bytes(P.output, utf8.encode(o));
  for (const a of f.attributes) m.string(P.attribute, a);
  for (const a of f.attributeProtos) m.message(P.attributeProto, await attribute(a, load));
  for (const n of f.nodes) m.message(P.node, await node(n, load));
  m.string(P.docString, f.docString);
  for (const o of f.opsetImport) m.message(P.opsetImport, opset(o.domain, o.version));
  m.string(P.domain, f.domain);
  m.string(P.overload, f.overload);
  for (const v of f.valueInfo) m.message(P.valueInfo, valueInfo(v));
  return m;
}
