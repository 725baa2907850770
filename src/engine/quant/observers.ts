/**
 * Activation observers (what calibration tools such as PyTorch's and TensorRT's use to choose an
 * int8 range for a tensor whose values change with every input):
 *   minmax      the range of everything seen
 *   ema         min/max of each batch, averaged with momentum (PyTorch MovingAverageMinMaxObserver, c = 0.01)
 *   percentile  |x| at the 99.99th percentile, symmetric
 *   entropy     the threshold minimizing KL(P‖Q) between the |x| histogram and its 8-bit version (TensorRT)
 *   mse         the threshold minimizing the expected squared quantization error over the histogram
 * Two passes over the calibration data: the first finds the range per tensor, the second fills a
 * 2048-bin histogram on [min, max]; ranges come from those, then errors are measured.
 */
export type ObserverName = 'minmax' | 'ema' | 'percentile' | 'entropy' | 'mse';
export const OBSERVERS: ObserverName[] = ['minmax', 'ema', 'percentile', 'entropy', 'mse'];

const BINS = 2048;
const EMA = 0.01;

export interface Range {
  min: number;
  max: number;
}

/** Statistics of one tensor over the calibration batches. */
export class TensorObserver {
  min = Infinity;
  max = -Infinity;
  absmax = 0;
  emaMin = NaN;
  emaMax = NaN;
  count = 0;

  /** Pass 1: ranges. */
  observeRange(x: ArrayLike<number>): void {
    let mn = Infinity;
    let mx = -Infinity;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    if (!x.length) return;
    this.min = Math.min(this.min, mn);
    this.max = Math.max(this.max, mx);
    this.absmax = Math.max(this.absmax, Math.abs(mn), Math.abs(mx));
    this.emaMin = Number.isNaN(this.emaMin) ? mn : this.emaMin + EMA * (mn - this.emaMin);
    this.emaMax = Number.isNaN(this.emaMax) ? mx : this.emaMax + EMA * (mx - this.emaMax);
  }

  /** Pass 2: the histogram on [min, max]. */
  observeHistogram(x: ArrayLike<number>): void {
    const span = this.max - this.min;
    const scale = span > 0 ? BINS / span : 0;
    for (let i = 0; i < x.length; i++) {
      const b = Math.max(0, Math.min(BINS - 1, Math.floor((x[i] - this.min) * scale)));
      this.signed[b]++;
    }
    this.count += x.length;
    this.folded = undefined;
  }

  private signed = new Float64Array(BINS);
  private folded: Float64Array | undefined;

  /** The histogram of |x| on [0, absmax], folded from the signed one. */
  get hist(): Float64Array {
    if (this.folded) return this.folded;
    const h = new Float64Array(BINS);
    const w = (this.max - this.min) / BINS;
    const scale = this.absmax > 0 ? BINS / this.absmax : 0;
    for (let i = 0; i < BINS; i++) {
      if (!this.signed[i]) continue;
      h[Math.min(BINS - 1, Math.floor(Math.abs(this.min + (i + 0.5) * w) * scale))] += this.signed[i];
    }
    this.folded = h;
    return h;
  }

  range(observer: ObserverName): Range {
    // Threshold observers give [−T, T], or [0, T] for tensors that are never negative (after ReLU): all 256 levels then serve the values.
    const unsigned = this.min >= 0;
    const sym = (t: number): Range => ({ min: unsigned ? 0 : -t, max: t });
    switch (observer) {
      case 'minmax':
        return { min: Math.min(0, this.min), max: Math.max(0, this.max) };
      case 'ema':
        return { min: Math.min(0, this.emaMin), max: Math.max(0, this.emaMax) };
      case 'percentile':
        return sym(this.percentile(0.9999));
      case 'entropy':
        return sym(this.entropyThreshold(unsigned ? 256 : 128));
      case 'mse':
        return this.mseRange();
    }
  }

