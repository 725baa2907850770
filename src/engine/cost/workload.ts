import { FP32_OPS } from '../graph/ops';
import { evalShape } from '../graph/dims';
import type { ModelGraph } from '../graph/model-graph';
import { bytesPerElement } from '../graph/shapes';
import type { ArchSpec } from '../plan/plan';
import type { TransformerSpec } from '../graph/transformer-spec';
import type { GgufModel } from '../formats/gguf-model';
import type { Gemm } from './compute';

/** A flash-attention core: timed from the kernel's measured throughput, not as GEMMs. */
export interface AttentionCore {
  /** Executed forward FLOPs on this GPU (a causal mask halves them). */
  flops: number;
  /** Keys each query attends to in one kernel call (the sequence, or one context-parallel chunk). */
  seq: number;
  headDim: number;
  causal: boolean;
}

/** What one layer costs for one micro-batch, per GPU, with tensor, context and expert parallelism applied. */
export interface LayerWork {
  /** Forward GEMMs; the backward runs two GEMMs of the same size for each (data and weight gradients). */
  gemms: Gemm[];
  /** GEMMs that selective recomputation runs again (attention core). */
  selectiveGemms: Gemm[];
  /** Bytes moved by memory-bound kernels in the forward, and their launch count. */
  memoryBytes: number;
  memoryKernels: number;
  /** Memory-bound bytes of the attention core (re-run by selective recomputation). */
  selectiveMemoryBytes: number;
  /** Tensor-parallel collectives in the forward: bytes of each all-reduce (or RS+AG pair with SP). */
  tpAllReduceBytes: number[];
  /** Extra all-gathers in the backward (sequence parallelism re-gathers the sharded GEMM inputs). */
  tpBackwardAllGatherBytes: number[];
  /** Activation bytes this layer keeps for its backward, per recompute mode. */
  activations: { none: number; selective: number; full: number };
  /** Model FLOPs of the forward (matmuls only, as Megatron-LM counts them), for the whole micro-batch. */
  flops: number;
  selectiveFlops: number;
  /** Matmul FLOPs known only as a total (graphs from model files), per GPU: timed at the GEMM roofline. */
  bulkMatmulFlops: number;
  /** The attention core when it runs as a flash kernel (else it is in `gemms` as two batched GEMMs). */
  attention?: AttentionCore;
  /** Context parallelism: K/V bytes this GPU receives in the forward (ring: cp − 1 chunks), and the exchange steps. */
  contextExchange?: { bytes: number; steps: number };
  /** Expert parallelism: bytes this GPU sends in each forward all-to-all (dispatch, combine). */
  allToAllBytes?: number[];
  /** fp8 training: cast / transpose / amax traffic of the fp8 GEMMs' operands, forward and backward. */
  fp8Casts?: { forwardBytes: number; backwardBytes: number; kernels: number };
}

export type AttentionKernelChoice = 'unfused' | 'flash2' | 'flash3';

export interface WorkContext {
  microBatch: number;
  seqLen: number;
  tensor: number;
  sequenceParallel: boolean;
  /** Bytes per activation element (2 for fp16/bf16). */
  actBytes: number;
  /** Bytes per weight element as the GEMM reads it (precision rules). */
  weightBytes: (layer: CostLayer) => number;
  dropout: boolean;
  /** Context-parallel degree (the sequence split across GPUs); default 1. */
  context?: number;
  /** Expert-parallel degree (experts split across GPUs); default 1. */
  expert?: number;
  /** Tensor parallelism inside each expert; default: tensor. */
  expertTensor?: number;
  /** How the attention core runs: batched GEMMs + softmax kernels (Megatron-LM 2021), or a flash kernel. Default unfused. */
  attention?: AttentionKernelChoice;
  /** fp8 training (Transformer Engine): the linear GEMMs run in fp8 with this scaling recipe. */
  fp8?: 'delayed' | 'current' | 'blockwise';
}

