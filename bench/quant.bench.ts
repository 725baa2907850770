/**
 * `npm run bench` (third part): throughput of the int4-g128 error computation (quantize →
 * dequantize → metrics) on 64 MB of fp32 weights, as GB/s of fp32 input and as a ratio to a plain
 * typed-array copy of the same bytes measured in the same run; then the 16-format sweep, and the
 * statistical formats against int4-g128 on the same weights.
 */
import { parseFormat } from '../src/engine/quant/formats';
import { errorMetrics, quantizationError, quantizeDequantize } from '../src/engine/quant/quantize';
import { DEFAULT_FORMATS, measureFormats } from '../src/engine/quant/run';

const rows = 4096;
const cols = 4096;
const x = new Float32Array(rows * cols);
let seed = 1;
for (let i = 0; i < x.length; i++) {
  seed = (seed * 1103515245 + 12345) >>> 0;
  x[i] = (seed / 2 ** 32 - 0.5) * 0.04 + (i % 977 === 0 ? 0.3 : 0);
}
const gb = x.byteLength / 1e9;

function best(fn: () => void, runs = 3): number {
  let b = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    fn();
    b = Math.min(b, Number(process.hrtime.bigint() - t) / 1e9);
  }
  return b;
}

const target = new Float32Array(x.length);
const copy = best(() => target.set(x));
const int4f = parseFormat('int4-g128')!;
const int4 = best(() => quantizationError(x, rows, cols, int4f));
const int4js = best(() => errorMetrics(x, quantizeDequantize(x, rows, cols, int4f)));
console.log(`quantization: ${rows}×${cols} fp32 weights (${(gb * 1000).toFixed(0)} MB), one core`);
console.log(`  typed-array copy           ${(gb / copy).toFixed(2)} GB/s`);
console.log(
  `  int4-g128 error            ${(gb / int4).toFixed(3)} GB/s   ratio to copy ${(copy / int4).toFixed(4)}x   (goal >= 0.8 GB/s per core; WebAssembly SIMD kernel)`,
);
console.log(
  `  int4-g128, plain JS path   ${(gb / int4js).toFixed(3)} GB/s   ratio to copy ${(copy / int4js).toFixed(4)}x   (the reference the kernel matches)`,
);
const sweep = best(() => measureFormats(x, rows, cols, DEFAULT_FORMATS, false), 1);
console.log(
  `  16-format sweep            ${sweep.toFixed(2)} s for ${(gb * 1000).toFixed(0)} MB → ${(sweep / gb).toFixed(1)} s per GB on one core (goal: 1 GB in < 20 s on 2 cores)`,
);

// The statistical formats (-perm, +o<P>, kmeans<B>) and DeepSeek-V3's block fp8, each against int4-g128 on the same
// weights: -perm gathers the columns once and runs the base format's kernel (the metrics do not depend on order);
// +o<P> quantizes the rest on the plain JS path; kmeans sorts every row (radix sort) and runs Lloyd's on prefix sums.
console.log('  statistical formats, same weights, one core (ratio: time / int4-g128 error time):');
for (const name of [
  'int4-g128-perm',
  'int4-g128+o1',
  'int4-g128-asym-perm+o1',
  'kmeans4',
  'kmeans3',
  'fp8-e4m3-b128',
]) {
  const t = best(() => quantizationError(x, rows, cols, parseFormat(name)!), 1);
  console.log(
    `    ${name.padEnd(24)} ${t.toFixed(2)} s   ${(gb / t).toFixed(3)} GB/s   ratio to int4-g128 ${(t / int4).toFixed(1)}x`,
  );
}
const stat = ['int4-g128', 'int4-g128-perm', 'int4-g128+o1', 'kmeans4', 'fp8-e4m3-b128'];
const statSweep = best(() => measureFormats(x, rows, cols, stat, false), 1);
console.log(
  `  the issue's 5-format sweep (${stat.join(', ')}) ${statSweep.toFixed(2)} s → ${(statSweep / gb).toFixed(1)} s per GB on one core; the 16-format sweep above: ${(sweep / gb).toFixed(1)} s per GB`,
);

// Whole process, both cores: `layerplan quant` (worker threads) on the parse benchmark's 1.35 GB GPT model.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const big = path.join(os.tmpdir(), 'layerplan-bench', 'gpt-big.onnx');
const cli = path.resolve(__dirname, '..', '..', 'dist', 'cli.js');
if (fs.existsSync(big) && fs.existsSync(cli) && !process.env.LAYERPLAN_BENCH_SKIP_SWEEP) {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, 'quant', big, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(r.stderr);
  const gbModel = fs.statSync(big).size / 1e9;
  console.log(
    `  16-format sweep, whole process on ${os.cpus().length} cores: ${s.toFixed(1)} s for ${gbModel.toFixed(2)} GB → ${(s / gbModel).toFixed(1)} s per GB (goal < 20 s per GB)`,
  );
} else console.log('  (run the parse benchmark first for the whole-model sweep: it writes gpt-big.onnx)');
