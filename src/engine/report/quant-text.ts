import type { AssignmentReport } from '../check/precision';
import type { QuantReport } from '../quant/run';
import type { ObserverName } from '../quant/observers';
import { formatBytes } from '../units';

const db = (v: number | null) => (v === null ? 'exact' : `${v.toFixed(1)} dB`);

/** The terminal report of `layerplan quant`: the per-format summary, then the worst tensors per format. */
export function formatQuant(file: string, r: QuantReport): string {
  const lines = [
    `${file}: ${r.tensors.length} weight tensors, ${r.summary[0]?.parameters ?? 0} parameters`,
    '',
    'format            bits/weight   size        SQNR (parameter-weighted)',
  ];
  for (const s of [...r.summary].sort((a, b) => a.bitsPerWeight - b.bitsPerWeight)) {
    lines.push(
      `  ${s.format.padEnd(16)} ${s.bitsPerWeight.toFixed(3).padStart(8)}   ${formatBytes(s.bytes).padStart(10)}   ${db(s.sqnrDb).padStart(9)}`,
    );
  }
  if (r.tensors.length) {
    lines.push('', 'Lowest SQNR per format');
    for (const s of r.summary) {
      let worst: { name: string; v: number } | undefined;
      for (const t of r.tensors) {
        const v = t.results.find((x) => x.format === s.format)?.sqnrDb;
        if (v !== null && v !== undefined && (!worst || v < worst.v)) worst = { name: t.name, v };
      }
      if (worst) lines.push(`  ${s.format.padEnd(16)} ${worst.v.toFixed(1).padStart(6)} dB  ${worst.name}`);
    }
  }
  for (const c of r.comparisons ?? []) {
    if (c === r.comparisons![0]) lines.push('', 'Statistical vs positional, same weights (gain = SQNR difference)');
    const gain = (v: number | null) => (v === null ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(2)} dB`);
    lines.push(
      `  ${c.format.padEnd(22)} vs ${c.counterpart.padEnd(14)} ${(c.bitsPerWeight - c.counterpartBitsPerWeight >= 0 ? '+' : '') + (c.bitsPerWeight - c.counterpartBitsPerWeight).toFixed(3)} bits/weight   ${gain(c.gainDb).padStart(9)} summed   better in ${c.layersWon}, worse in ${c.layersLost} of ${c.layersCompared} layers`,
    );
    // Every layer for small models; the three best and worst for large ones.
    const sorted = c.layers.filter((l) => l.gainDb !== null).sort((a, b) => b.gainDb! - a.gainDb!);
    const shown = sorted.length <= 12 ? sorted : [...sorted.slice(0, 3), ...sorted.slice(-3)];
    for (const l of shown) lines.push(`      ${l.layer.padEnd(32)} ${gain(l.gainDb).padStart(9)}`);
    if (shown.length < sorted.length) lines.push(`      (${sorted.length - shown.length} more layers in --json)`);
  }
  for (const s of r.skipped) lines.push(`skipped ${s.name}: ${s.reason}`);
  return lines.join('\n') + '\n';
}

/** Activation calibration: 8-bit SQNR per layer and observer. */
export function formatActivations(a: {
  generatedInputs: boolean;
  batches: number;
  bindings: Record<string, number>;
  layers: { name: string; sqnrDb: Record<ObserverName, number | null> }[];
}): string {
  const observers = Object.keys(a.layers[0]?.sqnrDb ?? {}) as ObserverName[];
  const lines = [
    '',
    `Activations, 8-bit, SQNR per layer (${a.batches} batches of ${a.generatedInputs ? 'inputs generated from the declared shapes' : 'your inputs'}, ${Object.entries(
      a.bindings,
    )
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')})`,
  ];
  lines.push('  ' + 'layer'.padEnd(24) + observers.map((o) => o.padStart(11)).join(''));
  for (const l of a.layers) {
    lines.push('  ' + l.name.padEnd(24) + observers.map((o) => db(l.sqnrDb[o]).padStart(11)).join(''));
  }
  return lines.join('\n') + '\n';
}

/** A plan's mixed-precision assignment: bytes and the estimated output error. */
export function formatAssignment(plan: string, a: AssignmentReport): string {
  const lines = [
    '',
    `Assignment from ${plan}: ${formatBytes(a.weightBytes)} of weights (${formatBytes(a.defaultBytes)} at the default precision), estimated output SQNR ${db(a.outputSqnrDb)}`,
  ];
  for (const l of a.layers) lines.push(`  ${l.name.padEnd(24)} ${l.format.padEnd(14)} ${db(l.sqnrDb).padStart(9)}`);
  return lines.join('\n') + '\n';
}
