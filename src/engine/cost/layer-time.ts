import { flashAttentionSeconds } from '../hardware/attention';
import type { ComputeDtype, GpuSpec } from '../hardware/catalog';
import { allGatherSeconds, allReduceSeconds, allToAllSeconds, groupLink, p2pSeconds, type GroupTopology } from './comm';
import { gemmSeconds, matmulCeiling, memorySeconds, peakFlops, type Gemm } from './compute';
import type { AttentionKernelChoice, LayerWork } from './workload';

/** Seconds of one layer's forward on one GPU, by part. */
export interface ForwardTime {
  /** GEMMs (each at its shape's efficiency) and matmuls known only by their FLOPs. */
  gemm: number;
  /** Memory-bound kernels: norms, activations, softmax, residuals. */
  memory: number;
  /** Tensor-parallel all-reduces (or reduce-scatter + all-gather pairs with sequence parallelism). */
  tensorComm: number;
}

/**
 * A layer's forward on one GPU at the catalog's generic GEMM efficiency (inference prefill and
 * graph-stage balancing use this; training adds its software profile's kernels in trainingLayerTime).
 */
export function forwardTime(
  work: LayerWork,
  dtype: ComputeDtype,
  gpu: GpuSpec,
  tensorGroup: GroupTopology,
): ForwardTime {
  const bulkPeak = peakFlops(gpu, dtype) * gpu.gemmEfficiency;
  return {
    gemm: work.gemms.reduce((sum, g) => sum + gemmSeconds(g, gpu, dtype), 0) + work.bulkMatmulFlops / bulkPeak,
    memory: memorySeconds(work.memoryBytes, work.memoryKernels, gpu),
    tensorComm: work.tpAllReduceBytes.reduce((sum, bytes) => sum + allReduceSeconds(bytes, tensorGroup), 0),
  };
}

export type Recompute = 'none' | 'selective' | 'full';

/** How a software stack runs a layer's kernels in training (from its profile and the plan). */
export interface KernelModel {
  /** Fraction of the GPU's best-shape matmul throughput its GEMMs sustain (calibrated per stack). */
  gemmSustained: number;
  attention: AttentionKernelChoice;
  /** The dtype of activations and of GEMMs that are not linear layers (attention cores, the output layer). */
  activationDtype: ComputeDtype;
  tpCommOverlap: boolean;
  contextParallel: 'ring' | 'allgather';
}

/** The communication groups a layer's collectives run in. */
export interface LayerGroups {
  tensor: GroupTopology;
  context: GroupTopology;
  expert: GroupTopology;
}

/** One layer's share of a training step, for one micro-batch on one GPU. */
export interface LayerTime {
  forward: number;
  /** Backward: data and weight gradients (twice the forward GEMMs), plus what recomputation runs again. */
  backward: number;
  /** Tensor-parallel communication over all passes of this micro-batch: seconds and bytes. */
  tensorCommSeconds: number;
  tensorCommBytes: number;
}

/** The parts of a training forward, before recomputation and the backward are added up. */
interface TrainingParts {
  gemm: number;
  attentionForward: number;
  attentionBackward: number;
  memory: number;
  fp8Backward: number;
  tensorComm: number;
  tensorGather: number;
  /** Exposed (not hidden behind compute) communication of the forward and of the backward. */
  exposedForward: number;
  exposedBackward: number;
}