export interface CostLayer {
  name: string;
  kind: 'embedding' | 'block' | 'head' | 'norm' | 'generic';
  /** Weight elements (full, before tensor parallelism). */
  parameters: number;
  /** Tensor names owned by this layer, for precision rules (graph models). */
  tensors: string[];
  /** Weight elements that tensor parallelism splits; the rest (norms, position embeddings) replicate. */
  shardedParameters: number;
  /** Weight elements in MoE experts (part of shardedParameters): expert parallelism splits them further. */
  expertParameters?: number;
  /**
   * Layers with the same key compute the same work for the same context and weight bytes (a transformer's
   * blocks, built from one spec): the estimate computes it once for all of them.
   */
  sameWorkAs?: string;
  work(ctx: WorkContext): LayerWork;
}

export interface Workload {
  layers: CostLayer[];
  /** The transformer, when the model is one (an architecture object, a config or a checkpoint with its config). */
  arch?: TransformerSpec;
  /** Indices of the repeated blocks (what stages split). */
  blockIndices: number[];
  /** What the model's numbers miss (a checkpoint without its config has no FLOPs): every estimate repeats them. */
  warnings?: string[];
  /** The model as llama.cpp loads it, when the model file is a GGUF (its tensors and ggml types). */
  gguf?: GgufModel;
}

const emptyWork = (): LayerWork => ({
  gemms: [],
  selectiveGemms: [],
  memoryBytes: 0,
  memoryKernels: 0,
  selectiveMemoryBytes: 0,
  tpAllReduceBytes: [],
  tpBackwardAllGatherBytes: [],
  activations: { none: 0, selective: 0, full: 0 },
  flops: 0,
  selectiveFlops: 0,
  bulkMatmulFlops: 0,
});

const gflops = (g: Gemm) => 2 * g.batch * g.m * g.n * g.k;

