import { promises as fsp, readSync, realpathSync, statSync } from 'fs';
import * as path from 'path';
import type { ByteSource, SiblingResolver } from '../engine/bytes';
import { InputError } from '../engine/errors';
import { checkExternalLocation } from '../engine/formats/onnx-data';

/** Largest single positioned read (Node's Buffer limit is 2 GiB; stay well under). */
const MAX_CHUNK = 512 * 1024 * 1024;

/** A ByteSource over a file on disk, reading with positioned reads (no whole-file buffer). */
export class FileByteSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly handle: fsp.FileHandle,
  ) {}

  static async open(file: string): Promise<FileByteSource> {
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(file, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new InputError(
        file,
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EISDIR'
            ? 'is a folder, not a file'
            : `cannot open (${code ?? String(e)})`,
      );
    }
    const stat = await handle.stat();
    if (!stat.isFile()) {
      await handle.close();
      throw new InputError(file, 'is not a regular file');
    }
    return new FileByteSource(file, stat.size, handle);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new InputError(this.name, `read [${offset}, ${offset + length}) outside the file (${this.size} bytes)`);
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = Math.min(MAX_CHUNK, length - done);
      const { bytesRead } = await this.handle.read(out, done, n, offset + done);
      if (bytesRead === 0) throw new InputError(this.name, `file shrank while reading at offset ${offset + done}`);
      done += bytesRead;
    }
    return out;
  }

  readSync(offset: number, length: number, into?: Uint8Array): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new InputError(this.name, `read [${offset}, ${offset + length}) outside the file (${this.size} bytes)`);
    }
    const out = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.handle.fd, out, done, Math.min(MAX_CHUNK, length - done), offset + done);
      if (n === 0) throw new InputError(this.name, `file shrank while reading at offset ${offset + done}`);
      done += n;
    }
    return out;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Opens files beside a model; refuses any path that leaves the model's folder (also through symlinks). */
export class FolderResolver implements SiblingResolver {
  private readonly opened: FileByteSource[] = [];
  private readonly cache = new Map<string, Promise<FileByteSource>>();
  constructor(private readonly modelFile: string) {}

  open(relativePath: string): Promise<ByteSource> {
    const rel = checkExternalLocation(this.modelFile, relativePath);
    let p = this.cache.get(rel);
    if (!p) {
      p = this.openChecked(rel);
      this.cache.set(rel, p);
    }
    return p;
  }

  private async openChecked(rel: string): Promise<FileByteSource> {
    const folder = realpathSync(path.dirname(path.resolve(this.modelFile)));
    const target = path.join(folder, rel);
    let real: string;
    try {
      real = realpathSync(target);
    } catch {
      throw new InputError(this.modelFile, `external data file '${rel}' does not exist beside the model`);
    }
    if (real !== folder && !real.startsWith(folder + path.sep)) {
      throw new InputError(this.modelFile, `external data location '${rel}' resolves outside the model's folder`);
    }
    if (!statSync(real).isFile()) throw new InputError(this.modelFile, `external data location '${rel}' is not a file`);
    const f = await FileByteSource.open(real);
    this.opened.push(f);
    return f;
  }

  async close(): Promise<void> {
    await Promise.all(this.opened.map((f) => f.close()));
  }
}
