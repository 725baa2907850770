import * as fs from 'fs';
import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InputError } from '../engine/errors';
import { readOnnxModel, type TensorData } from '../engine/formats/onnx';
import { loadTensorBytes } from '../engine/formats/onnx-data';
import { onnxToGraph } from '../engine/formats/onnx-graph';
import { encodeOnnxModel } from '../engine/formats/onnx-write';
import {
  exportQuantized,
  ExportCancelled,
  type ActivationSite,
  type QuantExportReport,
} from '../engine/quant/onnx-export';
import { measuredWeight } from '../engine/quant/run';
import { formatFor } from '../engine/plan/plan';
import { FileByteSource, FolderResolver } from './file-source';
import { MeasureCancelled } from './sensitivity';
import { OutputComparer, type OutputComparison } from '../engine/quant/end-to-end';
import { batchCount, loadOrt, readSampleSets, sampleFeeds } from './samples';

export interface ExportFileOptions {
  precision?: { default?: string; rules?: { match: string; format: string }[] };
  blocked?: 'matmulnbits' | 'dequantize';
  activations?: ActivationSite[];
  /** Every weight as its dequantized float32 values (the simulation). */
  simulateAll?: boolean;
  /** External data file beside the output: always, never, or (default) when the model is large or had external data. */
  externalData?: boolean;
  onProgress?: (done: number, total: number, name: string) => void;
  cancelled?: () => boolean;
}

export interface ExportFileResult extends QuantExportReport {
  file: string;
  /** The external data file written beside it, if any. */
  dataFile?: string;
  bytes: number;
}

/** Past this size (or with external data in the input) the export writes its tensors to `<out>.data`. */
const EXTERNAL_DATA_BYTES = 512 * 2 ** 20;
/** Tensors smaller than this stay inside the model file even with external data. */
const EXTERNAL_MIN_TENSOR = 1024;

/**
 * `layerplan quant <model> --plan <p> --export <out.onnx>`: the plan's precision written as an ONNX
 * model (engine/quant/onnx-export.ts). Large models get external data, written tensor by tensor
 * (memory stays near the largest tensor); the file appears only when complete.
 */
export async function exportQuantizedFile(
  file: string,
  out: string,
  options: ExportFileOptions,
): Promise<ExportFileResult> {
  if (path.resolve(file) === path.resolve(out)) {
    throw new InputError(out, 'the export would overwrite the model it reads');
  }
  if (!/\.onnx$/i.test(out)) throw new InputError(out, 'the exported model needs an .onnx name');
  if (!fs.existsSync(path.dirname(path.resolve(out)))) throw new InputError(out, 'its folder does not exist');
  const source = await FileByteSource.open(file);
  const siblings = new FolderResolver(file);
  const dataName = `${path.basename(out)}.data`;
  const tmp = `${out}.partial`;
  const tmpData = path.join(path.dirname(out), `${dataName}.partial`);
  let dataHandle: fsp.FileHandle | undefined;
  try {
    const model = await readOnnxModel(source);
    const graph = await onnxToGraph(model, source);
    const hadExternal = [...graph.tensors.values()].some(
      (t) => (t.ref as { tensor?: { data: TensorData } } | undefined)?.tensor?.data.kind === 'external',
    );
    const external = options.externalData ?? (hadExternal || source.size > EXTERNAL_DATA_BYTES);
    let offset = 0;
    if (external) dataHandle = await fsp.open(tmpData, 'w');
    const store = async (_name: string, bytes: Uint8Array): Promise<TensorData> => {
      if (!dataHandle || bytes.length < EXTERNAL_MIN_TENSOR) return { kind: 'inline', bytes };
      // 64-byte aligned, as onnx's external-data writer aligns.
      const at = Math.ceil(offset / 64) * 64;
      await dataHandle.write(bytes, 0, bytes.length, at);
      offset = at + bytes.length;
      return { kind: 'external', location: dataName, offset: at, length: bytes.length };
    };
    const precision = options.precision;
    const report = await exportQuantized(model, graph, source, siblings, {
      formatOf: (t, layer) => (measuredWeight(graph, t) ? formatFor(precision, t.name, layer) : undefined),
      blocked: options.blocked,
      activations: options.activations,
      simulateAll: options.simulateAll,
      store,
      onProgress: options.onProgress,
      cancelled: options.cancelled,
    });
    model.producerName = 'layerplan';
    model.producerVersion = '0.1.0';
    model.metadata = { ...model.metadata, 'layerplan.exported_from': path.basename(file) };
    const bytes = await encodeOnnxModel(model, (t) => loadTensorBytes(t, source, siblings));
    if (bytes.length > 2 ** 31 - 1) {
      throw new InputError(out, 'the model would be over 2 GiB without external data: export it with external data');
    }
    await fsp.writeFile(tmp, bytes);
    if (dataHandle) {
      await dataHandle.close();
      dataHandle = undefined;
      await fsp.rename(tmpData, path.join(path.dirname(out), dataName));
    }
    await fsp.rename(tmp, out);
    return {
      ...report,
      file: out,
      ...(external ? { dataFile: path.join(path.dirname(out), dataName) } : {}),
      bytes: bytes.length + offset,
    };
  } catch (e) {
    await dataHandle?.close().catch(() => undefined);
    fs.rmSync(tmp, { force: true });
    fs.rmSync(tmpData, { force: true });
    throw e;
  } finally {
    await source.close();
    await siblings.close();
  }
}

