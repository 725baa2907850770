import type { VerifyReport } from '../quant/verify';

const db = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} dB` : 'lossless');

/** The text form of `layerplan verify`. */
export function formatVerify(file: string, r: VerifyReport): string {
  const lines = [
    `${file}: ${r.tensor} [${r.shape.join(' × ')}] in ${r.format} (${r.bitsPerWeight.toFixed(3)} bits/weight, ${r.packedBytes} bytes packed)`,
    `device:   ${r.device}`,
  ];
  if (r.fallback) lines.push(`FALLBACK: no kernel ran (${r.fallback}); the numbers below come from the CPU reference`);
  lines.push(`inputs:   ${r.inputs}`);
  const k = r.kernelVsReference;
  lines.push(
    k.ran
      ? `kernel vs CPU reference: max |Δ| ${k.maxAbsError.toExponential(2)} (${k.maxRelativeToBound.toFixed(3)} of the float32 rounding bound) — ${k.pass ? 'agrees' : 'DISAGREES'}`
      : 'kernel vs CPU reference: not run (fallback)',
  );
  lines.push(
    `output error vs full precision: ${db(r.outputError.sqnrDb)} SQNR (max |Δ| ${r.outputError.maxAbsError.toExponential(2)})`,
  );
  lines.push(
    `predicted:                      ${db(r.predicted.sqnrDb)} — difference ${r.differenceDb >= 0 ? '+' : ''}${r.differenceDb.toFixed(2)} dB (tolerance ±${r.toleranceDb.toFixed(2)} dB)`,
  );
  lines.push(`          (${r.predicted.source})`);
  if (r.gbPerSecond !== undefined) {
    lines.push(
      `kernel:   ${(r.kernelSeconds! * 1e3).toFixed(3)} ms per run, ${r.gbPerSecond.toPrecision(3)} GB/s of packed weights`,
    );
  }
  lines.push(r.outcome === 'fallback' ? 'FALLBACK (no kernel verified; exit code 3)' : r.pass ? 'PASS' : 'FAIL');
  return lines.join('\n') + '\n';
}
