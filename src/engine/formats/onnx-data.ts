import type { ByteSource, SiblingResolver } from '../bytes';
import { InputError } from '../errors';
import { dtypeBits, onnxDtypeName } from '../graph/dtypes';
import { subgraphsOf, type OnnxGraph, type OnnxModel, type OnnxTensor } from './onnx';
import { DataType } from './onnx-schema.generated';
import { ProtoReader, Wire } from './protobuf';

/** The most bytes one tensor's values may take when loaded (JS typed arrays stop near 2^32 anyway). */
export const MAX_TENSOR_LOAD_BYTES = 4 * 1024 * 1024 * 1024 - 1;

/**
 * Checks an external-data location: it must be a relative path that stays inside the model's
 * folder. Returns the normalized relative path, or throws naming the model file.
 */
export function checkExternalLocation(modelName: string, location: string): string {
  const bad = (why: string): never => {
    throw new InputError(modelName, `external data location '${location}' ${why}`);
  };
  if (location.includes('\0')) bad('contains a NUL byte');
  if (/^([a-zA-Z]:|[\\/])/.test(location) || /^[a-z]+:\/\//i.test(location)) {
    bad('is absolute; it must be relative to the model folder');
  }
  const parts: string[] = [];
  for (const part of location.split(/[\\/]+/)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (!parts.length) bad("escapes the model's folder");
      parts.pop();
    } else parts.push(part);
  }
  if (!parts.length) bad('names no file');
  return parts.join('/');
}

/**
 * Loads a tensor's bytes in the little-endian layout of raw_data (4-bit and 2-bit types packed),
 * whichever way the file stores them. `source` is the model file; `siblings` opens external data.
 */
export async function loadTensorBytes(
  tensor: OnnxTensor,
  source: ByteSource,
  siblings?: SiblingResolver,
): Promise<Uint8Array> {
  const bits = dtypeBits(tensor.dataType);
  const label = `tensor '${tensor.name}'`;
  const fail = (file: string, why: string): never => {
    throw new InputError(file, `${label}: ${why}`);
  };
  if (bits === undefined) {
    fail(source.name, `values of type ${onnxDtypeName(tensor.dataType)} cannot be loaded as numbers`);
  }
  const byteLength = Math.ceil((tensor.elements * bits!) / 8);
  if (byteLength > MAX_TENSOR_LOAD_BYTES) fail(source.name, `${byteLength} bytes is more than one tensor load allows`);
  const d = tensor.data;
  switch (d.kind) {
    case 'none':
      if (byteLength) fail(source.name, 'has no data');
      return new Uint8Array(0);
    case 'raw':
      return source.read(d.offset, d.length);
    case 'inline':
      if (d.bytes.length !== byteLength) fail(source.name, `holds ${d.bytes.length} bytes, needs ${byteLength}`);
      return d.bytes;
    case 'external': {
      const rel = checkExternalLocation(source.name, d.location);
      if (!siblings) fail(source.name, `is stored in external file '${rel}' but no folder was given to read it from`);
      const file = await siblings!.open(rel, 'external-data');
      const length = d.length ?? file.size - d.offset;
      if (d.offset + length > file.size || length < 0) {
        fail(file.name, `external data [${d.offset}, ${d.offset + length}) lies outside the file (${file.size} bytes)`);
      }
      if (length !== byteLength) fail(file.name, `external data holds ${length} bytes, the tensor needs ${byteLength}`);
      return file.read(d.offset, length);
    }
    case 'strings':
      fail(source.name, 'is a string tensor');
      break;
    case 'fields':
      return fieldsToRaw(tensor, source, byteLength);
  }
  throw new Error('unreachable');
}

async function fieldValues(tensor: OnnxTensor, source: ByteSource): Promise<number[]> {
  const d = tensor.data;
  if (d.kind !== 'fields') return [];
  const r = new ProtoReader(source);
  const out: number[] = [];
  const limit = 1 << 28;
  for (const range of d.ranges) {
    r.pos = range.offset;
    const end = range.offset + range.length;
    if (!range.packed) {
      r.field(end);
      const wire = r.wire;
      if (wire === Wire.Len) r.fail(`tensor '${tensor.name}': unexpected packed value`);
      if (d.field === 'floatData') out.push(await r.float(wire, end));
      else if (d.field === 'doubleData') {
        await r.need(8, end);
        const b = r.bytes(8);
        out.push(new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true));
      } else out.push(await r.scalar(wire, end));
    } else if (d.field === 'floatData') {
      r.pos = range.offset;
      await r.need(range.length, end);
      const b = r.bytes(range.length);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      for (let i = 0; i + 4 <= b.length; i += 4) out.push(dv.getFloat32(i, true));
    } else if (d.field === 'doubleData') {
      await r.need(range.length, end);
      const b = r.bytes(range.length);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      for (let i = 0; i + 8 <= b.length; i += 8) out.push(dv.getFloat64(i, true));
    } else {
      while (r.pos < end) {
        await r.need(10, end);
        out.push(r.int64());
        if (out.length > limit) r.fail(`tensor '${tensor.name}' holds too many values`);
      }
    }
  }
  return out;
}

