import type { ByteSource } from '../bytes';
import { InputError } from '../errors';

/** Protobuf wire types. */
export const enum Wire {
  Varint = 0,
  Fixed64 = 1,
  Len = 2,
  Fixed32 = 5,
}

const DEFAULT_WINDOW = 64 << 10;
/** The window read after a jump (a skipped payload): enough for the headers of the next few fields. */
const JUMP_WINDOW = 4 << 10;
/** The largest single field the reader ever holds in memory at once (strings, small arrays). */
export const MAX_FIELD_BYTES = 256 * 1024 * 1024;
const utf8 = new TextDecoder('utf-8', { fatal: false });
/** Strings up to this length that are ASCII are decoded in JS (see string()). */
const SHORT_STRING = 128;

/**
 * Streaming protobuf reader over a ByteSource: it keeps a window of the file in memory and
 * refills it on demand, so length-delimited payloads (tensor data) can be skipped without
 * being read. Every position is an absolute file offset. All reads check bounds and throw an
 * InputError naming the file.
 *
 * The hot paths (a tag, a length, a name: tens of thousands per model, mostly run before V8
 * optimizes them) test the window inline and call need() only to refill: in unoptimized code a
 * call costs more than the test.
 */
export class ProtoReader {
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  /** Reused window storage. */
  private spare: Uint8Array | undefined;
  /** Absolute offset of the next byte to decode. */
  pos = 0;

  constructor(
    readonly source: ByteSource,
    private readonly windowSize = DEFAULT_WINDOW,
  ) {}

  get size(): number {
    return this.source.size;
  }

  fail(problem: string): never {
    throw new InputError(this.source.name, problem);
  }

  /**
   * Ensures bytes [pos, pos + n) are in the window; `n` is clamped to `end`. Synchronous: the whole
   * reader is (an await per field cost more than the parse itself, 3× on a 1.35 GB model). After a
   * jump past the window (a skipped tensor payload) it reads a small window first: the next field
   * is usually a tensor's header, not 64 KiB of it.
   */
  need(n: number, end: number): void {
    const want = Math.min(n, end - this.pos);
    if (this.pos + want <= this.bufStart + this.buf.length && this.pos >= this.bufStart) return;
    if (want > MAX_FIELD_BYTES) {
      this.fail(`a field of ${want} bytes at offset ${this.pos} is larger than the reader allows`);
    }
    if (this.pos + want > this.source.size) {
      this.fail(`truncated: needs ${want} bytes at offset ${this.pos}, file has ${this.source.size}`);
    }
    const jumped = this.pos > this.bufStart + this.buf.length;
    const len = Math.min(Math.max(want, jumped ? JUMP_WINDOW : this.windowSize), this.source.size - this.pos);
    // The window is only referenced until the next refill (strings and bytes are copied out).
    if (!this.spare || this.spare.length < len) this.spare = new Uint8Array(Math.max(len, this.windowSize));
    this.setWindow(this.source.readSync(this.pos, len, this.spare), want);
  }

  private setWindow(b: Uint8Array, want: number): void {
    if (b.length < want) this.fail(`short read at offset ${this.pos}`);
    this.buf = b;
    this.bufStart = this.pos;
  }

  /** Checks that a length-delimited field [pos, pos + len) lies inside `end` and the file. */
  checkLength(len: number, end: number, what: string): void {
    if (len < 0 || this.pos + len > end) {
      this.fail(`${what} at offset ${this.pos} declares ${len} bytes, past the end of its enclosing message (${end})`);
    }
  }

  private byte(): number {
    const i = this.pos - this.bufStart;
    if (i >= this.buf.length) this.fail(`truncated varint at offset ${this.pos}`);
    this.pos++;
    return this.buf[i];
  }