export interface CompareOptions {
  inputs?: string;
  batches?: number;
  bindings?: Record<string, number>;
  /** The logits output (default: a float output whose name contains "logit"). */
  logits?: string;
  onProgress?: (done: number, total: number) => void;
  cancelled?: () => boolean;
}

/** Runs the original and the quantized model on the same inputs (the user's samples, or generated) and compares every output. */
export async function compareOutputs(
  original: string,
  quantized: string,
  options: CompareOptions = {},
): Promise<OutputComparison> {
  const ort = loadOrt(original);
  const samples = options.inputs ? await readSampleSets(options.inputs) : undefined;
  const bindings = { batch: 1, sequence: 16, ...(options.bindings ?? {}) };
  const source = await FileByteSource.open(original);
  let graph;
  let realInputs: string[];
  try {
    const model = await readOnnxModel(source);
    graph = await onnxToGraph(model, source, { bindings });
    const inits = new Set(model.graph.initializers.map((t) => t.name));
    realInputs = model.graph.inputs.map((i) => i.name).filter((n) => !inits.has(n));
  } finally {
    await source.close();
  }
  const batches = batchCount(graph, bindings, samples, options.batches);
  const opts = { graphOptimizationLevel: 'disabled' as const };
  const a = await ort.InferenceSession.create(original, opts);
  const b = await ort.InferenceSession.create(quantized, opts);
  try {
    const floats = a.outputNames.filter((n) => {
      const t = graph.tensors.get(n);
      return !t || t.dtype === 'float' || t.dtype === 'unknown';
    });
    if (!floats.length) throw new InputError(original, 'the model has no floating-point outputs to compare');
    const logits = options.logits ?? floats.find((n) => /logit/i.test(n)) ?? null;
    if (logits && !floats.includes(logits)) throw new InputError(original, `no float output named '${logits}'`);
    const cmp = new OutputComparer(floats, logits);
    for (let k = 0; k < batches; k++) {
      if (options.cancelled?.()) throw new MeasureCancelled();
      options.onProgress?.(k, batches);
      const feeds = sampleFeeds(ort, graph, realInputs, samples, bindings, k);
      const ya = await a.run(feeds, floats);
      const yb = await b.run(feeds, floats);
      const last = logits ? Number(ya[logits].dims[ya[logits].dims.length - 1]) : undefined;
      cmp.add(
        floats.map((o) => ya[o].data as Float32Array),
        floats.map((o) => yb[o].data as Float32Array),
        last,
      );
    }
    options.onProgress?.(batches, batches);
    return cmp.result(!samples);
  } finally {
    await a.release();
    await b.release();
  }
}

/** A temporary folder for an export nobody asked to keep (`--measure` without `--export`). */
export function tempExportPath(model: string): { file: string; dispose: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-export-'));
  return {
    file: path.join(dir, path.basename(model).replace(/\.onnx$/i, '') + '.quantized.onnx'),
    dispose: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export { ExportCancelled, MeasureCancelled, type OutputComparison };