/** A transformer block: attention (MHA / GQA, any head size) and a plain or gated MLP, or a mixture of experts. */
function block(name: string, a: TransformerSpec): CostLayer {
  const h = a.hidden;
  const Q = a.heads * a.headDim;
  const KV = a.kvHeads * a.headDim;
  const F = a.ffn;
  const E = Math.max(1, a.experts);
  const K = a.experts > 1 ? a.topK : 1;
  const moe = a.experts > 1;
  const attnParams = h * Q + 2 * h * KV + Q * h + (a.qkvBias ? Q + 2 * KV : 0) + (a.denseBias ? h : 0);
  const expertParams = h * F * (a.gated ? 3 : 2) + (a.denseBias ? F + h : 0);
  const mlpParams = E * expertParams + (moe ? h * E : 0);
  const normParams = a.norm === 'layernorm' ? 4 * h : 2 * h;
  const replicatedBiases = a.denseBias ? 2 * h : 0;
  const causal = !a.encoder;
  return {
    name,
    kind: 'block',
    tensors: [],
    parameters: attnParams + mlpParams + normParams,
    shardedParameters: attnParams + mlpParams - replicatedBiases,
    expertParameters: moe ? E * expertParams : 0,
    // Every block of one spec computes the same work for the same context and weight bytes.
    sameWorkAs: 'block',
    work(ctx) {
      const { microBatch: b, seqLen: s, tensor: t, actBytes: e } = ctx;
      const cp = ctx.context ?? 1;
      const ep = moe ? (ctx.expert ?? 1) : 1;
      const flash = ctx.attention !== undefined && ctx.attention !== 'unfused';
      // Tokens of this GPU's share of the micro-batch (context parallelism splits the sequence).
      const T = (b * s) / cp;
      const r = ctx.sequenceParallel ? 1 / t : 1;
      const w = ctx.weightBytes(this);
      const headsPerGpu = a.heads / t;
      const kvHeadsPerGpu = Math.max(1, a.kvHeads / t);
      // Tokens each local expert's MLP sees: balanced routing over E experts, E/ep of them on this GPU,
      // padded to the capacity factor when tokens are dropped; a dense MLP is one expert that sees every token.
      // With expert tensor parallelism below the attention's (etp < t), each rank routes its own
      // sequence-parallel share of the tokens and holds whole (less split) experts.
      const etp = moe ? (ctx.expertTensor ?? t) : t;
      const localExperts = E / ep;
      const expertTokens = ((T * K * ep) / E) * (etp / t) * (moe ? (a.capacityFactor ?? 1) : 1);
      const linear = (m: number, n: number, k: number, batch = 1): Gemm => ({
        m,
        n,
        k,
        batch,
        bytesA: e,
        bytesB: w,
        linear: true,
      });
      const gemms: Gemm[] = [
        linear(T, (Q + 2 * KV) / t, h),
        linear(T, h, Q / t),
        linear(expertTokens, (F * (a.gated ? 2 : 1)) / etp, h, localExperts),
        linear(expertTokens, h, F / etp, localExperts),
      ];
      if (moe) gemms.push({ m: T, n: E, k: h, batch: 1, bytesA: e, bytesB: w });
      // Attention core: queries of this GPU's chunk against the whole sequence (causal load balancing
      // gives every context-parallel rank the same share of the causal triangle).
      const queries = s / cp;
      const core: Gemm[] = [
        { m: queries, n: s, k: a.headDim, batch: b * headsPerGpu, bytesA: e, bytesB: e },
        { m: queries, n: a.headDim, k: s, batch: b * headsPerGpu, bytesA: e, bytesB: e },
      ];
      const scores = b * headsPerGpu * queries * s;
      const dropout = ctx.dropout && !flash;
      // Memory-bound kernels (fused as Megatron-LM fuses them): 2 norms, 2 bias-dropout-adds, the MLP activation, softmax (+ dropout), rotary embeddings.
      const norms = 2 * (2 * T * h * e) * r;
      const residual = 2 * (3 * T * h * e + (ctx.dropout ? T * h : 0)) * r;
      const act = ((a.gated ? 3 : 2) * (T * K * F * e)) / t;
      const softmax = flash ? 0 : 2 * scores * e + (dropout ? 2 * scores * e + scores : 0);
      const rotary = a.positions ? 0 : (2 * (2 * T * (Q + KV) * e)) / t;
      // MoE: the router's softmax / top-k and the token permutation before and after the experts.
      const permute = moe ? 2 * (2 * T * K * h * e) * r : 0;
      // Activations kept for the backward (Korthikanti et al. 2022, generalized to GQA, head size, SwiGLU, MoE and no-dropout).
      const replicated =
        (2 /* LN1 in */ + 2 /* QKV in */ + 2 /* LN2 in */ + 2) /* MLP in */ * T * h * r +
        (ctx.dropout ? 2 * T * h * r : 0);
      const sharded =
        ((2 * Q /* Q */ + 2 * KV /* K */ + 2 * KV /* V */ + 2 * Q) /* proj in */ * T) / t +
        ((a.gated ? 6 : 4) * T * K * F) / t;
      // Unfused attention keeps the scores, the softmax output and the dropout mask; a flash kernel
      // keeps only the softmax statistics (fp32 per query and head).
      const attnCore = flash ? 4 * b * headsPerGpu * queries : (2 + (dropout ? 3 : 0)) * scores;
      const full = 2 * T * h * r;
      const allReduce = T * h * e;
      // Model FLOPs of the whole micro-batch (all tensor and context ranks): linear GEMMs and the
      // attention core counted over the full s × s scores, as Megatron-LM counts them.
      const modelCoreFlops = 2 * 2 * b * s * s * Q;
      // (Capacity padding is work the GPUs do, not model FLOPs.)
      const padding = moe ? (a.capacityFactor ?? 1) : 1;
      const linearFlops = gemms.reduce((x, g, i) => x + (gflops(g) * t * cp) / (i === 2 || i === 3 ? padding : 1), 0);
      const attention: AttentionCore | undefined = flash
        ? { flops: (modelCoreFlops / (t * cp)) * (causal ? 0.5 : 1), seq: s / cp, headDim: a.headDim, causal }
        : undefined;
      const work: LayerWork = {
        gemms: flash ? gemms : [...gemms, ...core],
        selectiveGemms: flash ? [] : core,
        memoryBytes: norms + residual + act + softmax + rotary + permute,
        memoryKernels: 8 + (moe ? 4 : 0),
        selectiveMemoryBytes: softmax,
        tpAllReduceBytes: t > 1 ? [allReduce, allReduce] : [],
        // Korthikanti et al. §4.2.2: with SP the column-parallel GEMMs' inputs are stored sharded and all-gathered again in the backward.
        tpBackwardAllGatherBytes: t > 1 && ctx.sequenceParallel ? [allReduce, allReduce] : [],
        activations: { none: replicated + sharded + attnCore, selective: replicated + sharded, full },
        flops: linearFlops + modelCoreFlops,
        selectiveFlops: modelCoreFlops,
        bulkMatmulFlops: 0,
        attention,
      };
      if (cp > 1) {
        // Ring exchange: each step passes one chunk of K and V (this GPU's KV heads) to the next rank.
        work.contextExchange = { bytes: (cp - 1) * 2 * b * queries * kvHeadsPerGpu * a.headDim * e, steps: cp - 1 };
      }
      if (moe && ep > 1) {
        // Dispatch and combine: every routed copy of this GPU's tokens goes to its expert's rank and back.
        const routed = ((T * etp) / t) * K * h * e;
        work.allToAllBytes = [routed, routed];
      }
      if (ctx.fp8) {
        // Transformer Engine: each fp8 GEMM casts its input to fp8 with a transposed copy for the weight
        // gradient (read 2 bytes, write 1 + 1) and, in the backward, the output gradient likewise;
        // current and blockwise scaling read each tensor once more for its amax.
        const amax = ctx.fp8 === 'delayed' ? 0 : 2;
        let forwardBytes = 0;
        let backwardBytes = 0;
        for (const g of gemms) {
          if (!g.linear) continue;
          forwardBytes += g.batch * g.m * g.k * (4 + amax);
          backwardBytes += g.batch * g.m * g.n * (4 + amax);
        }
        work.fp8Casts = { forwardBytes, backwardBytes, kernels: (ctx.fp8 === 'delayed' ? 1 : 2) * 4 };
      }
      return work;
    },
  };
}

