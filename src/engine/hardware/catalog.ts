/**
 * GPU and interconnect catalog. Every figure is a DENSE peak (no 2:4 structured sparsity) from the
 * vendor's datasheet named beside it; bandwidths are per GPU and per direction.
 *
 * `gemmEfficiency` is the fraction of the dense peak that a large, well-shaped GEMM sustains in
 * practice, at the clocks a GPU holds under a training load (cuBLAS / hipBLASLt on big square-ish
 * problems in public microbenchmarks: ~250 of 312 TFLOP/s on A100, ~740 of 989 on H100); the shape model
 * in cost/compute.ts scales it down for awkward shapes. `hbmEfficiency` is the fraction of HBM
 * bandwidth a streaming kernel reaches (STREAM-like copies). `linkEfficiency` is the bus bandwidth
 * NCCL/RCCL all-reduce reaches on large messages relative to the link's peak (nccl-tests busbw).
 */
export type ComputeDtype = 'fp32' | 'tf32' | 'bf16' | 'fp16' | 'fp8' | 'int8' | 'fp4';

export interface Link {
  /** Per GPU, per direction, GB/s (1e9 bytes). */
  bandwidthGBps: number;
  latencyUs: number;
  /** Fraction of bandwidthGBps that collectives reach on large messages. */
  efficiency: number;
  kind: string;
}

export interface GpuSpec {
  id: string;
  name: string;
  /** Dense peak TFLOP/s per dtype; absent where the chip has no such path. */
  tflops: Partial<Record<ComputeDtype, number>>;
  memoryGB: number;
  hbmGBps: number;
  sms: number;
  gemmEfficiency: number;
  /**
   * Best-shape matmul throughput as a fraction of the dense peak, per dtype, where it was measured
   * (Maximum Achievable Matmul FLOPS, stas00/ml-engineering compute/accelerator/README.md, commit
   * 7bc7c305: torch.matmul, mean of 100 iterations after 50 warm-ups, best of a shape sweep). The
   * training estimate scales it by its software profile's sustained fraction and by each GEMM's
   * tile and wave quantization; dtypes without a measurement fall back to `gemmEfficiency`.
   */
  matmulCeiling?: Partial<Record<ComputeDtype, number>>;
  hbmEfficiency: number;
  intraNode: Link;
  interNode: Link;
  gpusPerNode: number;
  source: string;
  /** US$ per GPU-hour for the cost objective (a plan's cluster.pricePerGpuHour overrides it); absent where no list price was found. */
  pricePerGpuHour?: number;
}

/**
 * GPU-hour list prices: Runpod Serverless "flex" rates per second × 3600 (docs.runpod.io/serverless/pricing,
 * as read in 2026: A100 80 GB $0.00076/s, H100 PRO $0.00116/s, H200 PRO $0.00155/s, B200 $0.00240/s,
 * L40/L40S $0.00053/s, L4 $0.00019/s, 4090 PRO $0.00031/s). One vendor's on-demand list, so the cost
 * objective compares GPUs on one scale; reserved and spot prices are lower — set cluster.pricePerGpuHour.
 */
export const PRICE_SOURCE = 'Runpod Serverless flex rates (docs.runpod.io/serverless/pricing, 2026), per second × 3600';
const perSecond = (usd: number) => Math.round(usd * 3600 * 1000) / 1000;

const ib = (gbit: number): Link => ({
  bandwidthGBps: gbit / 8,
  latencyUs: 5,
  efficiency: 0.92,
  kind: `InfiniBand ${gbit} Gb/s per GPU`,
});

