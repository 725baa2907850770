import * as assert from 'assert';
import * as path from 'path';
import { broadcast, divDims, evalDim, mulDims } from '../../src/engine/graph/dims';
import { openModel } from '../../src/engine/formats/registry';
import { FileByteSource } from '../../src/node/file-source';
import { OUR_MODELS, SHARED_FIXTURES } from '../helpers';

/**
 * Our shape inference against the shapes torch's exporter and onnx's shape inference wrote into
 * value_info: build the graph once with value_info and once without, and compare every tensor.
 */
async function compare(file: string): Promise<{ same: number; differ: string[] }> {
  const source = await FileByteSource.open(file);
  try {
    const reference = await openModel(source);
    const ours = await openModel(source, { ignoreValueInfo: true });
    let same = 0;
    const differ: string[] = [];
    for (const [name, t] of reference.tensors) {
      if (t.isWeight || !t.shape || reference.inputs.includes(name)) continue;
      const u = ours.tensors.get(name)?.shape;
      const ok =
        !!u &&
        u.length === t.shape.length &&
        t.shape.every((d, i) => (typeof d === 'number' ? d === u[i] : typeof u[i] === 'string'));
      if (ok) same++;
      else differ.push(`${name}: value_info ${JSON.stringify(t.shape)}, inferred ${JSON.stringify(u)}`);
    }
    return { same, differ };
  } finally {
    await source.close();
  }
}

describe('shape inference', () => {
  for (const name of [
    'gpt2-tiny.onnx',
    'bert-tiny.onnx',
    'cnn-tiny.onnx',
    'rnn-tiny.onnx',
    'qdq-mlp.onnx',
    'matmulnbits.onnx',
  ]) {
    it(`reproduces the exporter's value_info on ${name}`, async () => {
      const { same, differ } = await compare(path.join(OUR_MODELS, name));
      assert.deepStrictEqual(differ, []);
      assert.ok(same > 0);
    });
  }
  it('reproduces the output shapes of the ONNX conformance models (Conv, MatMul, Gemm, attention, quantization ops)', async () => {
    const { walk } = await import('../helpers.js');
    const failures: string[] = [];
    let checked = 0;
    for (const file of walk(path.join(SHARED_FIXTURES, 'onnx-backend', 'node'), 'model.onnx')) {
      if (/_expanded|deform|causal_conv/.test(file)) continue;
      const source = await FileByteSource.open(file);
      const reference = await openModel(source);
      const ours = await openModel(source, { ignoreValueInfo: true });
      await source.close();
      for (const out of reference.outputs) {
        const want = reference.tensors.get(out)?.shape;
        const got = ours.tensors.get(out)?.shape;
        if (!want || !ours.nodes.every((n) => n.known)) continue;
        checked++;
        if (JSON.stringify(want) !== JSON.stringify(got)) {
          failures.push(
            `${path.basename(path.dirname(file))} ${out}: ${JSON.stringify(want)} vs ${JSON.stringify(got)}`,
          );
        }
      }
    }
    assert.ok(checked > 100, `checked ${checked}`);
    assert.deepStrictEqual(failures, []);
  });
  it('does symbolic dim algebra', () => {
    assert.strictEqual(mulDims('batch', 'sequence'), 'batch*sequence');
    assert.strictEqual(mulDims(2, 'sequence'), '2*sequence');
    assert.strictEqual(divDims('batch*sequence*768', 'sequence'), '768*batch');
    assert.strictEqual(divDims(mulDims('batch', mulDims('sequence', 768)), mulDims('sequence', 12)), '64*batch');
    assert.strictEqual(evalDim('2*batch*sequence', { batch: 4, sequence: 128 }), 1024);
    assert.deepStrictEqual(broadcast(['batch', 1, 64], [12, 1]), ['batch', 12, 64]);
  });
});
