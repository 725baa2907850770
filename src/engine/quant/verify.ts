import { bitsPerWeightFor, parseFormat } from './formats';
import { dequantizePacked, innermostBlock, packedBytes, packWeight, type PackedWeight } from './pack';
import { errorMetrics } from './quantize';

/**
 * Verification of one quantized layer (`layerplan verify`, the VS Code command): the kernel's
 * output against the CPU reference of the same dequantized weights (checks packing and kernel, to
 * float32 rounding), and the quantized layer's output error against the full-precision layer,
 * beside the engine's predicted error. Pure: the kernel runs elsewhere (Node's Dawn, the webview).
 */
export interface VerifyJob {
  tensor: string;
  format: string;
  bitsPerWeight: number;
  rows: number;
  cols: number;
  batch: number;
  inputs: string;
  packed: PackedWeight;
  x: Float32Array;
  /** Σ x·ŵ over the decoded packed weight, in double: what the kernel must reproduce. */
  reference: Float64Array;
  /** Float32 rounding bound per output for the kernel's sums. */
  bound: Float64Array;
  /** Σ x·w with the full-precision weight. */
  full: Float64Array;
  predictedSqnrDb: number;
  predictedSource: string;
}

export interface VerifyReport {
  tensor: string;
  format: string;
  bitsPerWeight: number;
  shape: [number, number];
  batch: number;
  inputs: string;
  device: string;
  /** Set when no kernel ran: why, and that the numbers come from the CPU reference. */
  fallback?: string;
  kernelVsReference: { maxAbsError: number; maxRelativeToBound: number; pass: boolean; ran: boolean };
  outputError: { sqnrDb: number; maxAbsError: number };
  predicted: { sqnrDb: number; source: string };
  /** outputError − predicted, in dB; the estimate holds when |difference| ≤ toleranceDb. */
  differenceDb: number;
  toleranceDb: number;
  /**
   * `pass`: the kernel ran, agreed with the CPU reference, and the measured error agreed with the
   * prediction; `fail`: one of those did not; `fallback`: no kernel ran (no adapter) — only the CPU
   * reference was compared with the prediction, which verifies no kernel and is never a pass.
   */
  outcome: 'pass' | 'fail' | 'fallback';
  /** True only when `outcome` is `pass`. */
  pass: boolean;
  packedBytes: number;
  kernelSeconds?: number;
  gbPerSecond?: number;
}

/**
 * Agreement allowed between measured and predicted output SQNR: four standard deviations of the
 * noise power estimated from n outputs (relative spread √(2/n) for Gaussian errors), at least 0.25 dB.
 */
export function predictionToleranceDb(outputs: number): number {
  return Math.max(0.25, 10 * Math.log10(1 + 4 * Math.sqrt(2 / Math.max(1, outputs))));
}

/** Above this SQNR the kernel's own float32 sums dominate the error: lossless formats agree with an infinite prediction. */
export const FLOAT32_FLOOR_DB = 100;

