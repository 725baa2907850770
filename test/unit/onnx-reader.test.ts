import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { MemoryByteSource } from '../../src/engine/bytes';
import { ONNX_DTYPE, rawToNumbers } from '../../src/engine/graph/dtypes';
import {
  readOnnxModel,
  readOnnxTensor,
  type OnnxAttribute,
  type OnnxGraph,
  type OnnxTensor,
  type OnnxType,
} from '../../src/engine/formats/onnx';
import { loadTensorBytes } from '../../src/engine/formats/onnx-data';
import { onnxToGraph } from '../../src/engine/formats/onnx-graph';
import { DataType } from '../../src/engine/formats/onnx-schema.generated';
import { FolderResolver } from '../../src/node/file-source';
import { OUR_MODELS, SHARED_FIXTURES, memorySource, walk } from '../helpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
const utf8 = new TextDecoder();
const num = (v: any): number => (v === undefined || v === null ? 0 : typeof v === 'number' ? v : Number(v.toString()));

// Normalized views of a graph, built independently from onnx-proto's full decode and from our lazy reader.
function protoType(t: any): unknown {
  if (!t) return undefined;
  const shape = (s: any) =>
    s
      ? (s.dim ?? []).map((d: any) =>
          d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? num(d.dimValue) : null,
        )
      : undefined;
  if (t.tensorType) return { kind: 'tensor', elem: t.tensorType.elemType ?? 0, shape: shape(t.tensorType.shape) };
  if (t.sparseTensorType) {
    return { kind: 'sparse_tensor', elem: t.sparseTensorType.elemType ?? 0, shape: shape(t.sparseTensorType.shape) };
  }
  if (t.sequenceType) return { kind: 'sequence', elem: protoType(t.sequenceType.elemType) };
  if (t.optionalType) return { kind: 'optional', elem: protoType(t.optionalType.elemType) };
  if (t.mapType) return { kind: 'map', key: t.mapType.keyType ?? 0, value: protoType(t.mapType.valueType) };
  return { kind: 'unknown' };
}
function ourType(t: OnnxType | undefined): unknown {
  if (!t) return undefined;
  switch (t.kind) {
    case 'tensor':
    case 'sparse_tensor':
      return { kind: t.kind, elem: t.elemType, shape: t.shape };
    case 'sequence':
    case 'optional':
      return { kind: t.kind, elem: ourType(t.elem) };
    case 'map':
      return { kind: 'map', key: t.keyType, value: ourType(t.value) };
    default:
      return { kind: 'unknown' };
  }
}
const protoTensorHead = (t: any) => ({ name: t.name ?? '', dims: (t.dims ?? []).map(num), dataType: t.dataType ?? 0 });
const ourTensorHead = (t: OnnxTensor) => ({ name: t.name, dims: t.dims, dataType: t.dataType });

