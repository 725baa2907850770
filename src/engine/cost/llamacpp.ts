/**
 * llama.cpp's memory rules as pure functions: which device each layer and tensor lands on (-ngl,
 * --tensor-split), the KV cache per device, compute and output buffers. Read from llama.cpp's source
 * (src/llama-model.cpp load_tensors, src/llama-kv-cache.cpp, src/llama-context.cpp; build b10587 with
 * the history of each rule by build number) and checked against the buffer sizes llama.cpp printed in
 * real logs (test/fixtures/llamacpp/logs.json).
 *
 * Exact where llama.cpp is deterministic: model buffers (the GGUF bytes of the tensors on each device)
 * and KV buffers. Compute buffers are planned by ggml-alloc at run time; here they are ESTIMATED by an
 * empirical rule that reproduces the logged sizes within 15% (see computeBuffers).
 */
import { ggmlType, type GgufModel } from '../formats/gguf-model';

/** llama.cpp build numbers where a rule changed (the build is the first that contains the change). */
export const BUILDS = {
  /** #6177: n_ctx padded to 32. */
  padCtx32: 2493,
  /** #6122: the output buffer holds n_seq_max rows of logits (was n_batch). */
  outputRows: 2540,
  /** #5021: flash attention; n_ctx padded to 256. */
  flashAttention: 2771,
  /** #7257: padding 256 with flash attention, 32 without. */
  padByFa: 2871,
  /** #15434: -fa takes on|off|auto (a bare -fa before). */
  faValue: 6325,
  /** #16812: no padding of n_ctx. */
  noPad: 6868,
  /** #17046: n_ctx padded to 256 always. */
  pad256: 6975,
  /** #16653: --fit (on by default). */
  fit: 7407,
  /** #18148: -ngl N puts the output layer and N−1 repeating layers on the GPU (before: N repeating layers, output on the CPU). */
  outputFirst: 7467,
  /** #18266: -ngl all / auto. */
  nglWords: 7553,
  /** #23764: the KQ mask is f16 with flash attention. */
  maskF16: 9410,
} as const;

/** A llama.cpp build from a plan's runtimeVersion ("b7400", "7400", "b7400-abc"); undefined when it is not one. */
export function parseBuild(version: string | undefined): number | undefined {
  if (version === undefined) return undefined;
  const m = /^b?(\d{3,6})\b/.exec(version.trim().toLowerCase());
  return m ? Number(m[1]) : undefined;
}

/** KV cache types llama.cpp accepts for -ctk/-ctv (common/arg.cpp kv_cache_types). */
export const KV_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1'] as const;

/** Bytes of a row of `n` elements of a ggml type (row_size). */
export function rowBytes(type: string, n: number): number {
  const t = ggmlType(type);
  if (!t) throw new Error(`unknown ggml type ${type}`);
  return (n / t.block) * t.bytes;
}

/**
 * Which device holds layer `il` (0 … nLayer−1 repeating layers, nLayer the output layer) under
 * `-ngl ngl` and a tensor split over `gpus` GPUs: the index of the GPU, or −1 for the CPU.
 * llama_model_base::load_tensors: split points are the cumulative proportions; a layer goes to the
 * first GPU whose split point is above (il − i_gpu_start) / act_gpu_layers (upper_bound).
 */
export function layerDevices(nLayer: number, ngl: number, split: readonly number[], build: number): number[] {
  const gpus = split.length;
  const sum = split.reduce((a, b) => a + b, 0);
  let acc = 0;
  const points = split.map((s) => (acc += s) / (sum || 1));
  const n = ngl < 0 ? nLayer + 1 : ngl;
  const iGpuStart = build >= BUILDS.outputFirst ? Math.max(nLayer + 1 - n, 0) : Math.max(nLayer - n, 0);
  const act = gpus === 0 ? 0 : Math.min(n, nLayer + 1);
  const out: number[] = [];
  for (let il = 0; il <= nLayer; il++) {
    if (il < iGpuStart || il - iGpuStart >= act) {
      out.push(-1);
      continue;
    }
    const x = (il - iGpuStart) / act;
    let g = points.findIndex((p) => p > x);
    if (g < 0) g = gpus - 1;
    out.push(g);
  }
  return out;
}

