import { isAscii } from 'buffer';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as os from 'os';
import * as path from 'path';
import * as vm from 'vm';
import { ESM_IMPORT } from './esm-import';

/**
 * Runs a CommonJS bundle (the CLI's dist/cli-main.js) with V8's code cache: Node 20 has no
 * module.enableCompileCache, and compiling the 650 KB bundle, then the functions a command calls,
 * was the largest part of `layerplan inspect` after Node's own start-up. The cache is made after
 * the command ran (`createCachedData` then holds the functions it compiled lazily too), one per
 * command, in a folder of the user's own (never a shared temp folder: V8 checks a cache's version and
 * the source's length, not its content, so the file name carries a hash of the bundle's text and of
 * the runtime). Nothing here can fail a command: a missing, unreadable, rejected or unwritable cache
 * only means compiling as Node would.
 *
 * The bundle's hash: the build writes the SHA-256 of dist/cli-main.js into dist/cli.js
 * (scripts/build.mjs), which passes it here with the file's size, modification time and inode, so
 * a bundle changed after the build still gets a cache of its own. Loading Node's crypto module to
 * hash the 650 KB at every start cost ~4.5 ms, a twentieth of the command; without a hash from the
 * build (tests, watch builds) the bundle's bytes are hashed here.
 */

/** Cache files kept in the folder at most (each ~0.5 MB): the commands × the runtimes in use. */
export const MAX_CACHE_FILES = 24;
const PREFIX = 'cli-';
const SUFFIX = '.v8cache';

/** The per-user folder of the code cache: LAYERPLAN_CODE_CACHE ('' turns the cache off), else code-cache/ in the platform's cache folder. */
export function codeCacheDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string | undefined {
  const own = env.LAYERPLAN_CODE_CACHE;
  if (own !== undefined) return own ? path.resolve(own) : undefined;
  let home: string;
  try {
    home = os.homedir();
  } catch {
    return undefined;
  }
  if (platform === 'win32') {
    const local = env.LOCALAPPDATA || (home && path.join(home, 'AppData', 'Local'));
    return local ? path.join(local, 'layerplan', 'Cache', 'code-cache') : undefined;
  }
  if (platform === 'darwin') return home ? path.join(home, 'Library', 'Caches', 'layerplan', 'code-cache') : undefined;
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'layerplan', 'code-cache');
  return home ? path.join(home, '.cache', 'layerplan', 'code-cache') : undefined;
}

/** Creates `dir` if needed; returns whether it is ours alone (POSIX: owned by us, writable by no one else). */
function privateDir(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory()) return false;
    if (process.platform === 'win32' || !process.getuid) return true;
    return st.uid === process.getuid() && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

export type CacheState = 'off' | 'miss' | 'hit' | 'rejected';

export interface CachedBundle {
  /** The bundle's module.exports after its top level ran. */
  exports: Record<string, unknown>;
  /** What became of the cache: off (no folder), miss (none yet), hit (V8 took it), rejected (V8 refused it). */
  state: CacheState;
  /** The cache file this run reads and writes, when caching is on. */
  file?: string;
  /** Writes the cache (call after the work ran, so it holds what was compiled lazily); never throws. Returns whether it wrote. */
  save(): boolean;
}

/**
 * Compiles and runs `bundle` as a CommonJS module (its own `require`, `module`, `__filename`,
 * `__dirname`; errors and stack traces name `bundle` with its own lines and columns) with the cache
 * of `key` (a command's name) from `dir`.
 */
