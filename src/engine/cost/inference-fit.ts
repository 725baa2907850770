/**
 * Auto-fit for llama.cpp (what `--fit` does at start-up, done ahead): the most layers that fit on the
 * given GPUs at the plan's context, split across unequal GPUs, and the best GGUF file type for the
 * memory the devices have and an error budget.
 *
 * Layers go where llama.cpp would put them for -ngl / --tensor-split: the first layers stay on the CPU,
 * the GPUs take the rest in order, the output layer with the last. Each GPU keeps a margin free, as
 * llama.cpp's --fit does (fit_params_target = 1024 MiB per device, common/common.h), for the CUDA / Metal
 * context and workspaces no llama.cpp log line counts.
 */
import type { GgufModel } from '../formats/gguf-model';
import type { Plan } from '../plan/plan';
import type { PlanEdit } from '../plan/edits';
import { synthesizeGguf, type QuantizeOptions } from '../quant/gguf-filetypes';
import type { TransformerSpec } from '../graph/transformer-spec';
import {
  computeBuffers,
  kvCells,
  kvLayerBytes,
  layerDevices,
  llamaCppMemory,
  tensorLayer,
  type LlamaCppOptions,
} from './llamacpp';

/** Free memory --fit leaves on each device. */
export const FIT_MARGIN_BYTES = 1024 * 2 ** 20;

export interface FitResult {
  /** Plan device index of each layer (−1 host), output layer last. */
  layerDevice: number[];
  /** -ngl, and -ts over the GPUs in plan order (layer counts), for the result. */
  gpuLayers: number;
  tensorSplit: number[];
  /** Every layer and the output on a GPU. */
  allOnGpu: boolean;
}

/**
 * The most layers on the GPUs (plan device indices `gpus`, with capacities in bytes) such that each GPU
 * keeps `margin` free. Greedy in llama.cpp's order; the result is checked with the full memory model.
 */
export function autoFitLayers(
  model: GgufModel,
  gpus: { index: number; capacity: number; bandwidthGBps?: number }[],
  o: LlamaCppOptions,
  options: { margin?: number; hostShareOn?: number } = {},
): FitResult {
  const margin = options.margin ?? FIT_MARGIN_BYTES;
  const nLayer = model.nLayer;
  const layerBytes = new Array(nLayer + 1).fill(0);
  let inputBytes = 0;
  for (const t of model.tensors) {
    const il = tensorLayer(t.name, nLayer);
    if (il >= 0) layerBytes[il] += t.bytes;
    else inputBytes += t.bytes;
  }
  if (!model.tensors.some((t) => t.name === 'output.weight')) {
    layerBytes[nLayer] += model.tensors.find((t) => t.name === 'token_embd.weight')?.bytes ?? 0;
  }
  const cells = kvCells(o.nCtx > 0 ? o.nCtx : model.nCtxTrain, {
    flashAttention: o.flashAttention,
    build: o.build,
    nSeq: o.nSeq,
  });
  const kv = kvLayerBytes(model, cells, o.typeK, o.typeV);
  const g = gpus.length;
  const toPlan = (d: number) => (d < 0 ? -1 : gpus[d].index);
  const fits = (placed: number[]) => {
    const mem = llamaCppMemory(model, placed, g, o);
    return mem.gpus.every((m, k) => {
      let need = m.weights + m.kvCache + m.compute;
      // Unified memory: the host's buffers share the chip's memory.
      if (gpus[k].index === options.hostShareOn) need += mem.host.weights + mem.host.kvCache + mem.host.compute;
      return need + margin <= gpus[k].capacity;
    });
  };
  /** Layer counts per GPU filling the highest-bandwidth GPUs first, each to what it holds (largest layer, output buffers). */
  const fasterSplit = (
    total: number,
    greedy: number[],
    pipeline: boolean,
    cpuLayers: boolean,
  ): number[] | undefined => {
    const order = gpus.map((_, k) => k).sort((a, b) => (gpus[b].bandwidthGBps ?? 0) - (gpus[a].bandwidthGBps ?? 0));
    if (order.every((k, i) => k === i)) return undefined;
    const biggest = Math.max(...layerBytes.slice(0, nLayer)) + kv;
    const fixed =
      computeBuffers(model, cells, o, {
        layers: true,
        output: true,
        isHost: false,
        gpusPresent: true,
        cpuLayers,
        pipeline,
      }) + layerBytes[nLayer];
    const counts = new Array(g).fill(0);
    let left = total;
    for (const k of order) {
      const room = gpus[k].capacity - margin - fixed - (gpus[k].index === options.hostShareOn ? inputBytes : 0);
      counts[k] = Math.max(0, Math.min(left, Math.floor(room / biggest)));
      left -= counts[k];
    }
    return left === 0 && counts.some((c, k) => c !== greedy[k]) ? counts : undefined;
  };
  for (let ngl = nLayer + 1; ngl >= 1 && g > 0; ngl--) {
    // The slots -ngl covers (layerDevices): since b7467 the output and the ngl − 1 layers before it,
    // before that the last ngl repeating layers (the output only with ngl = n_layer + 1).
    const start = o.build >= 7467 ? nLayer + 1 - ngl : Math.max(0, nLayer - ngl);
    const slots = Array.from({ length: Math.min(ngl, nLayer + 1) }, (_, i) => start + i);
    const counts = new Array(g).fill(0);
    let k = 0;
    let used = 0;
    const pipeline = g > 1 && ngl > nLayer;
    for (const il of slots) {
      for (;;) {
        if (k >= g) break;
        const isOutput = il === nLayer;
        const fixed =
          computeBuffers(model, cells, o, {
            layers: true,
            output: isOutput,
            isHost: false,
            gpusPresent: true,
            cpuLayers: start > 0,
            pipeline,
          }) + (gpus[k].index === options.hostShareOn ? inputBytes : 0);
        const add = layerBytes[il] + (isOutput ? 0 : kv);
        if (used + add + fixed + margin <= gpus[k].capacity) {
          used += add;
          counts[k]++;
          break;
        }
        k++;
        used = 0;
      }
      if (k >= g) break;
    }
    if (counts.reduce((a, b) => a + b, 0) < slots.length) continue;
    const split = counts.some((c) => c > 0) ? counts : [1];
    const placed = layerDevices(nLayer, ngl, g > 1 ? split : [1], o.build);
    if (!fits(placed)) continue;
    // As many layers, but the faster GPUs first: decode reads each layer from its GPU's memory, so the
    // layers a fast GPU can hold should not sit on a slow one (llama.cpp's order stays: the counts change).
    const fast = g > 1 ? fasterSplit(slots.length, counts, pipeline, start > 0) : undefined;
    const use = fast && fits(layerDevices(nLayer, ngl, fast, o.build)) ? fast : split;
    const final = g > 1 ? layerDevices(nLayer, ngl, use, o.build) : placed;
    return {
      layerDevice: final.map(toPlan),
      gpuLayers: ngl,
      tensorSplit: use,
      allOnGpu: final.every((d) => d >= 0),
    };
  }
  return { layerDevice: new Array(nLayer + 1).fill(-1), gpuLayers: 0, tensorSplit: [], allOnGpu: false };
}