  /** Reads a varint as an unsigned value below 2^53 (lengths, tags, enums). Call after need(10). */
  uvarint(): number {
    // One byte (tags of fields 1–15, lengths below 128: most of them) without the loop.
    const i = this.pos - this.bufStart;
    if (i >= 0 && i < this.buf.length && this.buf[i] < 0x80) {
      this.pos++;
      return this.buf[i];
    }
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (result > Number.MAX_SAFE_INTEGER) this.fail(`varint too large at offset ${this.pos}`);
        return result;
      }
      mul *= 128;
    }
    this.fail(`malformed varint at offset ${this.pos}`);
  }

  /** Reads a varint as a signed 64-bit integer (two's complement), as a number (exact below 2^53). */
  int64(): number {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    let i = 0;
    for (; i < 10; i++) {
      const b = this.byte();
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      shift += 7;
      if (b < 0x80) break;
    }
    if (i === 10) this.fail(`malformed varint at offset ${this.pos}`);
    return (hi | 0) * 4294967296 + (lo >>> 0);
  }

  fixed32(): number {
    const i = this.pos - this.bufStart;
    if (i + 4 > this.buf.length) this.fail(`truncated fixed32 at offset ${this.pos}`);
    this.pos += 4;
    return new DataView(this.buf.buffer, this.buf.byteOffset + i, 4).getUint32(0, true);
  }

  float32(): number {
    const i = this.pos - this.bufStart;
    if (i + 4 > this.buf.length) this.fail(`truncated float at offset ${this.pos}`);
    this.pos += 4;
    return new DataView(this.buf.buffer, this.buf.byteOffset + i, 4).getFloat32(0, true);
  }

  /** Returns a view of the next `len` bytes (valid until the next need()). */
  bytes(len: number): Uint8Array {
    const i = this.pos - this.bufStart;
    if (i < 0 || i + len > this.buf.length) this.fail(`truncated field at offset ${this.pos}`);
    this.pos += len;
    return this.buf.subarray(i, i + len);
  }

  string(end: number): string {
    if (this.pos < this.bufStart || this.pos + 10 > this.bufStart + this.buf.length) this.need(10, end);
    const len = this.uvarint();
    if (len < 0 || this.pos + len > end) this.checkLength(len, end, 'string');
    if (this.pos + len > this.bufStart + this.buf.length) this.need(len, end);
    // Names (nodes, tensors, op types) are short and ASCII: decoded here, without a call into
    // TextDecoder for each of a model's thousands of them (a fifth of reading the graph).
    if (len <= SHORT_STRING) {
      const i = this.pos - this.bufStart;
      const b = this.buf;
      if (i >= 0 && i + len <= b.length) {
        let k = i;
        while (k < i + len && b[k] < 0x80) k++;
        if (k === i + len) {
          this.pos += len;
          return String.fromCharCode.apply(null, b.subarray(i, i + len) as unknown as number[]);
        }
      }
    }
    return utf8.decode(this.bytes(len));
  }

  byteString(end: number): Uint8Array {
    this.need(10, end);
    const len = this.uvarint();
    this.checkLength(len, end, 'bytes');
    this.need(len, end);
    return this.bytes(len).slice();
  }

  /** The wire type of the tag `field()` read last. */
  wire = 0;

  /**
   * Reads a tag; returns its field number and leaves its wire type in `wire` (no [field, wire] pair:
   * a model has tens of thousands of tags, and unoptimized code allocates for the pair and its
   * destructuring).
   */
  field(end: number): number {
    if (this.pos < this.bufStart || this.pos + 10 > this.bufStart + this.buf.length) this.need(10, end);
    const t = this.uvarint();
    const field = Math.floor(t / 8);
    this.wire = t & 7;
    if (field === 0) this.fail(`invalid field number 0 at offset ${this.pos}`);
    return field;
  }

  /** Reads the length prefix of a length-delimited field; returns the absolute end of its payload. */
  lengthPrefix(end: number, what: string): number {
    if (this.pos < this.bufStart || this.pos + 10 > this.bufStart + this.buf.length) this.need(10, end);
    const len = this.uvarint();
    if (len < 0 || this.pos + len > end) this.checkLength(len, end, what);
    return this.pos + len;
  }

  /** Skips a field's value without reading it into memory. */
  skip(wire: number, end: number): void {
    switch (wire) {
      case Wire.Varint:
        this.need(10, end);
        this.int64();
        break;
      case Wire.Fixed64:
        this.advance(8, end);
        break;
      case Wire.Len: {
        const payloadEnd = this.lengthPrefix(end, 'field');
        this.pos = payloadEnd;
        break;
      }
      case Wire.Fixed32:
        this.advance(4, end);
        break;
      default:
        this.fail(`unsupported protobuf wire type ${wire} at offset ${this.pos} (not an ONNX protobuf?)`);
    }
  }

  advance(n: number, end: number): void {
    if (this.pos + n > end) this.fail(`truncated: field at offset ${this.pos} runs past its message`);
    this.pos += n;
  }

  /** Reads a repeated int64 field, packed or not, appending to `out`. */
  int64s(wire: number, end: number, out: number[], limit: number): void {
    if (wire === Wire.Len) {
      const stop = this.lengthPrefix(end, 'packed int64');
      while (this.pos < stop) {
        this.need(10, stop);
        out.push(this.int64());
        if (out.length > limit) this.fail(`too many values in a repeated field (over ${limit})`);
      }
      if (this.pos !== stop) this.fail(`packed field overruns its length at offset ${this.pos}`);
    } else if (wire === Wire.Varint) {
      this.need(10, end);
      out.push(this.int64());
      if (out.length > limit) this.fail(`too many values in a repeated field (over ${limit})`);
    } else this.fail(`wire type ${wire} where integers were expected at offset ${this.pos}`);
  }

  /** Reads a repeated float field, packed or not, appending to `out`. */
  floats(wire: number, end: number, out: number[], limit: number): void {
    if (wire === Wire.Len) {
      const stop = this.lengthPrefix(end, 'packed float');
      if ((stop - this.pos) % 4 !== 0) {
        this.fail(`packed float field of ${stop - this.pos} bytes at offset ${this.pos}`);
      }
      if (out.length + (stop - this.pos) / 4 > limit) this.fail(`too many values in a repeated field (over ${limit})`);
      this.need(stop - this.pos, stop);
      while (this.pos < stop) out.push(this.float32());
    } else if (wire === Wire.Fixed32) {
      this.need(4, end);
      out.push(this.float32());
      if (out.length > limit) this.fail(`too many values in a repeated field (over ${limit})`);
    } else this.fail(`wire type ${wire} where floats were expected at offset ${this.pos}`);
  }

  /** Reads a varint-typed scalar (enum, int32, int64). */
  scalar(wire: number, end: number): number {
    if (wire !== Wire.Varint) this.fail(`wire type ${wire} where an integer was expected at offset ${this.pos}`);
    this.need(10, end);
    return this.int64();
  }

  float(wire: number, end: number): number {
    if (wire !== Wire.Fixed32) this.fail(`wire type ${wire} where a float was expected at offset ${this.pos}`);
    this.need(4, end);
    return this.float32();
  }
}
