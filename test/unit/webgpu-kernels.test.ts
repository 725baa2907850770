import * as assert from 'assert';
import { suiteGpu } from '../helpers';
import { runPackedKernel } from '../../src/gpu/runner';
import { finishVerify, generatedInputs, prepareVerify } from '../../src/engine/quant/verify';
import type { NodeGpu } from '../../src/node/webgpu';
import { ALL_FORMATS } from './pack.test';

function gaussian(n: number, seed: number): Float32Array {
  return generatedInputs(1, n, seed);
}

/**
 * Every format's kernel on a real WebGPU device: Dawn in Node, on SwiftShader here. The test
 * command installs the driver (scripts/setup-debian.sh) and sets LAYERPLAN_REQUIRE_WEBGPU=1, so
 * a missing adapter fails the suite instead of skipping it.
 */
describe('WebGPU kernels on packed weights (Dawn in Node)', function () {
  this.timeout(120000);
  let gpu: NodeGpu;
  before(async function () {
    gpu = await suiteGpu(this);
  });
  after(() => gpu?.device && gpu.close());

  for (const name of ALL_FORMATS) {
    it(`${name}: the kernel reproduces the CPU reference to float32 rounding and the output error matches the prediction`, async () => {
      const rows = 256;
      const cols = 320; // not a multiple of 256: k-quant super-blocks and 128-groups end early
      const w = gaussian(rows * cols, 11);
      const batch = 4;
      const job = prepareVerify('random', w, rows, cols, name, generatedInputs(batch, cols, 5), batch, 'generated');
      const run = await runPackedKernel(gpu.device!, job.packed, job.x, batch);
      const r = finishVerify(job, { y: run.y, device: 'test' });
      assert.ok(
        r.kernelVsReference.pass,
        `${name}: kernel vs reference ${r.kernelVsReference.maxAbsError} (${r.kernelVsReference.maxRelativeToBound}× the rounding bound)`,
      );
      assert.ok(r.pass, `${name}: measured ${r.outputError.sqnrDb} dB vs predicted ${r.predicted.sqnrDb} dB`);
    });
  }
});

describe('verification catches a wrong kernel input', function () {
  this.timeout(60000);
  it('one flipped code bit after packing shows as kernel ≠ reference', async function () {
    const gpu = await suiteGpu(this);
    try {
      const job = prepareVerify(
        'random',
        gaussian(64 * 256, 2),
        64,
        256,
        'q4_0',
        generatedInputs(2, 256, 3),
        2,
        'generated',
      );
      job.packed.codes[17] ^= 1 << 5;
      const run = await runPackedKernel(gpu.device, job.packed, job.x, 2);
      const r = finishVerify(job, { y: run.y, device: 'test' });
      assert.strictEqual(r.kernelVsReference.pass, false);
      assert.strictEqual(r.pass, false);
      assert.ok(r.kernelVsReference.maxRelativeToBound > 10, String(r.kernelVsReference.maxRelativeToBound));
    } finally {
      gpu.close();
    }
  });
});

describe('split-K', function () {
  this.timeout(60000);
  it('one thread per row and the split reduction agree to float32 rounding (and with the CPU reference)', async function () {
    const gpu = await suiteGpu(this);
    try {
      const job = prepareVerify(
        'random',
        gaussian(48 * 1024, 4),
        48,
        1024,
        'int4-g32',
        generatedInputs(3, 1024, 8),
        3,
        'generated',
      );
      const one = await runPackedKernel(gpu.device, job.packed, job.x, 3, 0, 1);
      const split = await runPackedKernel(gpu.device, job.packed, job.x, 3, 0, 32);
      for (const run of [one, split]) assert.ok(finishVerify(job, { y: run.y, device: 'test' }).kernelVsReference.pass);
      let worst = 0;
      for (let i = 0; i < one.y.length; i++) worst = Math.max(worst, Math.abs(one.y[i] - split.y[i]) / job.bound[i]);
      assert.ok(worst <= 1, `${worst}× the rounding bound apart`);
    } finally {
      gpu.close();
    }
  });
});