/** The quick fix that makes a plan take the auto-fit placement. */
export function autoFitEdits(plan: Plan, fit: FitResult, gpuCount: number): PlanEdit[] {
  const edits: PlanEdit[] = [{ path: ['inference', 'gpuLayers'], value: fit.gpuLayers }];
  edits.push({ path: ['inference', 'tensorSplit'], value: gpuCount > 1 ? fit.tensorSplit : undefined });
  // Explicit stage devices win over -ngl; the fix hands placement back to the runtime.
  if (plan.stages?.some((s) => s.device !== undefined)) edits.push({ path: ['stages'], value: undefined });
  return edits;
}

/**
 * llama.cpp's quality order of file types: the perplexity each adds on Llama-3-8B as llama-quantize
 * prints it (tools/quantize/quantize.cpp QUANT_OPTIONS, b3199 onwards; test/fixtures/llamacpp/sizes.json).
 * IQ types are left out: llama-quantize needs an importance matrix for most of them.
 */
export const FILE_TYPE_QUALITY: { type: string; pplDelta: number }[] = [
  { type: 'f16', pplDelta: 0.002 },
  { type: 'q8_0', pplDelta: 0.0026 },
  { type: 'q6_k', pplDelta: 0.0217 },
  { type: 'q5_k_m', pplDelta: 0.0569 },
  { type: 'q5_k_s', pplDelta: 0.1049 },
  { type: 'q5_1', pplDelta: 0.1062 },
  { type: 'q5_0', pplDelta: 0.1316 },
  { type: 'q4_k_m', pplDelta: 0.1754 },
  { type: 'q4_k_s', pplDelta: 0.2689 },
  { type: 'q4_1', pplDelta: 0.4511 },
  { type: 'q4_0', pplDelta: 0.4685 },
  { type: 'q3_k_l', pplDelta: 0.5562 },
  { type: 'q3_k_m', pplDelta: 0.6569 },
  { type: 'q3_k_s', pplDelta: 1.6321 },
  { type: 'q2_k_s', pplDelta: 3.1836 },
  { type: 'q2_k', pplDelta: 3.5199 },
];

export interface FileTypeChoice {
  fileType: string;
  bytes: number;
  fit: FitResult;
  /** Measured weight SQNR where the weights were there, dB. */
  sqnrDb?: number;
  /** Why each better type was passed over. */
  rejected: { fileType: string; why: string }[];
}

/**
 * The best file type for the memory of these GPUs and an error budget: the highest-quality type whose
 * layers all fit on the GPUs at the plan's context and whose measured SQNR (parameter-weighted over the
 * weights, where measured) meets `errorBudgetDb`. Undefined when none fits.
 */
export function bestFileType(
  spec: TransformerSpec,
  gpus: { index: number; capacity: number }[],
  o: LlamaCppOptions,
  options: {
    quantize?: QuantizeOptions;
    errorBudgetDb?: number;
    sqnrDb?: Record<string, number>;
    hostShareOn?: number;
  } = {},
): FileTypeChoice | undefined {
  const rejected: { fileType: string; why: string }[] = [];
  for (const { type } of FILE_TYPE_QUALITY) {
    const model = synthesizeGguf(spec, type, options.quantize);
    const sqnr = options.sqnrDb?.[type];
    if (options.errorBudgetDb !== undefined && sqnr !== undefined && sqnr < options.errorBudgetDb) {
      rejected.push({ fileType: type, why: `SQNR ${sqnr.toFixed(1)} dB < budget ${options.errorBudgetDb} dB` });
      continue;
    }
    const fit = autoFitLayers(model, gpus, o, { hostShareOn: options.hostShareOn });
    if (!fit.allOnGpu) {
      rejected.push({ fileType: type, why: `${fit.gpuLayers} of ${model.nLayer + 1} layers fit` });
      continue;
    }
    return { fileType: type, bytes: model.tensors.reduce((a, t) => a + t.bytes, 0), fit, sqnrDb: sqnr, rejected };
  }
  return undefined;
}
