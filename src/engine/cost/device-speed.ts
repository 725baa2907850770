/**
 * Inference speed per device: prefill is compute-bound, decode bandwidth-bound. Each device class
 * (hardware/devices.ts SpeedClass) has an efficiency FITTED on published llama.cpp benchmark results
 * (llama-bench pp512 / tg128 and the like, test/fixtures/llamacpp/speed.json) and checked on a
 * held-out set the fit never saw (test/unit/inference-speed.test.ts prints both tables):
 *
 *   decode, per generated token and device:  (bytes its layers read: weights + KV at the context)
 *                                              / (bandwidth × decodeEfficiency)  +  layers × layerOverheadMs
 *   prefill, per device:                     max(FLOPs / (tflops × prefillEfficiency), bytes / (bandwidth × decodeEfficiency))
 *   between devices:                         activations cross the host link (PCIe, or DRAM for the CPU) with 10 µs latency
 *
 * layerOverheadMs is the fixed cost of a layer's kernels per token (launches, synchronisation, small
 * matrix-vector products that do not reach full bandwidth); it is what makes small models slower than
 * their bytes suggest.
 */
import type { DeviceSpec, SpeedClass } from '../hardware/devices';

export interface SpeedConstants {
  /** Fraction of peak bandwidth decode reaches. */
  decodeEfficiency: number;
  /** Fixed time per layer per token, ms. */
  layerOverheadMs: number;
  /** Fraction of the class's `tflops` prompt processing reaches. */
  prefillEfficiency: number;
  /** The fit points this came from (speed.json), or why it was not fitted. */
  basis: string;
}

/**
 * Fitted by least squares on the log of tokens/s over the 'fit' points of speed.json (a grid search,
 * reproduced by the test, which fails if these are not its optimum).
 */
export const SPEED: Record<SpeedClass, SpeedConstants> = {
  nvidia: {
    decodeEfficiency: 0.99,
    layerOverheadMs: 0.1,
    prefillEfficiency: 0.9,
    basis: 'GeForce / RTX workstation, CUDA: 13 decode and 9 prefill points (XiongjieDai, May 2024 and Dec 2023)',
  },
  'nvidia-datacenter': {
    decodeEfficiency: 0.99,
    layerOverheadMs: 0.16,
    prefillEfficiency: 0.9,
    basis:
      'A100 / H100, CUDA: 2 decode points (XiongjieDai, Dec 2023) fit the per-layer overhead with the nvidia efficiency; prefill: the nvidia value (no point)',
  },
  amd: {
    decodeEfficiency: 0.99,
    layerOverheadMs: 0.16,
    prefillEfficiency: 0.9,
    basis: 'not fitted (no ROCm point with a catalog GPU): the nvidia-datacenter constants',
  },
  apple: {
    decodeEfficiency: 0.79,
    layerOverheadMs: 0.17,
    prefillEfficiency: 0.65,
    basis: 'Apple M-series, Metal: 10 decode and 7 prefill points (XiongjieDai, May 2024 and Dec 2023)',
  },
  cpu: {
    decodeEfficiency: 0.6,
    layerOverheadMs: 0,
    prefillEfficiency: 1,
    basis:
      "CPU: one decode point (Apple M2's CPU, 4 threads); prefill through CPU_TFLOPS_PER_CHANNEL, set from the same point",
  },
};

/** What one device does per token: the bytes its layers read, its layers, its FLOPs. */
export interface DeviceWork {
  device: DeviceSpec;
  /** Weight bytes read per token (its tensors except the token embedding, which is a row lookup). */
  weightBytes: number;
  /** KV bytes per token of context of its layers. */
  kvBytesPerToken: number;
  /** Repeating layers (and the output layer) it runs. */
  layers: number;
  /** Matmul FLOPs per token of its layers (2 × weights), without attention. */
  flopsPerToken: number;
  /** Attention FLOPs per token per token of context (4 × heads × head size per layer). */
  attnFlopsPerContext: number;
}

const ACTIVATION_LATENCY_S = 10e-6;

/** Seconds per decode step of `batch` sequences at an average context `context`, summed over devices (they run in turn). */
export function decodeStepSeconds(
  work: DeviceWork[],
  o: { batch: number; context: number; crossings: { bytes: number; gbps: number }[] },
): { seconds: number; perDevice: number[] } {
  const perDevice = work.map((w) => {
    const c = SPEED[w.device.speedClass];
    const bytes = w.weightBytes + o.batch * o.context * w.kvBytesPerToken;
    const memory = bytes / (w.device.bandwidthGBps * 1e9 * c.decodeEfficiency);
    const flops = o.batch * (w.flopsPerToken + o.context * w.attnFlopsPerContext);
    const compute = flops / (w.device.tflops * 1e12 * c.prefillEfficiency);
    return Math.max(memory, compute) + (w.layers * c.layerOverheadMs) / 1000;
  });
  const links = o.crossings.reduce((a, x) => a + ACTIVATION_LATENCY_S + (o.batch * x.bytes) / (x.gbps * 1e9), 0);
  return { seconds: perDevice.reduce((a, b) => a + b, 0) + links, perDevice };
}

/**
 * Seconds to process a prompt of `tokens` tokens for `batch` sequences. `offloadTo`: the GPU that
 * computes the matmuls of CPU-resident weights for large batches (llama.cpp's scheduler offloads ops
 * of 32 or more tokens to a GPU, uploading the weights over PCIe each time).
 */
export function prefillSeconds(
  work: DeviceWork[],
  o: { batch: number; tokens: number; crossings: { bytes: number; gbps: number }[]; offloadTo?: DeviceSpec },
): { seconds: number; perDevice: number[] } {
  const T = o.batch * o.tokens;
  const perDevice = work.map((w) => {
    const c = SPEED[w.device.speedClass];
    // Causal attention: each token attends to half the prompt on average.
    const flops = T * (w.flopsPerToken + (o.tokens / 2) * w.attnFlopsPerContext);
    const own =
      Math.max(
        flops / (w.device.tflops * 1e12 * c.prefillEfficiency),
        (w.weightBytes + T * w.kvBytesPerToken) / (w.device.bandwidthGBps * 1e9 * c.decodeEfficiency),
      ) +
      (w.layers * c.layerOverheadMs) / 1000;
    const g = o.offloadTo;
    if (w.device.kind !== 'cpu' || !g || o.tokens < 32) return own;
    const gc = SPEED[g.speedClass];
    const offloaded =
      w.weightBytes / (g.hostLinkGBps * 1e9) +
      flops / (g.tflops * 1e12 * gc.prefillEfficiency) +
      (w.layers * gc.layerOverheadMs) / 1000;
    return Math.min(own, offloaded);
  });
  const links = o.crossings.reduce((a, x) => a + ACTIVATION_LATENCY_S + (T * x.bytes) / (x.gbps * 1e9), 0);
  return { seconds: perDevice.reduce((a, b) => a + b, 0) + links, perDevice };
}
