// Bundles the extension (node, cjs, vscode external), the CLI and the webview with esbuild.
import { createHash } from 'crypto';
import * as esbuild from 'esbuild';
import { readFileSync } from 'fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
// mainFields: prefer ESM builds (jsonc-parser's UMD build hides its requires from the bundler).
const common = {
  bundle: true,
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
  target: 'es2022',
  mainFields: ['module', 'main'],
};

const builds = [
  {
    ...common,
    entryPoints: ['src/extension.ts'],
    outfile: 'dist/extension.js',
    platform: 'node',
    format: 'cjs',
    external: ['vscode', 'webgpu', 'onnxruntime-node'],
  },
  {
    ...common,
    entryPoints: ['src/cli.ts'],
    outfile: 'dist/cli-main.js',
    platform: 'node',
    format: 'cjs',
    external: ['onnxruntime-node', 'webgpu'],
  },
  {
    ...common,
    entryPoints: ['src/node/quant-worker.ts'],
    outfile: 'dist/quant-worker.js',
    platform: 'node',
    format: 'cjs',
  },
  // Plan checks and estimates off the extension host's thread (src/node/checker.ts).
  {
    ...common,
    entryPoints: ['src/node/check-worker.ts'],
    outfile: 'dist/check-worker.js',
    platform: 'node',
    format: 'cjs',
    external: ['onnxruntime-node', 'webgpu'],
  },
  { ...common, entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js', platform: 'browser', format: 'iife' },
  {
    ...common,
    entryPoints: ['webview/layout-worker.ts'],
    outfile: 'dist/layout-worker.js',
    platform: 'browser',
    format: 'iife',
  },
  {
    ...common,
    entryPoints: ['webview/search-worker.ts'],
    outfile: 'dist/search-worker.js',
    platform: 'browser',
    format: 'iife',
  },
  {
    ...common,
    entryPoints: ['webview/estimate-worker.ts'],
    outfile: 'dist/estimate-worker.js',
    platform: 'browser',
    format: 'iife',
  },
];

// The command line: dist/cli.js is the executable, a launcher that runs the bundle dist/cli-main.js
// with V8's code cache (src/cli-launch.ts, src/node/code-cache.ts). Built after the bundle: it
// carries the bundle's SHA-256, which names the cache without hashing 650 KB at every start.
const launcher = {
  ...common,
  entryPoints: ['src/cli-launch.ts'],
  outfile: 'dist/cli.js',
  platform: 'node',
  format: 'cjs',
};

if (watch) {
  for (const b of [...builds, launcher]) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
  const sha256 = createHash('sha256').update(readFileSync('dist/cli-main.js')).digest('hex');
  await esbuild.build({ ...launcher, define: { __LAYERPLAN_CLI_MAIN_SHA256__: JSON.stringify(sha256) } });
}
