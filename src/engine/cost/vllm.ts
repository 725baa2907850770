/**
 * vLLM's memory rules (v0.19.0, vllm/v1/worker/gpu_worker.py determine_available_memory and
 * vllm/v1/core/kv_cache_utils.py; research notes in test/fixtures/runtimes/SOURCES.md):
 *
 *   budget per GPU   = total memory × gpu_memory_utilization (default 0.9) — of the TOTAL, not the free memory
 *   KV cache         = budget − weights on the rank − peak activations of the profiling run − non-torch memory
 *   blocks           = KV bytes ÷ (2 × 16 tokens × KV heads per rank × head size × dtype) ÷ layers on the rank,
 *                      the minimum over ranks; KV heads per rank = max(1, kv_heads ÷ tp) (replicated past kv_heads)
 *   it starts only if one request of max_model_len fits: cdiv(len, 16) blocks per layer
 *
 * Weights are exact up to vLLM's padding of the vocabulary to a multiple of 64 per rank. The activation
 * peak and the non-torch memory (NCCL, cuBLAS workspaces) are MEASURED by vLLM at start-up; here they
 * are estimated and labelled so (activations of max_num_batched_tokens through the widest layer, the
 * sampler's logits; 0.5 GiB non-torch, +0.25 GiB with tensor parallelism). CUDA graphs come out of the
 * 1 − utilization headroom (not the budget) in v0.19.0.
 */
import { InputError } from '../errors';
import type { TransformerSpec } from '../graph/transformer-spec';
import { deviceBytes } from '../hardware/devices';
import type { Plan } from '../plan/plan';
import { parseFormat } from '../quant/formats';
import { decodeStepSeconds, prefillSeconds, type DeviceWork } from './device-speed';
import {
  contextOf,
  overflowProblems,
  rangeList,
  type InferenceDevice,
  type InferenceModel,
  type InferenceProblem,
  type InferenceReport,
  type PlanDevice,
} from './inference-devices';

export const VLLM_VERSION = 'v0.19.0';
export const VLLM_BLOCK = 16;
const GiB = 2 ** 30;

/**
 * Bytes per weight element for the plan's precision default (bf16 unless it names a format). GGUF types
 * (q4_k_m, q8_0 …) are llama.cpp's: vLLM and transformers load the checkpoint in its dtype (2 bytes).
 */
export function weightBytesPerElement(plan: Plan): number {
  const f = plan.precision?.default ?? plan.inference?.dtype ?? 'bf16';
  if (/^(q\d|iq\d|tq\d)/i.test(f)) return 2;
  return (parseFormat(f)?.bitsPerWeight ?? 16) / 8;
}

/** KV bytes per element: auto = the model dtype (2), fp8* = 1. */
export function vllmKvBytes(plan: Plan): number {
  const kv = plan.inference?.kvCache ?? 'auto';
  return kv.startsWith('fp8') ? 1 : kv === 'f32' ? 4 : 2;
}

/** The layers of each pipeline stage (vllm/distributed/utils.py get_pp_indices): n // pp each, the remainder to the stages before the last. */
export function ppLayers(layers: number, pp: number): number[] {
  const parts = Array(pp).fill(Math.floor(layers / pp));
  const rest = layers % pp;
  for (let i = 2; i <= rest + 1; i++) parts[pp - i]++;
  return parts;
}

