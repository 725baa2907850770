#!/usr/bin/env node
/**
 * dist/cli.js, the `layerplan` executable: a few lines that run the command line's bundle
 * (dist/cli-main.js, built from src/cli.ts) with V8's code cache (src/node/code-cache.ts), one cache
 * per command in the user's cache folder. Without a usable cache it compiles the bundle as Node
 * would; `node dist/cli-main.js …` runs the same command line without the cache.
 */
import * as path from 'path';
import { codeCacheDir, runBundleCached } from './node/code-cache';

/** The SHA-256 of dist/cli-main.js, written in by the build (scripts/build.mjs); absent in watch builds. */
declare const __LAYERPLAN_CLI_MAIN_SHA256__: string | undefined;

interface CliBundle {
  COMMANDS: { name: string }[];
  runCli(argv: string[]): void;
}

const argv = process.argv.slice(2);
const command = argv[0] ?? '';
const bundle = runBundleCached(
  path.join(__dirname, 'cli-main.js'),
  command,
  codeCacheDir(),
  typeof __LAYERPLAN_CLI_MAIN_SHA256__ === 'string' ? __LAYERPLAN_CLI_MAIN_SHA256__ : undefined,
);
const cli = bundle.exports as unknown as CliBundle;
// Only the commands the bundle has get a cache file: `layerplan <anything>` cannot fill the folder.
if (bundle.state !== 'off' && bundle.state !== 'hit' && cli.COMMANDS.some((c) => c.name === command)) {
  process.on('exit', () => bundle.save());
}
// Tests and bug reports: whether this run compiled the bundle or took it from the cache.
if (process.env.LAYERPLAN_DEBUG_CACHE) {
  process.stderr.write(`layerplan: code cache ${bundle.state} ${bundle.file ?? ''}\n`);
}
cli.runCli(argv);