/** The KV cells llama.cpp allocates for a requested context (its padding by build), total over streams. */
export function kvCells(
  nCtx: number,
  options: { flashAttention: boolean; build: number; nSeq?: number; unified?: boolean },
): number {
  const { build, flashAttention } = options;
  const pad = (x: number, p: number) => Math.ceil(x / p) * p;
  if (build < BUILDS.padCtx32) return nCtx;
  if (build < BUILDS.flashAttention) return pad(nCtx, 32);
  if (build < BUILDS.padByFa) return pad(nCtx, 256);
  if (build < BUILDS.noPad) return pad(nCtx, flashAttention ? 256 : 32);
  if (build < BUILDS.pad256) return nCtx;
  const nSeq = Math.max(1, options.nSeq ?? 1);
  const padded = pad(nCtx, 256);
  if (options.unified !== false || nSeq === 1) return padded;
  return pad(padded / nSeq, 256) * nSeq;
}

/** K and V bytes of one layer's cache of `cells` cells (llama_kv_cache). */
export function kvLayerBytes(model: GgufModel, cells: number, typeK: string, typeV: string): number {
  const k = rowBytes(typeK, model.headDimK * model.nHeadKv);
  const v = rowBytes(typeV, model.headDimV * model.nHeadKv);
  return (k + v) * cells;
}

/** The layer a tensor belongs to: its block index, nLayer for the output layer, −1 for the input layer (kept on the CPU). */
export function tensorLayer(name: string, nLayer: number): number {
  const m = /^blk\.(\d+)\./.exec(name);
  if (m) return Number(m[1]);
  if (/^output(_norm)?\.(weight|bias)$/.test(name) || name.startsWith('cls')) return nLayer;
  return -1;
}

export interface LlamaCppOptions {
  build: number;
  /** Requested context (-c); 0 = the model's training context. */
  nCtx: number;
  /** Sequences (-np slots) sharing the cache; sizes the output buffer. */
  nSeq: number;
  nUbatch: number;
  flashAttention: boolean;
  typeK: string;
  typeV: string;
  /** false = -nkvo: every layer's KV stays in host memory. */
  offloadKqv: boolean;
}

export const LLAMACPP_DEFAULTS = { nUbatch: 512, typeK: 'f16', typeV: 'f16' } as const;

/** One device's share: weights (model buffer), KV cache, compute (+ output) buffers, in bytes; and its layers. */
export interface BufferShare {
  weights: number;
  kvCache: number;
  compute: number;
  /** Repeating layers (block indices) here; the output layer is listed as `output`. */
  layers: number[];
  output: boolean;
}

export interface LlamaCppMemory {
  /** One per GPU, in the order of the split. */
  gpus: BufferShare[];
  /** The host (CPU RAM): the input layer, layers not offloaded, their KV, the host compute and output buffers. */
  host: BufferShare;
  /** The KV cells allocated (context after padding). */
  cells: number;
  /** The device of each layer (−1 host), output layer last. */
  layerDevice: number[];
  /** What was estimated rather than derived, for notes. */
  estimated: string[];
}

/**
 * Compute buffers, ESTIMATED (llama.cpp sizes them by planning the worst-case graph with ggml-alloc at
 * start-up; no closed formula exists). This rule reproduces the sizes in llama.cpp's logs
 * (test/fixtures/llamacpp/logs.json) within 15%, most within 2%. With n_ub = min(n_ctx, n_ubatch),
 * n_kv the KV cells, act = n_embd·n_ub·4 B and mask = n_kv·n_ub·(2 B with flash attention since b9410, else 4 B):
 *   a device's buffer is the larger of its two peaks:
 *     attention  (if it holds layers)        KQ scores n_kv·n_ub·n_head·4 B (none with flash attention)
 *                                            + copies·mask + 4·act   (copies = 4 under pipeline parallelism)
 *     logits     (if it holds the output)    n_vocab·n_ub·4 B + 2·act
 *   the host beside GPUs holds the graph inputs: act + mask (+ act when layers stay on the CPU);
 *   the host's output buffer: n_vocab·n_seq·4 B of logits (n_vocab·n_batch·4 B before b2540).
 */
export function computeBuffers(
  model: GgufModel,
  cells: number,
  o: LlamaCppOptions,
  holds: {
    layers: boolean;
    output: boolean;
    isHost: boolean;
    gpusPresent: boolean;
    cpuLayers: boolean;
    pipeline: boolean;
  },
): number {
  const nUb = Math.min(cells, o.nUbatch);
  const act = model.nEmbd * nUb * 4;
  const mask = cells * nUb * (o.flashAttention && o.build >= BUILDS.maskF16 ? 2 : 4);
  const outputBuf = holds.isHost ? model.nVocab * (o.build >= BUILDS.outputRows ? o.nSeq : 2048) * 4 : 0;
  if (holds.isHost && holds.gpusPresent) return act + mask + (holds.cpuLayers ? act : 0) + outputBuf;
  const attention = holds.layers
    ? (o.flashAttention ? 0 : cells * nUb * model.nHead * 4) + (holds.pipeline ? 4 : 1) * mask + 4 * act
    : 0;
  const logits = holds.output ? model.nVocab * nUb * 4 + 2 * act : 0;
  return Math.max(attention, logits) + outputBuf;
}