function protoAttr(a: any, tensors: any[]): unknown {
  return {
    name: a.name,
    type: a.type ?? 0,
    refAttrName: a.refAttrName || undefined,
    f: a.f ?? undefined,
    i: a.i !== undefined && a.i !== null ? num(a.i) : undefined,
    s: a.s?.length ? utf8.decode(a.s) : undefined,
    t: a.t ? (tensors.push(a.t), protoTensorHead(a.t)) : undefined,
    g: a.g ? protoGraph(a.g, tensors) : undefined,
    floats: a.floats ?? [],
    ints: (a.ints ?? []).map(num),
    strings: (a.strings ?? []).map((s: Uint8Array) => utf8.decode(s)),
    tensors: (a.tensors ?? []).map((t: any) => (tensors.push(t), protoTensorHead(t))),
    graphs: (a.graphs ?? []).map((g: any) => protoGraph(g, tensors)),
    tp: protoType(a.tp),
  };
}
function ourAttr(a: OnnxAttribute, tensors: OnnxTensor[]): unknown {
  return {
    name: a.name,
    type: a.type,
    refAttrName: a.refAttrName || undefined,
    f: a.f,
    i: a.i,
    s: a.s?.length ? utf8.decode(a.s) : undefined,
    t: a.t ? (tensors.push(a.t), ourTensorHead(a.t)) : undefined,
    g: a.g ? ourGraph(a.g, tensors) : undefined,
    floats: a.floats,
    ints: a.ints,
    strings: a.strings.map((s) => utf8.decode(s)),
    tensors: a.tensors.map((t) => (tensors.push(t), ourTensorHead(t))),
    graphs: a.graphs.map((g) => ourGraph(g, tensors)),
    tp: ourType(a.tp),
  };
}
function protoGraph(g: any, tensors: any[]): unknown {
  const vi = (v: any) => ({ name: v.name ?? '', type: protoType(v.type) });
  return {
    name: g.name ?? '',
    nodes: (g.node ?? []).map((n: any) => ({
      name: n.name ?? '',
      opType: n.opType ?? '',
      domain: n.domain ?? '',
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      attributes: (n.attribute ?? []).map((a: any) => protoAttr(a, tensors)),
    })),
    initializers: (g.initializer ?? []).map((t: any) => (tensors.push(t), protoTensorHead(t))),
    sparse: (g.sparseInitializer ?? []).map((s: any) => ({
      dims: (s.dims ?? []).map(num),
      values: s.values ? protoTensorHead(s.values) : undefined,
    })),
    inputs: (g.input ?? []).map(vi),
    outputs: (g.output ?? []).map(vi),
    valueInfo: (g.valueInfo ?? []).map(vi),
  };
}
function ourGraph(g: OnnxGraph, tensors: OnnxTensor[]): unknown {
  const vi = (v: { name: string; type?: OnnxType }) => ({ name: v.name, type: ourType(v.type) });
  return {
    name: g.name,
    nodes: g.nodes.map((n) => ({
      name: n.name,
      opType: n.opType,
      domain: n.domain,
      inputs: n.inputs,
      outputs: n.outputs,
      attributes: n.attributes.map((a) => ourAttr(a, tensors)),
    })),
    initializers: g.initializers.map((t) => (tensors.push(t), ourTensorHead(t))),
    sparse: g.sparseInitializers.map((s) => ({ dims: s.dims, values: s.values ? ourTensorHead(s.values) : undefined })),
    inputs: g.inputs.map(vi),
    outputs: g.outputs.map(vi),
    valueInfo: g.valueInfo.map(vi),
  };
}

function sameNumber(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b)) || Math.fround(a) === Math.fround(b);
}

/** Compares the values we load lazily with the values onnx-proto decoded. */
function assertSameValues(ours: Uint8Array, t: any, where: string): void {
  const dt: number = t.dataType ?? 0;
  const count = (t.dims ?? []).map(num).reduce((p: number, d: number) => p * d, 1);
  if (t.rawData?.length) {
    assert.deepStrictEqual(Buffer.from(ours), Buffer.from(t.rawData), `${where}: raw bytes`);
    return;
  }
  const bits16 = dt === DataType.FLOAT16 || dt === DataType.BFLOAT16;
  const bytewise = [
    DataType.FLOAT8E4M3FN,
    DataType.FLOAT8E4M3FNUZ,
    DataType.FLOAT8E5M2,
    DataType.FLOAT8E5M2FNUZ,
    DataType.FLOAT8E8M0,
    DataType.INT4,
    DataType.UINT4,
    DataType.FLOAT4E2M1,
    DataType.INT2,
    DataType.UINT2,
  ].includes(dt as never);
  let expected: number[];
  let got: number[];
  if (t.floatData?.length) {
    [expected, got] = [
      t.floatData,
      Array.from(rawToNumbers(ours, dt === DataType.COMPLEX64 ? DataType.FLOAT : dt, t.floatData.length)),
    ];
  } else if (t.doubleData?.length) {
    [expected, got] = [t.doubleData, Array.from(rawToNumbers(ours, DataType.DOUBLE, t.doubleData.length))];
  } else if (t.int64Data?.length) {
    [expected, got] = [t.int64Data.map(num), Array.from(rawToNumbers(ours, DataType.INT64, count))];
  } else if (t.uint64Data?.length) [expected, got] = [t.uint64Data.map(num), Array.from(rawToNumbers(ours, dt, count))];
  else if (t.int32Data?.length) {
    expected = t.int32Data.map(num);
    if (bits16) {
      got = Array.from(new Uint16Array(ours.buffer.slice(ours.byteOffset, ours.byteOffset + ours.byteLength)));
    } else if (bytewise) {
      got = Array.from(ours);
      expected = expected.map((v) => v & 0xff);
    } else got = Array.from(rawToNumbers(ours, dt, count));
  } else {
    assert.strictEqual(ours.length, 0, `${where}: we found data where onnx-proto found none`);
    return;
  }
  assert.strictEqual(got.length, expected.length, `${where}: value count`);
  for (let i = 0; i < got.length; i++) {
    assert.ok(sameNumber(got[i], expected[i]), `${where}[${i}]: ${got[i]} vs ${expected[i]}`);
  }
}

