import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import { onnx } from 'onnx-proto';
import * as path from 'path';
import { parseFormat } from '../../src/engine/quant/formats';
import {
  E2M1,
  E4M3FN,
  floatToHalfBits,
  halfBitsToFloat,
  roundToMiniFloat,
  toBf16,
  toHalf,
} from '../../src/engine/quant/numeric';
import { NF4_LEVELS, errorMetrics, quantizeDequantize, type ScaleSink } from '../../src/engine/quant/quantize';
import { measureFormats } from '../../src/engine/quant/run';
import { dequantizeGgml } from '../../src/engine/quant/weights';
import { expandGrid } from '../../src/engine/quant/iq-decode';
import { IQ_GRIDS } from '../../src/engine/quant/iq-grids';
import { createHash } from 'crypto';
import { REPO, rng } from '../helpers';

function gaussian(n: number, seed = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r()) * 0.02;
  return out;
}

const sqnr = (x: Float32Array, f: string, rows = 64) =>
  errorMetrics(x, quantizeDequantize(x, rows, x.length / rows, f)).sqnrDb;

describe('quantization formats', () => {
  it('know their exact bits per weight, scales included', () => {
    const expected: Record<string, number> = {
      fp32: 32,
      bf16: 16,
      fp16: 16,
      'fp8-e4m3': 8,
      'fp8-e5m2': 8,
      'int8-channel': 8,
      'int8-tensor': 8,
      'int4-g128': 4 + 16 / 128,
      'int4-g128-asym': 4 + 20 / 128,
      'int2-g64': 2 + 16 / 64,
      'int4-g16-2l': 4 + 8 / 16,
      'mxfp8-e4m3': 8.25,
      'mxfp8-e5m2': 8.25,
      'mxfp6-e2m3': 6.25,
      'mxfp6-e3m2': 6.25,
      mxfp4: 4.25,
      mxint8: 8.25,
      nvfp4: 4.5,
      'nf4-g64': 4.25,
      // llama.cpp block sizes (ggml-common.h): bytes × 8 / elements
      q4_0: 4.5,
      q4_1: 5,
      q5_0: 5.5,
      q5_1: 6,
      q8_0: 8.5,
      q2_k: 2.625,
      q3_k: 3.4375,
      q4_k: 4.5,
      q5_k: 5.5,
      q6_k: 6.5625,
    };
    for (const [name, bits] of Object.entries(expected)) {
      assert.strictEqual(parseFormat(name)?.bitsPerWeight, bits, name);
    }
    assert.strictEqual(parseFormat('int3'), undefined);
  });

  it('fp16, bf16 and fp8 rounding on the float32 bits agree with the scalar references (round to nearest even)', () => {
    const r = rng(21);
    const x = Float32Array.from({ length: 200000 }, () => (r() - 0.5) * 2 ** (Math.floor(r() * 60) - 30));
    const h = quantizeDequantize(x, 1, x.length, 'fp16');
    const b = quantizeDequantize(x, 1, x.length, 'bf16');
    for (let i = 0; i < x.length; i++) {
      assert.ok(h[i] === toHalf(x[i]), `fp16 of ${x[i]}: ${h[i]} vs ${toHalf(x[i])}`);
      assert.ok(b[i] === toBf16(x[i]), `bf16 of ${x[i]}: ${b[i]} vs ${toBf16(x[i])}`);
    }
    assert.deepStrictEqual(Array.from(quantizeDequantize(Float32Array.from([65519, 65520, -1e6]), 1, 3, 'fp16')), [
      65504,
      Infinity,
      -Infinity,
    ]);
    const g = gaussian(4096, 2);
    const e4 = quantizeDequantize(g, 1, g.length, 'fp8-e4m3');
    let amax = 0;
    for (const v of g) amax = Math.max(amax, Math.abs(v));
    const sc = Math.fround(amax / 448); // stored as fp32 beside the fp8 tensor
    for (let i = 0; i < g.length; i++) {
      assert.ok(e4[i] === Math.fround(roundToMiniFloat(Math.fround(g[i] * (1 / sc)), E4M3FN) * sc), `e4m3 of ${g[i]}`);
    }
  });

  it('the WebAssembly SIMD paths (integer kernel, in-place metrics) agree with the plain-JS reference', () => {
    const x = gaussian(64 * 512, 17);
    const names = ['int4-g128', 'int8-channel', 'int4-g32-asym', 'int8-tensor', 'mxfp4', 'nf4-g64', 'q4_0', 'fp8-e4m3'];
    const fast = measureFormats(x, 64, 512, names, false);
    names.forEach((name, i) => {
      const ref = errorMetrics(x, quantizeDequantize(x, 64, 512, name));
      assert.ok(Math.abs(fast[i].sqnrDb! - ref.sqnrDb) < 1e-3, `${name}: ${fast[i].sqnrDb} vs ${ref.sqnrDb}`);
      assert.ok(
        Math.abs(fast[i].maxAbsError - ref.maxAbsError) <= 1e-7 * Math.max(1, ref.maxAbsError),
        `${name} max error`,
      );
      assert.ok(Math.abs(fast[i].cosine - ref.cosine) < 1e-6, `${name} cosine`);
    });
  });

  it('lose about 6 dB per bit on Gaussian weights (int8 vs int4, per channel)', () => {
    const x = gaussian(64 * 512);
    const d = sqnr(x, 'int8-channel') - sqnr(x, 'int4-channel');
    assert.ok(Math.abs(d - 4 * 6.02) < 2, `${d.toFixed(2)} dB`);
  });

  it('order as their resolution says: smaller groups, more bits and a second scale level help', () => {
    const x = gaussian(64 * 1024, 7);
    assert.ok(sqnr(x, 'int4-g32') > sqnr(x, 'int4-g128'));
    assert.ok(sqnr(x, 'int4-g128') > sqnr(x, 'int4-channel'));
    assert.ok(sqnr(x, 'int4-g16-2l') > sqnr(x, 'int4-g128'));
    assert.ok(sqnr(x, 'q6_k') > sqnr(x, 'q5_k'));
    assert.ok(sqnr(x, 'q5_k') > sqnr(x, 'q4_k'));
    assert.ok(sqnr(x, 'q4_k') > sqnr(x, 'q3_k'));
    assert.ok(sqnr(x, 'q3_k') > sqnr(x, 'q2_k'));
    assert.ok(sqnr(x, 'q8_0') > sqnr(x, 'q5_1'));
    assert.ok(sqnr(x, 'fp16') > sqnr(x, 'bf16'));
    // NF4's levels are normal quantiles: on Gaussian data they beat uniform int4 at the same block size.
    assert.ok(sqnr(x, 'nf4-g64') > sqnr(x, 'int4-g64'));
  });

  it('keep values that are already on their grid', () => {
    const grid = Float32Array.from([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.5, -1, -1.5, -2, -3, -4, -6, 6]);
    assert.deepStrictEqual(Array.from(quantizeDequantize(grid, 1, 16, 'bf16')), Array.from(grid));
    // int8 per channel with absmax 127: integers stay integers.
    const ints = Float32Array.from({ length: 128 }, (_, i) => i - 64).map((v, i) => (i === 0 ? -127 : v));
    assert.deepStrictEqual(Array.from(quantizeDequantize(ints, 1, 128, 'int8-channel')), Array.from(ints));
  });

  it('MX formats share a power-of-two scale per 32 and put every element on the E2M1 grid (mxfp4)', () => {
    const x = gaussian(32 * 8, 3);
    const y = quantizeDequantize(x, 8, 32, 'mxfp4');
    for (let b = 0; b < 8; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]));
      const X = 2 ** (Math.floor(Math.log2(amax)) - 2);
      for (let i = 0; i < 32; i++) {
        const e = y[b * 32 + i] / X;
        assert.ok(e === roundToMiniFloat(e, E2M1), `block ${b}: ${e}`);
      }
    }
  });

  it('NF4 uses the 16 normal-float levels, with 0 and ±1', () => {
    assert.strictEqual(NF4_LEVELS.length, 16);
    assert.ok(NF4_LEVELS.includes(0) && NF4_LEVELS.includes(1) && NF4_LEVELS.includes(-1));
    const x = gaussian(64, 5);
    const y = quantizeDequantize(x, 1, 64, 'nf4-g64');
    assert.ok(new Set(Array.from(y)).size <= 16);
  });

  describe('GGUF blocks', () => {
    const half = (v: number) => {
      const b = floatToHalfBits(v);
      return [b & 0xff, b >> 8];
    };
    it('decode hand-built q8_0, q4_0, q4_1, q5_0 and q5_1 blocks (ggml-common.h layouts)', () => {
      const q8 = Uint8Array.from([...half(0.5), ...Array.from({ length: 32 }, (_, i) => (i - 16) & 0xff)]);
      assert.deepStrictEqual(
        Array.from(dequantizeGgml('Q8_0', q8, 32)),
        Array.from({ length: 32 }, (_, i) => (i - 16) * 0.5),
      );
      // q4_0: element j in the low nibble of byte j, element j+16 in the high nibble; value (q − 8)·d.
      const q4 = Uint8Array.from([...half(2), ...Array.from({ length: 16 }, (_, j) => (j & 0xf) | ((15 - j) << 4))]);
      const want4 = [
        ...Array.from({ length: 16 }, (_, j) => (j - 8) * 2),
        ...Array.from({ length: 16 }, (_, j) => (15 - j - 8) * 2),
      ];
      assert.deepStrictEqual(Array.from(dequantizeGgml('Q4_0', q4, 32)), want4);
      const q41 = Uint8Array.from([...half(0.25), ...half(-1), ...Array.from({ length: 16 }, (_, j) => j | (j << 4))]);
      assert.deepStrictEqual(Array.from(dequantizeGgml('Q4_1', q41, 32)), [
        ...Array.from({ length: 16 }, (_, j) => j * 0.25 - 1),
        ...Array.from({ length: 16 }, (_, j) => j * 0.25 - 1),
      ]);
      // q5_0: the fifth bits of all 32 elements in a uint32 (bit j for element j, bit j+16 for element j+16).
      const qh = 0xffff0000;
      const q50 = Uint8Array.from([
        ...half(1),
        qh & 0xff,
        (qh >> 8) & 0xff,
        (qh >>> 16) & 0xff,
        qh >>> 24,
        ...Array.from({ length: 16 }, () => 0x00),
      ]);
      assert.deepStrictEqual(Array.from(dequantizeGgml('Q5_0', q50, 32)), [
        ...new Array(16).fill(-16),
        ...new Array(16).fill(0),
      ]);
      const q51 = Uint8Array.from([
        ...half(1),
        ...half(0),
        0xff,
        0xff,
        0xff,
        0xff,
        ...Array.from({ length: 16 }, () => 0xff),
      ]);
      assert.deepStrictEqual(Array.from(dequantizeGgml('Q5_1', q51, 32)), new Array(32).fill(31));
    });
    it("decode every ggml block type Layerplan reads exactly as llama.cpp's own dequantizers do (gguf-py, on random blocks)", () => {
      const fixture = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ggml-blocks.json'), 'utf8')) as {
        blocks: { type: string; bytes: string; values: number[] }[];
      };
      const types = fixture.blocks.map((b) => b.type);
      for (const t of ['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'TQ1_0', 'TQ2_0', 'IQ4_NL', 'IQ4_XS', 'MXFP4']) {
        assert.ok(types.includes(t), t);
      }
      for (const b of fixture.blocks) {
        const got = dequantizeGgml(b.type, Uint8Array.from(Buffer.from(b.bytes, 'hex')), b.values.length);
        const bad = b.values.findIndex((v, i) => got[i] !== v);
        assert.strictEqual(bad, -1, `${b.type} [${bad}]: ${got[bad]} ≠ ${b.values[bad]}`);
      }
    });
    it("decode llama.cpp's codebook IQ types exactly as gguf-py does (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S)", () => {
      const fixture = JSON.parse(
        fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ggml-iq-blocks.json'), 'utf8'),
      ) as { blocks: { type: string; bytes: string; values: number[] }[] };
      const types = new Set(fixture.blocks.map((b) => b.type));
      assert.deepStrictEqual([...types].sort(), ['IQ1_M', 'IQ1_S', 'IQ2_S', 'IQ2_XS', 'IQ2_XXS', 'IQ3_S', 'IQ3_XXS']);
      for (const type of types) {
        // All of a type's blocks as one tensor: blocks after the first must start at the right offsets too.
        const bs = fixture.blocks.filter((b) => b.type === type);
        const raw = Uint8Array.from(Buffer.concat(bs.map((b) => Buffer.from(b.bytes, 'hex'))));
        const got = dequantizeGgml(type, raw, 256 * bs.length);
        const want = bs.flatMap((b) => b.values);
        const bad = want.findIndex((v, i) => got[i] !== v);
        assert.strictEqual(bad, -1, `${type} [${bad}]: ${got[bad]} ≠ ${want[bad]}`);
      }
    });
    it("decode 1,024 pseudo-random blocks of each IQ type to exactly gguf-py's float32 output (SHA-256; every grid entry drawn)", () => {
      const fixture = JSON.parse(
        fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ggml-iq-coverage.json'), 'utf8'),
      ) as { recipe: { blocks: number; d: number }; types: Record<string, { id: number; sha256: string }> };
      const { blocks, d } = fixture.recipe;
      const sizes: Record<string, number> = {
        IQ2_XXS: 66,
        IQ2_XS: 74,
        IQ2_S: 82,
        IQ3_XXS: 98,
        IQ3_S: 110,
        IQ1_S: 50,
        IQ1_M: 56,
      };
      assert.strictEqual(Object.keys(fixture.types).length, 7);
      for (const [type, { id, sha256 }] of Object.entries(fixture.types)) {
        const bs = sizes[type];
        const raw = new Uint8Array(blocks * bs);
        let s = 19 + id;
        for (let b = 0; b < blocks; b++) {
          for (let i = 0; i < bs; i++) {
            s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
            raw[b * bs + i] = s >>> 24;
          }
          if (type === 'IQ1_M') {
            for (let k = 0; k < 4; k++) {
              const o = b * bs + 49 + 2 * k;
              raw[o] = (raw[o] & 0x0f) | (((d >> (4 * k)) & 0xf) << 4);
            }
          } else [raw[b * bs], raw[b * bs + 1]] = [d & 0xff, d >> 8];
        }
        const y = dequantizeGgml(type, raw, blocks * 256);
        const hash = createHash('sha256')
          .update(Buffer.from(y.buffer, y.byteOffset, y.byteLength))
          .digest('hex');
        assert.strictEqual(hash, sha256, type);
      }
    });
    it('expand the compact IQ grids to exactly the bytes of ggml-common.h (SHA-256 of each table as C lays it out)', () => {
      for (const g of Object.values(IQ_GRIDS)) {
        const v = expandGrid(g);
        assert.strictEqual(v.length, g.entries * g.width, g.table);
        const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        assert.strictEqual(createHash('sha256').update(bytes).digest('hex'), g.sha256, g.table);
      }
    });
    it('decode Q8_K and Q8_1 blocks (plain int8 with their own scale layouts)', () => {
      // Q8_K (d as float32) and Q8_1 (d, then d·Σq) are plain int8 blocks.
      const q8k = new Uint8Array(292);
      new DataView(q8k.buffer).setFloat32(0, 0.25, true);
      q8k.set(
        Array.from({ length: 256 }, (_, i) => (i - 128) & 0xff),
        4,
      );
      assert.deepStrictEqual(
        Array.from(dequantizeGgml('Q8_K', q8k, 256)),
        Array.from({ length: 256 }, (_, i) => (i - 128) * 0.25),
      );
      const q81 = Uint8Array.from([...half(2), ...half(99), ...Array.from({ length: 32 }, (_, i) => i)]);
      assert.deepStrictEqual(
        Array.from(dequantizeGgml('Q8_1', q81, 32)),
        Array.from({ length: 32 }, (_, i) => i * 2),
      );
    });
    it('decode hand-built k-quant super-blocks: Q4_K, Q5_K, Q6_K, Q2_K (block_q*_K layouts)', () => {
      // Q4_K: d, dmin, 12 bytes of 6-bit scales/mins (all sub-blocks scale 2, min 1), 128 bytes of nibbles.
      const sc = [2, 2, 2, 2, 1, 1, 1, 1, 0x12, 0x12, 0x12, 0x12];
      const qs = Array.from({ length: 128 }, (_, l) => (l % 16) | ((15 - (l % 16)) << 4));
      const q4k = Uint8Array.from([...half(1), ...half(0.5), ...sc, ...qs]);
      const want4: number[] = [];
      for (let j = 0; j < 4; j++) {
        for (let l = 0; l < 32; l++) want4.push(2 * (l % 16) - 0.5);
        for (let l = 0; l < 32; l++) want4.push(2 * (15 - (l % 16)) - 0.5);
      }
      assert.deepStrictEqual(Array.from(dequantizeGgml('Q4_K', q4k, 256)), want4);
      // Q5_K: the same plus qh: bit 2j of qh[l] adds 16 to the low nibbles of pair j, bit 2j+1 to the high ones; set all.
      const q5k = Uint8Array.from([...half(1), ...half(0.5), ...sc, ...new Array(32).fill(0xff), ...qs]);
      assert.deepStrictEqual(
        Array.from(dequantizeGgml('Q5_K', q5k, 256)),
        want4.map((v) => v + 32),
      );
      // Q6_K: ql (low 4 bits), qh (2 high bits each), 16 int8 scales, d last; value d·scale·(q − 32).
      const ql = Array.from({ length: 128 }, (_, l) => (l & 0xf) | ((l & 0xf) << 4));
      const qh = new Array(64).fill(0xaa); // high bits = 2 for all four quarters → +32
      const scales = Array.from({ length: 16 }, (_, i) => i + 1);
      const q6k = Uint8Array.from([...ql, ...qh, ...scales, ...half(0.5)]);
      const got6 = dequantizeGgml('Q6_K', q6k, 256);
      for (let n = 0; n < 2; n++) {
        for (let l = 0; l < 32; l++) {
          const is = 8 * n + (l >> 4);
          const q = (l & 0xf) + 32 - 32; // low nibble (ql[l] or ql[l+32] share it here) with high bits 2
          for (let k = 0; k < 4; k++) {
            assert.strictEqual(
              got6[128 * n + 32 * k + l],
              0.5 * scales[is + 2 * k] * q,
              `Q6_K [${128 * n + 32 * k + l}]`,
            );
          }
        }
      }
      // Q2_K: 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit values, then d and dmin.
      const q2k = Uint8Array.from([
        ...new Array(16).fill(0x21),
        ...new Array(64).fill(0b11100100),
        ...half(1),
        ...half(0.25),
      ]);
      const got2 = dequantizeGgml('Q2_K', q2k, 256);
      for (let i = 0; i < 256; i++) {
        const shift = 2 * (Math.floor(i / 32) % 4);
        assert.strictEqual(got2[i], ((0b11100100 >> shift) & 3) - 0.5, `Q2_K [${i}]`);
      }
    });
    it("q4_0, q4_1, q5_0, q5_1 and q8_0 quantize exactly as llama.cpp's own quantizers do (gguf-py's output, pinned)", () => {
      // test/fixtures/ggml-quantize.json: gguf-py's quantize_blocks / dequantize_blocks run on fixed
      // inputs (random blocks, a zero block, outliers, and blocks of k + 0.5 ties where the rounding rule decides).
      const fixture = JSON.parse(
        fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ggml-quantize.json'), 'utf8'),
      ) as { rows: number; cols: number; input: string; types: Record<string, { bytes: string; dequantized: string }> };
      const f32 = (hex: string) => {
        const b = Buffer.from(hex, 'hex');
        return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
      };
      const x = f32(fixture.input);
      const { rows, cols } = fixture;
      assert.deepStrictEqual(Object.keys(fixture.types), ['q4_0', 'q4_1', 'q5_0', 'q5_1', 'q8_0']);
      for (const [name, want] of Object.entries(fixture.types)) {
        const ref = f32(want.dequantized);
        const bytes = Uint8Array.from(Buffer.from(want.bytes, 'hex'));
        // Our decoder agrees with gguf-py's on gguf-py's bytes (the decoders are pinned the same way).
        const decoded = dequantizeGgml(name.toUpperCase(), bytes, x.length);
        assert.strictEqual(
          ref.findIndex((v, i) => decoded[i] !== v),
          -1,
          `${name}: decoding gguf-py's bytes`,
        );
        // Our quantizer: the same values and the same fp16 scales (and minimums) as gguf-py's blocks hold.
        const sink: ScaleSink = { scales: [[]], mins: [[]] };
        const y = quantizeDequantize(x, rows, cols, name, {}, undefined, sink);
        const bad = ref.findIndex((v, i) => !(y[i] === v || (y[i] === 0 && v === 0)));
        assert.strictEqual(
          bad,
          -1,
          `${name} [${bad}]: ${y[bad]} quantized vs ${ref[bad]} from llama.cpp (input ${x[bad]})`,
        );
        const blockBytes = bytes.length / (x.length / 32);
        const d = Array.from({ length: x.length / 32 }, (_, b) =>
          halfBitsToFloat(bytes[b * blockBytes] | (bytes[b * blockBytes + 1] << 8)),
        );
        assert.deepStrictEqual(sink.scales[0], d, `${name}: block scales`);
        if (name.endsWith('_1')) {
          const m = d.map((_, b) => halfBitsToFloat(bytes[b * blockBytes + 2] | (bytes[b * blockBytes + 3] << 8)));
          assert.deepStrictEqual(sink.mins[0], m, `${name}: block minimums`);
        }
      }
    });
  });
});

