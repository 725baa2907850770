import type { ComputeDtype, GpuSpec } from '../hardware/catalog';
import { allGatherSeconds, allReduceSeconds, type GroupTopology } from './comm';
import { gemmSeconds, memorySeconds, peakFlops } from './compute';
import type { LayerWork } from './workload';

/** Seconds of one layer's forward on one GPU, by part. */
export interface ForwardTime {
  /** GEMMs (each at its shape's efficiency) and matmuls known only by their FLOPs. */
  gemm: number;
  /** Memory-bound kernels: norms, activations, softmax, residuals. */
  memory: number;
  /** Tensor-parallel all-reduces (or reduce-scatter + all-gather pairs with sequence parallelism). */
  tensorComm: number;
}

/** The one per-layer time function: a layer's forward on one GPU, for training and inference alike. */
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

/** One layer's share of a training step, for one micro-batch on one GPU. */
export interface LayerTime {
  forward: number;
  /** Backward: data and weight gradients (twice the forward GEMMs), plus what recomputation runs again. */
  backward: number;
  /** Tensor-parallel communication over all passes of this micro-batch: seconds and bytes. */
  tensorCommSeconds: number;
  tensorCommBytes: number;
}

/**
 * A layer's forward and backward in training. `recomputed`: the layer is one of the repeated
 * blocks, whose activations recomputation drops (embeddings and the output layer keep theirs).
 */
export function trainingLayerTime(
  work: LayerWork,
  dtype: ComputeDtype,
  gpu: GpuSpec,
  tensorGroup: GroupTopology,
  recompute: Recompute,
  recomputed: boolean,
): LayerTime {
  const fwd = forwardTime(work, dtype, gpu, tensorGroup);
  const forward = fwd.gemm + fwd.memory + fwd.tensorComm;
  const backwardGather = work.tpBackwardAllGatherBytes.reduce(
    (sum, bytes) => sum + allGatherSeconds(bytes, tensorGroup),
    0,
  );
  let backward =
    2 * fwd.gemm + memorySeconds(2 * work.memoryBytes, 2 * work.memoryKernels, gpu) + fwd.tensorComm + backwardGather;
  // Passes that run the forward's tensor-parallel all-reduces: forward, backward, and a recomputed forward.
  let passes = 2;
  if (recomputed && recompute === 'full') {
    backward += forward;
    passes++;
  } else if (recomputed && recompute === 'selective') {
    backward +=
      work.selectiveGemms.reduce((sum, g) => sum + gemmSeconds(g, gpu, dtype), 0) +
      memorySeconds(work.selectiveMemoryBytes, 2, gpu);
  }
  const allReduceBytes = work.tpAllReduceBytes.reduce((sum, bytes) => sum + bytes, 0);
  const gatherBytes = work.tpBackwardAllGatherBytes.reduce((sum, bytes) => sum + bytes, 0);
  return {
    forward,
    backward,
    tensorCommSeconds: fwd.tensorComm * passes + backwardGather,
    tensorCommBytes: allReduceBytes * passes + gatherBytes,
  };
}
