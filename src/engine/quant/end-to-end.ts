/**
 * The original model against its quantized export, output by output: what `--measure` reports
 * (DESIGN.md's `endToEnd`), with llama.cpp's KL-divergence figures for logits (perplexity.cpp's
 * --kl-divergence: KL(P_base ‖ P_quant) of the softmax per position, in nats, and how often the most
 * likely token is the same).
 */
export interface OutputComparison {
  generatedInputs: boolean;
  batches: number;
  /** The lowest SQNR over the float outputs. */
  outputSqnrDb: number | null;
  outputs: { name: string; sqnrDb: number | null }[];
  /** KL(original ‖ quantized) of the softmax over the last axis of the logits, in nats, mean per position. */
  klDivergence: number | null;
  /** The fraction of positions whose largest logit is the same. */
  top1Agreement: number | null;
  /** Which output the two figures above are about (null: the model has no logits output). */
  logits: string | null;
}

/** KL(softmax(x) ‖ softmax(y)) over [p, p + V) in nats (log-sum-exp in double), and whether the argmaxes agree. */
export function klTop1(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  p: number,
  V: number,
): { kl: number; same: boolean } {
  let mx = -Infinity;
  let my = -Infinity;
  let ix = 0;
  let iy = 0;
  for (let j = 0; j < V; j++) {
    if (x[p + j] > mx) [mx, ix] = [x[p + j], j];
    if (y[p + j] > my) [my, iy] = [y[p + j], j];
  }
  let sx = 0;
  let sy = 0;
  for (let j = 0; j < V; j++) {
    sx += Math.exp(x[p + j] - mx);
    sy += Math.exp(y[p + j] - my);
  }
  const lx = mx + Math.log(sx);
  const ly = my + Math.log(sy);
  let kl = 0;
  for (let j = 0; j < V; j++) {
    const lp = x[p + j] - lx;
    const lq = y[p + j] - ly;
    kl += Math.exp(lp) * (lp - lq);
  }
  return { kl: Math.max(0, kl), same: ix === iy };
}

/** Accumulates the comparison over batches. */
export class OutputComparer {
  private readonly sums: { signal: number; noise: number }[];
  private kl = 0;
  private agree = 0;
  private positions = 0;
  batches = 0;

  constructor(
    readonly outputs: readonly string[],
    readonly logits: string | null,
  ) {
    this.sums = outputs.map(() => ({ signal: 0, noise: 0 }));
  }

  /** One batch: each output's values from the original and the quantized model, and the logits' last dimension. */
  add(original: ArrayLike<number>[], quantized: ArrayLike<number>[], logitsLastDim?: number): void {
    this.outputs.forEach((o, i) => {
      const x = original[i];
      const y = quantized[i];
      for (let j = 0; j < x.length; j++) {
        this.sums[i].signal += x[j] * x[j];
        this.sums[i].noise += (y[j] - x[j]) ** 2;
      }
      if (o !== this.logits) return;
      const V = logitsLastDim || 1;
      for (let p = 0; p + V <= x.length; p += V) {
        const r = klTop1(x, y, p, V);
        this.kl += r.kl;
        this.agree += r.same ? 1 : 0;
        this.positions++;
      }
    });
    this.batches++;
  }

  result(generatedInputs: boolean): OutputComparison {
    const outputs = this.outputs.map((name, i) => ({
      name,
      sqnrDb: this.sums[i].noise > 0 ? 10 * Math.log10(this.sums[i].signal / this.sums[i].noise) : null,
    }));
    const finite = outputs.map((o) => o.sqnrDb).filter((v): v is number => v !== null);
    return {
      generatedInputs,
      batches: this.batches,
      outputSqnrDb: finite.length ? Math.min(...finite) : null,
      outputs,
      klDivergence: this.logits && this.positions ? this.kl / this.positions : null,
      top1Agreement: this.logits && this.positions ? this.agree / this.positions : null,
      logits: this.logits,
    };
  }
}