const files = [...walk(path.join(SHARED_FIXTURES, 'onnx-backend'), '.onnx'), ...walk(OUR_MODELS, '.onnx')];

describe('element types', () => {
  it("the graph's dtype table has ONNX's TensorProto.DataType codes (the generated protobuf schema)", () => {
    assert.deepStrictEqual({ ...ONNX_DTYPE }, { ...DataType });
  });
});

describe('names', () => {
  it('reads every name as written: short ASCII (decoded without TextDecoder), UTF-8, long, at the fast path’s edges', async () => {
    const names = [
      'a',
      '/model/layers.3/self_attn/q_proj/MatMul',
      'ünïcode/層.0/MatMul',
      'x'.repeat(128),
      `${'y'.repeat(127)}é`,
      `${'z'.repeat(127)}\u007f`,
      'w'.repeat(300),
      '',
      'tab\there',
    ];
    const bytes = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'ŋraph',
        node: names.map((name, i) => ({ name, opType: 'Identity', input: [`in${i}`], output: [`${name}→${i}`] })),
      },
    }).finish();
    const model = await readOnnxModel(new MemoryByteSource('names.onnx', bytes));
    assert.strictEqual(model.graph.name, 'ŋraph');
    assert.deepStrictEqual(
      model.graph.nodes.map((n) => n.name),
      names,
    );
    assert.deepStrictEqual(
      model.graph.nodes.map((n) => n.outputs[0]),
      names.map((n, i) => `${n}→${i}`),
    );
    assert.deepStrictEqual(
      model.graph.nodes.map((n) => n.opType),
      names.map(() => 'Identity'),
    );
  });
});

describe('small constant values', () => {
  it('a tensor a later node writes again keeps no Constant value; a later Constant of the same name wins', async () => {
    const int64s = (v: number[]) => ({
      dataType: 7,
      dims: [v.length],
      rawData: new Uint8Array(new BigInt64Array(v.map(BigInt)).buffer),
    });
    const constant = (out: string, v: number[]) => ({
      opType: 'Constant',
      output: [out],
      attribute: [{ name: 'value', type: 4, t: int64s(v) }],
    });
    const bytes = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'g',
        input: [
          { name: 'in', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }, { dimValue: 3 }] } } } },
        ],
        node: [
          constant('taken', [1, 6]),
          { opType: 'Shape', input: ['in'], output: ['taken'] },
          constant('twice', [6, 1]),
          constant('twice', [3, 2]),
        ],
      },
    }).finish();
    const graph = await onnxToGraph(
      await readOnnxModel(new MemoryByteSource('m.onnx', bytes)),
      new MemoryByteSource('m.onnx', bytes),
    );
    assert.strictEqual(graph.tensors.get('taken')!.value, undefined);
    assert.deepStrictEqual(graph.tensors.get('twice')!.value, [3, 2]);
  });
});

