import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InputError } from '../engine/errors';
import { readOnnxModel, readOnnxTensor } from '../engine/formats/onnx';
import { allTensors, loadTensorBytes } from '../engine/formats/onnx-data';
import { DataType, F } from '../engine/formats/onnx-schema.generated';
import { onnxDtypeName } from '../engine/graph/dtypes';
import { onnxToGraph } from '../engine/formats/onnx-graph';
import { evalShape } from '../engine/graph/dims';
import type { ModelGraph } from '../engine/graph/model-graph';
import { OBSERVERS, TensorObserver, activationError, type ObserverName } from '../engine/quant/observers';
import { FileByteSource } from './file-source';

export interface ActivationReport {
  /** True when the inputs were generated from the model's declared shapes (no user data given). */
  generatedInputs: boolean;
  batches: number;
  bindings: Record<string, number>;
  tensors: {
    name: string;
    layer: string;
    consumer: string;
    observers: Record<ObserverName, { min: number; max: number; sqnrDb: number | null }>;
  }[];
  layers: { name: string; sqnrDb: Record<ObserverName, number | null> }[];
}

const CALIBRATED_OPS = new Set(['MatMul', 'Gemm', 'Conv', 'ConvTranspose', 'Attention', 'LSTM', 'GRU', 'RNN']);
const FLOATS = new Set(['float', 'float16', 'double']);

/** Minimal protobuf writing for the appended GraphProto fragment. */
function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
function field(num: number, bytes: number[]): number[] {
  return [...varint(num * 8 + 2), ...varint(bytes.length), ...bytes];
}

/**
 * The model's bytes plus one more `graph` field listing extra outputs: protobuf merges repeated
 * occurrences of a singular message field, so onnxruntime sees the original graph with the
 * intermediate tensors added to its outputs — no re-serialization of the model needed.
 */
function outputsAppendix(names: { name: string; elemType: number }[]): Buffer {
  const graph: number[] = [];
  for (const { name, elemType } of names) {
    const tensorType = [...varint(F.TypeProtoTensor.elemType * 8), ...varint(elemType)];
    const type = field(F.TypeProto.tensorType, tensorType);
    const vi = [
      ...field(F.ValueInfoProto.name, Array.from(Buffer.from(name, 'utf8'))),
      ...field(F.ValueInfoProto.type, type),
    ];
    graph.push(...field(F.GraphProto.output, vi));
  }
  return Buffer.from(field(F.ModelProto.graph, graph));
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** onnxruntime-node, loaded only when calibration runs (it is large and native). */
function loadOrt(file: string): typeof import('onnxruntime-node') {
  try {
    return require('onnxruntime-node');
  } catch {
    throw new InputError(
      file,
      'activation calibration needs onnxruntime-node (npm install onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=skip)',
    );
  }
}

/**
 * Calibrates the activations that feed the model's compute ops (MatMul, Gemm, Conv, …): runs the
 * model with onnxruntime-node on generated inputs, observes each activation with every observer,
 * and reports the 8-bit quantization error each observer's range gives, per tensor and per layer.
 */
/**
 * Calibration samples from a folder, in the ONNX test-data layout: each `test_data_set_*` subfolder
 * (or the folder itself) holds `input_<i>.pb` TensorProto files, one per model input in order.
 */
async function readSampleSets(
  dir: string,
): Promise<{ name: string; sets: { dtype: number; dims: number[]; bytes: Uint8Array }[][] }> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new InputError(dir, 'is not a folder of calibration inputs');
  }
  const subdirs = fs
    .readdirSync(dir)
    .filter((d) => d.startsWith('test_data_set') && fs.statSync(path.join(dir, d)).isDirectory())
    .sort();
  const folders = subdirs.length ? subdirs.map((d) => path.join(dir, d)) : [dir];
  const sets: { dtype: number; dims: number[]; bytes: Uint8Array }[][] = [];
  for (const folder of folders) {
    const files = fs
      .readdirSync(folder)
      .filter((f) => /^input_\d+\.pb$/.test(f))
      .sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
    if (!files.length) continue;
    const set = [];
    for (const f of files) {
      const src = await FileByteSource.open(path.join(folder, f));
      try {
        const t = await readOnnxTensor(src);
        set.push({ dtype: t.dataType, dims: t.dims, bytes: await loadTensorBytes(t, src) });
      } finally {
        await src.close();
      }
    }
    sets.push(set);
  }
  if (!sets.length) {
    throw new InputError(dir, 'holds no input_<i>.pb files (ONNX test-data layout: test_data_set_*/input_0.pb …)');
  }
  return { name: dir, sets };
}

