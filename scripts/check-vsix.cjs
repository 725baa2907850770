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
// Every bundle esbuild wrote (a new worker must not be left out by the allow-list), plus the manifest and docs.
const bundles = fs.readdirSync(path.join(__dirname, '..', 'dist')).filter((f) => f.endsWith('.js')).map((f) => `extension/dist/${f}`);
const required = ['extension/package.json', ...bundles, 'extension/readme.md', 'extension/LICENSE.txt', 'extension/docs/planner.png', 'extension/schemas/plan.schema.json'];
const forbidden = /^extension\/(src|test|node_modules|out|scripts|bench|examples)\//;

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
    // The VSIX carries no node_modules: its CLI finds no Dawn and must say it fell back.
    const verify = run('verify', path.join(examples, 'gpt2-tiny.onnx'), '--tensor', 'onnx::MatMul_304', '--format', 'q4_k');
    if (!verify.pass || (verify.kernelVsReference.ran ? !!verify.fallback : !/fallback/.test(verify.device))) {
      console.error(`verify from inside the VSIX: ${JSON.stringify(verify)}`);
      process.exit(1);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`VSIX ok: ${names.length} entries; its CLI inspected gpt2-tiny.onnx (${inspect.nodes} nodes, ${inspect.parameters} parameters), ` +
      `estimated gpt3-175b (${estimate.iterationSeconds.toFixed(2)} s/iteration), quantized ${quant.tensors.length} tensors on worker threads, ` +
      `checked llama-2-7b.plan.json (${check.diagnostics.length} diagnostics), verified q4_k on ${verify.device}`);
  });
});
