import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InputError } from '../engine/errors';
import { readOnnxModel } from '../engine/formats/onnx';
import { allTensors } from '../engine/formats/onnx-data';
import { DataType, F } from '../engine/formats/onnx-schema.generated';
import { onnxDtypeName } from '../engine/graph/dtypes';
import { onnxToGraph } from '../engine/formats/onnx-graph';
import type { ModelGraph } from '../engine/graph/model-graph';
import { OBSERVERS, TensorObserver, activationError, type ObserverName } from '../engine/quant/observers';
import { FileByteSource } from './file-source';
import { loadOrt, readSampleSets, sampleFeeds } from './samples';

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
    const feedsFor = (b: number) => sampleFeeds(ort, graph, session.inputNames, samples, bindings, b);
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

/** A compute op's activation input, with its calibrated range and 8-bit error (for W8A8 export and its prediction). */
export interface ActivationSiteRange {
  tensor: string;
  /** Names of the compute nodes that read it (they read its quantized copy once exported). */
  consumers: string[];
  layer: string;
  min: number;
  max: number;
  sqnrDb: number | null;
}

const SITE_OPS = new Set(['MatMul', 'Gemm', 'Conv', 'ConvTranspose']);

/**
 * The activations W8A8 quantizes: every floating-point input of a top-level MatMul, Gemm or Conv that
 * is not a weight (both operands of attention's matmuls), calibrated with one observer over the
 * batches, and the 8-bit error that range gives on the same batches.
 */
export async function calibrateSites(
  file: string,
  observer: ObserverName,
  options: { batches?: number; bindings?: Record<string, number>; inputs?: string; maxSites?: number } = {},
): Promise<{ sites: ActivationSiteRange[]; generatedInputs: boolean; batches: number }> {
  const sites = new Map<string, { consumers: string[]; layer: string }>();
  const pick = (graph: ModelGraph) => {
    for (const n of graph.nodes) {
      if (n.parent >= 0 || !SITE_OPS.has(n.opType)) continue;
      const data = n.opType === 'MatMul' ? n.inputs.slice(0, 2) : n.inputs.slice(0, n.opType === 'Gemm' ? 2 : 1);
      for (const name of data) {
        const t = graph.tensors.get(name);
        if (!t || t.isWeight || !FLOATS.has(t.dtype)) continue;
        // A value computed from weights alone (a DequantizeLinear of stored codes) is a weight too.
        const producer = t.producer !== undefined ? graph.nodes[t.producer] : undefined;
        if (producer && producer.inputs.every((i) => graph.tensors.get(i)?.isWeight)) continue;
        const s = sites.get(name) ?? { consumers: [], layer: graph.layers[n.layer]?.name ?? '' };
        if (!s.consumers.includes(n.name)) s.consumers.push(n.name);
        sites.set(name, s);
      }
      if (sites.size >= (options.maxSites ?? 1024)) break;
    }
    if (!sites.size) {
      throw new InputError(file, 'no floating-point activations feed a MatMul, Gemm or Conv: nothing to quantize');
    }
    return [...sites.keys()];
  };
  const act = await activationSession(file, pick, options);
  try {
    const observers = new Map(act.names.map((n) => [n, new TensorObserver()]));
    await act.run((n, d) => observers.get(n)!.observeRange(d));
    await act.run((n, d) => observers.get(n)!.observeHistogram(d));
    const ranges = new Map(act.names.map((n) => [n, observers.get(n)!.range(observer)]));
    const sums = new Map(act.names.map((n) => [n, { signal: 0, noise: 0 }]));
    await act.run((n, d) => {
      const e = activationError(d, ranges.get(n)!);
      sums.get(n)!.signal += e.signal;
      sums.get(n)!.noise += e.noise;
    });
    return {
      generatedInputs: act.generated,
      batches: act.batches,
      sites: act.names.map((n) => {
        const s = sums.get(n)!;
        return {
          tensor: n,
          ...sites.get(n)!,
          ...ranges.get(n)!,
          sqnrDb: s.noise === 0 ? null : 10 * Math.log10(s.signal / s.noise),
        };
      }),
    };
  } finally {
    await act.close();
  }
}
