import * as assert from 'assert';
import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MAX_CACHE_FILES, codeCacheDir, runBundleCached } from '../../src/node/code-cache';

const ROOT = path.join(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const MODEL = path.join(ROOT, 'examples', 'gpt2-tiny.onnx');

/** A bundle whose functions say where they are and what they return. */
const bundleText = (value: number) => `#!/usr/bin/env node
"use strict";
exports.where = () => new Error('here').stack.split('\\n')[1].trim();
exports.value = function () { return ${value}; }; exports.dir = __dirname; exports.req = typeof require('path').join;
`;

interface ChildRun {
  state: string;
  file?: string;
  value: number;
  where: string;
  saved: boolean;
}

/**
 * runBundleCached in a fresh process, as the launcher runs it (in one process V8 keeps compiled
 * scripts in memory and never looks at a cache file again).
 */
function inChild(bundle: string, key: string, dir: string | undefined, builtSha256?: string): ChildRun {
  const lib = path.join(__dirname, '..', '..', 'src', 'node', 'code-cache.js');
  const code = `const { runBundleCached } = require(${JSON.stringify(lib)});
const r = runBundleCached(${JSON.stringify(bundle)}, ${JSON.stringify(key)}, ${JSON.stringify(dir)}, ${JSON.stringify(builtSha256)});
const out = { state: r.state, file: r.file, value: r.exports.value(), where: r.exports.where() };
out.saved = r.save();
process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stderr, '');
  return JSON.parse(r.stdout) as ChildRun;
}

describe('the CLI code cache (src/node/code-cache.ts, dist/cli.js)', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-cache-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a miss writes the cache after the run, the next run takes it; positions are the bundle file’s own', () => {
    const bundle = path.join(tmp, 'bundle.js');
    fs.writeFileSync(bundle, bundleText(42));
    const dir = path.join(tmp, 'cache');
    const first = runBundleCached(bundle, 'inspect', dir);
    assert.strictEqual(first.state, 'miss');
    assert.strictEqual((first.exports.value as () => number)(), 42);
    assert.strictEqual(first.exports.dir, tmp);
    assert.strictEqual(first.exports.req, 'function');
    // Line 3, column 23: where `new Error` stands in the file (the wrapper and the hashbang move nothing).
    assert.strictEqual((first.exports.where as () => string)(), `at exports.where (${bundle}:3:23)`);
    assert.ok(first.save());
    assert.strictEqual(fs.readdirSync(dir).length, 1);
    if (process.platform !== 'win32') assert.strictEqual(fs.statSync(first.file!).mode & 0o077, 0);
    const second = inChild(bundle, 'inspect', dir);
    assert.strictEqual(second.state, 'hit');
    assert.strictEqual(second.file, first.file);
    assert.strictEqual(second.value, 42);
    assert.strictEqual(second.where, `at exports.where (${bundle}:3:23)`);
    assert.strictEqual(second.saved, false, 'a cache V8 took is not rewritten');
  });

  it('a changed bundle of the same length gets its own cache, never the old code', () => {
    const bundle = path.join(tmp, 'bundle.js');
    const dir = path.join(tmp, 'cache');
    fs.writeFileSync(bundle, bundleText(42));
    const old = inChild(bundle, 'inspect', dir);
    assert.deepStrictEqual([old.state, old.saved, inChild(bundle, 'inspect', dir).state], ['miss', true, 'hit']);
    fs.writeFileSync(bundle, bundleText(43)); // same length: V8's own check (the source's length) would pass
    const changed = inChild(bundle, 'inspect', dir);
    assert.strictEqual(changed.value, 43);
    assert.notStrictEqual(changed.file, old.file);
    assert.strictEqual(changed.state, 'miss');
  });

  it("with the build's hash of the bundle: a bundle changed after the build (same length, same time) still gets its own cache", () => {
    const bundle = path.join(tmp, 'bundle.js');
    const dir = path.join(tmp, 'cache');
    const built = createHash('sha256').update(bundleText(42)).digest('hex');
    fs.writeFileSync(bundle, bundleText(42));
    const when = new Date('2026-01-02T03:04:05Z');
    fs.utimesSync(bundle, when, when);
    const old = inChild(bundle, 'inspect', dir, built);
    assert.deepStrictEqual([old.state, old.saved], ['miss', true]);
    assert.strictEqual(inChild(bundle, 'inspect', dir, built).state, 'hit');
    assert.notStrictEqual(old.file, inChild(bundle, 'inspect', dir).file, 'named without hashing the bytes');
    // Replaced by a file of the same length and times: only its inode tells (V8's length check would not).
    const moved = `${bundle}.new`;
    fs.writeFileSync(moved, bundleText(43));
    fs.utimesSync(moved, when, when);
    fs.renameSync(moved, bundle);
    const changed = inChild(bundle, 'inspect', dir, built);
    assert.deepStrictEqual([changed.state, changed.value], ['miss', 43]);
    assert.notStrictEqual(changed.file, old.file);
    // An edit in place changes the modification time.
    fs.writeFileSync(bundle, bundleText(44));
    const edited = inChild(bundle, 'inspect', dir, built);
    assert.deepStrictEqual([edited.state, edited.value], ['miss', 44]);
    // A hash that is not one: the bytes are hashed.
    assert.strictEqual(inChild(bundle, 'inspect', dir, 'not-a-hash').file, inChild(bundle, 'inspect', dir).file);
  });

  it('a corrupt cache file is rejected and replaced; the code still runs', () => {
    const bundle = path.join(tmp, 'bundle.js');
    const dir = path.join(tmp, 'cache');
    fs.writeFileSync(bundle, bundleText(7));
    const first = inChild(bundle, 'inspect', dir);
    fs.writeFileSync(first.file!, Buffer.alloc(4096, 0xab));
    const bad = inChild(bundle, 'inspect', dir);
    assert.deepStrictEqual([bad.state, bad.value, bad.saved], ['rejected', 7, true]);
    assert.strictEqual(inChild(bundle, 'inspect', dir).state, 'hit');
  });

  it('no cache where the folder cannot be made, is shared with others, or the key is not a command name', () => {
    const bundle = path.join(tmp, 'bundle.js');
    fs.writeFileSync(bundle, bundleText(1));
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    const under = runBundleCached(bundle, 'inspect', path.join(file, 'cache'));
    assert.strictEqual(under.state, 'off');
    assert.strictEqual(under.save(), false);
    assert.strictEqual((under.exports.value as () => number)(), 1);
    assert.strictEqual(runBundleCached(bundle, '../../etc', path.join(tmp, 'c')).state, 'off');
    assert.strictEqual(runBundleCached(bundle, 'inspect', undefined).state, 'off');
    if (process.platform !== 'win32') {
      const shared = path.join(tmp, 'shared');
      fs.mkdirSync(shared);
      fs.chmodSync(shared, 0o777);
      assert.strictEqual(runBundleCached(bundle, 'inspect', shared).state, 'off');
      // A cache folder that cannot be written to: the run goes on, save() says it wrote nothing.
      const locked = path.join(tmp, 'locked');
      fs.mkdirSync(locked, { mode: 0o500 });
      const r = runBundleCached(bundle, 'inspect', locked);
      if (process.getuid?.() !== 0) assert.strictEqual(r.save(), false);
    }
  });

  it(`keeps at most ${MAX_CACHE_FILES} cache files, dropping the oldest`, () => {
    const dir = path.join(tmp, 'cache');
    fs.mkdirSync(dir, { mode: 0o700 });
    for (let i = 0; i < MAX_CACHE_FILES + 5; i++) {
      const f = path.join(dir, `cli-old${i}-0.v8cache`);
      fs.writeFileSync(f, 'x');
      fs.utimesSync(f, 1000 + i, 1000 + i);
    }
    const bundle = path.join(tmp, 'bundle.js');
    fs.writeFileSync(bundle, bundleText(2));
    const r = runBundleCached(bundle, 'inspect', dir);
    assert.ok(r.save());
    const left = fs.readdirSync(dir);
    assert.strictEqual(left.length, MAX_CACHE_FILES);
    assert.ok(left.includes(path.basename(r.file!)));
    assert.ok(!left.includes('cli-old0-0.v8cache') && left.includes(`cli-old${MAX_CACHE_FILES + 4}-0.v8cache`));
  });

  it('the per-user folder: LAYERPLAN_CODE_CACHE, XDG_CACHE_HOME, the platform’s cache folder', () => {
    assert.strictEqual(codeCacheDir({ LAYERPLAN_CODE_CACHE: '' }, 'linux'), undefined);
    assert.strictEqual(codeCacheDir({ LAYERPLAN_CODE_CACHE: '/x/y' }, 'linux'), path.resolve('/x/y'));
    assert.strictEqual(codeCacheDir({ XDG_CACHE_HOME: '/xdg' }, 'linux'), path.join('/xdg', 'layerplan', 'code-cache'));
    assert.strictEqual(
      codeCacheDir({ XDG_CACHE_HOME: 'rel' }, 'linux'),
      path.join(os.homedir(), '.cache', 'layerplan', 'code-cache'),
    );
    assert.strictEqual(
      codeCacheDir({}, 'darwin'),
      path.join(os.homedir(), 'Library', 'Caches', 'layerplan', 'code-cache'),
    );
    assert.strictEqual(
      codeCacheDir({ LOCALAPPDATA: 'C:\\L' }, 'win32'),
      path.join('C:\\L', 'layerplan', 'Cache', 'code-cache'),
    );
  });

  it('dist/cli.js: the same output without a cache, on a miss and on a hit; one file per command', function () {
    if (!fs.existsSync(CLI)) this.skip();
    const dir = path.join(tmp, 'cache');
    const run = (env: Record<string, string>, ...args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], {
        encoding: 'utf8',
        env: { ...process.env, LAYERPLAN_DEBUG_CACHE: '1', ...env },
      });
      assert.strictEqual(r.status, 0, r.stderr);
      return { out: r.stdout, cache: /code cache (\w+)/.exec(r.stderr)?.[1] };
    };
    // The build writes the bundle's hash into the launcher: no start hashes the bundle.
    const mainSha = createHash('sha256')
      .update(fs.readFileSync(path.join(ROOT, 'dist', 'cli-main.js')))
      .digest('hex');
    assert.ok(
      fs.readFileSync(CLI, 'utf8').includes(`"${mainSha}"`),
      'dist/cli.js carries the hash of dist/cli-main.js',
    );
    const plain = run({ LAYERPLAN_CODE_CACHE: '' }, 'inspect', MODEL, '--json');
    assert.strictEqual(plain.cache, 'off');
    const miss = run({ LAYERPLAN_CODE_CACHE: dir }, 'inspect', MODEL, '--json');
    const hit = run({ LAYERPLAN_CODE_CACHE: dir }, 'inspect', MODEL, '--json');
    assert.deepStrictEqual([miss.cache, hit.cache], ['miss', 'hit']);
    assert.strictEqual(miss.out, plain.out);
    assert.strictEqual(hit.out, plain.out);
    assert.strictEqual(JSON.parse(hit.out).nodes, 249);
    // verify imports the ES module webgpu: from the cache too (Node 20 loses a cached script's import()).
    const verify = () => {
      const r = spawnSync(
        process.execPath,
        [CLI, 'verify', MODEL, '--tensor', 'onnx::MatMul_304', '--format', 'q4_0', '--json'],
        { encoding: 'utf8', env: { ...process.env, LAYERPLAN_CODE_CACHE: dir, LAYERPLAN_DEBUG_CACHE: '1' } },
      );
      assert.doesNotMatch(r.stdout + r.stderr, /dynamic import/i);
      return { status: r.status, device: JSON.parse(r.stdout).device, cache: /code cache (\w+)/.exec(r.stderr)?.[1] };
    };
    const [verifyMiss, verifyHit] = [verify(), verify()];
    assert.deepStrictEqual([verifyMiss.cache, verifyHit.cache], ['miss', 'hit']);
    assert.deepStrictEqual({ ...verifyHit, cache: '' }, { ...verifyMiss, cache: '' });
    run({ LAYERPLAN_CODE_CACHE: dir }, '--help');
    const bad = spawnSync(process.execPath, [CLI, 'no-such-command'], {
      encoding: 'utf8',
      env: { ...process.env, LAYERPLAN_CODE_CACHE: dir },
    });
    assert.strictEqual(bad.status, 2);
    assert.deepStrictEqual(
      fs.readdirSync(dir).map((f) => f.replace(/-[0-9a-f]+\.v8cache$/, '')),
      ['cli-inspect', 'cli-verify'],
      'help and unknown commands write no cache',
    );
  });

  it('inspect loads none of the Node modules it does not use (each cost every start 1.5–4.5 ms)', function () {
    if (!fs.existsSync(CLI)) this.skip();
    const preload = path.join(tmp, 'modules.js');
    fs.writeFileSync(
      preload,
      "process.on('exit', () => require('fs').writeSync(3, JSON.stringify(process.moduleLoadList)));",
    );
    const r = spawnSync(process.execPath, ['--require', preload, CLI, 'inspect', MODEL, '--json'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, LAYERPLAN_CODE_CACHE: path.join(tmp, 'cache') },
    });
    assert.strictEqual(r.status, 0, r.stderr);
    const loaded = (JSON.parse(r.output[3] as string) as string[]).map((m) => m.replace(/^NativeModule /, ''));
    assert.ok(loaded.includes('vm'), 'the list is the one Node keeps');
    for (const unused of ['crypto', 'worker_threads', 'internal/fs/promises', 'stream', 'net']) {
      assert.ok(!loaded.includes(unused), `${unused} is not loaded`);
    }
  });
});
