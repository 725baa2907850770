import type { GpuSpec } from './catalog';

/**
 * Measured attention-kernel throughput (TFLOP/s) by GPU, kernel, head size, sequence length and
 * mask, as the kernels' authors published it. FLOPs are counted as flash-attention's benchmark
 * counts them: forward 4·batch·seq²·heads·headDim, halved for a causal mask; backward 2.5× the
 * forward. Values read from Dao-AILab/flash-attention README.md at 0251105a (the FlashAttention-2
 * and -3 papers' benchmark figures, assets/flash2_*_fwd_bwd_benchmark.png and
 * assets/flash3_fp16_fwd.png): batch × seq = 16k tokens, hidden 2048, fp16/bf16.
 */
export type AttentionKernel = 'flash2' | 'flash3';

type Row = [seq: number, hd64: number, hd128: number];

interface Curve {
  /** Sequence lengths and TFLOP/s at head size 64 and 128. */
  causal: Row[];
  full: Row[];
}

/** FlashAttention-2 forward + backward, A100 80GB SXM4. hd128 non-causal at 512 is behind the legend (bar ≈ 150). */
const FA2_A100: Curve = {
  full: [
    [512, 132, 150],
    [1024, 153, 173],
    [2048, 162, 187],
    [4096, 171, 196],
    [8192, 175, 201],
    [16384, 176, 203],
  ],
  causal: [
    [512, 88, 99],
    [1024, 119, 133],
    [2048, 140, 155],
    [4096, 156, 173],
    [8192, 165, 182],
    [16384, 171, 189],
  ],
};

/** FlashAttention-2 forward + backward, H100 80GB SXM5. */
const FA2_H100: Curve = {
  full: [
    [512, 215, 248],
    [1024, 254, 294],
    [2048, 274, 320],
    [4096, 288, 326],
    [8192, 294, 335],
    [16384, 296, 338],
  ],
  causal: [
    [512, 141, 163],
    [1024, 192, 221],
    [2048, 232, 265],
    [4096, 257, 294],
    [8192, 273, 308],
    [16384, 284, 328],
  ],
};

/** FlashAttention-2 forward only, H100 (the FA2 columns of the FlashAttention-3 figure). */
const FA2_FWD_H100: Curve = {
  full: [
    [512, 282, 309],
    [1024, 306, 350],
    [2048, 318, 362],
    [4096, 321, 368],
    [8192, 322, 370],
    [16384, 324, 370],
  ],
  causal: [
    [512, 180, 191],
    [1024, 229, 260],
    [2048, 262, 298],
    [4096, 284, 319],
    [8192, 295, 333],
    [16384, 299, 335],
  ],
};

/** FlashAttention-3 forward only, H100 SXM5, fp16. hd128 non-causal at 1k is partly hidden (565). */
const FA3_FWD_H100: Curve = {
  full: [
    [512, 333, 467],
    [1024, 392, 565],
    [2048, 460, 625],
    [4096, 476, 638],
    [8192, 496, 646],
    [16384, 497, 648],
  ],
  causal: [
    [512, 197, 292],
    [1024, 265, 423],
    [2048, 371, 521],
    [4096, 420, 579],
    [8192, 460, 602],
    [16384, 473, 616],
  ],
};

/**
 * FlashAttention-3 backward, H100 SXM5, head size 128, no mask (the FlashAttention-3 paper, Shah et
 * al. 2024, arXiv 2407.08608, backward-speed figure; values as labelled on the bars, read through a
 * public transcription of the figure). Its FA2 bars (214, 260, 291, 310, 318, 322) agree within 2%
 * with the FA2 backward implied by the FA2 tables above (combined minus forward), which ties the
 * two sources together. cuDNN's fused attention in the same figure: 305, 408, 465, 499, 518, 516.
 */
const FA3_BWD_H100_HD128_FULL: [number, number][] = [
  [512, 316],
  [1024, 424],
  [2048, 501],
  [4096, 542],
  [8192, 559],
  [16384, 561],
];