const INT64_MAX = 2n ** 63n - 1n;

/** Converts typed repeated fields (float_data, int32_data, …) to the raw_data layout. */
async function fieldsToRaw(tensor: OnnxTensor, source: ByteSource, byteLength: number): Promise<Uint8Array> {
  const values = await fieldValues(tensor, source);
  const out = new Uint8Array(byteLength);
  const dv = new DataView(out.buffer);
  const t = tensor.dataType;
  const n = tensor.elements;
  const need = (count: number) => {
    if (values.length < count) {
      throw new InputError(
        source.name,
        `tensor '${tensor.name}' declares ${n} elements but holds ${values.length} values`,
      );
    }
  };
  const bits = dtypeBits(t)!;
  if (bits < 8) {
    // int32_data holds one packed byte per entry (ONNX: "packed to 4bitx2 prior to writing").
    need(byteLength);
    for (let i = 0; i < byteLength; i++) out[i] = values[i] & 0xff;
    return out;
  }
  const count = t === DataType.COMPLEX64 || t === DataType.COMPLEX128 ? n * 2 : n;
  need(count);
  for (let i = 0; i < count; i++) {
    const v = values[i];
    switch (t) {
      case DataType.FLOAT:
      case DataType.COMPLEX64:
        dv.setFloat32(i * 4, v, true);
        break;
      case DataType.DOUBLE:
      case DataType.COMPLEX128:
        dv.setFloat64(i * 8, v, true);
        break;
      case DataType.INT32:
      case DataType.UINT32:
        dv.setUint32(i * 4, v >>> 0, true);
        break;
      case DataType.INT64:
        // The varint reader returns a double: INT64_MAX (keras2onnx's "to the end" in Slice) rounds up to 2^63,
        // which BigInt64 would wrap to INT64_MIN. Saturate instead.
        dv.setBigInt64(i * 8, v >= 2 ** 63 ? INT64_MAX : v <= -(2 ** 63) ? -INT64_MAX - 1n : BigInt(v), true);
        break;
      case DataType.UINT64:
        dv.setBigUint64(i * 8, v >= 2 ** 64 ? 2n ** 64n - 1n : BigInt.asUintN(64, BigInt(v)), true);
        break;
      case DataType.INT16:
      case DataType.UINT16:
      case DataType.FLOAT16:
      case DataType.BFLOAT16:
        dv.setUint16(i * 2, v & 0xffff, true);
        break;
      default:
        out[i] = v & 0xff;
    }
  }
  return out;
}

/** Every tensor a model stores, subgraphs and Constant-node values included. */
export function* allTensors(graph: OnnxGraph): Generator<OnnxTensor> {
  yield* graph.initializers;
  for (const s of graph.sparseInitializers) {
    if (s.values) yield s.values;
    if (s.indices) yield s.indices;
  }
  for (const n of graph.nodes) {
    for (const a of n.attributes) {
      if (a.t) yield a.t;
      yield* a.tensors;
    }
    for (const g of subgraphsOf(n)) yield* allTensors(g);
  }
}

/**
 * Checks every external-data reference when the model is opened: the location stays inside the
 * model's folder, and (when a folder resolver is given) the file exists and holds the range.
 */
export async function checkExternalData(
  model: OnnxModel,
  source: ByteSource,
  siblings?: SiblingResolver,
): Promise<void> {
  const graphs = [
    model.graph,
    ...model.functions.flatMap((f) => f.nodes.flatMap(subgraphsOf)),
    ...model.trainingGraphs,
  ];
  for (const g of graphs) {
    for (const t of allTensors(g)) {
      if (t.data.kind !== 'external') continue;
      const rel = checkExternalLocation(source.name, t.data.location);
      if (!siblings) continue;
      const file = await siblings.open(rel, 'external-data');
      const bits = dtypeBits(t.dataType) ?? 8;
      const length = t.data.length ?? Math.ceil((t.elements * bits) / 8);
      if (t.data.offset + length > file.size) {
        throw new InputError(
          source.name,
          `tensor '${t.name}': external data [${t.data.offset}, ${t.data.offset + length}) lies outside '${rel}' (${file.size} bytes)`,
        );
      }
    }
  }
}
