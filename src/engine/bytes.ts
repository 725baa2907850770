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

/** Opens files that a model refers to (ONNX external data, safetensors shards), relative to the model's folder. */
export interface SiblingResolver {
  open(relativePath: string): Promise<ByteSource>;
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
