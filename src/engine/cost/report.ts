/**
 * What an estimate reports (DESIGN.md's estimate JSON and what the planner and reports draw), apart
 * from the estimate itself so that the training and inference estimates share it without a cycle.
 */
import type { InferenceDevice } from './inference-devices';
import type { InferencePlanReport } from './inference-plan';
import type { TimelineEvent } from './schedule';

/** Bytes per GPU of one pipeline stage. */
export interface MemoryBreakdown {
  weights: number;
  gradients: number;
  optimizer: number;
  activations: number;
  total: number;
}

export interface StageReport {
  index: number;
  /** Block (layer) indices of this stage, as a plan's `stages[].layers` spells them. */
  layers: string;
  layerNames: string[];
  parameters: number;
  memory: MemoryBreakdown;
  capacity: number;
  computeSeconds: number;
  commSeconds: number;
  idleSeconds: number;
  forwardSeconds: number;
  backwardSeconds: number;
}

export interface CommReport {
  bytes: number;
  seconds: number;
  /** The links the traffic crosses, e.g. "NVLink 4.0 (300 GB/s)" or "NVLink, then InfiniBand 200 Gb/s per GPU". */
  link?: string;
}

/** What `estimate` returns (DESIGN.md's `layerplan estimate --json` document, plus detail for the views). */
export interface CostReport {
  mode: 'training' | 'inference';
  iterationSeconds: number;
  /** Hardware FLOP/s per GPU, recomputation included (what Megatron-LM logs as TFLOPs). */
  tflopsPerGpu: number;
  /** Model FLOPs utilization (Chowdhery et al. 2022; Korthikanti et al. 2022): model FLOPs ÷ (time × GPUs × peak). */
  mfu: number;
  /** Hardware FLOPs utilization (Korthikanti et al. 2022): the FLOPs executed, recomputation included. */
  hfu?: number;
  /** Model FLOP/s per GPU (what NeMo and Megatron-Bridge print as model TFLOP/s/GPU). */
  modelTflopsPerGpu?: number;
  /** The dense peak MFU and HFU divide by, TFLOP/s per GPU (the training dtype's). */
  peakTflops?: number;
  /** The software profile the estimate used (training). */
  framework?: string;
  bubbleFraction: number;
  stages: StageReport[];
  communication: { data: CommReport; tensor: CommReport; pipeline: CommReport };
  gpus: number;
  gpu: string;
  microBatches: number;
  modelFlops: number;
  hardwareFlops: number;
  parameters: number;
  optimizerSeconds: number;
  timeline: TimelineEvent[];
  warnings: string[];
  inference?: { prefillSeconds: number; decodeSecondsPerToken: number; tokensPerSecond: number; kvCacheBytes: number };
  /** Inference plans (DESIGN.md): prefill time, decode speed and each device's memory. */
  prefillSeconds?: number;
  decodeTokensPerSecond?: number;
  devices?: InferenceDevice[];
  /** Inference on devices: the runtime's placement, its notes and quick fixes. */
  runtime?: Omit<InferencePlanReport, 'devices' | 'prefillSeconds' | 'decodeTokensPerSecond'>;
}
