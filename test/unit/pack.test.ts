import * as assert from 'assert';
import { parseFormat, FORMAT_NAMES } from '../../src/engine/quant/formats';
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

/** Every DESIGN format name, and the extra granularities the planner offers. */
export const ALL_FORMATS = [
  ...new Set([...FORMAT_NAMES, 'int8-g32-asym', 'int2-g64', 'int4-tensor', 'int8-g16-2l', 'nf4-g64']),
];

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
      // Scales per row / per tensor are O(1/cols) and not part of bitsPerWeight.
      const outer = f.levels
        .filter((l) => l.block <= 0)
        .reduce((s, l) => s + (l.block === 0 ? rows : 1) * (l.bits + (l.zeroBits ?? 0)), 0);
      assert.strictEqual(packed.payloadBits - outer, f.bitsPerWeight * rows * cols, `${name} payload bits`);
    });
  }

  it('packs rows whose length is not a multiple of the block or the word (3-, 5- and 6-bit codes straddle words)', () => {
    for (const name of ['q3_k', 'q5_0', 'mxfp6-e2m3', 'int4-g128', 'q6_k', 'nvfp4']) {
      const x = gaussian(5 * 300, 3);
      const { packed, dequantized } = packWeight(x, 5, 300, name);
      sameValues(dequantizePacked(packed), dequantized, name);
    }
  });
});
