import { promises as fsp } from 'fs';
import type { LayerSensitivity, LocalNoise } from '../engine/check/precision';
import { InputError } from '../engine/errors';
import { readOnnxModel, subgraphsOf, type OnnxModel, type OnnxNode, type OnnxTensor } from '../engine/formats/onnx';
import { loadTensorBytes } from '../engine/formats/onnx-data';
import { onnxToGraph, type OnnxTensorRef } from '../engine/formats/onnx-graph';
import { DataType } from '../engine/formats/onnx-schema.generated';
import { encodeOnnxModel } from '../engine/formats/onnx-write';
import { onnxDtypeName } from '../engine/graph/dtypes';
import type { ModelGraph } from '../engine/graph/model-graph';
import { parseFormat } from '../engine/quant/formats';
import { quantizeDequantize } from '../engine/quant/quantize';
import { measuredWeight } from '../engine/quant/run';
import { transpose2d, weightLayout } from '../engine/quant/weights';
import { FileByteSource, FolderResolver } from './file-source';
import { batchCount, loadOrt, readSampleSets, rng, sampleFeeds, type Ort, type OrtTensor } from './samples';

/**
 * How much of each layer's weight noise reaches the model's outputs, measured by running the model
 * (onnxruntime) — the calibration behind the predicted output SQNR (check/precision.ts).
 *
 * Two factors per layer:
 *   local       the relative noise at the output of the layer's own ops (the MatMul, Gemm, Conv or
 *               Gather that reads the weight) for the weights a plan gives it, computed by running
 *               those ops alone on the activations the model really feeds them: ‖(Ŵ − W)·X‖² / ‖W·X‖²
 *               (the error GPTQ and AWQ minimize). It sees what plain weight SQNR cannot: which
 *               input channels carry signal, and the realized error, not its average.
 *   downstream  how much of that local noise reaches the model's outputs: from runs in which only
 *               this layer's weights are perturbed by Gaussian noise 30 dB under their power (the
 *               probe: between what int8 and int4 add, and no plan's format, so a plan's prediction
 *               is not fitted on that plan), a fresh draw per batch; output noise / local noise.
 * The prediction is Σ downstream · local over the layers. `gain` (output noise per unit of relative
 * weight noise, from the same probe) is what the planner shows and what formats without a local
 * run use. The weights become inputs of one session, so every run feeds them.
 */
export interface SensitivityReport extends LayerSensitivity {
  probeDb: number;
  generatedInputs: boolean;
  batches: number;
  layers: {
    name: string;
    /** Output noise per unit of relative noise in all the layer's weights (the sum of its weights' gains). */
    gain: number;
    /** Per weight: its gain, and its downstream factor (output noise per unit of noise at its ops' outputs). */
    tensors: { name: string; gain: number; downstream?: number }[];
    /** The output SQNR the probe of the layer's first weight gave, per output. */
    outputs: { name: string; sqnrDb: number | null }[];
    weights: number;
  }[];
  /** When only some layers were probed (large models): how many of how many. */
  sampled?: { measured: number; of: number };
}

export interface SensitivityOptions {
  inputs?: string;
  batches?: number;
  bindings?: Record<string, number>;
  probeDb?: number;
  /** At most this many layers are probed (evenly spaced); the rest take the median gain. */
  maxLayers?: number;
  onProgress?: (done: number, total: number, layer: string) => void;
  cancelled?: () => boolean;
}

/** Models whose weights are larger than this are not probed here (every run feeds all weights). */
export const SENSITIVITY_MAX_BYTES = 1024 * 2 ** 20;
/** Activations kept for the local runs (the first batches that fit). */
const CAPTURE_BYTES = 256 * 2 ** 20;

/** Standard normal values (Box–Muller, fixed seed); a probe draw reads them from a random offset. */
let pool: Float32Array | undefined;
function normals(): Float32Array {
  if (pool) return pool;
  const rand = rng(12345);
  const out = new Float32Array(1 << 18);
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(rand() || 1e-12));
    const t = 2 * Math.PI * rand();
    out[i] = r * Math.cos(t);
    out[i + 1] = r * Math.sin(t);
  }
  return (pool = out);
}