/** Writes a GGUF v3 file with no metadata: the tensors' infos, then their bytes, each at 32-byte alignment. */
function writeGguf(file: string, tensors: { name: string; type: number; dims: number[]; bytes: Uint8Array }[]): void {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    parts.push(b);
  };
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    parts.push(b);
  };
  const str = (v: string) => {
    u64(Buffer.byteLength(v));
    parts.push(Buffer.from(v));
  };
  const pad = (n: number) => (32 - (n % 32)) % 32;
  parts.push(Buffer.from('GGUF'));
  u32(3);
  u64(tensors.length);
  u64(0);
  let rel = 0;
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    t.dims.forEach(u64);
    u32(t.type);
    u64(rel);
    rel += t.bytes.length + pad(t.bytes.length);
  }
  parts.push(Buffer.alloc(pad(Buffer.concat(parts).length)));
  for (const t of tensors) parts.push(Buffer.from(t.bytes), Buffer.alloc(pad(t.bytes.length)));
  fs.writeFileSync(file, Buffer.concat(parts));
}

describe('layerplan quant', () => {
  it('measures QDQ int8 weights as the floats DequantizeLinear makes of them', () => {
    // qdq-mlp.onnx stores int8 per-channel weights: re-quantizing them to int8 per channel is (nearly) exact.
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'quant',
        path.join(REPO, 'test', 'fixtures', 'models', 'qdq-mlp.onnx'),
        '--formats',
        'int8-channel,int4-channel',
        '--json',
      ],
      { encoding: 'utf8' },
    );
    assert.strictEqual(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepStrictEqual(doc.tensors.map((t: { name: string }) => t.name).sort(), [
      'fc1.weight_quantized',
      'fc2.weight_quantized',
    ]);
    for (const t of doc.tensors) {
      const [i8, i4] = t.results;
      assert.ok(i8.sqnrDb > 60, `${t.name}: int8 ${i8.sqnrDb} dB (only fp16 scale rounding)`);
      assert.ok(i4.sqnrDb < 30);
    }
  });
  const CLI = path.join(REPO, 'out', 'src', 'cli.js');
  it('measures GGUF weights stored as Q3_K, IQ4_XS, MXFP4 and every codebook IQ type, in the statistical formats too, with exact bits', () => {
    const read = (f: string) =>
      (
        JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'fixtures', f), 'utf8')) as {
          blocks: { type: string; bytes: string }[];
        }
      ).blocks;
    const blocks = [...read('ggml-blocks.json'), ...read('ggml-iq-blocks.json')];
    // 8 rows of 256: the fixtures' (llama.cpp-checked) blocks repeated.
    const fill = (type: string, n: number) => {
      const all = blocks.filter((x) => x.type === type).map((x) => Buffer.from(x.bytes, 'hex'));
      const b = Buffer.concat(all);
      return Uint8Array.from({ length: n }, (_, i) => b[i % b.length]);
    };
    const IQ: [string, number, number][] = [
      ['IQ2_XXS', 16, 66],
      ['IQ2_XS', 17, 74],
      ['IQ3_XXS', 18, 98],
      ['IQ1_S', 19, 50],
      ['IQ3_S', 21, 110],
      ['IQ2_S', 22, 82],
      ['IQ1_M', 29, 56],
    ];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-gguf-'));
    const file = path.join(dir, 'mixed.gguf');
    writeGguf(file, [
      { name: 'blk.0.attn_q.weight', type: 11, dims: [256, 8], bytes: fill('Q3_K', 8 * 110) },
      { name: 'blk.0.ffn_up.weight', type: 23, dims: [256, 8], bytes: fill('IQ4_XS', 8 * 136) },
      { name: 'blk.0.ffn_gate.weight', type: 39, dims: [256, 8], bytes: fill('MXFP4', 64 * 17) },
      ...IQ.map(([t, code, bytes]) => ({
        name: `blk.1.${t.toLowerCase()}.weight`,
        type: code,
        dims: [256, 8],
        bytes: fill(t, 8 * bytes),
      })),
    ]);
    const formats = ['int8-channel', 'int4-g128', 'int4-g128-perm', 'int4-g128+o1', 'kmeans4', 'fp8-e4m3-b128'];
    const r = spawnSync(process.execPath, [CLI, 'quant', file, '--formats', formats.join(','), '--json'], {
      encoding: 'utf8',
    });
    assert.strictEqual(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.strictEqual(doc.tensors.length, 10);
    assert.deepStrictEqual(doc.skipped, []);
    // [8, 256]: per-row fp16 scale 16/256; groups of 128: 2 scales per row; ⌈log2 256⌉ = 8-bit indices; 1% of 256 → 3 channels; 16 fp16 centroids per row; one 128 × 128 block row of two fp32 scales.
    const bits = [
      8 + 16 / 256,
      4.125,
      4.125 + (256 * 8) / 2048,
      4.125 + (3 * (8 + 16 * 8)) / 2048,
      4 + 256 / 256,
      8 + 64 / 2048,
    ];
    for (const t of doc.tensors) {
      assert.deepStrictEqual(
        t.results.map((x: { bitsPerWeight: number }) => x.bitsPerWeight),
        bits,
        t.name,
      );
      const i8 = t.results[0].sqnrDb;
      assert.ok(i8 > 25 && i8 < 80, `${t.name}: ${i8} dB`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  it('gives per-tensor results for every format on a real exported transformer, and a parameter-weighted summary', () => {
    const r = spawnSync(process.execPath, [CLI, 'quant', path.join(REPO, 'examples', 'gpt2-tiny.onnx'), '--json'], {
      encoding: 'utf8',
    });
    assert.strictEqual(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.strictEqual(doc.summary.length, 16);
    assert.ok(doc.tensors.length >= 10);
    for (const t of doc.tensors) {
      assert.strictEqual(t.results.length, 16, t.name);
      for (const x of t.results) {
        for (const k of ['format', 'bitsPerWeight', 'mse', 'sqnrDb', 'maxAbsError', 'cosine']) assert.ok(k in x, k);
      }
    }
    for (const s of doc.summary) {
      let signal = 0;
      let noise = 0;
      let params = 0;
      for (const t of doc.tensors) {
        const x = t.results.find((y: { format: string }) => y.format === s.format);
        const n = t.shape.reduce((a: number, b: number) => a * b, 1);
        params += n;
        noise += x.mse * n;
        signal += x.mse * n * 10 ** (x.sqnrDb / 10);
      }
      assert.strictEqual(s.parameters, params);
      assert.strictEqual(s.bytes, Math.ceil((params * s.bitsPerWeight) / 8));
      assert.ok(Math.abs(s.sqnrDb - 10 * Math.log10(signal / noise)) < 1e-6, s.format);
    }
  });
  it("reports a plan's mixed-precision assignment: bytes per the rules, output SQNR from the layers' relative noise", function () {
    this.timeout(120000);
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'quant',
        path.join(REPO, 'examples', 'gpt2-tiny.onnx'),
        '--plan',
        path.join(REPO, 'examples', 'gpt2-tiny.plan.json'),
        '--json',
      ],
      { encoding: 'utf8' },
    );
    assert.strictEqual(r.status, 0, r.stderr);
    const { assignment, tensors } = JSON.parse(r.stdout);
    let bytes = 0;
    for (const t of tensors) {
      const n = t.shape.reduce((a: number, b: number) => a * b, 1);
      // MatMul weights [K, N]: int4-g128 stores an fp16 scale per started group of 128 along K (one per 64 when K = 64).
      const K = t.shape[0];
      bytes += (n * (/^h\./.test(t.layer) ? 4 + (16 * Math.ceil(K / 128)) / K : 16)) / 8;
    }
    assert.strictEqual(assignment.weightBytes, Math.ceil(bytes));
    const blocks = assignment.layers.filter((l: { name: string }) => /^h\./.test(l.name));
    assert.ok(blocks.length === 2 && blocks.every((l: { format: string }) => l.format === 'int4-g128'));
    // First order: the layers' relative noise powers add with unit gain.
    const expected =
      -10 * Math.log10(assignment.layers.reduce((a: number, l: { sqnrDb: number }) => a + 10 ** (-l.sqnrDb / 10), 0));
    assert.ok(Math.abs(assignment.firstOrderSqnrDb - expected) < 1e-9);
    assert.ok(assignment.firstOrderSqnrDb < Math.min(...assignment.layers.map((l: { sqnrDb: number }) => l.sqnrDb)));
    // Calibrated: each layer's noise times its measured gain (the blocks' weights reach the logits weakly).
    assert.strictEqual(assignment.errorModel, 'calibrated');
    assert.notStrictEqual(assignment.outputSqnrDb, assignment.firstOrderSqnrDb);
  });
  it('--sample measures a fraction of the rows and gives a 95% interval on SQNR', () => {
    const run = (...extra: string[]) =>
      JSON.parse(
        spawnSync(
          process.execPath,
          [CLI, 'quant', path.join(REPO, 'examples', 'gpt2-tiny.onnx'), '--formats', 'int4-g32', '--json', ...extra],
          { encoding: 'utf8' },
        ).stdout,
      );
    const full = run();
    const sampled = run('--sample', '0.5');
    // Every float matrix of the file, read with onnx-proto: the 2-D float initializers of at least 1024 elements.
    const proto = onnx.ModelProto.decode(fs.readFileSync(path.join(REPO, 'examples', 'gpt2-tiny.onnx')));
    const matrices = (proto.graph?.initializer ?? [])
      .filter((t) => t.dataType === 1 && t.dims?.length === 2 && Number(t.dims[0]) * Number(t.dims[1]) >= 1024)
      .map((t) => t.name)
      .sort();
    assert.strictEqual(matrices.length, 11);
    const names = (r: { tensors: { name: string }[] }) => r.tensors.map((t) => t.name).sort();
    assert.deepStrictEqual(names(full), matrices);
    assert.deepStrictEqual(names(sampled), matrices);
    for (const t of sampled.tensors) {
      const r = t.results[0];
      const [lo, hi] = r.sqnrDbCi;
      assert.ok(lo <= r.sqnrDb && r.sqnrDb <= hi + 1e-9 && hi - lo < 3, `${t.name}: ${lo} ≤ ${r.sqnrDb} ≤ ${hi}`);
      const whole = full.tensors.find((x: { name: string }) => x.name === t.name).results[0].sqnrDb;
      assert.ok(Math.abs(whole - r.sqnrDb) < 1.5, `${t.name}: sampled ${r.sqnrDb} vs all rows ${whole}`);
    }
  });
  it('refuses an unknown format with a suggestion, and a non-float tensor', () => {
    const bad = spawnSync(
      process.execPath,
      [CLI, 'quant', path.join(REPO, 'examples', 'gpt2-tiny.onnx'), '--formats', 'int4-g12B'],
      { encoding: 'utf8' },
    );
    assert.strictEqual(bad.status, 2);
    assert.match(bad.stderr, /unknown number format 'int4-g12B' \(did you mean 'int4-g128'\?\)/);
    const ints = spawnSync(
      process.execPath,
      [
        CLI,
        'quant',
        path.join(REPO, 'test', 'fixtures', 'models', 'qdq-mlp.onnx'),
        '--tensors',
        'fc1.weight_zero_point',
      ],
      { encoding: 'utf8' },
    );
    assert.strictEqual(ints.status, 2);
    assert.match(ints.stderr, /is int8, not floating point/);
  });
});
