#!/usr/bin/env node
// Opens the packaged VSIX, checks that it holds exactly the runtime files (the .vscodeignore
// allow-list), extracts it, and runs the bundled CLI from the extracted copy on the example model.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const yauzl = require('yauzl');

const vsix = process.argv[2];
const target = /layerplan-([a-z0-9-]+)\.vsix$/.exec(vsix)?.[1] ?? `${process.platform}-${process.arch}`;
// Every bundle esbuild wrote (a new worker must not be left out by the allow-list), plus the manifest and docs.
const bundles = fs
  .readdirSync(path.join(__dirname, '..', 'dist'))
  .filter((f) => f.endsWith('.js'))
  .map((f) => `extension/dist/${f}`);
// A platform VSIX carries its native modules: onnxruntime-node (calibration, samples) and Dawn (verify).
const natives =
  target === 'universal'
    ? []
    : [
        'extension/dist/node_modules/onnxruntime-node/package.json',
        'extension/dist/node_modules/onnxruntime-common/package.json',
        'extension/dist/node_modules/webgpu/index.js',
      ];
const required = [
  'extension/package.json',
  ...bundles,
  ...natives,
  'extension/readme.md',
  'extension/LICENSE.txt',
  'extension/docs/planner.png',
  'extension/media/graph.css',
  'extension/schemas/plan.schema.json',
];
const forbidden = /^extension\/(src|test|node_modules|out|scripts|bench|examples)\/|\.map$/;

/** Calibration samples in the ONNX test-data layout (test_data_set_<s>/input_0.pb) for gpt2-tiny. */
function samplesFolder() {
  const { onnx } = require('onnx-proto');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-vsix-samples-'));
  for (let s = 0; s < 2; s++) {
    const ids = Array.from({ length: 16 }, (_, i) => (i * 37 + s * 11) % 256);
    fs.mkdirSync(path.join(dir, `test_data_set_${s}`));
    fs.writeFileSync(
      path.join(dir, `test_data_set_${s}`, 'input_0.pb'),
      onnx.TensorProto.encode({ name: 'input_ids', dims: [1, 16], dataType: 7, int64Data: ids }).finish(),
    );
  }
  return dir;
}

yauzl.open(vsix, { lazyEntries: true }, (err, zip) => {
  if (err) throw err;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-vsix-'));
  const names = [];
  zip.readEntry();
  zip.on('entry', (entry) => {
    names.push(entry.fileName);
    if (/\/$/.test(entry.fileName)) return zip.readEntry();
    zip.openReadStream(entry, (e, stream) => {
      if (e) throw e;
      const out = path.join(dir, entry.fileName);
      fs.mkdirSync(path.dirname(out), { recursive: true });
      stream.pipe(fs.createWriteStream(out)).on('finish', () => zip.readEntry());
    });
  });
  zip.on('end', () => {
    const lower = names.map((n) => n.toLowerCase());
    const missing = required.filter((r) => !lower.includes(r.toLowerCase()));
    const extra = names.filter((n) => forbidden.test(n));
    if (missing.length || extra.length) {
      console.error(`VSIX ${vsix}: missing ${JSON.stringify(missing)}, should not contain ${JSON.stringify(extra)}`);
      process.exit(1);
    }
    const examples = path.join(__dirname, '..', 'examples');
    const cli = path.join(dir, 'extension', 'dist', 'cli.js');
    const run = (...args) => {
      const r = spawnSync(process.execPath, [cli, ...args, '--json'], { encoding: 'utf8' });
      if (r.status !== 0) {
        console.error(`the CLI inside the VSIX failed on '${args.join(' ')}': ${r.stderr}`);
        process.exit(1);
      }
      return JSON.parse(r.stdout);
    };
    const inspect = run('inspect', path.join(examples, 'gpt2-tiny.onnx'));
    const estimate = run('estimate', path.join(examples, 'gpt3-175b.plan.json'));
    const quant = run('quant', path.join(examples, 'gpt2-tiny.onnx'), '--formats', 'int4-g128,q4_0');
    const check = run('check', path.join(examples, 'llama-2-7b.plan.json'));
    const model = path.join(examples, 'gpt2-tiny.onnx');
    const verifyArgs = ['verify', model, '--tensor', 'onnx::MatMul_304', '--format', 'q4_k'];
    if (target === 'universal') {
      // No native modules: verify must say it fell back (exit 3), never read as a pass.
      const r = spawnSync(process.execPath, [cli, ...verifyArgs, '--json'], { encoding: 'utf8' });
      const report = JSON.parse(r.stdout || '{}');
      if (r.status !== 3 || report.pass || report.outcome !== 'fallback') {
        console.error(
          `verify from inside the universal VSIX should fall back with exit 3: ${r.status} ${r.stdout} ${r.stderr}`,
        );
        process.exit(1);
      }
      fs.rmSync(dir, { recursive: true, force: true });
      console.log(
        `VSIX ok (universal): ${names.length} entries; verify fell back to the CPU reference as it must without Dawn`,
      );
      return;
    }
    // Activation calibration and verification on samples run onnxruntime-node from inside the VSIX.
    const calibrated = run('quant', model, '--formats', 'int8-channel', '--activations');
    if (!calibrated.activations || !(calibrated.activations.tensors?.length > 0)) {
      console.error(
        `quant --activations from inside the VSIX calibrated nothing: ${JSON.stringify(calibrated).slice(0, 400)}`,
      );
      process.exit(1);
    }
    const samples = samplesFolder();
    const verify = run(...verifyArgs, '--inputs', samples);
    fs.rmSync(samples, { recursive: true, force: true });
    if (!verify.pass || verify.fallback || !verify.kernelVsReference.ran || !/sample/i.test(verify.inputs)) {
      console.error(`verify on samples from inside the VSIX (Dawn + onnxruntime-node): ${JSON.stringify(verify)}`);
      process.exit(1);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(
      `VSIX ok: ${names.length} entries; its CLI inspected gpt2-tiny.onnx (${inspect.nodes} nodes, ${inspect.parameters} parameters), ` +
        `estimated gpt3-175b (${estimate.iterationSeconds.toFixed(2)} s/iteration), quantized ${quant.tensors.length} tensors on worker threads, ` +
        `checked llama-2-7b.plan.json (${check.diagnostics.length} diagnostics), ` +
        `calibrated ${calibrated.activations.tensors.length} activations (onnxruntime-node), verified q4_k on ${verify.device} with the activations of ${verify.inputs}`,
    );
  });
});
