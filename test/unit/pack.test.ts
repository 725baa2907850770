import * as assert from 'assert';
import { parseFormat, FORMAT_NAMES, offeredFormats, storedBits } from '../../src/engine/quant/formats';
import { dequantizePacked, packWeight } from '../../src/engine/quant/pack';
import { generatedInputs } from '../../src/engine/quant/verify';

const gaussian = (n: number, seed: number) => generatedInputs(1, n, seed);

/** Equal values (−0 equals 0: a sign bit on zero is not an error). */
function sameValues(a: Float32Array, b: Float32Array, name: string): void {
  assert.strictEqual(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    if (!(a[i] === b[i])) assert.fail(`${name}: element ${i}: ${a[i]} decoded vs ${b[i]} quantized`);
  }
}

/** Every DESIGN format name Layerplan quantizes to (not the decode-only IQ types), and the extra granularities the planner offers. */
export const ALL_FORMATS = [
  ...new Set([
    ...FORMAT_NAMES,
    ...offeredFormats(),
    'int8-g32-asym',
    'int2-g64',
    'int4-tensor',
    'int8-g16-2l',
    'nf4-g64',
    // The statistical suffixes on other families: a GGUF block format, microscaling, NF4, a per-channel base, codebooks.
    'q4_0-perm+o1',
    'mxfp4-perm',
    'nf4-g64+o2',
    'int8-channel+o1',
    'kmeans4+o1',
    'kmeans2',
    'int4-g32-asym-perm',
  ]),
].filter((n) => !parseFormat(n)!.decodeOnly);

describe('packing quantized weights into their real bits', () => {
  for (const name of ALL_FORMATS) {
    it(`${name}: the packed bits decode to exactly what the quantizer measured, in exactly its bits per weight`, () => {
      const rows = 24;
      const cols = 512;
      const x = gaussian(rows * cols, 7);
      // Outliers and a zero row: scales must cope with both.
      x[5] = 9;
      x.fill(0, 3 * cols, 4 * cols);
      const { packed, dequantized } = packWeight(x, rows, cols, name);
      sameValues(dequantizePacked(packed), dequantized, name);
      const f = parseFormat(name)!;
      assert.strictEqual(packed.payloadBits, storedBits(f, rows, cols), `${name} payload bits`);
      if (!f.base && !f.codebook && !f.levels.some((l) => l.blockRows)) {
        // Scales per row / per tensor are O(1/cols) and not part of the nominal bitsPerWeight.
        const outer = f.levels
          .filter((l) => l.block <= 0)
          .reduce((s, l) => s + (l.block === 0 ? rows : 1) * (l.bits + (l.zeroBits ?? 0)), 0);
        assert.strictEqual(packed.payloadBits - outer, f.bitsPerWeight * rows * cols, `${name} payload bits`);
      }
    });
  }

  it('counts every stored bit of the statistical formats: permutation, outlier indices and values, codebooks, 2-D scales', () => {
    const rows = 24;
    const cols = 512;
    const x = gaussian(rows * cols, 9);
    // ⌈log2 512⌉ = 9 bits per channel index; 1% of 512 channels is 5.12, rounded up to 6; int4-g128: 4 fp16 scales per row.
    const expected: Record<string, number> = {
      'int4-g128': rows * cols * 4 + rows * 4 * 16,
      'int4-g128-perm': rows * cols * 4 + rows * 4 * 16 + cols * 9,
      'int4-g128+o1': rows * cols * 4 + rows * 4 * 16 + 6 * (9 + 16 * rows),
      'int4-g128-asym-perm+o1': rows * cols * 4 + rows * 4 * (16 + 4) + cols * 9 + 6 * (9 + 16 * rows),
      'int8-channel+o0.1': rows * cols * 8 + rows * 16 + 1 * (9 + 16 * rows),
      kmeans4: rows * cols * 4 + rows * 16 * 16,
      kmeans3: rows * cols * 3 + rows * 8 * 16,
      // One 128-row block row (24 rows), four 128-column blocks, an fp32 scale each.
      'fp8-e4m3-b128': rows * cols * 8 + 4 * 32,
    };
    for (const [name, bits] of Object.entries(expected)) {
      const { packed } = packWeight(x, rows, cols, name);
      assert.strictEqual(packed.payloadBits, bits, name);
      assert.strictEqual(storedBits(parseFormat(name)!, rows, cols), bits, name);
    }
    // The nominal figures count the shape-dependent storage on a 4096 × 4096 matrix.
    assert.strictEqual(parseFormat('kmeans4')!.bitsPerWeight, 4 + 256 / 4096);
    assert.strictEqual(parseFormat('int4-g128-perm')!.bitsPerWeight, 4.125 + 12 / 4096);
    assert.strictEqual(parseFormat('int4-g128+o1')!.bitsPerWeight, 4.125 + (41 * (12 + 16 * 4096)) / 4096 ** 2);
    assert.strictEqual(parseFormat('fp8-e4m3-b128')!.bitsPerWeight, 8 + 32 / 128 ** 2);
  });

  it('packs rows whose length is not a multiple of the block or the word (3-, 5- and 6-bit codes straddle words)', () => {
    for (const name of ['q3_k', 'q5_0', 'mxfp6-e2m3', 'int4-g128', 'q6_k', 'nvfp4']) {
      const x = gaussian(5 * 300, 3);
      const { packed, dequantized } = packWeight(x, 5, 300, name);
      sameValues(dequantizePacked(packed), dequantized, name);
    }
  });
});