export const GPUS: GpuSpec[] = [
  {
    id: 'a100-40gb',
    name: 'NVIDIA A100 SXM4 40GB',
    // NVIDIA A100 datasheet (2021): FP32 19.5, TF32 156, BF16/FP16 312, INT8 624 TOPS (dense); 1,555 GB/s; NVLink 600 GB/s bidirectional.
    tflops: { fp32: 19.5, tf32: 156, bf16: 312, fp16: 312, int8: 624 },
    memoryGB: 40,
    hbmGBps: 1555,
    sms: 108,
    gemmEfficiency: 0.8,
    // MAMF A100 SXM: 271.2 of 312 TFLOP/s bf16 (torch 2.6.0+cu126, best shape 1024x10240x5120).
    matmulCeiling: { bf16: 0.869, fp16: 0.869 },
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 300, latencyUs: 3, efficiency: 0.78, kind: 'NVLink 3 (NVSwitch)' },
    interNode: ib(200),
    gpusPerNode: 8,
    source: 'NVIDIA A100 Tensor Core GPU datasheet',
  },
  {
    id: 'a100-80gb',
    name: 'NVIDIA A100 SXM4 80GB',
    // Same datasheet: 80GB HBM2e at 2,039 GB/s.
    tflops: { fp32: 19.5, tf32: 156, bf16: 312, fp16: 312, int8: 624 },
    memoryGB: 80,
    hbmGBps: 2039,
    sms: 108,
    gemmEfficiency: 0.8,
    // MAMF A100 SXM: 271.2 of 312 TFLOP/s bf16 (torch 2.6.0+cu126, best shape 1024x10240x5120).
    matmulCeiling: { bf16: 0.869, fp16: 0.869 },
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 300, latencyUs: 3, efficiency: 0.78, kind: 'NVLink 3 (NVSwitch)' },
    interNode: ib(200),
    gpusPerNode: 8,
    source: 'NVIDIA A100 Tensor Core GPU datasheet',
    pricePerGpuHour: perSecond(0.00076),
  },
  {
    id: 'h100-sxm',
    name: 'NVIDIA H100 SXM5 80GB',
    // H100 datasheet: FP32 67, TF32 494.5, BF16/FP16 989.5, FP8 1,979, INT8 1,979 (dense = half the sparse figures); 3.35 TB/s; NVLink 900 GB/s.
    tflops: { fp32: 67, tf32: 494.5, bf16: 989.5, fp16: 989.5, fp8: 1979, int8: 1979 },
    memoryGB: 80,
    hbmGBps: 3350,
    sms: 132,
    gemmEfficiency: 0.75,
    // MAMF H100 SXM: 794.5 of 989 bf16 (2.7.0+cu126, 2048x2048x13312); 1,402.6 of 1,979 fp8 e4m3 (1024x9216x14336).
    matmulCeiling: { bf16: 0.803, fp16: 0.803, fp8: 0.709 },
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 450, latencyUs: 3, efficiency: 0.8, kind: 'NVLink 4 (NVSwitch)' },
    interNode: ib(400),
    gpusPerNode: 8,
    source: 'NVIDIA H100 Tensor Core GPU datasheet',
    pricePerGpuHour: perSecond(0.00116),
  },
  {
    id: 'h100-pcie',
    name: 'NVIDIA H100 PCIe 80GB',
    // H100 datasheet (PCIe): FP32 51, TF32 378, BF16/FP16 756, FP8 1,513, INT8 1,513 dense; 2 TB/s; PCIe Gen5 128 GB/s bidirectional.
    tflops: { fp32: 51, tf32: 378, bf16: 756, fp16: 756, fp8: 1513, int8: 1513 },
    memoryGB: 80,
    hbmGBps: 2000,
    sms: 114,
    gemmEfficiency: 0.75,
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 64, latencyUs: 5, efficiency: 0.8, kind: 'PCIe Gen5 x16' },
    interNode: ib(400),
    gpusPerNode: 8,
    source: 'NVIDIA H100 Tensor Core GPU datasheet',
  },
  {
    id: 'h200',
    name: 'NVIDIA H200 SXM 141GB',
    // H200 datasheet: same tensor cores as H100 SXM — BF16 989 and FP8 1,979 dense (the 1,979 / 3,958 often quoted are sparse); 141 GB at 4.8 TB/s.
    tflops: { fp32: 67, tf32: 494.5, bf16: 989.5, fp16: 989.5, fp8: 1979, int8: 1979 },
    memoryGB: 141,
    hbmGBps: 4800,
    sms: 132,
    gemmEfficiency: 0.75,
    // MAMF: bf16 as H100 SXM ('H200 is the same'), 794.5 of 989; fp8 1,453.4 of 1,979 (2.7.1+cu128, 1280x4096x12032).
    matmulCeiling: { bf16: 0.803, fp16: 0.803, fp8: 0.734 },
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 450, latencyUs: 3, efficiency: 0.8, kind: 'NVLink 4 (NVSwitch)' },
    interNode: ib(400),
    gpusPerNode: 8,
    source: 'NVIDIA H200 Tensor Core GPU datasheet',
    pricePerGpuHour: perSecond(0.00155),
  },
  {
    id: 'b200',
    name: 'NVIDIA B200 180GB',
    // HGX B200 datasheet: FP4 9, FP8 4.5, BF16/FP16 2.25, TF32 1.1 PFLOPS dense (half of the sparse figures); FP32 75 TFLOPS; 180 GB at 7.7 TB/s; NVLink 5 1.8 TB/s.
    tflops: { fp32: 75, tf32: 1100, bf16: 2250, fp16: 2250, fp8: 4500, int8: 4500, fp4: 9000 },
    memoryGB: 180,
    hbmGBps: 7700,
    sms: 148,
    gemmEfficiency: 0.7,
    // MAMF B200 SXM: 1,745.0 of 2,250 bf16 (2.7.1+cu128, 1792x16128x3072); 3,432.5 of 4,500 fp8 (15360x4096x3072).
    matmulCeiling: { bf16: 0.776, fp16: 0.776, fp8: 0.763 },
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 900, latencyUs: 3, efficiency: 0.8, kind: 'NVLink 5 (NVSwitch)' },
    interNode: ib(400),
    gpusPerNode: 8,
    source: 'NVIDIA HGX B200 datasheet',
    pricePerGpuHour: perSecond(0.0024),
  },
  {
    id: 'gb200',
    name: 'NVIDIA GB200 (Blackwell GPU of a GB200 NVL72)',
    // GB200 NVL72 datasheet, per GPU: FP4 10, FP8 5, BF16/FP16 2.5 PFLOPS dense (half of the sparse figures), TF32 1.25;
    // 186 GB HBM3e at 8 TB/s; NVLink 5 1.8 TB/s bidirectional, 72 GPUs in one NVLink domain.
    tflops: { tf32: 1250, bf16: 2500, fp16: 2500, fp8: 5000, int8: 5000, fp4: 10000 },
    memoryGB: 186,
    hbmGBps: 8000,
    sms: 148,
    gemmEfficiency: 0.7,
    // MAMF GB200 SXM: 1,822 of 2,500 bf16 (torch 2.10 dev, 4096x9728x2048); 3,615.6 of 5,000 fp8 (19456x5120x1536).
    matmulCeiling: { bf16: 0.729, fp16: 0.729, fp8: 0.723 },
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 900, latencyUs: 3, efficiency: 0.8, kind: 'NVLink 5 (NVL72)' },
    interNode: ib(400),
    gpusPerNode: 72,
    source: 'NVIDIA GB200 NVL72 datasheet',
  },
  {
    id: 'l40s',
    name: 'NVIDIA L40S 48GB',
    // L40S datasheet: FP32 91.6, TF32 183, BF16/FP16 362, FP8 733, INT8 733 dense; 48 GB GDDR6 at 864 GB/s; PCIe Gen4 x16 (no NVLink).
    tflops: { fp32: 91.6, tf32: 183, bf16: 362, fp16: 362, fp8: 733, int8: 733 },
    memoryGB: 48,
    hbmGBps: 864,
    sms: 142,
    gemmEfficiency: 0.75,
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 32, latencyUs: 8, efficiency: 0.75, kind: 'PCIe Gen4 x16' },
    interNode: ib(200),
    gpusPerNode: 8,
    source: 'NVIDIA L40S datasheet',
    pricePerGpuHour: perSecond(0.00053),
  },
  {
    id: 'l4',
    name: 'NVIDIA L4 24GB',
    // L4 datasheet: FP32 30.3, TF32 60, BF16/FP16 121, FP8 242.5, INT8 242.5 dense; 24 GB at 300 GB/s; PCIe Gen4 x16.
    tflops: { fp32: 30.3, tf32: 60, bf16: 121, fp16: 121, fp8: 242.5, int8: 242.5 },
    memoryGB: 24,
    hbmGBps: 300,
    sms: 58,
    gemmEfficiency: 0.75,
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 32, latencyUs: 8, efficiency: 0.75, kind: 'PCIe Gen4 x16' },
    interNode: ib(100),
    gpusPerNode: 8,
    source: 'NVIDIA L4 datasheet',
    pricePerGpuHour: perSecond(0.00019),
  },
  {
    id: 'rtx-4090',
    name: 'NVIDIA GeForce RTX 4090 24GB',
    // Ada whitepaper (AD102): FP32 82.6; tensor FP16/BF16 with FP32 accumulate 165.2, FP8 with FP32 accumulate 330.3, INT8 660.6 dense; 1,008 GB/s; PCIe Gen4, no NVLink.
    tflops: { fp32: 82.6, tf32: 82.6, bf16: 165.2, fp16: 165.2, fp8: 330.3, int8: 660.6 },
    memoryGB: 24,
    hbmGBps: 1008,
    sms: 128,
    gemmEfficiency: 0.8,
    hbmEfficiency: 0.85,
    intraNode: { bandwidthGBps: 32, latencyUs: 10, efficiency: 0.7, kind: 'PCIe Gen4 x16' },
    interNode: { bandwidthGBps: 12.5, latencyUs: 10, efficiency: 0.9, kind: 'Ethernet 100 Gb/s' },
    gpusPerNode: 8,
    source: 'NVIDIA Ada GPU architecture whitepaper',
    pricePerGpuHour: perSecond(0.00031),
  },
  {
    id: 'mi300x',
    name: 'AMD Instinct MI300X 192GB',
    // MI300X datasheet: FP32 (matrix) 163.4, TF32 653.7, BF16/FP16 1,307.4, FP8 2,614.9, INT8 2,614.9 dense; 192 GB at 5.3 TB/s;
    // Infinity Fabric: 7 links x 64 GB/s per direction to the other GPUs of the node (448 GB/s).
    tflops: { fp32: 163.4, tf32: 653.7, bf16: 1307.4, fp16: 1307.4, fp8: 2614.9, int8: 2614.9 },
    memoryGB: 192,
    hbmGBps: 5300,
    sms: 304,
    gemmEfficiency: 0.6,
    hbmEfficiency: 0.8,
    intraNode: { bandwidthGBps: 448, latencyUs: 4, efficiency: 0.7, kind: 'Infinity Fabric (xGMI)' },
    interNode: ib(400),
    gpusPerNode: 8,
    source: 'AMD Instinct MI300X data sheet',
  },
];

const ALIASES: Record<string, string> = {
  a100: 'a100-80gb',
  'a100-80g': 'a100-80gb',
  'a100-40g': 'a100-40gb',
  h100: 'h100-sxm',
  'h100-80gb': 'h100-sxm',
  'h200-141gb': 'h200',
  rtx4090: 'rtx-4090',
  '4090': 'rtx-4090',
  mi300: 'mi300x',
  l40: 'l40s',
};

/** Every name findGpu accepts: catalog ids, then aliases (the plan schema offers them all). */
export const GPU_NAMES: readonly string[] = [...GPUS.map((g) => g.id), ...Object.keys(ALIASES)];

export function findGpu(id: string): GpuSpec | undefined {
  const key = id.toLowerCase().trim();
  return GPUS.find((g) => g.id === key) ?? GPUS.find((g) => g.id === ALIASES[key]);
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

export function closest(name: string, options: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const dist = editDistance(name.toLowerCase(), o.toLowerCase());
    if (dist < bestD) [best, bestD] = [o, dist];
  }
  return bestD <= Math.max(3, Math.floor(name.length / 2)) ? best : undefined;
}