function trainingParts(
  work: LayerWork,
  layerDtype: ComputeDtype,
  gpu: GpuSpec,
  groups: LayerGroups,
  kernels: KernelModel,
): TrainingParts {
  const efficiency = (dtype: ComputeDtype) => matmulCeiling(gpu, dtype) * kernels.gemmSustained;
  const gemmTime = (g: Gemm) => {
    const dtype = g.linear ? layerDtype : kernels.activationDtype;
    return gemmSeconds(g, gpu, dtype, efficiency(dtype));
  };
  const linearGemm = work.gemms.reduce((sum, g) => sum + (g.linear ? gemmTime(g) : 0), 0);
  const coreGemm = work.selectiveGemms.reduce((sum, g) => sum + gemmTime(g), 0);
  const gemm =
    work.gemms.reduce((sum, g) => sum + gemmTime(g), 0) +
    work.bulkMatmulFlops / (peakFlops(gpu, layerDtype) * efficiency(layerDtype));
  const core = work.attention;
  const flash =
    core && kernels.attention !== 'unfused'
      ? flashAttentionSeconds(gpu, kernels.attention, core.flops, core.seq, core.headDim, core.causal)
      : { forward: 0, backward: 0 };
  const casts = work.fp8Casts;
  const memory = memorySeconds(
    work.memoryBytes + (casts?.forwardBytes ?? 0),
    work.memoryKernels + (casts?.kernels ?? 0),
    gpu,
  );
  const fp8Backward = casts ? memorySeconds(casts.backwardBytes, casts.kernels, gpu) : 0;

  // Tensor parallelism: with overlap (userbuffers, async TP) the collectives run in chunks under the
  // GEMMs they feed; the first chunk (1/t) and whatever the GEMMs cannot cover stay exposed.
  const tensorComm = work.tpAllReduceBytes.reduce((sum, bytes) => sum + allReduceSeconds(bytes, groups.tensor), 0);
  const tensorGather = work.tpBackwardAllGatherBytes.reduce(
    (sum, bytes) => sum + allGatherSeconds(bytes, groups.tensor),
    0,
  );
  const exposedTensor = (comm: number, cover: number) =>
    kernels.tpCommOverlap ? Math.max(comm / groups.tensor.size, comm - cover) : comm;

  // Context parallelism: ring — each of the cp − 1 steps passes a K/V chunk while the attention of
  // the chunk at hand runs; all-gather — K/V gathered once before the attention (Llama 3).
  let contextForward = 0;
  let contextBackward = 0;
  const exchange = work.contextExchange;
  if (exchange && exchange.steps > 0) {
    const coreForward = flash.forward || coreGemm;
    const coreBackward = flash.backward || 2 * coreGemm;
    if (kernels.contextParallel === 'ring') {
      const link = groupLink(groups.context);
      const step = p2pSeconds(exchange.bytes / exchange.steps, link);
      const computePerStep = coreForward / (exchange.steps + 1);
      const backwardPerStep = coreBackward / (exchange.steps + 1);
      contextForward = exchange.steps * Math.max(0, step - computePerStep);
      // The backward passes K/V and their gradients: twice the bytes.
      contextBackward = exchange.steps * Math.max(0, 2 * step - backwardPerStep);
    } else {
      const gathered = (exchange.bytes * (exchange.steps + 1)) / exchange.steps;
      contextForward = allGatherSeconds(gathered, groups.context);
      contextBackward = allGatherSeconds(gathered, groups.context);
    }
  }
  // Expert parallelism: dispatch and combine all-to-alls, and their gradients in the backward.
  const allToAll = (work.allToAllBytes ?? []).reduce((sum, bytes) => sum + allToAllSeconds(bytes, groups.expert), 0);

  return {
    gemm,
    attentionForward: flash.forward,
    attentionBackward: flash.backward,
    memory,
    fp8Backward,
    tensorComm,
    tensorGather,
    exposedForward: exposedTensor(tensorComm, linearGemm) + contextForward + allToAll,
    exposedBackward: exposedTensor(tensorComm + tensorGather, 2 * linearGemm) + contextBackward + allToAll,
  };
}

/**
 * The one per-layer time function of training: a layer's forward and backward for one micro-batch
 * on one GPU — GEMMs at the stack's sustained efficiency and their shapes', the attention core
 * (batched GEMMs + softmax, or a flash kernel at its measured rate), memory-bound kernels, fp8
 * casts, and the communication the compute does not hide (tensor, context, expert parallel).
 * `recomputed`: the layer is one of the repeated blocks, whose activations recomputation drops
 * (embeddings and the output layer keep theirs).
 */
export function trainingLayerTime(
  work: LayerWork,
  layerDtype: ComputeDtype,
  gpu: GpuSpec,
  groups: LayerGroups,
  kernels: KernelModel,
  recompute: Recompute,
  recomputed: boolean,
): LayerTime {
  const parts = trainingParts(work, layerDtype, gpu, groups, kernels);
  const forward = parts.gemm + parts.attentionForward + parts.memory + parts.exposedForward;
  let backward =
    2 * parts.gemm + parts.attentionBackward + 2 * parts.memory + parts.fp8Backward + parts.exposedBackward;
  // Passes that run the forward's tensor-parallel all-reduces: forward, backward, and a recomputed forward.
  let passes = 2;
  if (recomputed && recompute === 'full') {
    backward += forward;
    passes++;
  } else if (recomputed && recompute === 'selective') {
    const efficiency = matmulCeiling(gpu, kernels.activationDtype) * kernels.gemmSustained;
    backward +=
      parts.attentionForward +
      work.selectiveGemms.reduce((sum, g) => sum + gemmSeconds(g, gpu, kernels.activationDtype, efficiency), 0) +
      memorySeconds(work.selectiveMemoryBytes, 2, gpu);
  }
  const allReduceBytes = work.tpAllReduceBytes.reduce((sum, bytes) => sum + bytes, 0);
  const gatherBytes = work.tpBackwardAllGatherBytes.reduce((sum, bytes) => sum + bytes, 0);
  return {
    forward,
    backward,
    tensorCommSeconds: parts.tensorComm * passes + parts.tensorGather,
    tensorCommBytes: allReduceBytes * passes + gatherBytes,
  };
}