type OrtSession = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

export class MeasureCancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

/** A layer's own ops (those reading its weights), runnable alone: the weights and the activations they read are inputs. */
interface LocalOp {
  layer: string;
  weights: OnnxTensor[];
  session: OrtSession;
  activations: string[];
  outputs: string[];
  /** Reference outputs per captured batch (W as it is). */
  reference: Float32Array[][];
}

/** A model's calibration: the sensitivity report, and local noise for any assignment of formats. */
export interface Calibration {
  report: SensitivityReport;
  /**
   * The predicted output noise of each (layer, format) under `formatOf`: Σ over the layer's weights in
   * that format of downstream × the noise their ops measured with the quantized weight.
   */
  localNoise(formatOf: (tensor: string, layer: string) => string): Promise<LocalNoise[]>;
  dispose(): Promise<void>;
}

const cache = new Map<string, Promise<Calibration>>();

/** What a calibration depends on: the file as it is, and the inputs it runs on. */
function cacheKey(file: string, stat: { size: number; mtimeMs: number }, o: SensitivityOptions): string {
  return JSON.stringify([file, stat.size, stat.mtimeMs, o.inputs, o.batches, o.bindings, o.probeDb, o.maxLayers]);
}

/** Cached per model file (path, size, mtime) and options; a failed or cancelled run is not remembered. */
export async function calibrateModel(file: string, options: SensitivityOptions = {}): Promise<Calibration> {
  const stat = await fsp.stat(file).catch(() => {
    throw new InputError(file, 'no such file');
  });
  const key = cacheKey(file, stat, options);
  let p = cache.get(key);
  if (!p) {
    p = measure(file, options);
    if (cache.size >= 2) {
      const [oldKey, old] = cache.entries().next().value!;
      cache.delete(oldKey);
      void old.then(
        (c) => c.dispose(),
        () => undefined,
      );
    }
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** A calibration already run (or running) for these options, without starting one. */
export async function cachedCalibration(
  file: string,
  options: SensitivityOptions = {},
): Promise<Calibration | undefined> {
  const stat = await fsp.stat(file).catch(() => undefined);
  if (!stat) return undefined;
  return cache.get(cacheKey(file, stat, options));
}

/** Just the report (the gains), for callers that do not need local runs. */
export async function layerSensitivity(file: string, options: SensitivityOptions = {}): Promise<SensitivityReport> {
  return (await calibrateModel(file, options)).report;
}

const codeOf = (dtype: string) =>
  Number(Object.entries(DataType).find(([, v]) => onnxDtypeName(v) === dtype)?.[1] ?? DataType.FLOAT);

function tensorInfo(name: string, graph: ModelGraph, dims?: number[]) {
  return {
    name,
    docString: '',
    type: {
      kind: 'tensor' as const,
      elemType: codeOf(graph.tensors.get(name)?.dtype ?? 'float'),
      ...(dims ? { shape: dims } : {}),
    },
  };
}

/**
 * The ops that read weight `w` directly or through weight-only ops (Transpose, Reshape, Cast of the
 * weight): the chain, and the frontier (ops that also read an activation). Undefined when they hold
 * subgraphs or reach too far.
 */
function localOps(model: OnnxModel, w: string): { chain: OnnxNode[]; frontier: OnnxNode[] } | undefined {
  const inits = new Set(model.graph.initializers.map((t) => t.name));
  const consumers = (name: string) => model.graph.nodes.filter((n) => n.inputs.includes(name));
  const fromWeight = new Set([w]);
  const chain: OnnxNode[] = [];
  const frontier: OnnxNode[] = [];
  let queue = consumers(w);
  for (let depth = 0; queue.length && depth < 4; depth++) {
    const next: OnnxNode[] = [];
    for (const n of queue) {
      if (chain.includes(n) || frontier.includes(n)) continue;
      if (subgraphsOf(n).length) return undefined;
      const weightOnly = n.inputs.every((i) => !i || inits.has(i) || fromWeight.has(i));
      if (weightOnly && depth < 3) {
        chain.push(n);
        n.outputs.forEach((o) => fromWeight.add(o));
        for (const o of n.outputs) next.push(...consumers(o));
      } else frontier.push(n);
    }
    queue = next;
  }
  if (queue.length || !frontier.length) return undefined;
  return { chain, frontier };
}

async function measure(file: string, options: SensitivityOptions): Promise<Calibration> {
  const ort = loadOrt(file);
  const probeDb = options.probeDb ?? 30;
  const samples = options.inputs ? await readSampleSets(options.inputs) : undefined;
  const bindings = { batch: 1, sequence: 16, ...(options.bindings ?? {}) };
  const source = await FileByteSource.open(file);
  const siblings = new FolderResolver(file);
  const locals: LocalOp[] = [];
  let main: OrtSession | undefined;
  try {
    const model = await readOnnxModel(source);
    const graph = await onnxToGraph(model, source, { bindings });
    const batches = batchCount(graph, bindings, samples, options.batches);
    const initNames = new Set(model.graph.initializers.map((t) => t.name));
    const realInputs = model.graph.inputs.map((i) => i.name).filter((n) => !initNames.has(n));
    // The probed weights: float32 initializers of the main graph that quant measures, by layer.
    const top = new Set(model.graph.initializers);
    const byLayer = new Map<string, OnnxTensor[]>();
    const layerOf = new Map<string, string>();
    let bytes = 0;
    for (const t of graph.tensors.values()) {
      if (!measuredWeight(graph, t)) continue;
      const onnx = (t.ref as OnnxTensorRef).tensor;
      if (!top.has(onnx) || onnx.dataType !== DataType.FLOAT) continue;
      const layer = t.layer !== undefined ? (graph.layers[t.layer]?.name ?? '') : '';
      byLayer.set(layer, [...(byLayer.get(layer) ?? []), onnx]);
      layerOf.set(onnx.name, layer);
      bytes += t.bytes;
    }
    if (!byLayer.size) throw new InputError(file, 'no float32 weight matrices to probe');
    if (bytes > SENSITIVITY_MAX_BYTES) {
      throw new InputError(
        file,
        `${(bytes / 2 ** 30).toFixed(1)} GiB of weights: too large to probe layer by layer here (the prediction stays first-order)`,
      );
    }
    const probed = [...byLayer.values()].flat();
    const values = new Map<string, Float32Array>();
    const powers = new Map<string, number>();
    for (const t of probed) {
      const b = await loadTensorBytes(t, source, siblings);
      const v = new Float32Array(b.slice().buffer, 0, t.elements);
      values.set(t.name, v);
      let power = 0;
      for (let k = 0; k < v.length; k++) power += v[k] * v[k];
      powers.set(t.name, power);
    }
    // Each weight's own ops, and the activations they read (captured from the main run).
    const ops = new Map(probed.map((t) => [t.name, localOps(model, t.name)]));
    const captured = new Set<string>();
    for (const [w, o] of ops) {
      for (const n of o?.frontier ?? []) {
        for (const i of n.inputs) {
          if (i && i !== w && !initNames.has(i) && !o!.chain.some((c) => c.outputs.includes(i))) captured.add(i);
        }
      }
    }
    const mini = async (weights: OnnxTensor[]) => {
      const all = weights.map((t) => ops.get(t.name)!);
      const nodes = [...new Set(all.flatMap((o) => [...o.chain, ...o.frontier]))];
      const frontier = new Set(all.flatMap((o) => o.frontier));
      const mine = new Set(weights.map((t) => t.name));
      const used = new Set(nodes.flatMap((n) => n.inputs));
      const produced = new Set(nodes.flatMap((n) => n.outputs));
      const acts = [...used].filter((i) => i && !mine.has(i) && !initNames.has(i) && !produced.has(i));
      const inits = model.graph.initializers.filter((x) => used.has(x.name) && !mine.has(x.name));
      const outputs = nodes
        .filter((n) => frontier.has(n))
        .flatMap((n) => n.outputs)
        .filter(Boolean);
      const m: OnnxModel = {
        ...model,
        graph: {
          name: 'local',
          nodes,
          initializers: inits,
          sparseInitializers: [],
          inputs: [...weights.map((t) => tensorInfo(t.name, graph, t.dims)), ...acts.map((a) => tensorInfo(a, graph))],
          outputs: outputs.map((x) => tensorInfo(x, graph)),
          valueInfo: [],
          docString: '',
        },
      };
      const bytesOut = await encodeOnnxModel(m, (x) => loadTensorBytes(x, source, siblings));
      const session = await ort.InferenceSession.create(bytesOut, { graphOptimizationLevel: 'disabled' });
      return { session, acts, outputs };
    };

    // The main session: weights as inputs, the captured activations as extra outputs.
    const floatOutputs = model.graph.outputs
      .map((o) => o.name)
      .filter((n) => {
        const t = graph.tensors.get(n);
        return !t || t.dtype === 'float' || t.dtype === 'unknown';
      });
    const graphInputs = new Set(realInputs);
    const extra = [...captured].filter((n) => !graphInputs.has(n) && !floatOutputs.includes(n));
    const probedNames = new Set(values.keys());
    const mainModel: OnnxModel = {
      ...model,
      graph: {
        ...model.graph,
        initializers: model.graph.initializers.filter((t) => !probedNames.has(t.name)),
        inputs: [
          ...model.graph.inputs.filter((i) => !probedNames.has(i.name)),
          ...probed.map((t) => tensorInfo(t.name, graph, t.dims)),
        ],
        outputs: [...model.graph.outputs, ...extra.map((n) => tensorInfo(n, graph))],
      },
    };
    main = await ort.InferenceSession.create(
      await encodeOnnxModel(mainModel, (t) => loadTensorBytes(t, source, siblings)),
      { graphOptimizationLevel: 'disabled' },
    );
    const session = main;
    const weightFeeds = (perturbed?: Map<string, Float32Array>) => {
      const f: Record<string, OrtTensor> = {};
      for (const t of probed) {
        f[t.name] = new ort.Tensor('float32', perturbed?.get(t.name) ?? values.get(t.name)!, t.dims);
      }
      return f;
    };
    const feeds = Array.from({ length: batches }, (_, b) => sampleFeeds(ort, graph, realInputs, samples, bindings, b));
    const reference: Float32Array[][] = [];
    const acts: Map<string, OrtTensor>[] = [];
    let capturedBytes = 0;
    for (let b = 0; b < batches; b++) {
      const out = await session.run({ ...feeds[b], ...weightFeeds() }, [...floatOutputs, ...extra]);
      reference.push(floatOutputs.map((o) => Float32Array.from(out[o].data as Float32Array)));
      if (capturedBytes < CAPTURE_BYTES) {
        const m = new Map<string, OrtTensor>();
        for (const n of captured) {
          const t = graphInputs.has(n) ? feeds[b][n] : out[n];
          m.set(n, new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims));
          capturedBytes += (t.data as { byteLength: number }).byteLength;
        }
        acts.push(m);
      }
    }
    // Each weight's ops, with their reference outputs on the captured batches.
    for (const t of probed) {
      if (!ops.get(t.name)) continue;
      const { session: s, acts: inputs, outputs } = await mini([t]);
      const op: LocalOp = {
        layer: layerOf.get(t.name)!,
        weights: [t],
        session: s,
        activations: inputs,
        outputs,
        reference: [],
      };
      for (const a of acts) op.reference.push(await runLocal(ort, op, a, values));
      locals.push(op);
    }
    const localOf = new Map(locals.map((l) => [l.weights[0].name, l]));
    /** Σ‖y‖² and Σ‖ŷ − y‖² at the outputs of a weight's ops, on captured batch b. */
    const localBatch = async (op: LocalOp, b: number, weights: Map<string, Float32Array>) => {
      let signal = 0;
      let noise = 0;
      const y = await runLocal(ort, op, acts[b], weights);
      y.forEach((v, k) => {
        const ref = op.reference[b][k];
        for (let j = 0; j < ref.length; j++) {
          signal += ref[j] * ref[j];
          noise += (v[j] - ref[j]) ** 2;
        }
      });
      return { signal, noise };
    };

    // The probes: one weight at a time (sampled evenly when there are many), a fresh draw per batch.
    const max = options.maxLayers ?? 96;
    const chosen =
      probed.length <= max
        ? probed
        : Array.from({ length: max }, (_, i) => probed[Math.round((i * (probed.length - 1)) / (max - 1))]);
    const perTensor = new Map<
      string,
      { gain: number; downstream?: number; outputs: { name: string; sqnrDb: number | null }[] }
    >();
    const POOL = normals();
    for (const [i, t] of chosen.entries()) {
      if (options.cancelled?.()) throw new MeasureCancelled();
      options.onProgress?.(i, chosen.length, t.name);
      const w = values.get(t.name)!;
      const power = powers.get(t.name)!;
      const sigma = Math.sqrt((power / w.length) * 10 ** (-probeDb / 10));
      const y = new Float32Array(w.length);
      const perturbed = new Map([[t.name, y]]);
      let wNoise = 0;
      const sums = floatOutputs.map(() => ({ signal: 0, noise: 0 }));
      // Local noise of the same draws, and the output noise of those batches (for the downstream factor).
      const op = localOf.get(t.name);
      const loc = { signal: 0, noise: 0, outSignal: floatOutputs.map(() => 0), outNoise: floatOutputs.map(() => 0) };
      for (let b = 0; b < batches; b++) {
        const rand = rng(7919 * (probed.indexOf(t) + 1) + 104729 * b);
        // A draw: the pool of normals from a random start, with a random sign.
        const start = Math.floor(rand() * POOL.length);
        const sign = rand() < 0.5 ? -sigma : sigma;
        let e2 = 0;
        for (let k = 0, j = start; k < w.length; k++, j = j + 1 === POOL.length ? 0 : j + 1) {
          const e = sign * POOL[j];
          y[k] = w[k] + e;
          e2 += e * e;
        }
        wNoise += e2;
        const out = await session.run({ ...feeds[b], ...weightFeeds(perturbed) }, floatOutputs);
        const local = op && b < acts.length;
        floatOutputs.forEach((o, k) => {
          const v = out[o].data as Float32Array;
          const ref = reference[b][k];
          let sg = 0;
          let ns = 0;
          for (let j = 0; j < ref.length; j++) {
            sg += ref[j] * ref[j];
            ns += (v[j] - ref[j]) ** 2;
          }
          sums[k].signal += sg;
          sums[k].noise += ns;
          if (local) {
            loc.outSignal[k] += sg;
            loc.outNoise[k] += ns;
          }
        });
        if (local) {
          const r = await localBatch(op, b, perturbed);
          loc.signal += r.signal;
          loc.noise += r.noise;
        }
      }
      const outRel = Math.max(0, ...sums.map((x) => (x.signal > 0 ? x.noise / x.signal : 0)));
      const locRel = loc.signal > 0 ? loc.noise / loc.signal : 0;
      const outLoc = Math.max(0, ...loc.outSignal.map((sg, k) => (sg > 0 ? loc.outNoise[k] / sg : 0)));
      perTensor.set(t.name, {
        gain: outRel / (wNoise / (power * batches)),
        ...(op && locRel > 0 ? { downstream: outLoc / locRel } : {}),
        outputs: floatOutputs.map((o, k) => ({
          name: o,
          sqnrDb: sums[k].noise > 0 ? 10 * Math.log10(sums[k].signal / sums[k].noise) : null,
        })),
      });
    }
    options.onProgress?.(chosen.length, chosen.length, '');
    // A weight not probed takes the median gain of those probed.
    const sortedGains = [...perTensor.values()].map((x) => x.gain).sort((a, b) => a - b);
    const medianGain = sortedGains.length ? sortedGains[Math.floor(sortedGains.length / 2)] : 1;
    // A layer's gain: its weights' gains summed (each weight's relative noise equal to the layer's), power-weighted
    // so a layer whose weights carry different noise still adds up: Σ_t g_t · n_t with n_t = n.
    const layers: SensitivityReport['layers'] = [...byLayer].map(([name, ts]) => {
      const probedHere = ts.filter((t) => perTensor.has(t.name));
      return {
        name,
        gain: ts.reduce((sum, t) => sum + (perTensor.get(t.name)?.gain ?? medianGain), 0),
        tensors: ts.map((t) => ({ name: t.name, ...(perTensor.get(t.name) ?? { gain: medianGain }) })),
        outputs: probedHere[0] ? perTensor.get(probedHere[0].name)!.outputs : [],
        weights: ts.length,
      };
    });
    const sorted = layers.map((l) => l.gain).sort((a, b) => a - b);
    const report: SensitivityReport = {
      probeDb,
      generatedInputs: !samples,
      batches,
      layers,
      defaultGain: sorted.length ? sorted[Math.floor(sorted.length / 2)] : 1,
      ...(chosen.length < probed.length ? { sampled: { measured: chosen.length, of: probed.length } } : {}),
    };
    const graphRef = graph;
    const known = new Map<string, number>();
    return {
      report,
      async localNoise(formatOf) {
        // Per (layer, format): Σ over its weights in that format of downstream · local noise of their ops.
        const sums = new Map<string, { layer: string; format: string; noise: number }>();
        const missing = new Set<string>();
        for (const t of probed) {
          const layer = layerOf.get(t.name)!;
          const format = parseFormat(formatOf(t.name, layer))?.name;
          if (!format) continue;
          const key = `${layer}|${format}`;
          const down = perTensor.get(t.name)?.downstream;
          const op = localOf.get(t.name);
          if (down === undefined || !op) {
            missing.add(key);
            continue;
          }
          let noise = known.get(`${t.name}|${format}`);
          if (noise === undefined) {
            const gt = graphRef.tensors.get(t.name)!;
            const layout = weightLayout(graphRef, gt);
            let x = values.get(t.name)!;
            if (layout.transpose) x = transpose2d(x, layout.cols, layout.rows);
            let q = quantizeDequantize(x, layout.rows, layout.cols, format);
            if (layout.transpose) q = transpose2d(q, layout.rows, layout.cols);
            let signal = 0;
            let n2 = 0;
            for (let b = 0; b < acts.length; b++) {
              const r = await localBatch(op, b, new Map([[t.name, q]]));
              signal += r.signal;
              n2 += r.noise;
            }
            noise = signal > 0 ? n2 / signal : 0;
            known.set(`${t.name}|${format}`, noise);
          }
          const e = sums.get(key) ?? { layer, format, noise: 0 };
          e.noise += down * noise;
          sums.set(key, e);
        }
        // A (layer, format) with a weight whose ops could not run alone falls back to gain × weight SQNR.
        return [...sums.values()].filter((x) => !missing.has(`${x.layer}|${x.format}`));
      },
      async dispose() {
        for (const l of locals) await l.session.release();
        await session.release();
      },
    };
  } catch (e) {
    for (const l of locals) await l.session.release().catch(() => undefined);
    await main?.release().catch(() => undefined);
    throw e;
  } finally {
    await source.close();
    await siblings.close();
  }
}

async function runLocal(
  ort: Ort,
  op: LocalOp,
  acts: Map<string, OrtTensor>,
  weights: Map<string, Float32Array>,
): Promise<Float32Array[]> {
  const feeds: Record<string, OrtTensor> = {};
  for (const t of op.weights) feeds[t.name] = new ort.Tensor('float32', weights.get(t.name)!, t.dims);
  for (const a of op.activations) feeds[a] = acts.get(a)!;
  const out = await op.session.run(feeds, op.outputs);
  return op.outputs.map((o) => out[o].data as Float32Array);
}

/**
 * The gain of each activation site (an input of a MatMul, Gemm or Conv that W8A8 quantizes): the
 * output's relative noise per unit of relative noise added at that tensor, from runs in which only
 * that site gets Gaussian noise (the same 30 dB probe, a fresh draw per batch) in front of the ops
 * that read it (an Add on an extra input, so one session serves every site).
 */
export async function activationSensitivity(
  file: string,
  sites: { tensor: string; consumers: string[] }[],
  options: SensitivityOptions = {},
): Promise<{ tensor: string; gain: number }[]> {
  const ort = loadOrt(file);
  const probeDb = options.probeDb ?? 30;
  const samples = options.inputs ? await readSampleSets(options.inputs) : undefined;
  const bindings = { batch: 1, sequence: 16, ...(options.bindings ?? {}) };
  const source = await FileByteSource.open(file);
  const siblings = new FolderResolver(file);
  let session: OrtSession | undefined;
  try {
    const model = await readOnnxModel(source);
    const graph = await onnxToGraph(model, source, { bindings });
    const batches = batchCount(graph, bindings, samples, options.batches);
    const inits = new Set(model.graph.initializers.map((t) => t.name));
    const realInputs = model.graph.inputs.map((i) => i.name).filter((n) => !inits.has(n));
    const floatOutputs = model.graph.outputs
      .map((o) => o.name)
      .filter((n) => {
        const t = graph.tensors.get(n);
        return !t || t.dtype === 'float' || t.dtype === 'unknown';
      });
    // noisy_x = x + noise_x, read by the site's consumers instead of x; x itself is an extra output.
    const noiseOf = (x: string) => `${x}__layerplan_noise`;
    const noisyOf = (x: string) => `${x}__layerplan_noisy`;
    const nodes = model.graph.nodes.map((n) => ({ ...n, inputs: [...n.inputs] }));
    for (const s of sites) {
      for (const n of nodes) {
        if (s.consumers.includes(n.name)) n.inputs = n.inputs.map((i) => (i === s.tensor ? noisyOf(s.tensor) : i));
      }
      const first = nodes.findIndex((n) => n.inputs.includes(noisyOf(s.tensor)));
      if (first < 0) continue;
      nodes.splice(first, 0, {
        name: `${s.tensor}__layerplan_probe`,
        opType: 'Add',
        domain: '',
        overload: '',
        inputs: [s.tensor, noiseOf(s.tensor)],
        outputs: [noisyOf(s.tensor)],
        attributes: [],
        docString: '',
      });
    }
    const extra = sites.map((s) => s.tensor).filter((t) => !realInputs.includes(t) && !floatOutputs.includes(t));
    const probedModel: OnnxModel = {
      ...model,
      graph: {
        ...model.graph,
        nodes,
        inputs: [
          ...model.graph.inputs,
          ...sites.map((s) => ({
            name: noiseOf(s.tensor),
            docString: '',
            type: { kind: 'tensor' as const, elemType: DataType.FLOAT },
          })),
        ],
        outputs: [...model.graph.outputs, ...extra.map((n) => tensorInfo(n, graph))],
      },
    };
    session = await ort.InferenceSession.create(
      await encodeOnnxModel(probedModel, (t) => loadTensorBytes(t, source, siblings)),
      { graphOptimizationLevel: 'disabled' },
    );
    const s0 = session;
    const feeds = Array.from({ length: batches }, (_, b) => sampleFeeds(ort, graph, realInputs, samples, bindings, b));
    // The reference run (all noise zero): the outputs, and each site's shape and power.
    const zeros = new Map<string, OrtTensor>();
    const reference: Float32Array[][] = [];
    const shapes: Map<string, { dims: number[]; power: number }>[] = [];
    const zeroFeeds = (b: number) => {
      const f: Record<string, OrtTensor> = {};
      for (const s of sites) {
        const { dims } = shapes[b].get(s.tensor)!;
        const key = dims.join('x');
        if (!zeros.has(key)) {
          zeros.set(key, new ort.Tensor('float32', new Float32Array(dims.reduce((a, c) => a * c, 1)), dims));
        }
        f[noiseOf(s.tensor)] = zeros.get(key)!;
      }
      return f;
    };
    // The sites' shapes and power, and the reference outputs, from the model as it is (sites as extra outputs).
    for (let b = 0; b < batches; b++) shapes.push(new Map());
    const plain = await ort.InferenceSession.create(
      await encodeOnnxModel(
        {
          ...model,
          graph: { ...model.graph, outputs: [...model.graph.outputs, ...extra.map((n) => tensorInfo(n, graph))] },
        },
        (t) => loadTensorBytes(t, source, siblings),
      ),
      { graphOptimizationLevel: 'disabled' },
    );
    try {
      for (let b = 0; b < batches; b++) {
        const out = await plain.run(feeds[b], [...floatOutputs, ...extra]);
        reference.push(floatOutputs.map((o) => Float32Array.from(out[o].data as Float32Array)));
        for (const s of sites) {
          const t = realInputs.includes(s.tensor) ? feeds[b][s.tensor] : out[s.tensor];
          const x = t.data as Float32Array;
          let power = 0;
          for (let k = 0; k < x.length; k++) power += x[k] * x[k];
          shapes[b].set(s.tensor, { dims: t.dims.map(Number), power: power / Math.max(1, x.length) });
        }
      }
    } finally {
      await plain.release();
    }
    const POOL = normals();
    const gains: { tensor: string; gain: number }[] = [];
    for (const [i, s] of sites.entries()) {
      if (options.cancelled?.()) throw new MeasureCancelled();
      options.onProgress?.(i, sites.length, s.tensor);
      let inSignal = 0;
      let inNoise = 0;
      const sums = floatOutputs.map(() => ({ signal: 0, noise: 0 }));
      for (let b = 0; b < batches; b++) {
        const { dims, power } = shapes[b].get(s.tensor)!;
        const n = dims.reduce((a, c) => a * c, 1);
        const sigma = Math.sqrt(power * 10 ** (-probeDb / 10));
        const rand = rng(6151 * (i + 1) + 104729 * b);
        const start = Math.floor(rand() * POOL.length);
        const noise = new Float32Array(n);
        let e2 = 0;
        for (let k = 0, j = start; k < n; k++, j = j + 1 === POOL.length ? 0 : j + 1) {
          noise[k] = sigma * POOL[j];
          e2 += noise[k] * noise[k];
        }
        inNoise += e2;
        inSignal += power * n;
        const out = await s0.run(
          { ...feeds[b], ...zeroFeeds(b), [noiseOf(s.tensor)]: new ort.Tensor('float32', noise, dims) },
          floatOutputs,
        );
        floatOutputs.forEach((o, k) => {
          const y = out[o].data as Float32Array;
          const ref = reference[b][k];
          for (let j = 0; j < ref.length; j++) {
            sums[k].signal += ref[j] * ref[j];
            sums[k].noise += (y[j] - ref[j]) ** 2;
          }
        });
      }
      const outRel = Math.max(0, ...sums.map((x) => (x.signal > 0 ? x.noise / x.signal : 0)));
      gains.push({ tensor: s.tensor, gain: inNoise > 0 ? outRel / (inNoise / inSignal) : 0 });
    }
    options.onProgress?.(sites.length, sites.length, '');
    return gains;
  } finally {
    await session?.release();
    await source.close();
    await siblings.close();
  }
}
