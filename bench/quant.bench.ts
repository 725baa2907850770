/**
 * `npm run bench` (third part): throughput of the int4-g128 error computation (quantize →
 * dequantize → metrics) on 64 MB of fp32 weights, as GB/s of fp32 input and as a ratio to a plain
 * typed-array copy of the same bytes measured in the same run; then the 16-format sweep.
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
  x[i] = ((seed / 2 ** 32) - 0.5) * 0.04 + (i % 977 === 0 ? 0.3 : 0);
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
console.log(`  int4-g128 error            ${(gb / int4).toFixed(3)} GB/s   ratio to copy ${(copy / int4).toFixed(4)}x   (goal >= 0.8 GB/s per core; WebAssembly SIMD kernel)`);
console.log(`  int4-g128, plain JS path   ${(gb / int4js).toFixed(3)} GB/s   ratio to copy ${(copy / int4js).toFixed(4)}x   (the reference the kernel matches)`);
const sweep = best(() => measureFormats(x, rows, cols, DEFAULT_FORMATS, false), 1);
console.log(`  16-format sweep            ${sweep.toFixed(2)} s for ${(gb * 1000).toFixed(0)} MB → ${(sweep / gb).toFixed(1)} s per GB on one core (goal: 1 GB in < 20 s on 2 cores)`);
