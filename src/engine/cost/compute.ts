import type { ComputeDtype, GpuSpec } from '../hardware/catalog';

/**
 * Kernel time model: a roofline per kernel (FLOPs at the dtype's dense peak vs bytes at HBM
 * bandwidth) with an efficiency that depends on the GEMM's shape.
 *
 *  - `gemmEfficiency` (catalog) is what cuBLAS sustains on large, tile-aligned GEMMs.
 *  - Tile quantization: GEMMs run in 128×128 output tiles with K in steps of 64; a 130-wide N pays
 *    for 256 columns. Efficiency × (useful MN·K) / (padded MN·K).
 *  - Wave quantization: tiles run in waves of one tile per SM; a partial last wave leaves SMs idle.
 *    Efficiency × tiles / (waves × SMs). cuBLAS's stream-K kernels recover half of that loss for
 *    K ≥ 1024 (they split the reduction to fill the last wave), so the penalty is halved there.
 *  - Every kernel pays a launch/tail overhead (KERNEL_OVERHEAD_S), which dominates tiny kernels.
 */
export const KERNEL_OVERHEAD_S = 4e-6;
const TILE_M = 128;
const TILE_N = 128;
const TILE_K = 64;

export interface Gemm {
  m: number;
  n: number;
  k: number;
  /** Independent GEMMs in one batched call (attention heads × micro-batch). */
  batch: number;
  /** Bytes per element of the operands (2 for bf16, 1 for fp8, fractional for packed int4 weights). */
  bytesA: number;
  bytesB: number;
  /** A weight GEMM (a linear layer): fp8 training runs these in fp8; attention cores and the output layer stay bf16. */
  linear?: boolean;
}

export function gemmFlops(g: Gemm): number {
  return 2 * g.batch * g.m * g.n * g.k;
}

export function gemmShapeEfficiency(g: Gemm, sms: number): number {
  const pad = (x: number, t: number) => Math.ceil(x / t) * t;
  const tile = (g.m * g.n * g.k) / (pad(g.m, TILE_M) * pad(g.n, TILE_N) * pad(g.k, TILE_K));
  const tiles = g.batch * Math.ceil(g.m / TILE_M) * Math.ceil(g.n / TILE_N);
  const waves = Math.ceil(tiles / sms);
  let wave = tiles / (waves * sms);
  if (g.k >= 1024) wave = 1 - (1 - wave) / 2;
  return tile * wave;
}

export function peakFlops(gpu: GpuSpec, dtype: ComputeDtype): number {
  const t = gpu.tflops[dtype] ?? gpu.tflops.bf16 ?? gpu.tflops.fp16 ?? gpu.tflops.fp32 ?? 1;
  return t * 1e12;
}

/** The best-shape matmul throughput of a GPU in a dtype, as a fraction of its dense peak (catalog, MAMF). */
export function matmulCeiling(gpu: GpuSpec, dtype: ComputeDtype): number {
  return gpu.matmulCeiling?.[dtype] ?? gpu.gemmEfficiency;
}

/** Seconds for one GEMM on one GPU; `efficiency` is the fraction of the peak a large, well-shaped GEMM reaches. */
export function gemmSeconds(g: Gemm, gpu: GpuSpec, dtype: ComputeDtype, efficiency = gpu.gemmEfficiency): number {
  const compute = gemmFlops(g) / (peakFlops(gpu, dtype) * efficiency * gemmShapeEfficiency(g, gpu.sms));
  const bytes = g.batch * (g.m * g.k * g.bytesA + g.k * g.n * g.bytesB + g.m * g.n * 2);
  const memory = bytes / (gpu.hbmGBps * 1e9 * gpu.hbmEfficiency);
  return Math.max(compute, memory) + KERNEL_OVERHEAD_S;
}

/** Seconds for memory-bound kernels moving `bytes` in `kernels` launches. */
export function memorySeconds(bytes: number, kernels: number, gpu: GpuSpec): number {
  return bytes / (gpu.hbmGBps * 1e9 * gpu.hbmEfficiency) + kernels * KERNEL_OVERHEAD_S;
}

/** Roofline for an op known only by FLOPs and bytes (graphs from model files). */
export function rooflineSeconds(
  flops: number,
  bytes: number,
  gpu: GpuSpec,
  dtype: ComputeDtype,
  matmul: boolean,
): number {
  const compute = flops / (peakFlops(gpu, dtype) * (matmul ? gpu.gemmEfficiency : 0.05));
  const memory = bytes / (gpu.hbmGBps * 1e9 * gpu.hbmEfficiency);
  return Math.max(compute, memory) + KERNEL_OVERHEAD_S;
}
