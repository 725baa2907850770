import * as fs from 'fs';
import * as path from 'path';
import { InputError } from '../engine/errors';
import { readOnnxTensor } from '../engine/formats/onnx';
import { loadTensorBytes } from '../engine/formats/onnx-data';
import { DataType } from '../engine/formats/onnx-schema.generated';
import { evalShape } from '../engine/graph/dims';
import type { ModelGraph } from '../engine/graph/model-graph';
import { FileByteSource } from './file-source';

/**
 * Inputs for running a model with onnxruntime-node: the user's samples (a folder in the ONNX
 * test-data layout) or inputs generated from the model's declared shapes, the same for every run
 * with the same batch index (calibration, verification, end-to-end measurement and sensitivity all
 * see the same data).
 */
export type Ort = typeof import('onnxruntime-node');
export type OrtTensor = InstanceType<Ort['Tensor']>;

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** onnxruntime-node, loaded only when a model runs (it is large and native). */
export function loadOrt(file: string): Ort {
  try {
    return require('onnxruntime-node');
  } catch {
    throw new InputError(
      file,
      'running the model needs onnxruntime-node (npm install onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=skip)',
    );
  }
}

export interface SampleSets {
  name: string;
  sets: { dtype: number; dims: number[]; bytes: Uint8Array }[][];
}

/**
 * Samples from a folder, in the ONNX test-data layout: each `test_data_set_*` subfolder (or the
 * folder itself) holds `input_<i>.pb` TensorProto files, one per model input in order.
 */
export async function readSampleSets(dir: string): Promise<SampleSets> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new InputError(dir, 'is not a folder of input samples');
  }
  const subdirs = fs
    .readdirSync(dir)
    .filter((d) => d.startsWith('test_data_set') && fs.statSync(path.join(dir, d)).isDirectory())
    .sort();
  const folders = subdirs.length ? subdirs.map((d) => path.join(dir, d)) : [dir];
  const sets: SampleSets['sets'] = [];
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

/** The feeds of batch `b`: sample set b (inputs in order), or generated values (seeded by b). */
export function sampleFeeds(
  ort: Ort,
  graph: ModelGraph,
  inputNames: readonly string[],
  samples: SampleSets | undefined,
  bindings: Record<string, number>,
  b: number,
): Record<string, OrtTensor> {
  const feeds: Record<string, OrtTensor> = {};
  if (samples) {
    // The user's samples, fed to the inputs in order.
    const set = samples.sets[b];
    if (set.length !== inputNames.length) {
      throw new InputError(
        samples.name,
        `sample set ${b} has ${set.length} inputs, the model takes ${inputNames.length}`,
      );
    }
    inputNames.forEach((name, i) => {
      const x = set[i];
      const type = ORT_TYPES[x.dtype];
      if (!type) {
        throw new InputError(samples.name, `input ${i} has a data type onnxruntime-node cannot take here (${x.dtype})`);
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
  for (const name of inputNames) {
    const t = graph.tensors.get(name);
    const dims = (t?.shape ?? []).map((d) => Math.max(1, evalShape([d], bindings)));
    const n = dims.reduce((a, c) => a * c, 1);
    const dtype = t?.dtype ?? 'float';
    if (dtype === 'int64' || dtype === 'int32') {
      // Token ids: stay below the vocabulary of the embedding that reads them.
      const gather = t?.consumers.map((c) => graph.nodes[c]).find((x) => x.opType === 'Gather' && x.inputs[1] === name);
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
}

/**
 * How many batches to run: the sample sets given, the number asked for, or — for generated inputs —
 * enough that the outputs hold at least 4,096 values (8 to 64 batches): a pooled or classifier
 * output of a few dozen values per batch measures its SQNR on too few numbers otherwise.
 */
export function batchCount(
  graph: ModelGraph,
  bindings: Record<string, number>,
  samples: SampleSets | undefined,
  requested: number | undefined,
): number {
  if (samples) return samples.sets.length;
  if (requested !== undefined) return requested;
  let values = 0;
  for (const o of graph.outputs) {
    const shape = graph.tensors.get(o)?.shape;
    if (shape) values += shape.reduce((a: number, d) => a * Math.max(1, evalShape([d], bindings)), 1);
  }
  return Math.min(64, Math.max(8, Math.ceil(4096 / Math.max(1, values))));
}
