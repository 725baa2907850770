/**
 * `npm run bench` (WebGPU part): GB/s of packed weights read by the GEMV kernel (batch 1, decode)
 * and a batch-8 GEMM (prefill), per format, on the adapter Dawn finds (SwiftShader on the CPU here).
 * Baseline in the same run: the same kernel on fp32 weights of the same byte size, which reads
 * the same bytes with no decoding, so the ratio shows what decoding costs on this adapter. On a
 * real GPU, compare GB/s with the card's memory bandwidth (the goal for GEMV is >= 70%).
 */
import { packWeight } from '../src/engine/quant/pack';
import { generatedInputs } from '../src/engine/quant/verify';
import { runPackedKernel } from '../src/gpu/runner';
import { kernelSplits } from '../src/engine/quant/wgsl';
import { nodeGpu } from '../src/node/webgpu';

const ROWS = Number(process.env.LAYERPLAN_BENCH_ROWS ?? 2048);
const COLS = Number(process.env.LAYERPLAN_BENCH_COLS ?? 2048);
const REPEATS = Number(process.env.LAYERPLAN_BENCH_REPEATS ?? 5);
const FORMATS = [
  'int8-channel',
  'int4-g128',
  'int4-g16-2l',
  'fp8-e4m3',
  'mxfp4',
  'nvfp4',
  'q4_0',
  'q4_k',
  'q6_k',
  'fp16',
];

async function main(): Promise<void> {
  const gpu = await nodeGpu();
  if (!gpu.device) {
    console.log(`kernels: skipped (${gpu.reason})`);
    return;
  }
  const w = generatedInputs(1, ROWS * COLS, 3);
  console.log(`kernels: ${ROWS}×${COLS} weight, median of ${REPEATS} runs, on ${gpu.name}`);
  const rate = async (packed: ReturnType<typeof packWeight>['packed'], batch: number) => {
    const run = await runPackedKernel(gpu.device!, packed, generatedInputs(batch, packed.cols, 1), batch, REPEATS);
    return { gbps: run.weightBytes / run.seconds / 1e9, ms: run.seconds * 1e3, bytes: run.weightBytes };
  };
  try {
    for (const format of FORMATS) {
      const { packed } = packWeight(w, ROWS, COLS, format);
      const bytes = packed.codes.byteLength;
      // Baseline: fp32 weights of the same size (rows × bytes/4/rows columns), read without decoding.
      const baseCols = Math.max(1, Math.round(bytes / 4 / ROWS));
      const base = packWeight(generatedInputs(1, ROWS * baseCols, 5), ROWS, baseCols, 'fp32').packed;
      const b1 = await rate(base, 1);
      const g1 = await rate(packed, 1);
      const g8 = await rate(packed, 8);
      console.log(
        `  ${format.padEnd(13)} ${(g1.bytes / 1e6).toFixed(2).padStart(6)} MB  split-K ${String(kernelSplits(packed)).padStart(2)}  GEMV ${g1.gbps.toFixed(3).padStart(7)} GB/s (${g1.ms.toFixed(1)} ms)  ` +
          `ratio to the same bytes undecoded ${(g1.gbps / b1.gbps).toFixed(2)}x  |  batch-8 GEMM ${g8.gbps.toFixed(3)} GB/s (${g8.ms.toFixed(1)} ms)`,
      );
    }
  } finally {
    gpu.close();
  }
}

void main();
