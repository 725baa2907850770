#!/usr/bin/env node
// Packages the extension as VSIXs that carry their native parts (npm run package).
//
// What users install must run every feature, so a platform VSIX (`vsce package --target <t>`) carries
// the two native modules the extension loads at run time, for that platform only:
//  - onnxruntime-node (activation calibration, verification on samples, exported-model checks);
//  - webgpu (Dawn: `layerplan verify` from the command line inside the extension).
// They are staged under dist/node_modules (vsce leaves a top-level node_modules out; Node resolves
// dist/node_modules first from dist/*.js). A universal VSIX without them serves the platforms neither
// package ships binaries for; there the features that need them say so.
//
//   node scripts/package.cjs                 this machine's platform → out/layerplan-<target>.vsix
//                                            and a copy at out/layerplan.vsix
//   node scripts/package.cjs --all           every target below and the universal VSIX
//   node scripts/package.cjs --target <t>    one target (or "universal")
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const NM = path.join(ROOT, 'node_modules');
/** vsce target → [onnxruntime-node's bin folder, webgpu's dist folder]. */
const TARGETS = {
  'linux-x64': ['linux/x64', 'linux-x64'],
  'linux-arm64': ['linux/arm64', 'linux-arm64'],
  'darwin-arm64': ['darwin/arm64', 'darwin-universal'],
  'win32-x64': ['win32/x64', 'win32-x64'],
  'win32-arm64': ['win32/arm64', 'win32-arm64'],
};
/** The files of the extension itself (the rest of the repository stays out). */
const FILES = [
  'package.json',
  'README.md',
  'LICENSE',
  'dist',
  'media',
  'schemas',
  'docs/graph-view.png',
  'docs/planner.png',
];

function hostTarget() {
  const t = `${process.platform}-${process.arch}`;
  return TARGETS[t] ? t : 'universal';
}

/** Copies a file or folder, leaving out source maps and type declarations (not needed at run time). */
function copy(from, to) {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.cpSync(from, to, { recursive: true, dereference: true, filter: (f) => !/\.(map|d\.ts)$/.test(f) });
}

/** Copies `pkg`'s package.json and the listed paths (relative to the package) into the stage. */
function stageModule(stage, pkg, paths) {
  const from = path.join(NM, pkg);
  const to = path.join(stage, 'dist', 'node_modules', pkg);
  for (const p of ['package.json', 'LICENSE', 'LICENSE.md', ...paths]) {
    if (fs.existsSync(path.join(from, p))) copy(path.join(from, p), path.join(to, p));
    else if (!/^LICENSE/.test(p)) throw new Error(`package: ${pkg}/${p} is missing (npm install first)`);
  }
}

function packageTarget(target) {
  const stage = path.join(ROOT, 'out', 'vsix', target);
  fs.rmSync(stage, { recursive: true, force: true });
  for (const f of FILES) {
    if (fs.existsSync(path.join(ROOT, f))) copy(path.join(ROOT, f), path.join(stage, f));
  }
  fs.rmSync(path.join(stage, 'dist', 'node_modules'), { recursive: true, force: true });
  if (target !== 'universal') {
    const [ortBin, dawn] = TARGETS[target];
    stageModule(stage, 'onnxruntime-common', ['dist/cjs']);
    stageModule(stage, 'onnxruntime-node', ['dist', `bin/napi-v6/${ortBin}`]);
    stageModule(stage, 'webgpu', ['index.js', `dist/${dawn}`]);
  }
  // Allow-list: the extension's files and, on a platform VSIX, its native modules.
  fs.writeFileSync(
    path.join(stage, '.vscodeignore'),
    ['**', '!package.json', '!README.md', '!LICENSE', '!dist/**', '!media/**', '!schemas/**', '!docs/*.png', ''].join(
      '\n',
    ),
  );
  const out = path.join(ROOT, 'out', `layerplan-${target}.vsix`);
  const vsce = path.join(NM, '@vscode', 'vsce', 'vsce');
  const args = [
    vsce,
    'package',
    '--no-dependencies',
    '--allow-missing-repository',
    '--skip-license',
    '--no-rewrite-relative-links',
    '-o',
    out,
  ];
  if (target !== 'universal') args.push('--target', target);
  const r = spawnSync(process.execPath, args, { cwd: stage, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) {
    process.stdout.write(r.stdout ?? '');
    throw new Error(`vsce package --target ${target} failed`);
  }
  fs.rmSync(stage, { recursive: true, force: true });
  const mib = fs.statSync(out).size / 2 ** 20;
  console.log(`package: ${path.relative(ROOT, out)} (${mib.toFixed(1)} MiB)`);
  return out;
}

function main() {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--target');
  const targets = argv.includes('--all')
    ? [...Object.keys(TARGETS), 'universal']
    : [i >= 0 ? argv[i + 1] : hostTarget()];
  for (const t of targets) {
    if (t !== 'universal' && !TARGETS[t])
      throw new Error(`package: unknown target '${t}' (one of ${Object.keys(TARGETS).join(', ')}, universal)`);
  }
  for (const t of targets) {
    const out = packageTarget(t);
    if (t === hostTarget()) fs.copyFileSync(out, path.join(ROOT, 'out', 'layerplan.vsix'));
  }
}

try {
  main();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
