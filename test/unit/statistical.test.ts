import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { offeredFormats, bitsPerWeightFor, outlierCount, parseFormat } from '../../src/engine/quant/formats';
import { toHalf } from '../../src/engine/quant/numeric';
import { errorMetrics, quantizeDequantize, type ScaleSink } from '../../src/engine/quant/quantize';
import { measureFormats } from '../../src/engine/quant/run';
import { REPO, SHARED_FIXTURES, rng } from '../helpers';

function gaussian(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r()));
}

const sink = (levels: number): ScaleSink => ({
  scales: Array.from({ length: levels }, () => []),
  mins: Array.from({ length: levels }, () => []),
});
const sqnr = (x: Float32Array, rows: number, cols: number, f: string, options = {}) =>
  errorMetrics(x, quantizeDequantize(x, rows, cols, f, options)).sqnrDb;

describe("statistical grouping, outlier channels, codebooks and block-scaled fp8 (the contract's formats)", () => {
  it("parses the suffixes in the contract's order and refuses what cannot mean anything", () => {
    for (const ok of [
      'int4-g128-perm',
      'int4-g128+o1',
      'int4-g128-asym-perm+o1',
      'kmeans3',
      'kmeans4+o1',
      'q4_0-perm',
      'nf4-g64+o0.5',
      'fp8-e4m3-b128',
    ]) {
      assert.ok(parseFormat(ok), ok);
    }
    // -perm needs groups along the row; +o after -perm; fp16 has nothing to keep out; codebooks up to 8 bits.
    for (const bad of [
      'int4-channel-perm',
      'int4-g128+o1-perm',
      'fp16+o1',
      'kmeans4-perm',
      'kmeans9',
      'kmeans0',
      'int4-g128+o0',
      'int4-g128+o60',
      'iq2_xxs+o1',
    ]) {
      assert.strictEqual(parseFormat(bad), undefined, bad);
    }
    assert.strictEqual(parseFormat('INT4-G128-ASYM-PERM+O1')!.name, 'int4-g128-asym-perm+o1');
    assert.strictEqual(parseFormat('int4-g128-asym-perm+o1')!.base!.name, 'int4-g128-asym');
  });

  it('rounds P% of the input channels up, to at least one', () => {
    const f = (p: string) => parseFormat(`int4-g128+o${p}`)!;
    assert.strictEqual(outlierCount(f('1'), 300), 3);
    assert.strictEqual(outlierCount(f('1'), 301), 4);
    assert.strictEqual(outlierCount(f('1'), 64), 1);
    assert.strictEqual(outlierCount(f('0.5'), 1000), 5);
    assert.strictEqual(outlierCount(f('2'), 4096), 82);
  });

  it('-perm sorts the reduction axis by column magnitude (Σw²), or by the activations when given, and wins where magnitudes vary across channels', () => {
    const rows = 32;
    const cols = 256;
    // Channel c scaled by one of eight magnitudes, interleaved: every positional group of 32 mixes all eight.
    const scale = Array.from({ length: cols }, (_, c) => 2 ** ((c * 5) % 8));
    const x = gaussian(rows * cols, 3).map((v, i) => v * scale[i % cols]);
    const s = sink(1);
    quantizeDequantize(x, rows, cols, 'int4-g32-perm', {}, undefined, s);
    const norm = Array.from({ length: cols }, (_, c) => {
      let a = 0;
      for (let r = 0; r < rows; r++) a += x[r * cols + c] ** 2;
      return a;
    });
    assert.strictEqual(s.perm!.length, cols);
    assert.deepStrictEqual(
      [...s.perm!].sort((a, b) => a - b),
      Array.from({ length: cols }, (_, c) => c),
    );
    for (let j = 1; j < cols; j++) assert.ok(norm[s.perm![j - 1]] >= norm[s.perm![j]], `position ${j}`);
    // Scales follow the stored order: 32 rows × 8 groups.
    assert.strictEqual(s.scales[0].length, rows * 8);
    // Weight SQNR is dominated by the loudest channels, whose error sorting does not change: the gain is modest.
    const gain = sqnr(x, rows, cols, 'int4-g32-perm') - sqnr(x, rows, cols, 'int4-g32');
    assert.ok(gain > 1, `perm gains ${gain} dB`);
    // With activations: their mean square decides, largest first.
    const act = Array.from({ length: cols }, (_, c) => (c * 37) % cols);
    const t = sink(1);
    quantizeDequantize(x, rows, cols, 'int4-g32-perm', { channelWeights: act }, undefined, t);
    assert.deepStrictEqual(
      t.perm,
      Array.from({ length: cols }, (_, c) => c).sort((a, b) => act[b] - act[a]),
    );
  });

  it('+o<P> keeps the channels with the largest |w| in fp16 exactly and quantizes the rest without them', () => {
    const rows = 16;
    const cols = 300;
    const x = gaussian(rows * cols, 5);
    // Three outlier channels (1% of 300), 50× the rest.
    const hot = [7, 150, 299];
    for (let r = 0; r < rows; r++) for (const c of hot) x[r * cols + c] *= 50;
    const s = sink(1);
    const y = quantizeDequantize(x, rows, cols, 'int4-g128+o1', {}, undefined, s);
    assert.deepStrictEqual(s.outliers!.cols, hot);
    for (let r = 0; r < rows; r++) {
      for (const c of hot) assert.strictEqual(y[r * cols + c], toHalf(x[r * cols + c]), `row ${r} channel ${c}`);
    }
    const gain = sqnr(x, rows, cols, 'int4-g128+o1') - sqnr(x, rows, cols, 'int4-g128');
    assert.ok(gain > 10, `outliers gain ${gain} dB`);
    // The bits: 3 channels × (9-bit index + 16 fp16 values), over 16 × 300 weights.
    assert.strictEqual(
      bitsPerWeightFor(parseFormat('int4-g128+o1')!, rows, cols),
      (16 * 300 * 4 + 16 * 3 * 16 + 3 * (9 + 16 * 16)) / (16 * 300),
    );
  });

  it("kmeans<B> is Lloyd's algorithm from the row's quantiles: deterministic, exact on ≤ 2^B distinct values, the same fixed point as a plain Lloyd loop", () => {
    const rows = 8;
    const cols = 500;
    const x = gaussian(rows * cols, 11);
    const a = sink(0);
    const b = sink(0);
    const y1 = quantizeDequantize(x, rows, cols, 'kmeans4', {}, undefined, a);
    const y2 = quantizeDequantize(x.slice(), rows, cols, 'kmeans4', {}, undefined, b);
    assert.deepStrictEqual(a.codebook, b.codebook);
    assert.deepStrictEqual(y1, y2);
    assert.strictEqual(a.codebook!.length, rows * 16);
    for (const c of a.codebook!) assert.strictEqual(c, toHalf(c));
    // A plain O(n·K) Lloyd loop from the same seeds (the quantiles at (k + ½)/K), in double.
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
      const sorted = [...row].sort((p, q) => p - q);
      let c = Array.from({ length: 16 }, (_, k) => sorted[Math.floor(((k + 0.5) * cols) / 16)]);
      for (let it = 0; it < 50; it++) {
        const sum = new Array(16).fill(0);
        const n = new Array(16).fill(0);
        for (const v of row) {
          let best = 0;
          for (let k = 1; k < 16; k++) if (Math.abs(v - c[k]) < Math.abs(v - c[best])) best = k;
          sum[best] += v;
          n[best]++;
        }
        const next = c.map((old, k) => (n[k] ? sum[k] / n[k] : old));
        if (next.every((v, k) => v === c[k])) break;
        c = next;
      }
      const want = c.map(toHalf).sort((p, q) => p - q);
      const got = a.codebook!.slice(r * 16, (r + 1) * 16);
      for (let k = 0; k < 16; k++) {
        assert.ok(
          Math.abs(got[k] - want[k]) <= Math.abs(want[k]) * 2 ** -10,
          `row ${r} centroid ${k}: ${got[k]} vs ${want[k]}`,
        );
      }
    }
    // Sixteen distinct fp16 values per row: the codebook holds them all, nothing is lost.
    const few = Float32Array.from({ length: rows * cols }, (_, i) => toHalf(((i * 7) % 16) - 7.5));
    assert.deepStrictEqual(quantizeDequantize(few, rows, cols, 'kmeans4'), few);
    // A non-uniform codebook beats uniform levels on bell-shaped rows at the same index width.
    assert.ok(sqnr(x, rows, cols, 'kmeans4') > sqnr(x, rows, cols, 'int4-channel') + 1);
  });

  it('fp8-e4m3-b128 scales each 128 × 128 block by its own absmax / 448 (fp32), so one loud block does not drown the others', () => {
    const rows = 256;
    const cols = 256;
    const x = gaussian(rows * cols, 13);
    for (let r = 0; r < 128; r++) for (let c = 0; c < 128; c++) x[r * cols + c] *= 1e4;
    const s = sink(1);
    quantizeDequantize(x, rows, cols, 'fp8-e4m3-b128', {}, undefined, s);
    assert.strictEqual(s.scales[0].length, 4);
    for (let b = 0; b < 4; b++) {
      const [r0, c0] = [128 * (b >> 1), 128 * (b & 1)];
      let m = 0;
      for (let r = r0; r < r0 + 128; r++) {
        for (let c = c0; c < c0 + 128; c++) m = Math.max(m, Math.abs(x[r * cols + c]));
      }
      assert.strictEqual(s.scales[0][b], Math.fround(m / 448), `block ${b}`);
    }
    // The quiet blocks keep fp8's ~30 dB instead of underflowing under a per-tensor scale.
    const quiet = (f: string) => {
      const y = quantizeDequantize(x, rows, cols, f);
      const xs = x.slice(128 * cols);
      return errorMetrics(xs, y.slice(128 * cols)).sqnrDb;
    };
    assert.ok(quiet('fp8-e4m3-b128') > 28, String(quiet('fp8-e4m3-b128')));
    assert.ok(quiet('fp8-e4m3-b128') > quiet('fp8-e4m3') + 3);
  });

  it('measureFormats reports the exact bits of the tensor it measured', () => {
    const x = gaussian(64 * 512, 17);
    const res = measureFormats(
      x,
      64,
      512,
      ['int4-g128', 'int4-g128-perm', 'int4-g128+o1', 'kmeans4', 'fp8-e4m3-b128'],
      false,
    );
    assert.deepStrictEqual(
      res.map((r) => r.bitsPerWeight),
      [
        4.125,
        4.125 + (512 * 9) / (64 * 512),
        4.125 + (6 * (9 + 16 * 64)) / (64 * 512),
        4 + 256 / 512,
        8 + (4 * 32) / (64 * 512),
      ],
    );
  });

  it("the planner offers them (offeredFormats()), and a plan's rules assign them with their exact bits and measured SQNR", () => {
    for (const f of [
      'int4-g128-perm',
      'int4-g128+o1',
      'int4-g128-asym-perm+o1',
      'kmeans3',
      'kmeans4',
      'fp8-e4m3-b128',
    ]) {
      assert.ok(offeredFormats().includes(f), f);
    }
    assert.ok(!offeredFormats().some((f) => f.startsWith('iq')), 'decode-only types are not offered');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-stat-plan-'));
    const plan = path.join(dir, 'p.plan.json');
    fs.writeFileSync(
      plan,
      JSON.stringify({
        model: path.join(REPO, 'examples', 'gpt2-tiny.onnx'),
        cluster: { gpu: 'l4', gpusPerNode: 1, nodes: 1 },
        training: { globalBatch: 8, microBatch: 8, seqLen: 64, dtype: 'bf16' },
        parallel: { data: 1, tensor: 1, pipeline: 1 },
        precision: {
          default: 'bf16',
          rules: [
            { match: 'h.0', format: 'int4-g128+o1' },
            { match: 'h.1', format: 'kmeans4' },
          ],
        },
      }),
    );
    const r = spawnSync(
      process.execPath,
      [
        path.join(REPO, 'out', 'src', 'cli.js'),
        'quant',
        path.join(REPO, 'examples', 'gpt2-tiny.onnx'),
        '--plan',
        plan,
        '--json',
      ],
      { encoding: 'utf8' },
    );
    fs.rmSync(dir, { recursive: true, force: true });
    assert.strictEqual(r.status, 0, r.stderr);
    const { assignment, comparisons } = JSON.parse(r.stdout);
    const layer = (n: string) => assignment.layers.find((l: { name: string }) => l.name === n);
    assert.strictEqual(layer('h.0').format, 'int4-g128+o1');
    assert.strictEqual(layer('h.1').format, 'kmeans4');
    assert.ok(layer('h.0').sqnrDb > 15 && layer('h.1').sqnrDb > 15);
    // gpt2-tiny's blocks are 64 wide: a 16-entry fp16 codebook per row is 4 more bits per weight, on top of the 4-bit codes.
    assert.ok(layer('h.1').bitsPerWeight > 7 && layer('h.1').bitsPerWeight < 8.5, String(layer('h.1').bitsPerWeight));
    // The plan measures no positional format near these in size (bf16 is 12 bits away): nothing to compare.
    assert.strictEqual(comparisons, undefined);
  });

  it("the issue's command runs on ONNX and safetensors weights, with each statistical format compared to its counterpart", () => {
    const formats = 'int4-g128,int4-g128-perm,int4-g128+o1,kmeans4,fp8-e4m3-b128';
    for (const model of [
      path.join(REPO, 'test', 'fixtures', 'models', 'bert-tiny.onnx'),
      path.join(SHARED_FIXTURES, 'safetensors', 'test-model-vocab-quantized', 'model.safetensors'),
    ]) {
      const r = spawnSync(
        process.execPath,
        [path.join(REPO, 'out', 'src', 'cli.js'), 'quant', model, '--formats', formats, '--json'],
        {
          encoding: 'utf8',
        },
      );
      assert.strictEqual(r.status, 0, r.stderr);
      const doc = JSON.parse(r.stdout);
      assert.deepStrictEqual(
        doc.comparisons.map((c: { format: string; counterpart: string }) => `${c.format} vs ${c.counterpart}`),
        ['int4-g128-perm vs int4-g128', 'int4-g128+o1 vs int4-g128', 'kmeans4 vs int4-g128'],
        model,
      );
      for (const c of doc.comparisons) {
        assert.ok(Math.abs(c.gainDb - (c.sqnrDb - c.counterpartSqnrDb)) < 1e-9);
        assert.strictEqual(c.layers.length, new Set(doc.tensors.map((t: { layer: string }) => t.layer)).size);
      }
      // The summary's bits are every stored bit of the measured tensors.
      for (const s of doc.summary) assert.strictEqual(s.bytes, Math.ceil((s.bitsPerWeight * s.parameters) / 8 - 1e-9));
    }
  });

  it('`layerplan quant` refuses to quantize to a decode-only IQ type, naming it', () => {
    const r = spawnSync(
      process.execPath,
      [
        path.join(REPO, 'out', 'src', 'cli.js'),
        'quant',
        path.join(REPO, 'examples', 'gpt2-tiny.onnx'),
        '--formats',
        'iq2_xxs',
      ],
      { encoding: 'utf8' },
    );
    assert.strictEqual(r.status, 2);
    assert.match(
      r.stderr,
      /'iq2_xxs' is one of llama\.cpp's codebook types: Layerplan decodes it from GGUF files but does not quantize to it/,
    );
    assert.strictEqual(parseFormat('iq2_xxs')!.bitsPerWeight, (66 * 8) / 256);
    assert.strictEqual(parseFormat('iq1_m')!.bitsPerWeight, (56 * 8) / 256);
  });
});
