import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { MemoryByteSource } from '../../src/engine/bytes';
import { InputError } from '../../src/engine/errors';
import { openModel } from '../../src/engine/formats/registry';
import { OUR_MODELS, SHARED_FIXTURES, rng } from '../helpers';

/**
 * A seeded mutator over real fixtures: byte flips, truncations, insertions, deleted and duplicated
 * chunks, and varint bombs. Each mutant must either parse or fail with an InputError, quickly.
 */
const BASES = [
  path.join(OUR_MODELS, 'cnn-tiny.onnx'),
  path.join(OUR_MODELS, 'qdq-mlp.onnx'),
  path.join(OUR_MODELS, 'control-flow.onnx'),
  path.join(OUR_MODELS, 'matmulnbits.onnx'),
  path.join(SHARED_FIXTURES, 'onnx-backend', 'node', 'test_attention_4d_with_qk_matmul_expanded', 'model.onnx'),
  path.join(SHARED_FIXTURES, 'onnx-backend', 'light', 'light_squeezenet.onnx'),
];
const CASES_PER_BASE = Number(process.env.LAYERPLAN_FUZZ_CASES ?? 1000);
const SEED = Number(process.env.LAYERPLAN_FUZZ_SEED ?? 20261126);

function mutate(bytes: Uint8Array, rand: () => number): Uint8Array {
  const pick = (n: number) => Math.floor(rand() * n);
  let out = Uint8Array.from(bytes);
  const ops = 1 + pick(4);
  for (let k = 0; k < ops; k++) {
    switch (pick(7)) {
      case 0:
        for (let i = 0, n = 1 + pick(8); i < n; i++) out[pick(out.length)] ^= 1 << pick(8);
        break;
      case 1:
        out = out.subarray(0, pick(out.length));
        break;
      case 2: {
        const at = pick(out.length + 1);
        const ins = Uint8Array.from({ length: 1 + pick(16) }, () => pick(256));
        out = Uint8Array.from([...out.subarray(0, at), ...ins, ...out.subarray(at)]);
        break;
      }
      case 3: {
        const a = pick(out.length);
        out = Uint8Array.from([...out.subarray(0, a), ...out.subarray(a + 1 + pick(64))]);
        break;
      }
      case 4: {
        const a = pick(out.length);
        const chunk = out.subarray(a, a + 1 + pick(256));
        out = Uint8Array.from([...out.subarray(0, a), ...chunk, ...out.subarray(a)]);
        break;
      }
      case 5: {
        // varint bomb: a run of continuation bytes
        const a = pick(out.length);
        for (let i = 0; i < 10 && a + i < out.length; i++) out[a + i] = 0xff;
        break;
      }
      default:
        out[pick(out.length)] = [0x00, 0xff, 0x7f, 0x80][pick(4)];
    }
    if (!out.length) break;
  }
  return out;
}

describe('fuzz: mutated models parse or fail with one clear error', function () {
  this.timeout(300000);
  for (const base of BASES) {
    it(`${CASES_PER_BASE} mutants of ${path.basename(base)}`, async () => {
      const bytes = new Uint8Array(fs.readFileSync(base));
      const rand = rng(SEED ^ bytes.length);
      let parsed = 0;
      let refused = 0;
      for (let i = 0; i < CASES_PER_BASE; i++) {
        const mutant = mutate(bytes, rand);
        const started = Date.now();
        try {
          await openModel(new MemoryByteSource('mutant.onnx', mutant));
          parsed++;
        } catch (e) {
          if (!(e instanceof InputError)) {
            fs.mkdirSync('test-results', { recursive: true });
            fs.writeFileSync(`test-results/fuzz-crash-${i}.onnx`, mutant);
            assert.fail(`case ${i} threw ${(e as Error).stack} (saved under test-results/)`);
          }
          assert.ok(e.message.startsWith('mutant.onnx: '), e.message);
          assert.ok(!e.message.includes('\n'), 'one line');
          refused++;
        }
        assert.ok(Date.now() - started < 5000, `case ${i} took ${Date.now() - started} ms`);
      }
      assert.strictEqual(parsed + refused, CASES_PER_BASE);
      assert.ok(refused > CASES_PER_BASE / 10, `only ${refused} mutants were refused: the mutator is too gentle`);
    });
  }
});