function interpolate(rows: [number, number][], seq: number): number {
  const x = Math.log2(Math.max(rows[0][0], Math.min(rows[rows.length - 1][0], seq)));
  let i = 0;
  while (i < rows.length - 2 && Math.log2(rows[i + 1][0]) < x) i++;
  const x0 = Math.log2(rows[i][0]);
  const x1 = Math.log2(rows[i + 1][0]);
  const f = x1 > x0 ? (x - x0) / (x1 - x0) : 0;
  return rows[i][1] + f * (rows[i + 1][1] - rows[i][1]);
}

/** Piecewise linear in log2(seq), clamped to the measured range; linear in head size between 64 and 128. */
function lookup(curve: Curve, seq: number, headDim: number, causal: boolean): number {
  const rows = causal ? curve.causal : curve.full;
  const x = Math.log2(Math.max(rows[0][0], Math.min(rows[rows.length - 1][0], seq)));
  let i = 0;
  while (i < rows.length - 2 && Math.log2(rows[i + 1][0]) < x) i++;
  const x0 = Math.log2(rows[i][0]);
  const x1 = Math.log2(rows[i + 1][0]);
  const f = x1 > x0 ? (x - x0) / (x1 - x0) : 0;
  const at = (col: 1 | 2) => rows[i][col] + f * (rows[i + 1][col] - rows[i][col]);
  const w = Math.max(0, Math.min(1, (headDim - 64) / 64));
  return at(1) + w * (at(2) - at(1));
}

/** Which measured family stands for a GPU: Ampere by the A100, Hopper and later by the H100 (scaled by peak). */
function family(gpu: GpuSpec): { ampere: boolean; scale: number } {
  const bf16 = gpu.tflops.bf16 ?? gpu.tflops.fp16 ?? 312;
  const ampere = gpu.id.startsWith('a100') || (bf16 <= 400 && !gpu.tflops.fp8);
  return { ampere, scale: ampere ? bf16 / 312 : bf16 / 989.5 };
}

/**
 * Seconds of one attention core (all heads of one micro-batch on one GPU), forward and backward,
 * on a flash kernel. `flops` is the forward's executed FLOPs (causal already halved).
 *
 * flash2: forward and backward from the FA2 forward + backward benchmark (the forward at FA2's
 * forward-only rate where measured, the backward getting the rest of the combined time).
 * flash3 (Hopper and later: FlashAttention-3, or cuDNN's fused attention, within a few percent of
 * it at head size 128 from 2k tokens): the forward at FA3's forward rate; the backward at FA3's
 * measured backward rate (head size 128, no mask), carried to other head sizes and to the causal
 * mask by FA2's own ratios at the same length. Other GPUs take the family's table scaled by their
 * bf16 peak.
 */
export function flashAttentionSeconds(
  gpu: GpuSpec,
  kernel: AttentionKernel,
  flops: number,
  seq: number,
  headDim: number,
  causal: boolean,
): { forward: number; backward: number } {
  if (flops <= 0) return { forward: 0, backward: 0 };
  const { ampere, scale } = family(gpu);
  const tf = 1e12 * scale;
  const combined = lookup(ampere ? FA2_A100 : FA2_H100, seq, headDim, causal) * tf;
  const total = (3.5 * flops) / combined;
  if (ampere) {
    // FA2 on A100: no forward-only measurement here; the forward runs at the combined rate.
    return { forward: flops / combined, backward: (2.5 * flops) / combined };
  }
  const fa2Forward = flops / (lookup(FA2_FWD_H100, seq, headDim, causal) * tf);
  if (kernel === 'flash2') return { forward: fa2Forward, backward: total - fa2Forward };
  const shape = lookup(FA2_H100, seq, headDim, causal) / lookup(FA2_H100, seq, 128, false);
  const fa3Backward = interpolate(FA3_BWD_H100_HD128_FULL, seq) * shape * tf;
  return {
    forward: flops / (lookup(FA3_FWD_H100, seq, headDim, causal) * tf),
    backward: (2.5 * flops) / fa3Backward,
  };
}