/** the contract's (docs/ARCHITECTURE.md) architecture object as a TransformerSpec: gpt is GPT-2/3 (LayerNorm, biases, GELU, learned positions, dropout); llama adds GQA, SwiGLU and RMSNorm. */
export function archToSpec(spec: ArchSpec): TransformerSpec {
  const gpt = spec.arch === 'gpt';
  return {
    family: gpt ? 'gpt2' : 'llama',
    layers: spec.layers,
    hidden: spec.hidden,
    heads: spec.heads,
    kvHeads: spec.kvHeads ?? spec.heads,
    headDim: spec.headDim ?? spec.hidden / spec.heads,
    // A mixture of experts: each expert's MLP is the block's MLP (expertFfn, else ffn).
    ffn: spec.expertFfn ?? spec.ffn ?? (gpt ? 4 * spec.hidden : Math.round((8 * spec.hidden) / 3 / 256) * 256),
    vocab: spec.vocab,
    positions: gpt ? (spec.seqLen ?? 2048) : 0,
    gated: !gpt,
    tied: spec.tiedEmbeddings ?? gpt,
    norm: gpt ? 'layernorm' : 'rmsnorm',
    qkvBias: gpt,
    denseBias: gpt,
    experts: spec.experts ?? 1,
    topK: (spec.experts ?? 1) > 1 ? (spec.expertsPerToken ?? 2) : 1,
    ...(spec.capacityFactor !== undefined ? { capacityFactor: spec.capacityFactor } : {}),
    dropout: gpt,
    encoder: false,
    tokenTypes: 0,
    maxSeqLen: spec.seqLen,
  };
}

/** Synthesizes the layers of an architecture object (the contract's (docs/ARCHITECTURE.md) `{"arch": "gpt", …}`). */
export function archWorkload(spec: ArchSpec): Workload {
  return transformerWorkload(archToSpec(spec));
}