  private binWidth(): number {
    return this.absmax / BINS;
  }

  percentile(p: number): number {
    const target = p * this.count;
    let acc = 0;
    for (let i = 0; i < BINS; i++) {
      acc += this.hist[i];
      if (acc >= target) return (i + 1) * this.binWidth();
    }
    return this.absmax;
  }

  /** TensorRT's entropy calibration over 128 quantization levels (|x| of a signed int8 tensor). */
  entropyThreshold(levels = 128): number {
    // The zero bin is left out: exact zeros (after ReLU, padding) quantize exactly and would dominate the distribution.
    const h = this.hist.slice();
    h[0] = 0;
    let best = BINS;
    let bestKl = Infinity;
    for (let i = levels; i <= BINS; i += 16) {
      const p = Array.from(h.subarray(0, i));
      let outliers = 0;
      for (let k = i; k < BINS; k++) outliers += h[k];
      p[i - 1] += outliers;
      // Q: merge the i reference bins into `levels` bins, then spread each merged count over its nonzero bins.
      const q = new Float64Array(i);
      const per = i / levels;
      for (let j = 0; j < levels; j++) {
        const lo = Math.floor(j * per);
        const hi = j === levels - 1 ? i : Math.floor((j + 1) * per);
        let sum = 0;
        let nonzero = 0;
        for (let k = lo; k < hi; k++) {
          sum += h[k];
          if (h[k] > 0) nonzero++;
        }
        for (let k = lo; k < hi; k++) if (h[k] > 0) q[k] = sum / nonzero;
      }
      const ps = p.reduce((a, b) => a + b, 0);
      const qs = q.reduce((a, b) => a + b, 0);
      if (!ps || !qs) continue;
      let kl = 0;
      for (let k = 0; k < i; k++) {
        if (p[k] <= 0) continue;
        const pk = p[k] / ps;
        const qk = q[k] / qs;
        kl += qk > 0 ? pk * Math.log(pk / qk) : pk * 20;
      }
      if (kl < bestKl) [bestKl, best] = [kl, i];
    }
    return best * this.binWidth();
  }

  /**
   * The range with the least expected squared error for 8-bit (uint8 + zero point) quantization:
   * [max(min, −T), min(max, T)] over a grid of thresholds T, the last of which is min-max itself.
   */
  mseRange(): Range {
    const w = (this.max - this.min) / BINS;
    let best: Range = { min: Math.min(0, this.min), max: Math.max(0, this.max) };
    let bestErr = Infinity;
    for (let step = 1; step <= 100; step++) {
      const t = (this.absmax * step) / 100;
      const lo = Math.min(0, Math.max(this.min, -t));
      const hi = Math.max(0, Math.min(this.max, t));
      const s = (hi - lo) / 255 || 1;
      const z = Math.max(0, Math.min(255, Math.round(-lo / s)));
      let err = 0;
      for (let k = 0; k < BINS; k++) {
        if (!this.signed[k]) continue;
        const c = this.min + (k + 0.5) * w;
        const q = (Math.max(0, Math.min(255, Math.round(c / s) + z)) - z) * s;
        err += this.signed[k] * (q - c) ** 2;
      }
      if (err < bestErr) [bestErr, best] = [err, { min: lo, max: hi }];
    }
    return best;
  }
}

/** Quantizes x to 8 bits over `range` (uint8 with a zero point, as ONNX static quantization does) and returns Σx², Σ(x − x̂)². */
export function activationError(x: ArrayLike<number>, range: Range): { signal: number; noise: number } {
  const s = (range.max - range.min) / 255 || 1;
  let z = Math.round(-range.min / s);
  z = Math.max(0, Math.min(255, z));
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const q = Math.max(0, Math.min(255, Math.round(v / s) + z));
    const e = (q - z) * s - v;
    signal += v * v;
    noise += e * e;
  }
  return { signal, noise };
}
