/** Positioned reads over a model file (or a buffer); the engine reads every byte through one of these. */
export interface ByteSource {
  /** File path or label, used in error messages. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Reads exactly `length` bytes at `offset` (the caller keeps ranges inside `size`). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * The same read, synchronously (local files, buffers): fills `into` when it is given and large
   * enough, so a streaming reader can reuse one window buffer. The ONNX reader parses with it.
   */
  readSync(offset: number, length: number, into?: Uint8Array): Uint8Array;
}

/**
 * What a sibling file is to its model. `external-data`: ONNX external data, which must lie inside
 * the model's folder (symlinks included). `checkpoint`: a checkpoint's own files (config.json,
 * shards); in the Hugging Face hub cache these are symlinks from snapshots/<rev>/ into the cache
 * repository's blobs/, which a resolver may allow for this kind only.
 */
export type SiblingKind = 'external-data' | 'checkpoint';

/** Opens files that a model refers to (ONNX external data, safetensors shards, config.json), relative to the model's folder. */
export interface SiblingResolver {
  /** Throws MissingFileError (engine/errors.ts) when no such file exists, an InputError for any other problem. */
  open(relativePath: string, kind: SiblingKind): Promise<ByteSource>;
}

/** A ByteSource over bytes already in memory (tests, webview, small files). */
export class MemoryByteSource implements ByteSource {
  readonly size: number;
  constructor(
    readonly name: string,
    private readonly bytes: Uint8Array,
  ) {
    this.size = bytes.length;
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    return Promise.resolve(this.bytes.subarray(offset, offset + length));
  }
  readSync(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
}
