import type { AssignmentReport, Predicted } from '../check/precision';
import type { OutputComparison } from '../quant/end-to-end';
import type { QuantExportReport } from '../quant/onnx-export';
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

/** A plan's mixed-precision assignment: bytes, each layer's error and sensitivity, and the predicted output error. */
export function formatAssignment(plan: string, a: AssignmentReport, p?: Predicted): string {
  const calibrated = a.errorModel === 'calibrated';
  const lines = [
    '',
    `Assignment from ${plan}: ${formatBytes(a.weightBytes)} of weights (${formatBytes(a.defaultBytes)} at the default precision)`,
    `  predicted output SQNR ${db(a.outputSqnrDb)} (${calibrated ? 'calibrated on per-layer sensitivities' : 'first-order'})` +
      (calibrated ? `; first-order ${db(a.firstOrderSqnrDb)}` : p?.note ? ` — ${p.note}` : ''),
  ];
  if (p?.sensitivity) {
    const s = p.sensitivity;
    lines.push(
      `  sensitivity: each weight perturbed alone by noise ${s.probeDb} dB under its power, and its ops run alone on the model's activations; ${s.batches} batches of ${s.generatedInputs ? 'generated inputs' : 'your inputs'}` +
        (s.sampled ? `; ${s.sampled.measured} of ${s.sampled.of} weights probed (the rest take the median gain)` : ''),
    );
  }
  lines.push(
    `  ${'layer'.padEnd(24)} ${'format'.padEnd(14)} ${'weight SQNR'.padStart(11)} ${'gain'.padStart(8)} ${'at output'.padStart(10)}`,
  );
  for (const l of a.layers) {
    lines.push(
      `  ${l.name.padEnd(24)} ${l.format.padEnd(14)} ${db(l.sqnrDb).padStart(11)} ${l.sensitivity.toFixed(2).padStart(8)} ${db(l.outputSqnrDb).padStart(10)}`,
    );
  }
  for (const x of a.activations ?? []) {
    lines.push(
      `  ${x.tensor.slice(-24).padEnd(24)} ${'int8 (input)'.padEnd(14)} ${db(x.sqnrDb).padStart(11)} ${''.padStart(8)} ${db(x.outputSqnrDb).padStart(10)}`,
    );
  }
  return lines.join('\n') + '\n';
}

/** What the export wrote: the file, the opset, how each format is stored, and what is simulated. */
export function formatExport(e: QuantExportReport & { file: string; dataFile?: string; bytes: number }): string {
  const lines = ['', `Exported ${e.file}${e.dataFile ? ` (+ ${e.dataFile})` : ''}: ${formatBytes(e.bytes)}`];
  if (e.opset.to !== e.opset.from) {
    lines.push(
      `  opset ${e.opset.from} → ${e.opset.to}${e.opset.rewritten.length ? ` (rewrote ${e.opset.rewritten.join(', ')})` : ''}`,
    );
  }
  const by = new Map<string, { count: number; bytes: number; original: number }>();
  for (const w of e.weights) {
    const k = `${w.format} as ${w.encoding}`;
    const x = by.get(k) ?? { count: 0, bytes: 0, original: 0 };
    x.count++;
    x.bytes += w.bytes;
    x.original += w.originalBytes;
    by.set(k, x);
  }
  for (const [k, x] of by) {
    lines.push(
      `  ${k.padEnd(34)} ${String(x.count).padStart(4)} weights  ${formatBytes(x.bytes).padStart(10)} (from ${formatBytes(x.original)})`,
    );
  }
  for (const s of e.simulated) {
    lines.push(`  simulated: ${s.format} is written as its dequantized float32 values (${s.reason})`);
  }
  if (e.activations.length) {
    lines.push(`  activations: ${e.activations.length} QuantizeLinear/DequantizeLinear pairs (uint8)`);
  }
  return lines.join('\n') + '\n';
}

/** Measured against predicted: onnxruntime's outputs of the original and the exported model. */
export function formatEndToEnd(m: OutputComparison, p: Predicted): string {
  const lines = [
    '',
    `Measured end to end (onnxruntime, ${m.batches} batches of ${m.generatedInputs ? 'generated inputs' : 'your inputs'}):`,
    `  output SQNR  measured ${db(m.outputSqnrDb)}   predicted ${db(p.outputSqnrDb)} (${p.errorModel})   first-order ${db(p.firstOrderSqnrDb)}`,
  ];
  if (m.outputSqnrDb !== null && p.outputSqnrDb !== null) {
    const off = (v: number | null) =>
      v === null ? '—' : `${v - m.outputSqnrDb! >= 0 ? '+' : ''}${(v - m.outputSqnrDb!).toFixed(1)} dB`;
    lines.push(`  prediction off by ${off(p.outputSqnrDb)}; first-order off by ${off(p.firstOrderSqnrDb)}`);
  }
  if (m.outputs.length > 1) for (const o of m.outputs) lines.push(`  ${o.name.padEnd(24)} ${db(o.sqnrDb)}`);
  if (m.logits) {
    lines.push(
      `  ${m.logits}: KL divergence ${m.klDivergence!.toExponential(3)} nats per position, top-1 agreement ${(m.top1Agreement! * 100).toFixed(2)}%`,
    );
  }
  return lines.join('\n') + '\n';
}
