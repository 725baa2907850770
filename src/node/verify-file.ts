import { InputError } from '../engine/errors';
import { openModel } from '../engine/formats/registry';
import type { ModelGraph } from '../engine/graph/model-graph';
import { parseFormat } from '../engine/quant/formats';
import {
  finishVerify,
  generatedInputs,
  prepareVerify,
  type VerifyJob,
  type VerifyReport,
} from '../engine/quant/verify';
import {
  decodable,
  dequantizeLinearOf,
  loadWeightFloat32,
  matMulNBitsOf,
  transpose2d,
  weightLayout,
} from '../engine/quant/weights';
import { runPackedKernel } from '../gpu/runner';
import { FileByteSource, FolderResolver } from './file-source';
import { nodeGpu, type NodeGpu } from './webgpu';
import { activationSession } from './calibrate';

export interface LayerWeight {
  tensor: string;
  layer: string;
  w: Float32Array;
  rows: number;
  cols: number;
}

/** Names of the weights `verify` can run: stored floating-point (or model-dequantized) matrices. */
export function verifiableTensors(graph: ModelGraph): string[] {
  const out: string[] = [];
  for (const t of graph.tensors.values()) {
    if (!t.isWeight || !t.ref || (t.shape?.length ?? 0) < 2) continue;
    if (decodable(t.dtype) || matMulNBitsOf(graph, t) || dequantizeLinearOf(graph, t)) out.push(t.name);
  }
  return out;
}

/** Loads one weight as [rows = outputs, cols = reduction axis] floats, the layout the kernels compute with. */
export async function loadLayerWeight(file: string, tensor: string): Promise<LayerWeight> {
  const source = await FileByteSource.open(file);
  const siblings = new FolderResolver(file);
  try {
    const graph = await openModel(source, { siblings });
    const t = graph.tensors.get(tensor);
    const candidates = verifiableTensors(graph);
    if (!t || !t.isWeight || !t.ref) {
      const near = candidates
        .filter((n) => n.toLowerCase().includes(tensor.toLowerCase().split(/[./]/).pop() ?? ''))
        .slice(0, 5);
      throw new InputError(
        file,
        `no stored weight named '${tensor}'${
          near.length
            ? ` (did you mean ${near.map((n) => `'${n}'`).join(', ')}?)`
            : candidates.length
              ? ` (weights: ${candidates
                  .slice(0, 5)
                  .map((n) => `'${n}'`)
                  .join(', ')}…)`
              : ''
        }`,
      );
    }
    if (!candidates.includes(tensor)) {
      throw new InputError(
        file,
        `'${tensor}' is not a floating-point weight matrix (${t.dtype}, shape [${(t.shape ?? []).join(', ')}])`,
      );
    }
    let w = await loadWeightFloat32(t, source, siblings, graph);
    const layout = weightLayout(graph, t);
    if (layout.transpose) w = transpose2d(w, layout.cols, layout.rows);
    return {
      tensor,
      layer: t.layer !== undefined ? (graph.layers[t.layer]?.name ?? '') : '',
      w,
      rows: layout.rows,
      cols: layout.cols,
    };
  } finally {
    await source.close();
    await siblings.close();
  }
}

export interface VerifyOptions {
  tensor: string;
  format: string;
  batch?: number;
  seed?: number;
  /** Timed kernel runs after the checked one (for GB/s); 0 skips timing. */
  repeats?: number;
  /** A folder of calibration samples (input_<i>.pb sets): the layer runs on the activations that reach it. */
  inputs?: string;
  /** An already-open device (tests, several formats in a row); otherwise one is opened and closed. */
  gpu?: NodeGpu;
}

/**
 * The verification job for one weight and format: on the activations the user's samples produce
 * (`inputs`, an ONNX model run by onnxruntime), or on seeded generated inputs.
 */
export async function verifyJob(
  file: string,
  layer: LayerWeight,
  options: { format: string; batch?: number; seed?: number; inputs?: string },
): Promise<VerifyJob> {
  if (options.inputs) {
    const cal = await calibrationInputs(file, layer, options.inputs, options.batch ?? 64);
    return prepareVerify(
      layer.tensor,
      layer.w,
      layer.rows,
      layer.cols,
      options.format,
      cal.x,
      cal.batch,
      cal.description,
      'activations',
    );
  }
  const batch = options.batch ?? 8;
  const seed = options.seed ?? 1;
  const x = generatedInputs(batch, layer.cols, seed);
  return prepareVerify(
    layer.tensor,
    layer.w,
    layer.rows,
    layer.cols,
    options.format,
    x,
    batch,
    `generated: ${batch} × N(0, 1) rows, seed ${seed}`,
  );
}

/**
 * The activations that reach a weight's MatMul / Gemm when the model runs (onnxruntime-node) on the
 * user's samples: up to `maxRows` rows of the reduction axis, as the kernel's x [batch, cols].
 */
export async function calibrationInputs(
  file: string,
  layer: LayerWeight,
  dir: string,
  maxRows = 64,
): Promise<{ x: Float32Array; batch: number; description: string }> {
  let input = '';
  const session = await activationSession(
    file,
    (graph) => {
      const node = graph.nodes.find(
        (n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && n.inputs[1] === layer.tensor && n.parent < 0,
      );
      if (!node) {
        throw new InputError(
          file,
          `'${layer.tensor}' does not feed a MatMul or Gemm directly: its activations cannot be captured (leave out --inputs to use generated ones)`,
        );
      }
      input = node.inputs[0];
      return [input];
    },
    { inputs: dir },
  );
  const rows: Float32Array[] = [];
  try {
    await session.run((_, data) => {
      if (data.length % layer.cols !== 0) {
        throw new InputError(file, `the activation '${input}' has ${data.length} values, not rows of ${layer.cols}`);
      }
      for (let r = 0; r * layer.cols < data.length && rows.length < maxRows; r++) {
        rows.push(data.slice(r * layer.cols, (r + 1) * layer.cols));
      }
    });
  } finally {
    await session.close();
  }
  if (!rows.length) throw new InputError(dir, 'the samples produced no activations');
  const x = new Float32Array(rows.length * layer.cols);
  rows.forEach((r, i) => x.set(r, i * layer.cols));
  return {
    x,
    batch: rows.length,
    description: `calibration: ${rows.length} rows of '${input}' from ${session.batches} sample set(s) in ${dir}`,
  };
}

/** `layerplan verify`: runs the packed kernel on the model's real weight with WebGPU (Dawn), or says why not and falls back to the CPU reference. */
export async function verifyFile(file: string, options: VerifyOptions, layer?: LayerWeight): Promise<VerifyReport> {
  if (!parseFormat(options.format)) {
    throw new InputError(options.format, 'unknown format (see layerplan quant --help for the names)');
  }
  const weight = layer ?? (await loadLayerWeight(file, options.tensor));
  const job = await verifyJob(file, weight, options);
  const gpu = options.gpu ?? (await nodeGpu());
  try {
    if (!gpu.device) return finishVerify(job, { fallback: gpu.reason });
    const run = await runPackedKernel(gpu.device, job.packed, job.x, job.batch, options.repeats ?? 0);
    return finishVerify(job, { y: run.y, device: gpu.name, seconds: run.seconds });
  } finally {
    if (!options.gpu && gpu.device) gpu.close();
  }
}