/** Seeded N(0, 1) inputs [batch, cols]: isotropic, so the output SQNR should equal the weight SQNR. */
export function generatedInputs(batch: number, cols: number, seed = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Float32Array.from({ length: batch * cols }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

/** Packs w [rows, cols] in `format` and computes the references the kernel's output is judged by. */
export function prepareVerify(
  tensor: string,
  w: Float32Array,
  rows: number,
  cols: number,
  format: string,
  x: Float32Array,
  batch: number,
  inputs: string,
  weighting: 'isotropic' | 'activations' = 'isotropic',
): VerifyJob {
  const f = parseFormat(format);
  if (!f) throw new Error(`unknown format ${format}`);
  // Real activations: the statistical formats (-perm, +o<P>) rank input channels by their mean square.
  const meanSquare = new Float64Array(cols);
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < cols; k++) meanSquare[k] += (x[b * cols + k] * x[b * cols + k]) / batch;
  }
  const { packed, dequantized } = packWeight(
    w,
    rows,
    cols,
    f,
    weighting === 'activations' ? { channelWeights: meanSquare } : {},
  );
  const magnitude = new Float32Array(rows * cols);
  const wq = dequantizePacked(packed, magnitude);
  const reference = new Float64Array(batch * rows);
  const bound = new Float64Array(batch * rows);
  const full = new Float64Array(batch * rows);
  // The kernel sums a block in float32, then blocks: worst-case relative rounding (n·u) on Σ|terms|.
  const block = innermostBlock(packed);
  const terms = block + Math.ceil(cols / block) + (packed.outliers?.count ?? 0) + 4;
  const gamma = (terms * 2 ** -24) / (1 - terms * 2 ** -24);
  for (let b = 0; b < batch; b++) {
    const xo = b * cols;
    for (let n = 0; n < rows; n++) {
      const wo = n * cols;
      let sq = 0;
      let sf = 0;
      let sa = 0;
      for (let k = 0; k < cols; k++) {
        const xv = x[xo + k];
        sq += xv * wq[wo + k];
        sf += xv * w[wo + k];
        sa += Math.abs(xv) * magnitude[wo + k];
      }
      reference[b * rows + n] = sq;
      full[b * rows + n] = sf;
      bound[b * rows + n] = gamma * sa + 1e-30;
    }
  }
  let predictedSqnrDb: number;
  let predictedSource: string;
  if (weighting === 'activations') {
    // Real activations are not isotropic: weight each input channel's error by its mean square
    // (the diagonal of the inputs' second moment, as GPTQ/AWQ-style estimates do).
    const c = meanSquare;
    let signal = 0;
    let noise = 0;
    for (let n = 0; n < rows; n++) {
      for (let k = 0; k < cols; k++) {
        const v = w[n * cols + k];
        const e = wq[n * cols + k] - v;
        signal += c[k] * v * v;
        noise += c[k] * e * e;
      }
    }
    predictedSqnrDb = noise === 0 ? Infinity : 10 * Math.log10(signal / noise);
    predictedSource = "weight SQNR weighted by the inputs' mean square per channel (diagonal second moment)";
  } else {
    // The quantizer's own output (packWeight ran it): the weight SQNR without quantizing twice.
    predictedSqnrDb = errorMetrics(w, dequantized).sqnrDb;
    predictedSource =
      'weight SQNR of the same quantizer (layerplan quant); equals the output SQNR for isotropic inputs';
  }
  return {
    tensor,
    format: f.name,
    bitsPerWeight: bitsPerWeightFor(f, rows, cols),
    rows,
    cols,
    batch,
    inputs,
    packed,
    x,
    reference,
    bound,
    full,
    predictedSqnrDb,
    predictedSource,
  };
}

/** The report, from the kernel's y (or, with `fallback`, from the CPU reference itself). */
export function finishVerify(
  job: VerifyJob,
  run: { y: Float32Array; device: string; seconds?: number } | { fallback: string },
): VerifyReport {
  const ran = 'y' in run;
  const y = ran ? run.y : Float32Array.from(job.reference);
  let maxAbs = 0;
  let maxRel = 0;
  let signal = 0;
  let noise = 0;
  let outMax = 0;
  for (let i = 0; i < job.reference.length; i++) {
    const d = Math.abs(y[i] - job.reference[i]);
    if (!(d <= maxAbs)) maxAbs = d;
    const rel = d / job.bound[i];
    if (!(rel <= maxRel)) maxRel = rel;
    const e = y[i] - job.full[i];
    signal += job.full[i] * job.full[i];
    noise += e * e;
    if (Math.abs(e) > outMax) outMax = Math.abs(e);
  }
  const sqnr = noise === 0 ? Infinity : 10 * Math.log10(signal / noise);
  const diff = sqnr - job.predictedSqnrDb;
  const kernelPass = !ran || maxRel <= 1;
  // Lossless formats (fp32): both are infinite.
  const tolerance = predictionToleranceDb(job.reference.length);
  const agree = (sqnr >= FLOAT32_FLOOR_DB && job.predictedSqnrDb >= FLOAT32_FLOOR_DB) || Math.abs(diff) <= tolerance;
  const seconds = ran ? run.seconds : undefined;
  const bytes = packedBytes(job.packed);
  return {
    tensor: job.tensor,
    format: job.format,
    bitsPerWeight: job.bitsPerWeight,
    shape: [job.rows, job.cols],
    batch: job.batch,
    inputs: job.inputs,
    device: ran ? run.device : 'CPU reference (fallback)',
    ...(ran ? {} : { fallback: run.fallback }),
    kernelVsReference: { maxAbsError: maxAbs, maxRelativeToBound: maxRel, pass: kernelPass, ran },
    outputError: { sqnrDb: sqnr, maxAbsError: outMax },
    predicted: { sqnrDb: job.predictedSqnrDb, source: job.predictedSource },
    differenceDb: Number.isFinite(diff) ? diff : 0,
    toleranceDb: tolerance,
    outcome: !ran ? 'fallback' : kernelPass && agree ? 'pass' : 'fail',
    pass: ran && kernelPass && agree,
    packedBytes: bytes,
    ...(seconds !== undefined && Number.isFinite(seconds)
      ? { kernelSeconds: seconds, gbPerSecond: bytes / seconds / 1e9 }
      : {}),
  };
}