/** The cost layers of a transformer: embedding on the first stage, blocks, final norm and output layer on the last. */
export function transformerWorkload(arch: TransformerSpec): Workload {
  const h = arch.hidden;
  const layers: CostLayer[] = [];
  layers.push({
    name: 'embedding',
    kind: 'embedding',
    tensors: [],
    parameters: arch.vocab * h + (arch.positions + arch.tokenTypes) * h,
    shardedParameters: arch.vocab * h,
    work(ctx) {
      const T = (ctx.microBatch * ctx.seqLen) / (ctx.context ?? 1);
      const w = emptyWork();
      w.memoryBytes = 3 * T * h * ctx.actBytes;
      w.memoryKernels = 3;
      w.tpAllReduceBytes = ctx.tensor > 1 ? [T * h * ctx.actBytes] : [];
      const dropoutMask = ctx.dropout ? T * h : 0;
      w.activations = { none: dropoutMask, selective: dropoutMask, full: dropoutMask };
      return w;
    },
  });
  const blockIndices: number[] = [];
  for (let i = 0; i < arch.layers; i++) {
    blockIndices.push(layers.length);
    layers.push(block(`layers.${i}`, arch));
  }
  layers.push({
    name: 'final_norm',
    kind: 'norm',
    tensors: [],
    parameters: arch.norm === 'layernorm' ? 2 * h : h,
    shardedParameters: 0,
    work(ctx) {
      const T = (ctx.microBatch * ctx.seqLen) / (ctx.context ?? 1);
      const r = ctx.sequenceParallel ? 1 / ctx.tensor : 1;
      const w = emptyWork();
      w.memoryBytes = 4 * T * h * ctx.actBytes * r;
      w.memoryKernels = 1;
      w.activations = { none: 2 * T * h * r, selective: 2 * T * h * r, full: 2 * T * h * r };
      return w;
    },
  });
  layers.push({
    // The output layer; with tied embeddings it holds a copy of the word embeddings (Megatron-LM
    // keeps one on the last stage and all-reduces its gradient with the first stage).
    name: 'lm_head',
    kind: 'head',
    tensors: [],
    parameters: arch.vocab * h,
    shardedParameters: arch.vocab * h,
    work(ctx) {
      const { microBatch: b, seqLen: s, tensor: t, actBytes: e } = ctx;
      const cp = ctx.context ?? 1;
      const T = (b * s) / cp;
      const w = emptyWork();
      const g: Gemm = { m: T, n: arch.vocab / t, k: h, batch: 1, bytesA: e, bytesB: ctx.weightBytes(this) };
      w.gemms = [g];
      w.flops = gflops(g) * t * cp;
      // fp32 softmax cross-entropy over vocab-parallel logits: write logits, read for max/sum/loss.
      w.memoryBytes = (3 * T * arch.vocab * 4) / t;
      w.memoryKernels = 4;
      const logits = (4 * T * arch.vocab) / t + (2 * T * h * (ctx.sequenceParallel ? 1 : t)) / t;
      w.activations = { none: logits, selective: logits, full: logits };
      return w;
    },
  });
  return { layers, arch, blockIndices };
}

const MATMUL_OPS = new Set([
  'MatMul',
  'Gemm',
  'Conv',
  'ConvTranspose',
  'MatMulInteger',
  'QLinearMatMul',
  'QLinearConv',
  'ConvInteger',
  'MatMulNBits',
  'Attention',
  'MultiHeadAttention',
  'GroupQueryAttention',
  'LSTM',
  'GRU',
  'RNN',
  'Einsum',
]);

/** What a model file's layer costs, as plain data (the planner's web worker rebuilds the workload from it). */
export interface GraphLayerData {
  name: string;
  parameters: number;
  tensors: string[];
  matmulFlops: number;
  matmulBytes: number;
  otherBytes: number;
  kernels: number;
  activations: number;
  outputBytes: number;
  /** Ops mixed precision keeps in fp32 (FP32_OPS): op type, node name and the weights each reads. */
  fp32Ops?: { op: string; node: string; tensors: string[] }[];
  /** The layer's weights of two or more dimensions (the matrices low-precision formats are for). */
  matrices?: string[];
}

/**
 * A workload as plain data: a transformer's architecture, or a model file's measured layers; with
 * what the model's reader could not know (graph/warnings.ts), which estimates repeat.
 */
export type WorkloadSource = ({ kind: 'arch'; arch: TransformerSpec } | { kind: 'graph'; layers: GraphLayerData[] }) & {
  warnings?: string[];
  /** A GGUF model file's tensors and hyperparameters as llama.cpp reads them. */
  gguf?: GgufModel;
};

