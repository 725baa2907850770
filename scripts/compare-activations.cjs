#!/usr/bin/env node
/**
 * Statistical grouping where it is meant to act: on the activations. Runs `layerplan verify --inputs`
 * (dist/cli.js: onnxruntime captures the activations the samples produce at each layer; -perm and +o<P>
 * rank the input channels by their mean square; the WebGPU kernel runs the packed layer) and prints a
 * Markdown table of the measured output SQNR per layer and format.
 *
 *   node scripts/compare-activations.cjs model.onnx samples-dir tensor[=label] … > table.md
 */
const { spawnSync } = require('child_process');
const path = require('path');

const FORMATS = [
  'int4-g128',
  'int4-g128-perm',
  'int4-g128+o1',
  'int4-g64',
  'int4-g32',
  'int4-g32-perm',
  'int4-channel',
  'kmeans4',
];
const [model, samples, ...tensors] = process.argv.slice(2);
const cli = path.join(__dirname, '..', 'dist', 'cli.js');
const table = [];
const totals = Object.fromEntries(FORMATS.map((f) => [f, { signal: 0, noise: 0, bits: 0, n: 0 }]));
for (const arg of tensors) {
  const [tensor, label] = arg.split('=');
  const row = [label ?? tensor];
  for (const format of FORMATS) {
    const r = spawnSync(
      process.execPath,
      [cli, 'verify', model, '--tensor', tensor, '--format', format, '--inputs', samples, '--batch', '64', '--json'],
      { encoding: 'utf8', maxBuffer: 1 << 26 },
    );
    if (r.status !== 0 && r.status !== 1) throw new Error(`${tensor} ${format}: ${r.stderr}`);
    const j = JSON.parse(r.stdout);
    if (!j.kernelVsReference.pass) throw new Error(`${tensor} ${format}: the kernel disagrees with the CPU reference`);
    row.push(`${j.outputError.sqnrDb.toFixed(2)} (${j.bitsPerWeight.toFixed(3)})`);
    process.stderr.write(
      `${tensor} ${format}: ${j.outputError.sqnrDb.toFixed(2)} dB measured, ${j.predicted.sqnrDb.toFixed(2)} predicted, ${j.outcome}\n`,
    );
    // Output-error power relative to signal, summed over layers as the planner's first-order estimate does.
    const t = totals[format];
    t.noise += 10 ** (-j.outputError.sqnrDb / 10);
    t.bits += j.bitsPerWeight * j.shape[0] * j.shape[1];
    t.n += j.shape[0] * j.shape[1];
  }
  table.push(row);
}
console.log(`| layer (${path.basename(model)}) | ${FORMATS.join(' | ')} |`);
console.log(`| --- |${FORMATS.map(() => ' --- |').join('')}`);
for (const r of table) console.log(`| ${r.join(' | ')} |`);
console.log(
  `| all listed (1/Σ 1/SQNR) | ${FORMATS.map((f) => `${(-10 * Math.log10(totals[f].noise)).toFixed(2)} (${(totals[f].bits / totals[f].n).toFixed(3)})`).join(' | ')} |`,
);