const ORT_TYPES: Record<number, string> = {
  [DataType.FLOAT]: 'float32',
  [DataType.FLOAT16]: 'float16',
  [DataType.DOUBLE]: 'float64',
  [DataType.INT64]: 'int64',
  [DataType.INT32]: 'int32',
  [DataType.INT8]: 'int8',
  [DataType.UINT8]: 'uint8',
  [DataType.BOOL]: 'bool',
};

/**
 * A model ready to run with onnxruntime-node with some intermediate tensors added to its outputs:
 * run(visit) feeds every batch (the user's samples or generated inputs) and hands each chosen
 * tensor to visit. The modified model lives in a temp folder, removed by close().
 */
export interface ActivationSession {
  graph: ModelGraph;
  names: string[];
  batches: number;
  generated: boolean;
  bindings: Record<string, number>;
  run(visit: (name: string, data: Float32Array, dims: number[]) => void): Promise<void>;
  close(): Promise<void>;
}

export async function activationSession(
  file: string,
  pick: (graph: ModelGraph) => string[],
  options: { batches?: number; bindings?: Record<string, number>; inputs?: string } = {},
): Promise<ActivationSession> {
  const ort = loadOrt(file);
  const samples = options.inputs ? await readSampleSets(options.inputs) : undefined;
  const batches = samples ? samples.sets.length : (options.batches ?? 8);
  const bindings = { batch: 1, sequence: 16, ...(options.bindings ?? {}) };
  const source = await FileByteSource.open(file);
  let graph: ModelGraph;
  let externalFiles: string[];
  try {
    const model = await readOnnxModel(source);
    graph = await onnxToGraph(model, source, { bindings });
    externalFiles = [
      ...new Set([...allTensors(model.graph)].flatMap((t) => (t.data.kind === 'external' ? [t.data.location] : []))),
    ];
  } finally {
    await source.close();
  }
  const names = pick(graph);
  const codeOf = (dtype: string) =>
    Number(Object.entries(DataType).find(([, v]) => onnxDtypeName(v) === dtype)?.[1] ?? DataType.FLOAT);
  const extra = names
    .filter((n) => !graph.outputs.includes(n))
    .map((name) => ({ name, elemType: codeOf(graph.tensors.get(name)!.dtype) }));

  // The modified model lives in a temp folder (never beside the user's model), with its external data linked in.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-calib-'));
  try {
    const tmpModel = path.join(dir, 'model.onnx');
    fs.copyFileSync(file, tmpModel);
    fs.appendFileSync(tmpModel, outputsAppendix(extra));
    for (const loc of externalFiles) {
      const target = path.join(dir, loc);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      // onnxruntime refuses symlinks that leave the model's folder: hard-link (same file system) or copy.
      const original = path.resolve(path.dirname(file), loc);
      try {
        fs.linkSync(original, target);
      } catch {
        fs.copyFileSync(original, target);
      }
    }
    const session = await ort.InferenceSession.create(tmpModel, { graphOptimizationLevel: 'disabled' });
    const feedsFor = (b: number) => {
      if (samples) {
        // The user's samples, fed to the inputs in order.
        const set = samples.sets[b];
        if (set.length !== session.inputNames.length) {
          throw new InputError(
            samples.name,
            `sample set ${b} has ${set.length} inputs, the model takes ${session.inputNames.length}`,
          );
        }
        const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
        session.inputNames.forEach((name, i) => {
          const x = set[i];
          const type = ORT_TYPES[x.dtype];
          if (!type) {
            throw new InputError(
              samples.name,
              `input ${i} has a data type onnxruntime-node cannot take here (${x.dtype})`,
            );
          }
          const buf = x.bytes.slice().buffer;
          const data =
            type === 'float32'
              ? new Float32Array(buf)
              : type === 'float64'
                ? new Float64Array(buf)
                : type === 'int64'
                  ? new BigInt64Array(buf)
                  : type === 'int32'
                    ? new Int32Array(buf)
                    : type === 'int8'
                      ? new Int8Array(buf)
                      : type === 'float16'
                        ? new Uint16Array(buf)
                        : new Uint8Array(buf);
          feeds[name] = new ort.Tensor(type as 'float32', data as Float32Array, x.dims);
        });
        return feeds;
      }
      const rand = rng(1000 + b);
      const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
      for (const name of session.inputNames) {
        const t = graph.tensors.get(name);
        const dims = (t?.shape ?? []).map((d) => Math.max(1, evalShape([d], bindings)));
        const n = dims.reduce((a, c) => a * c, 1);
        const dtype = t?.dtype ?? 'float';
        if (dtype === 'int64' || dtype === 'int32') {
          // Token ids: stay below the vocabulary of the embedding that reads them.
          const gather = t?.consumers
            .map((c) => graph.nodes[c])
            .find((x) => x.opType === 'Gather' && x.inputs[1] === name);
          const rows = gather ? graph.tensors.get(gather.inputs[0])?.shape?.[0] : undefined;
          const hi = typeof rows === 'number' ? rows : 100;
          const v = Array.from({ length: n }, () => Math.floor(rand() * hi));
          feeds[name] =
            dtype === 'int64'
              ? new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), dims)
              : new ort.Tensor('int32', Int32Array.from(v), dims);
        } else if (dtype === 'bool') feeds[name] = new ort.Tensor('bool', new Uint8Array(n).fill(1), dims);
        else {
          const v = new Float32Array(n);
          for (let i = 0; i < n; i++) v[i] = Math.sqrt(-2 * Math.log(rand() || 1e-12)) * Math.cos(2 * Math.PI * rand());
          feeds[name] = new ort.Tensor('float32', v, dims);
        }
      }
      return feeds;
    };
    return {
      graph,
      names,
      batches,
      generated: !samples,
      bindings,
      run: async (visit) => {
        for (let b = 0; b < batches; b++) {
          const out = await session.run(feedsFor(b), names);
          for (const n of names) visit(n, out[n].data as Float32Array, out[n].dims.map(Number));
        }
      },
      close: async () => {
        await session.release();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export async function calibrateFile(
  file: string,
  options: { batches?: number; bindings?: Record<string, number>; maxTensors?: number; inputs?: string } = {},
): Promise<ActivationReport> {
  const chosen = new Map<string, { consumer: string; layer: string }>();
  const pick = (graph: ModelGraph) => {
    for (const n of graph.nodes) {
      if (n.parent >= 0 || !CALIBRATED_OPS.has(n.opType)) continue;
      const t = graph.tensors.get(n.inputs[0]);
      if (!t || t.isWeight || !FLOATS.has(t.dtype) || chosen.has(t.name)) continue;
      chosen.set(t.name, { consumer: `${n.opType} ${n.name}`, layer: graph.layers[n.layer]?.name ?? '' });
      if (chosen.size >= (options.maxTensors ?? 512)) break;
    }
    if (!chosen.size) {
      throw new InputError(file, 'no floating-point activations feed a MatMul, Gemm or Conv: nothing to calibrate');
    }
    return [...chosen.keys()];
  };
  const act = await activationSession(file, pick, options);
  const { names, batches, bindings } = act;
  try {
    const observers = new Map(names.map((n) => [n, new TensorObserver()]));
    const run = act.run;
    await run((n, d) => observers.get(n)!.observeRange(d));
    await run((n, d) => observers.get(n)!.observeHistogram(d));
    const ranges = new Map(
      names.map((n) => [n, Object.fromEntries(OBSERVERS.map((o) => [o, observers.get(n)!.range(o)]))]),
    );
    const sums = new Map(names.map((n) => [n, Object.fromEntries(OBSERVERS.map((o) => [o, { signal: 0, noise: 0 }]))]));
    await run((n, d) => {
      for (const o of OBSERVERS) {
        const e = activationError(d, ranges.get(n)![o]);
        sums.get(n)![o].signal += e.signal;
        sums.get(n)![o].noise += e.noise;
      }
    });
    const db = (s: { signal: number; noise: number }) => (s.noise === 0 ? null : 10 * Math.log10(s.signal / s.noise));
    const layerSums = new Map<string, Record<string, { signal: number; noise: number }>>();
    const tensors = names.map((n) => {
      const info = chosen.get(n)!;
      const per = layerSums.get(info.layer) ?? Object.fromEntries(OBSERVERS.map((o) => [o, { signal: 0, noise: 0 }]));
      layerSums.set(info.layer, per);
      for (const o of OBSERVERS) {
        per[o].signal += sums.get(n)![o].signal;
        per[o].noise += sums.get(n)![o].noise;
      }
      return {
        name: n,
        layer: info.layer,
        consumer: info.consumer,
        observers: Object.fromEntries(
          OBSERVERS.map((o) => [o, { ...ranges.get(n)![o], sqnrDb: db(sums.get(n)![o]) }]),
        ) as ActivationReport['tensors'][number]['observers'],
      };
    });
    const layers = [...layerSums].map(([name, per]) => ({
      name,
      sqnrDb: Object.fromEntries(OBSERVERS.map((o) => [o, db(per[o])])) as Record<ObserverName, number | null>,
    }));
    return { generatedInputs: act.generated, batches, bindings, tensors, layers };
  } finally {
    await act.close();
  }
}
