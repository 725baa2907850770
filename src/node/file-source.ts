import { close, fstat, lstatSync, open, read, readSync, realpathSync, statSync, type Stats } from 'fs';
import * as path from 'path';
import type { ByteSource, SiblingKind, SiblingResolver } from '../engine/bytes';
import { InputError, MissingFileError } from '../engine/errors';
import { checkExternalLocation } from '../engine/formats/onnx-data';

/** Largest single positioned read (Node's Buffer limit is 2 GiB; stay well under). */
const MAX_CHUNK = 512 * 1024 * 1024;

/** fs's callback calls as promises (fs/promises costs every CLI start ~1.7 ms to load: it pulls in readline and fs watchers). */
const call = <T>(f: (done: (e: NodeJS.ErrnoException | null, v: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => f((e, v) => (e ? reject(e) : resolve(v))));

const closeFd = (fd: number) => call<void>((done) => close(fd, (err) => done(err, undefined)));

/** A ByteSource over a file on disk, reading with positioned reads (no whole-file buffer). */
export class FileByteSource implements ByteSource {
  private closed: Promise<void> | undefined;
  /** Asynchronous reads in flight, and what close() waits on for them to end. */
  private reading = 0;
  private idle: (() => void) | undefined;

  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly fd: number,
  ) {}

  /** `name`: how errors and reports name the file (a symlink's path rather than its target's). */
  static async open(file: string, name = file): Promise<FileByteSource> {
    let fd: number;
    try {
      fd = await call<number>((done) => open(file, 'r', done));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new InputError(
        name,
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EISDIR'
            ? 'is a folder, not a file'
            : `cannot open (${code ?? String(e)})`,
      );
    }
    let stat: Stats;
    try {
      stat = await call<Stats>((done) => fstat(fd, done));
    } catch (e) {
      await closeFd(fd);
      throw new InputError(name, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    if (!stat.isFile()) {
      await closeFd(fd);
      throw new InputError(name, 'is not a regular file');
    }
    return new FileByteSource(name, stat.size, fd);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.check(offset, length);
    const out = new Uint8Array(length);
    // Counted in flight: close() waits for it (as FileHandle's did), so the descriptor is never
    // closed, or its number reused, under a read.
    this.reading++;
    try {
      let done = 0;
      while (done < length) {
        const n = Math.min(MAX_CHUNK, length - done);
        const at = done;
        const bytesRead = await call<number>((cb) => read(this.fd, out, at, n, offset + at, cb));
        if (bytesRead === 0) throw new InputError(this.name, `file shrank while reading at offset ${offset + done}`);
        done += bytesRead;
      }
      return out;
    } finally {
      if (--this.reading === 0) this.idle?.();
    }
  }

  readSync(offset: number, length: number, into?: Uint8Array): Uint8Array {
    this.check(offset, length);
    const out = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, Math.min(MAX_CHUNK, length - done), offset + done);
      if (n === 0) throw new InputError(this.name, `file shrank while reading at offset ${offset + done}`);
      done += n;
    }
    return out;
  }

  private check(offset: number, length: number): void {
    // A closed descriptor's number may already name another file: never read through it.
    if (this.closed) throw new Error(`${this.name}: read after the file was closed`);
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new InputError(this.name, `read [${offset}, ${offset + length}) outside the file (${this.size} bytes)`);
    }
  }

  /** Closes the file once, after the reads in flight; a second call waits for the first. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.reading > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      await closeFd(this.fd);
    })();
    return this.closed;
  }
}

/**
 * The blobs/ folder of the Hugging Face hub cache repository that `folder` is a snapshot of
 * (<cache>/models--org--name/snapshots/<rev>[/sub…]), if it is one. The hub stores every file of a
 * revision once in blobs/ and links snapshots/<rev>/<name> to ../../blobs/<hash>.
 */
export function hubCacheBlobs(folder: string): string | undefined {
  for (let d = folder; path.dirname(d) !== d; d = path.dirname(d)) {
    const snapshots = path.dirname(d);
    if (path.basename(snapshots) !== 'snapshots') continue;
    const blobs = path.join(path.dirname(snapshots), 'blobs');
    try {
      if (statSync(blobs).isDirectory()) return realpathSync(blobs);
    } catch {
      // no blobs/ beside snapshots/: not the hub cache (a missing folder is the answer, not an error)
    }
    return undefined;
  }
  return undefined;
}

const inside = (real: string, folder: string) => real === folder || real.startsWith(folder + path.sep);

/**
 * Opens files beside a model; refuses any path that leaves the model's folder (also through
 * symlinks), except a checkpoint's own files in the Hugging Face hub cache, which may resolve into
 * the cache repository's blobs/ (never ONNX external data).
 */
export class FolderResolver implements SiblingResolver {
  private readonly opened: FileByteSource[] = [];
  private readonly cache = new Map<string, Promise<FileByteSource>>();
  constructor(private readonly modelFile: string) {}

  open(relativePath: string, kind: SiblingKind): Promise<ByteSource> {
    const rel = checkExternalLocation(this.modelFile, relativePath);
    const key = `${kind}:${rel}`;
    let p = this.cache.get(key);
    if (!p) {
      p = this.openChecked(rel, kind);
      this.cache.set(key, p);
    }
    return p;
  }

  private async openChecked(rel: string, kind: SiblingKind): Promise<FileByteSource> {
    const folder = realpathSync(path.dirname(path.resolve(this.modelFile)));
    const what = kind === 'external-data' ? 'external data file' : 'file';
    const target = path.join(folder, rel);
    let real: string;
    try {
      real = realpathSync(target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      let link = false;
      try {
        link = lstatSync(target).isSymbolicLink();
      } catch {
        // lstat fails too: nothing at that path
      }
      if (link) throw new InputError(this.modelFile, `${what} '${rel}' is a symlink to a file that does not exist`);
      if (code === 'ENOENT') {
        throw new MissingFileError(this.modelFile, `${what} '${rel}' does not exist beside the model`);
      }
      throw new InputError(this.modelFile, `${what} '${rel}' cannot be read (${code ?? String(e)})`);
    }
    const blobs = kind === 'checkpoint' ? hubCacheBlobs(folder) : undefined;
    if (!inside(real, folder) && !(blobs && inside(real, blobs))) {
      throw new InputError(
        this.modelFile,
        `${kind === 'external-data' ? 'external data location' : 'file'} '${rel}' resolves outside the model's folder`,
      );
    }
    if (!statSync(real).isFile()) throw new InputError(this.modelFile, `${what} '${rel}' is not a file`);
    const f = await FileByteSource.open(real, target);
    this.opened.push(f);
    return f;
  }

  async close(): Promise<void> {
    // Opens still under way finish first: a file they open is closed here too, never left open.
    await Promise.allSettled([...this.cache.values()]);
    await Promise.all(this.opened.map((f) => f.close()));
  }
}