export function workloadFrom(source: WorkloadSource): Workload {
  const w = source.kind === 'arch' ? transformerWorkload(source.arch) : graphLayersWorkload(source.layers);
  if (source.warnings?.length) w.warnings = [...source.warnings];
  return source.gguf ? { ...w, gguf: source.gguf } : w;
}

/**
 * Layers of a model file: each graph layer's FLOPs and bytes come from shape inference with the
 * graph's bindings (batch = micro-batch, sequence = seqLen).
 */
export function graphLayerData(graph: ModelGraph): GraphLayerData[] {
  return graph.layers.map((l) => {
    const nodes = l.nodes.map((i) => graph.nodes[i]);
    let matmulFlops = 0;
    let matmulBytes = 0;
    let otherBytes = 0;
    let kernels = 0;
    let activations = 0;
    let outputBytes = 0;
    const produced = new Set<string>();
    const fp32Ops: { op: string; node: string; tensors: string[] }[] = [];
    for (const n of nodes) {
      if (n.opType === 'Constant') continue;
      if (FP32_OPS.has(n.opType)) {
        fp32Ops.push({ op: n.opType, node: n.name, tensors: n.inputs.filter((i) => graph.tensors.get(i)?.isWeight) });
      }
      kernels++;
      if (MATMUL_OPS.has(n.opType)) {
        matmulFlops += n.flops;
        matmulBytes += n.bytesMoved;
      } else otherBytes += n.bytesMoved;
      for (const o of n.outputs) {
        const t = graph.tensors.get(o);
        if (!t || t.isWeight || !t.shape) continue;
        produced.add(o);
        activations += evalShape(t.shape, graph.bindings) * bytesPerElement(t.dtype);
      }
    }
    // The layer's output: tensors it produces that another layer consumes.
    for (const o of produced) {
      const t = graph.tensors.get(o)!;
      if (t.consumers.some((c) => graph.nodes[c].layer !== l.index) || graph.outputs.includes(o)) {
        outputBytes += evalShape(t.shape, graph.bindings) * bytesPerElement(t.dtype);
      }
    }
    const matrices = l.weights.filter((w) => (graph.tensors.get(w)?.shape?.length ?? 0) >= 2);
    return {
      name: l.name,
      parameters: l.parameters,
      tensors: l.weights,
      matmulFlops,
      matmulBytes,
      otherBytes,
      kernels,
      activations,
      outputBytes,
      fp32Ops,
      matrices,
    };
  });
}

/**
 * Tensor parallelism divides a graph layer's work and adds one all-reduce of the layer's output per
 * pass, as a column+row split would.
 */
export function graphLayersWorkload(data: GraphLayerData[]): Workload {
  const layers: CostLayer[] = data.map((d) => ({
    name: d.name,
    kind: 'generic',
    parameters: d.parameters,
    shardedParameters: d.parameters,
    tensors: d.tensors,
    work(ctx) {
      const t = ctx.tensor;
      const w = emptyWork();
      w.flops = d.matmulFlops;
      w.bulkMatmulFlops = d.matmulFlops / t;
      w.memoryBytes = (d.otherBytes + d.matmulBytes) / t;
      w.memoryKernels = d.kernels;
      w.tpAllReduceBytes = t > 1 && d.outputBytes > 0 ? [d.outputBytes] : [];
      w.activations = { none: d.activations / t, selective: d.activations / t, full: d.outputBytes };
      return w;
    },
  }));
  return { layers, blockIndices: layers.map((_, i) => i) };
}

export function graphWorkload(graph: ModelGraph): Workload {
  return graphLayersWorkload(graphLayerData(graph));
}

const positions = new WeakMap<Workload, Map<number, number>>();

/** The position of layer `i` among the blocks (what stages count), or -1: a lookup, not a scan (100k layers). */
export function blockPosition(workload: Workload, i: number): number {
  let map = positions.get(workload);
  if (!map) {
    map = new Map(workload.blockIndices.map((layer, position) => [layer, position]));
    positions.set(workload, map);
  }
  return map.get(i) ?? -1;
}