describe('ONNX reader agrees with onnx-proto', function () {
  it('finds the fixtures', () => {
    assert.ok(files.length > 150, `only ${files.length} ONNX fixtures found under ${SHARED_FIXTURES}`);
  });
  for (const file of files) {
    const label = path.relative(path.dirname(path.dirname(file)), file);
    it(label, async () => {
      const bytes = new Uint8Array(fs.readFileSync(file));
      const proto: any = onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes), {
        longs: Number,
        enums: Number,
        arrays: true,
      });
      const source = new MemoryByteSource(file, bytes);
      const ours = await readOnnxModel(source);
      assert.strictEqual(ours.irVersion, num(proto.irVersion));
      assert.strictEqual(ours.producerName, proto.producerName ?? '');
      assert.deepStrictEqual(
        ours.opsetImport.map((o) => [o.domain, o.version]),
        (proto.opsetImport ?? []).map((o: any) => [o.domain ?? '', num(o.version)]),
      );
      assert.deepStrictEqual(
        ours.metadata,
        Object.fromEntries((proto.metadataProps ?? []).map((e: any) => [e.key, e.value])),
      );
      assert.strictEqual(ours.functions.length, (proto.functions ?? []).length);
      ours.functions.forEach((f, i) => {
        const pf = proto.functions[i];
        assert.deepStrictEqual(
          [f.name, f.domain, f.inputs, f.outputs, f.nodes.map((n) => n.opType)],
          [pf.name, pf.domain ?? '', pf.input ?? [], pf.output ?? [], (pf.node ?? []).map((n: any) => n.opType)],
        );
      });
      const protoTensors: any[] = [];
      const ourTensors: OnnxTensor[] = [];
      assert.deepStrictEqual(
        JSON.parse(JSON.stringify(ourGraph(ours.graph, ourTensors))),
        JSON.parse(JSON.stringify(protoGraph(proto.graph, protoTensors))),
      );
      assert.strictEqual(ourTensors.length, protoTensors.length);
      const siblings = new FolderResolver(file);
      try {
        for (let i = 0; i < ourTensors.length; i++) {
          const pt = protoTensors[i];
          if (pt.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
            assert.strictEqual(ourTensors[i].data.kind, 'external');
            continue;
          }
          if (pt.stringData?.length) {
            assert.deepStrictEqual(
              (ourTensors[i].data as any).values.map((s: Uint8Array) => utf8.decode(s)),
              pt.stringData.map((s: Uint8Array) => utf8.decode(s)),
            );
            continue;
          }
          assertSameValues(await loadTensorBytes(ourTensors[i], source, siblings), pt, `${label} tensor '${pt.name}'`);
        }
      } finally {
        await siblings.close();
      }
    });
  }
});

describe('ONNX TensorProto files (.pb test data) agree with onnx-proto', () => {
  const pbs = walk(path.join(SHARED_FIXTURES, 'onnx-backend'), '.pb');
  it('finds the .pb files', () => assert.ok(pbs.length > 100));
  it(`reads all ${pbs.length} tensors with the same header and values`, async () => {
    for (const file of pbs) {
      const source = memorySource(file);
      const proto: any = onnx.TensorProto.toObject(onnx.TensorProto.decode(fs.readFileSync(file)), {
        longs: Number,
        enums: Number,
        arrays: true,
      });
      const ours = await readOnnxTensor(source);
      assert.deepStrictEqual(ourTensorHead(ours), protoTensorHead(proto), file);
      if (ours.data.kind === 'strings' || (proto.stringData?.length ?? 0) > 0) continue;
      assertSameValues(await loadTensorBytes(ours, source), proto, file);
    }
  });
});
