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
  tflopsPerGpu: number;
  mfu: number;
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
}
