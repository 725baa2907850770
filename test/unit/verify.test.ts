import * as assert from 'assert';
import { suiteGpu } from '../helpers';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { onnx } from 'onnx-proto';
import { loadLayerWeight, verifyFile } from '../../src/node/verify-file';
import { ALL_FORMATS } from './pack.test';

const ROOT = path.join(__dirname, '..', '..', '..');
const MODEL = path.join(ROOT, 'test', 'fixtures', 'models', 'gpt2-tiny.onnx');
const CLI = path.join(ROOT, 'dist', 'cli.js');

/** `layerplan verify` on the layers of a real exported transformer (torch → ONNX), every format. */
describe('layerplan verify on a real exported GPT-2 (WebGPU in Node)', function () {
  this.timeout(180000);
  let gpu: Awaited<ReturnType<typeof suiteGpu>>;
  before(async function () {
    gpu = await suiteGpu(this);
  });
  after(() => gpu?.device && gpu.close());

  // The MLP up-projection (MatMul B [64, 256], transposed to [256 outputs, 64]) and the attention
  // projection of the second block: the layouts a user's decoder runs.
  for (const tensor of ['onnx::MatMul_304', 'onnx::MatMul_310']) {
    it(`${tensor}: every format passes (kernel = CPU reference, output error = prediction)`, async () => {
      const layer = await loadLayerWeight(MODEL, tensor);
      const failures: string[] = [];
      for (const format of ALL_FORMATS) {
        const r = await verifyFile(MODEL, { tensor, format, batch: 16, gpu }, layer);
        assert.ok(r.kernelVsReference.ran && !r.fallback);
        if (!r.pass) {
          failures.push(
            `${format}: kernel ${r.kernelVsReference.maxRelativeToBound.toFixed(3)}× bound, measured ${r.outputError.sqnrDb.toFixed(2)} vs predicted ${r.predicted.sqnrDb.toFixed(2)} dB`,
          );
        }
      }
      assert.deepStrictEqual(failures, []);
    });
  }

  it('the CLI prints the DESIGN.md JSON and names the adapter; bad input exits 2 naming the problem', () => {
    const r = spawnSync(
      process.execPath,
      [CLI, 'verify', MODEL, '--tensor', 'onnx::MatMul_304', '--format', 'nvfp4', '--json'],
      { encoding: 'utf8' },
    );
    assert.strictEqual(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    for (const k of ['device', 'format', 'kernelVsReference', 'outputError', 'predicted']) assert.ok(k in j, k);
    // The adapter this process found (Dawn's, through the same driver): the CLI names it, not a placeholder.
    assert.strictEqual(j.device, gpu.name);
    assert.ok(gpu.name.length > 0 && !/CPU reference/.test(gpu.name), gpu.name);
    assert.strictEqual(j.format, 'nvfp4');
    assert.ok(
      typeof j.kernelVsReference.maxAbsError === 'number' &&
        typeof j.outputError.sqnrDb === 'number' &&
        typeof j.predicted.sqnrDb === 'number',
    );
    const bad = spawnSync(process.execPath, [CLI, 'verify', MODEL, '--tensor', 'nope', '--format', 'q4_0'], {
      encoding: 'utf8',
    });
    assert.strictEqual(bad.status, 2);
    assert.match(bad.stderr, /gpt2-tiny\.onnx: no stored weight named 'nope'/);
    const notWeight = spawnSync(process.execPath, [CLI, 'verify', MODEL, '--tensor', 'ln_f.bias', '--format', 'q4_0'], {
      encoding: 'utf8',
    });
    assert.strictEqual(notWeight.status, 2);
    assert.match(notWeight.stderr, /ln_f\.bias/);
  });

  it("--inputs: runs the layer on the activations the user's samples produce (onnxruntime), with an activation-weighted prediction", async () => {
    const fs = await import('fs');
    const os = await import('os');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-verify-samples-'));
    for (let s = 0; s < 4; s++) {
      fs.mkdirSync(path.join(dir, `test_data_set_${s}`));
      const ids = Array.from({ length: 16 }, (_, i) => (i * 37 + s * 11) % 256);
      fs.writeFileSync(
        path.join(dir, `test_data_set_${s}`, 'input_0.pb'),
        onnx.TensorProto.encode({ name: 'input_ids', dims: [1, 16], dataType: 7, int64Data: ids }).finish(),
      );
    }
    try {
      // The statistical formats rank channels by the activations' mean square here (not the weights' columns).
      for (const format of [
        'int4-g128',
        'q4_k',
        'nvfp4',
        'q2_k',
        'int4-g32-perm',
        'int4-g128+o1',
        'kmeans4',
        'fp8-e4m3-b128',
      ]) {
        const r = await verifyFile(MODEL, { tensor: 'onnx::MatMul_304', format, gpu, inputs: dir });
        assert.match(r.inputs, /^calibration: 64 rows of '\/h\.0\/ln_2\/Add_1_output_0' from 4 sample set/);
        assert.match(r.predicted.source, /mean square per channel/);
        assert.ok(r.kernelVsReference.ran && r.kernelVsReference.pass, format);
        assert.ok(r.pass, `${format}: measured ${r.outputError.sqnrDb} vs predicted ${r.predicted.sqnrDb}`);
      }
      await assert.rejects(
        verifyFile(MODEL, { tensor: 'wte.weight', format: 'q4_0', gpu, inputs: dir }),
        /does not feed a MatMul or Gemm directly/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without an adapter it falls back to the CPU reference, says so in every output and exits 3, never as a pass', () => {
    // An ICD file that does not exist: Dawn finds no Vulkan driver.
    const env = { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json' };
    const r = spawnSync(
      process.execPath,
      [CLI, 'verify', MODEL, '--tensor', 'onnx::MatMul_304', '--format', 'int4-g128', '--json'],
      { encoding: 'utf8', env },
    );
    assert.strictEqual(r.status, 3, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.strictEqual(j.outcome, 'fallback');
    assert.strictEqual(j.pass, false);
    assert.match(j.device, /CPU reference \(fallback\)/);
    assert.match(j.fallback, /no WebGPU adapter/);
    assert.strictEqual(j.kernelVsReference.ran, false);
    const text = spawnSync(
      process.execPath,
      [CLI, 'verify', MODEL, '--tensor', 'onnx::MatMul_304', '--format', 'int4-g128'],
      { encoding: 'utf8', env },
    );
    assert.match(text.stdout, /FALLBACK: no kernel ran/);
    assert.match(text.stdout, /^FALLBACK \(no kernel verified; exit code 3\)$/m);
    assert.doesNotMatch(text.stdout, /^PASS$/m);
    assert.strictEqual(text.status, 3);
  });
});
