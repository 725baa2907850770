#!/usr/bin/env node
/**
 * The measured answer to "can we do some sort of statistical grouping here?": runs `layerplan quant`
 * (dist/cli.js) on each model given and prints a Markdown table of every statistical format beside
 * its positional counterpart (exact bits per weight of the measured tensors, parameter-weighted SQNR,
 * the gain, and the layers where it is better / worse by more than 0.01 dB).
 *
 *   node scripts/compare-statistical.cjs label=path/to/model [label=path …] > table.md
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
  'fp8-e4m3',
  'fp8-e4m3-b128',
];
const cli = path.join(__dirname, '..', 'dist', 'cli.js');
const rows = [];
const dB = (v) => (v === null ? 'exact' : v.toFixed(2));
const gain = (a, b) => (a === null || b === null ? '—' : `${a - b >= 0 ? '+' : ''}${(a - b).toFixed(2)}`);
for (const arg of process.argv.slice(2)) {
  const [label, file] = arg.includes('=') ? arg.split(/=(.*)/s) : [path.basename(arg), arg];
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, 'quant', file, '--formats', FORMATS.join(','), '--json'], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${file}: ${r.stderr}`);
  const doc = JSON.parse(r.stdout);
  const summary = Object.fromEntries(doc.summary.map((s) => [s.format, s]));
  const params = doc.summary[0].parameters;
  process.stderr.write(`${label}: ${doc.tensors.length} tensors, ${params} parameters, ${seconds.toFixed(1)} s\n`);
  for (const c of doc.comparisons ?? []) {
    rows.push(
      [
        label,
        `${c.format} vs ${c.counterpart}`,
        `${c.bitsPerWeight.toFixed(3)} vs ${c.counterpartBitsPerWeight.toFixed(3)}`,
        `${dB(c.sqnrDb)} vs ${dB(c.counterpartSqnrDb)}`,
        gain(c.sqnrDb, c.counterpartSqnrDb),
        `${c.layersWon} / ${c.layersLost} of ${c.layersCompared}`,
      ].join(' | '),
    );
  }
  // Equal bits: the statistical formats against the positional format of the nearest (not lower) size.
  for (const [stat, pos] of [
    ['int4-g128+o1', 'int4-g64'],
    ['kmeans4', 'int4-g32'],
    ['int4-g128-perm', 'int4-g128'],
  ]) {
    const a = summary[stat];
    const b = summary[pos];
    if (!a || !b || stat === 'int4-g128-perm') continue;
    rows.push(
      [
        label,
        `${stat} vs ${pos} (size)`,
        `${a.bitsPerWeight.toFixed(3)} vs ${b.bitsPerWeight.toFixed(3)}`,
        `${dB(a.sqnrDb)} vs ${dB(b.sqnrDb)}`,
        gain(a.sqnrDb, b.sqnrDb),
        '',
      ].join(' | '),
    );
  }
}
console.log('| model | format vs counterpart | bits/weight (exact) | SQNR dB | gain dB | layers better / worse |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r} |`);