/** Pipeline parallelism (#6017, b2413): several GPUs, every layer offloaded, KV offloaded; graph inputs get 4 copies. */
export const PIPELINE_BUILD = 2413;

/**
 * Memory per device for a model under llama.cpp: `layerDevice[il]` (from layerDevices, explicit stages
 * or auto-fit) says where each layer is, for `gpus` GPUs.
 */
export function llamaCppMemory(
  model: GgufModel,
  layerDevice: number[],
  gpus: number,
  o: LlamaCppOptions,
): LlamaCppMemory {
  const nLayer = model.nLayer;
  const share = (): BufferShare => ({ weights: 0, kvCache: 0, compute: 0, layers: [], output: false });
  const gpu = Array.from({ length: gpus }, share);
  const host = share();
  const at = (d: number) => (d < 0 || d >= gpus ? host : gpu[d]);
  const outputDevice = layerDevice[nLayer] ?? -1;
  at(outputDevice).output = true;
  const hasOutput = model.tensors.some((t) => t.name === 'output.weight');
  for (const t of model.tensors) {
    const il = tensorLayer(t.name, nLayer);
    if (il < 0) {
      host.weights += t.bytes;
      // Tied embeddings: the output layer holds a duplicate of token_embd (TENSOR_DUPLICATED); on the
      // host it is the same mapped file range.
      if (!hasOutput && t.name === 'token_embd.weight' && outputDevice >= 0 && outputDevice < gpus) {
        gpu[outputDevice].weights += t.bytes;
      }
      continue;
    }
    at(layerDevice[il] ?? -1).weights += t.bytes;
  }
  const nCtx = o.nCtx > 0 ? o.nCtx : model.nCtxTrain;
  const cells = kvCells(nCtx, { flashAttention: o.flashAttention, build: o.build, nSeq: o.nSeq });
  const perLayer = kvLayerBytes(model, cells, o.typeK, o.typeV);
  for (let il = 0; il < nLayer; il++) {
    const d = layerDevice[il] ?? -1;
    at(d).layers.push(il);
    at(o.offloadKqv ? d : -1).kvCache += perLayer;
  }
  const cpuLayers = host.layers.length > 0;
  const used = gpu.filter((g) => g.layers.length > 0 || g.output).length;
  const pipeline = used > 1 && !cpuLayers && !host.output && o.offloadKqv && o.build >= PIPELINE_BUILD;
  gpu.forEach((g) => {
    g.compute = computeBuffers(model, cells, o, {
      layers: g.layers.length > 0,
      output: g.output,
      isHost: false,
      gpusPresent: true,
      cpuLayers,
      pipeline,
    });
  });
  host.compute = computeBuffers(model, cells, o, {
    layers: cpuLayers,
    output: host.output,
    isHost: true,
    gpusPresent: used > 0,
    cpuLayers,
    pipeline,
  });
  return {
    gpus: gpu,
    host,
    cells,
    layerDevice,
    estimated: [
      'compute buffers are estimated (llama.cpp plans them with ggml-alloc at start-up): KQ scores or logits plus a few activations per device, the embeddings, KQ mask and logits on the host',
    ],
  };
}

/**
 * -ngl and --tensor-split for an assignment of layers to GPUs when llama.cpp can express it: CPU layers
 * first, then each GPU's layers in order, the output layer with the last. Undefined when it cannot (use -ot).
 */
export function nglAndSplit(
  layerDevice: number[],
  gpus: number,
  build: number,
): { ngl: number; tensorSplit: number[] } | undefined {
  const nLayer = layerDevice.length - 1;
  const onGpu = layerDevice.filter((d) => d >= 0 && d < gpus).length;
  if (onGpu === 0) return { ngl: 0, tensorSplit: [] };
  const counts = Array.from({ length: gpus }, (_, g) => layerDevice.filter((d) => d === g).length);
  // The slots -ngl covers: with the output layer since b7467; the repeating layers only before (output separate).
  const tensorSplit = counts;
  for (const ngl of [onGpu, onGpu - 1, onGpu + 1]) {
    if (ngl < 0) continue;
    const got = layerDevices(nLayer, ngl, tensorSplit, build);
    if (got.every((d, i) => d === (layerDevice[i] >= 0 && layerDevice[i] < gpus ? layerDevice[i] : -1))) {
      return { ngl, tensorSplit };
    }
  }
  return undefined;
}