export function runBundleCached(
  bundle: string,
  key: string,
  dir: string | undefined,
  builtSha256?: string,
): CachedBundle {
  // Node maps stack traces through a bundle's source map only for modules its loader compiled.
  if (sourceMapsEnabled()) {
    return { exports: createRequire(bundle)(bundle) as Record<string, unknown>, state: 'off', save: () => false };
  }
  // Read and stat through one descriptor: the cache's name describes the very bytes compiled.
  let bytes: Buffer;
  let stat: fs.BigIntStats;
  const fd = fs.openSync(bundle, 'r');
  try {
    stat = fs.fstatSync(fd, { bigint: true });
    bytes = fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  // esbuild writes ASCII: decoding it as Latin-1 is the same text, without the UTF-8 decoder's cost.
  let source = typeof isAscii === 'function' && isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  // A hashbang is valid only at a script's start: keep the columns, make it a comment.
  if (source.startsWith('#!')) source = '//' + source.slice(2);
  let file: string | undefined;
  let cachedData: Buffer | undefined;
  if (dir && /^[a-z][a-z0-9-]{0,31}$/.test(key) && privateDir(dir)) {
    const hash = bundleHash(stat, bytes, builtSha256);
    file = path.join(dir, `${PREFIX}${key}-${hash}${SUFFIX}`);
    try {
      cachedData = fs.readFileSync(file);
    } catch {
      cachedData = undefined;
    }
  }
  // The wrapper on its own line, and lineOffset -1: positions in the bundle are the file's own.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {\n${source}\n})`, {
    filename: bundle,
    lineOffset: -1,
    cachedData,
  });
  const state: CacheState = !file ? 'off' : !cachedData ? 'miss' : script.cachedDataRejected ? 'rejected' : 'hit';
  // Node 20 loses a script's import() callback when V8 takes its code from a cache (and its
  // USE_MAIN_CONTEXT_DEFAULT_LOADER is experimental and says so on stderr): the bundle imports ES
  // modules (webgpu) through this function, compiled by Node's own loader (src/node/esm-import.ts).
  (globalThis as Record<symbol, unknown>)[ESM_IMPORT] ??= (specifier: string) => import(specifier);
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} as Record<string, unknown>, filename: bundle, id: bundle, loaded: false };
  fn.call(module.exports, module.exports, createRequire(bundle), module, bundle, path.dirname(bundle));
  module.loaded = true;
  return {
    exports: module.exports,
    state,
    file,
    save: () => (file && state !== 'hit' ? writeCache(file, script) : false),
  };
}

/** 24 hex digits naming the bundle's text and the runtime (V8's version, the architecture). */
function bundleHash(st: fs.BigIntStats, bytes: Buffer, builtSha256: string | undefined): string {
  const runtime = `\0${process.versions.v8}\0${process.arch}`;
  if (builtSha256 && /^[0-9a-f]{64}$/.test(builtSha256) && st.size === BigInt(bytes.length)) {
    return `${builtSha256.slice(0, 8)}${cyrb53(`${builtSha256}\0${st.size}\0${st.mtimeNs}\0${st.ino}${runtime}`)}`;
  }
  // Only here, not at the module's top: most starts never load crypto.
  const { createHash } = require('crypto') as typeof import('crypto');
  return createHash('sha256').update(bytes).update(runtime).digest('hex').slice(0, 24);
}

/** cyrb53 (public domain): a fast 53-bit string hash, as 16 hex digits; for a short key, not for security. */
function cyrb53(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h2 >>> 0).toString(16).padStart(8, '0') + (h1 >>> 0).toString(16).padStart(8, '0');
}

function sourceMapsEnabled(): boolean {
  const enabled = (process as { sourceMapsEnabled?: boolean }).sourceMapsEnabled; // Node 20.7+
  if (enabled !== undefined) return enabled;
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--enable-source-maps');
}

function writeCache(file: string, script: vm.Script): boolean {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // nothing to clean up
    }
    return false;
  }
  prune(path.dirname(file), file);
  return true;
}

/** Keeps the folder's cache files to MAX_CACHE_FILES, removing the least recently written first. */
function prune(dir: string, keep: string): void {
  try {
    const files = fs
      .readdirSync(dir)
      .filter((f) => f.startsWith(PREFIX) && (f.endsWith(SUFFIX) || f.endsWith('.tmp')))
      .map((f) => path.join(dir, f))
      .filter((f) => f !== keep);
    if (files.length < MAX_CACHE_FILES) return;
    const dated = files.map((f) => {
      try {
        return { f, t: fs.statSync(f).mtimeMs };
      } catch {
        return { f, t: 0 };
      }
    });
    dated.sort((a, b) => a.t - b.t);
    for (const { f } of dated.slice(0, files.length - (MAX_CACHE_FILES - 1))) fs.rmSync(f, { force: true });
  } catch {
    // another process pruned at the same time, or the folder went away: the next run tries again
  }
}