export function vllmReport(plan: Plan, model: InferenceModel, devices: PlanDevice[], file: string): InferenceReport {
  const spec = model.spec;
  if (!spec) {
    throw new InputError(
      file,
      'model: vLLM plans need a transformer (a config.json, a checkpoint with its config, or an architecture object)',
    );
  }
  const inf = plan.inference!;
  const tp = plan.parallel?.tensor ?? 1;
  const pp = plan.parallel?.pipeline ?? 1;
  const gpus = devices.filter((d) => d.spec.kind !== 'cpu');
  const problems: InferenceProblem[] = [];
  const notes: string[] = [
    'vLLM measures the activation peak and non-torch memory at start-up; both are estimated here (the widest layer over max_num_batched_tokens, the sampler logits, 0.5 GiB non-torch + 0.25 GiB with tensor parallelism)',
    'CUDA graphs are captured after the KV cache is allocated: they use the 1 − gpu_memory_utilization headroom (v0.19.0)',
  ];
  if (tp * pp > gpus.length) {
    problems.push({
      path: ['parallel'],
      severity: 'error',
      message: `parallel: tensor × pipeline = ${tp * pp} GPUs, but the plan has ${gpus.length}`,
    });
  }
  if (spec.heads % tp !== 0) {
    problems.push({
      path: ['parallel', 'tensor'],
      severity: 'error',
      message: `parallel.tensor: vLLM needs the attention heads (${spec.heads}) divisible by the tensor-parallel size ${tp}`,
    });
  }
  if (devices.some((d) => d.spec.kind === 'cpu')) {
    notes.push('vLLM runs on the GPUs; the CPU devices of the plan are not used');
  }
  const ranks = gpus.slice(0, tp * pp);
  const util = inf.gpuMemoryUtilization ?? 0.9;
  const wb = weightBytesPerElement(plan);
  const kvb = vllmKvBytes(plan);
  const kvHeadsRank = Math.max(1, Math.floor(spec.kvHeads / tp));
  const page = 2 * VLLM_BLOCK * kvHeadsRank * spec.headDim * kvb;
  const stageLayers = ppLayers(spec.layers, pp);
  const vocabRank = Math.ceil(spec.vocab / 64 / tp) * 64;
  const h = spec.hidden;
  const q = spec.heads * spec.headDim;
  const kvW = spec.kvHeads * spec.headDim;
  const perLayer =
    (h * (q + 2 * kvW) + q * h) / tp +
    (Math.max(1, spec.experts) * h * spec.ffn * (spec.gated ? 3 : 2)) / tp +
    (spec.norm === 'layernorm' ? 4 : 2) * h;
  const bigGpu = (d: PlanDevice) => deviceBytes(d.spec) >= 70 * GiB && !d.spec.id.startsWith('a100');
  const maxLen = inf.contextLen ?? spec.maxSeqLen ?? contextOf(plan);
  const out: InferenceDevice[] = [];
  let minBlocks = Infinity;
  const work: DeviceWork[] = [];
  let firstLayer = 0;
  ranks.forEach((d, r) => {
    const stage = Math.floor(r / tp);
    const layers = stageLayers[stage] ?? 0;
    const first = stage === 0;
    const last = stage === pp - 1;
    const weightsEl =
      layers * perLayer + (first ? vocabRank * h : 0) + (last ? (spec.tied && first ? 0 : vocabRank * h) + h : 0);
    const weights = weightsEl * wb;
    const tokens = bigGpu(d) ? 8192 : 2048;
    const seqs = bigGpu(d) ? 1024 : 256;
    const act = tokens * ((3 * Math.max(spec.ffn, q)) / tp + 4 * h) * 2 + (last ? seqs * vocabRank * 4 : 0);
    const nonTorch = 0.5 * GiB + (tp > 1 ? 0.25 * GiB : 0);
    const capacity = deviceBytes(d.spec);
    const budget = Math.ceil(capacity * util);
    const kv = budget - weights - act - nonTorch;
    const blocks = layers > 0 ? Math.floor(Math.max(0, kv) / page / layers) : Infinity;
    minBlocks = Math.min(minBlocks, blocks);
    const layerIx = Array.from({ length: layers }, (_, i) => firstLayer + i);
    out.push({
      name: d.name,
      index: d.index,
      kind: d.spec.kind,
      memory: {
        weights,
        kvCache: Math.max(0, kv),
        compute: act + nonTorch,
        total: Math.max(budget, weights + act + nonTorch),
      },
      capacity,
      layers: rangeList(layerIx),
      layerList: layerIx,
      output: last,
      prefillSeconds: 0,
      decodeSeconds: 0,
    });
    if (r % tp === 0) {
      work.push({
        device: d.spec,
        weightBytes: weights,
        kvBytesPerToken: (layers * page) / VLLM_BLOCK,
        layers,
        flopsPerToken: 2 * weightsEl,
        attnFlopsPerContext: (layers * 4 * q) / tp,
      });
    }
    if ((r + 1) % tp === 0) firstLayer += layers;
  });
  const needed = Math.ceil(maxLen / VLLM_BLOCK);
  if (ranks.length && minBlocks <= 0) {
    problems.push({
      path: plan.devices?.length ? ['devices'] : ['cluster', 'gpu'],
      severity: 'error',
      message:
        'vLLM: "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine." (the weights and activations leave no KV cache)',
    });
  } else if (ranks.length && minBlocks < needed) {
    const est = minBlocks * VLLM_BLOCK;
    problems.push({
      path: inf.contextLen !== undefined ? ['inference', 'contextLen'] : ['inference'],
      severity: 'error',
      message: `vLLM: to serve one request of max_model_len ${maxLen}, ${((needed * page * Math.max(...stageLayers)) / GiB).toFixed(2)} GiB of KV cache are needed per GPU, but ${((minBlocks * page * Math.max(...stageLayers)) / GiB).toFixed(2)} GiB are available; the estimated maximum model length is ${est}`,
    });
  }
  const gpuLinks =
    ranks.length > 1 ? [{ bytes: h * 2, gbps: Math.min(...ranks.map((d) => d.spec.hostLinkGBps || 900)) }] : [];
  const perStep = decodeStepSeconds(work, {
    batch: inf.batch,
    context: inf.promptLen + inf.genLen / 2,
    crossings: pp > 1 ? gpuLinks : [],
  });
  const tpComm =
    tp > 1 ? 2 * spec.layers * (10e-6 + (inf.batch * h * 2) / ((ranks[0].spec.hostLinkGBps || 900) * 1e9)) : 0;
  const pre = prefillSeconds(work, { batch: inf.batch, tokens: inf.promptLen, crossings: pp > 1 ? gpuLinks : [] });
  const tpPrefill =
    tp > 1 ? 2 * spec.layers * ((inf.batch * inf.promptLen * h * 2) / ((ranks[0].spec.hostLinkGBps || 900) * 1e9)) : 0;
  out.forEach((d, r) => {
    const s = Math.floor(r / tp);
    d.prefillSeconds = pre.perDevice[s] ?? 0;
    d.decodeSeconds = perStep.perDevice[s] ?? 0;
  });
  notes.push('speed: the llama.cpp-fitted efficiencies of each device class (not validated against vLLM)');
  problems.push(...overflowProblems(plan, out));
  const step = perStep.seconds + tpComm;
  return {
    runtime: 'vllm',
    version: VLLM_VERSION,
    prefillSeconds: pre.seconds + tpPrefill,
    decodeTokensPerSecond: inf.batch / step,
    decodeStepSeconds: step,
    devices: out,
    placement: 'runtime',
    contextCells: Number.isFinite(minBlocks) ? minBlocks * VLLM_BLOCK : 0,
    modelBytes: out.reduce((a, d) => a + d.memory.weights, 0),
    notes,
    problems,
  };
}

/** vLLM reads the model's shape from its config.json: the transformer must exist as a Hugging Face model. */
export function vllmSpecOk(spec: TransformerSpec | undefined): boolean {
  return !!spec && !spec.encoder;
}
