import * as assert from 'assert';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { openModel } from '../../src/engine/formats/registry';
import { loadWeightFloat32 } from '../../src/engine/quant/weights';
import { FileByteSource } from '../../src/node/file-source';
import { OUR_MODELS } from '../helpers';

describe('onnxruntime-node as the executor', () => {
  it('our MatMulNBits dequantization equals what onnxruntime computes (graph optimizations off)', async () => {
    const file = path.join(OUR_MODELS, 'matmulnbits.onnx');
    const source = await FileByteSource.open(file);
    const graph = await openModel(source);
    const w = await loadWeightFloat32(graph.tensors.get('w_q')!, source, undefined, graph);
    await source.close();
    const [N, K] = [16, 64];
    // One-hot rows: y = I · Wᵀ, so y[k][n] = W[n][k].
    const eye = new Float32Array(K * K);
    for (let k = 0; k < K; k++) eye[k * K + k] = 1;
    const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'disabled' });
    const out = await session.run({ a: new ort.Tensor('float32', eye, [K, K]) });
    const y = out.y.data as Float32Array;
    let checked = 0;
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) {
        assert.strictEqual(y[k * N + n], w[n * K + k], `W[${n}][${k}]`);
        checked++;
      }
    }
    assert.strictEqual(checked, N * K);
    await session.release();
  });
});

describe('activation calibration (onnxruntime-node)', function () {
  this.timeout(60000);
  it('observes the activations feeding every MatMul of a real transformer and reports 8-bit error per layer and observer', async () => {
    const { calibrateFile } = await import('../../src/node/calibrate.js');
    const r = await calibrateFile(path.join(OUR_MODELS, 'gpt2-tiny.onnx'), { batches: 3, bindings: { sequence: 8 } });
    assert.strictEqual(r.generatedInputs, true, 'says the inputs were generated');
    // 2 blocks × (QKV, QK, AV, proj, fc, fc2 inputs) + lm_head
    assert.ok(r.tensors.length >= 12, `${r.tensors.length}`);
    assert.deepStrictEqual(r.layers.map((l) => l.name).sort(), ['h.0', 'h.1', 'lm_head']);
    for (const t of r.tensors) {
      for (const o of ['minmax', 'ema', 'percentile', 'entropy', 'mse'] as const) {
        const x = t.observers[o];
        assert.ok(
          x.min <= 0 && x.max > 0 && x.sqnrDb !== null && x.sqnrDb > 10,
          `${t.name} ${o}: ${JSON.stringify(x)}`,
        );
      }
      // min-max covers every value seen, so the other observers' ranges are no wider.
      assert.ok(
        t.observers.percentile.max <= t.observers.minmax.max + 1e-6 ||
          t.observers.percentile.max <= -t.observers.minmax.min + 1e-6,
      );
    }
  });
  it('works on a model with external data (linked into a temp folder, never written beside the model)', async () => {
    const { calibrateFile } = await import('../../src/node/calibrate.js');
    const fs = await import('fs');
    const before = fs.readdirSync(OUR_MODELS).sort();
    const r = await calibrateFile(path.join(OUR_MODELS, 'gpt2-tiny-external.onnx'), { batches: 2 });
    assert.ok(r.tensors.length >= 12);
    assert.deepStrictEqual(fs.readdirSync(OUR_MODELS).sort(), before);
  });
});

describe("activation calibration on the user's samples", function () {
  this.timeout(60000);
  it('reads input_<i>.pb sets (ONNX test-data layout) and says the inputs were not generated', async () => {
    const fs = await import('fs');
    const os = await import('os');
    const { calibrateFile } = await import('../../src/node/calibrate.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-samples-'));
    for (let s = 0; s < 2; s++) {
      fs.mkdirSync(path.join(dir, `test_data_set_${s}`));
      const ids = Array.from({ length: 8 }, (_, i) => (i * 37 + s * 11) % 256);
      fs.writeFileSync(
        path.join(dir, `test_data_set_${s}`, 'input_0.pb'),
        onnx.TensorProto.encode({ name: 'input_ids', dims: [1, 8], dataType: 7, int64Data: ids }).finish(),
      );
    }
    const r = await calibrateFile(path.join(OUR_MODELS, 'gpt2-tiny.onnx'), { inputs: dir });
    assert.strictEqual(r.generatedInputs, false);
    assert.strictEqual(r.batches, 2);
    assert.ok(r.tensors.length >= 12);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
