import type { ByteSource } from '../bytes';
import { InputError } from '../errors';

/**
 * GGUF v2/v3 (ggml's docs/gguf.md): magic "GGUF", version, tensor count, metadata key/values of
 * every type (arrays included), tensor infos (name, dims, ggml type, offset), then the data at
 * `general.alignment`. Read with positioned reads through a small window; tensor data is never read.
 */
export const GGML_TYPES: Record<number, { name: string; block: number; bytes: number }> = {
  0: { name: 'F32', block: 1, bytes: 4 },
  1: { name: 'F16', block: 1, bytes: 2 },
  2: { name: 'Q4_0', block: 32, bytes: 18 },
  3: { name: 'Q4_1', block: 32, bytes: 20 },
  6: { name: 'Q5_0', block: 32, bytes: 22 },
  7: { name: 'Q5_1', block: 32, bytes: 24 },
  8: { name: 'Q8_0', block: 32, bytes: 34 },
  9: { name: 'Q8_1', block: 32, bytes: 36 },
  10: { name: 'Q2_K', block: 256, bytes: 84 },
  11: { name: 'Q3_K', block: 256, bytes: 110 },
  12: { name: 'Q4_K', block: 256, bytes: 144 },
  13: { name: 'Q5_K', block: 256, bytes: 176 },
  14: { name: 'Q6_K', block: 256, bytes: 210 },
  15: { name: 'Q8_K', block: 256, bytes: 292 },
  16: { name: 'IQ2_XXS', block: 256, bytes: 66 },
  17: { name: 'IQ2_XS', block: 256, bytes: 74 },
  18: { name: 'IQ3_XXS', block: 256, bytes: 98 },
  19: { name: 'IQ1_S', block: 256, bytes: 50 },
  20: { name: 'IQ4_NL', block: 32, bytes: 18 },
  21: { name: 'IQ3_S', block: 256, bytes: 110 },
  22: { name: 'IQ2_S', block: 256, bytes: 82 },
  23: { name: 'IQ4_XS', block: 256, bytes: 136 },
  24: { name: 'I8', block: 1, bytes: 1 },
  25: { name: 'I16', block: 1, bytes: 2 },
  26: { name: 'I32', block: 1, bytes: 4 },
  27: { name: 'I64', block: 1, bytes: 8 },
  28: { name: 'F64', block: 1, bytes: 8 },
  29: { name: 'IQ1_M', block: 256, bytes: 56 },
  30: { name: 'BF16', block: 1, bytes: 2 },
  34: { name: 'TQ1_0', block: 256, bytes: 54 },
  35: { name: 'TQ2_0', block: 256, bytes: 66 },
  39: { name: 'MXFP4', block: 32, bytes: 17 },
};

export type GgufValue = number | bigint | boolean | string | GgufValue[] | { type: number; count: number };

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the innermost (row length). */
  dims: number[];
  type: number;
  typeName: string;
  elements: number;
  /** Absolute offset of the data in the file, and its length. */
  offset: number;
  length: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensor[];
  alignment: number;
  dataOffset: number;
}

/** Arrays longer than this keep only their type and length (vocabularies of 150k strings). */
const KEEP_ARRAY = 1024;
const MAX_STRING = 64 * 1024 * 1024;
const MAX_COUNT = 1e8;

class Cursor {
  private buf = new Uint8Array(0);
  private start = 0;
  pos = 0;
  constructor(readonly src: ByteSource) {}
  fail(why: string): never {
    throw new InputError(this.src.name, why);
  }
  async need(n: number): Promise<void> {
    if (this.pos >= this.start && this.pos + n <= this.start + this.buf.length) return;
    if (this.pos + n > this.src.size) {
      this.fail(`truncated: needs ${n} bytes at offset ${this.pos}, file has ${this.src.size}`);
    }
    const len = Math.min(Math.max(n, 1 << 16), this.src.size - this.pos);
    this.buf = (await this.src.read(this.pos, len)).slice();
    this.start = this.pos;
  }
  private view(n: number): DataView {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos - this.start, n);
    this.pos += n;
    return v;
  }
  async u8(): Promise<number> {
    await this.need(1);
    return this.view(1).getUint8(0);
  }
  async i8(): Promise<number> {
    await this.need(1);
    return this.view(1).getInt8(0);
  }
  async u16(): Promise<number> {
    await this.need(2);
    return this.view(2).getUint16(0, true);
  }
  async i16(): Promise<number> {
    await this.need(2);
    return this.view(2).getInt16(0, true);
  }
  async u32(): Promise<number> {
    await this.need(4);
    return this.view(4).getUint32(0, true);
  }
  async i32(): Promise<number> {
    await this.need(4);
    return this.view(4).getInt32(0, true);
  }
  async f32(): Promise<number> {
    await this.need(4);
    return this.view(4).getFloat32(0, true);
  }
  async f64(): Promise<number> {
    await this.need(8);
    return this.view(8).getFloat64(0, true);
  }
  async u64(): Promise<number> {
    await this.need(8);
    const v = this.view(8).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.fail(`a 64-bit count or offset (${v}) at offset ${this.pos - 8} is absurdly large`);
    }
    return Number(v);
  }
  async i64(): Promise<bigint> {
    await this.need(8);
    return this.view(8).getBigInt64(0, true);
  }
  async str(): Promise<string> {
    const n = await this.u64();
    if (n > MAX_STRING) this.fail(`a string of ${n} bytes at offset ${this.pos - 8}`);
    await this.need(n);
    const bytes = this.buf.subarray(this.pos - this.start, this.pos - this.start + n);
    this.pos += n;
    return new TextDecoder().decode(bytes);
  }
}

async function readValue(c: Cursor, type: number, depth: number): Promise<GgufValue> {
  switch (type) {
    case 0:
      return c.u8();
    case 1:
      return c.i8();
    case 2:
      return c.u16();
    case 3:
      return c.i16();
    case 4:
      return c.u32();
    case 5:
      return c.i32();
    case 6:
      return c.f32();
    case 7:
      return (await c.u8()) !== 0;
    case 8:
      return c.str();
    case 9: {
      if (depth > 8) c.fail('metadata arrays nested too deep');
      const elemType = await c.u32();
      const count = await c.u64();
      if (count > MAX_COUNT) c.fail(`a metadata array of ${count} elements`);
      const keep = count <= KEEP_ARRAY;
      const out: GgufValue[] = [];
      for (let i = 0; i < count; i++) {
        const v = await readValue(c, elemType, depth + 1);
        if (keep) out.push(v);
      }
      return keep ? out : { type: elemType, count };
    }
    case 10:
      return c.u64();
    case 11:
      return c.i64();
    case 12:
      return c.f64();
    default:
      return c.fail(`unknown metadata value type ${type} at offset ${c.pos - 4}`);
  }
}

export async function readGguf(source: ByteSource): Promise<GgufFile> {
  const c = new Cursor(source);
  if (source.size < 24) c.fail('too short for a GGUF file');
  await c.need(4);
  const magic = String.fromCharCode(await c.u8(), await c.u8(), await c.u8(), await c.u8());
  if (magic !== 'GGUF') c.fail(`not a GGUF file (magic '${magic.replace(/[^\x20-\x7e]/g, '?')}')`);
  const version = await c.u32();
  if (version !== 2 && version !== 3) c.fail(`GGUF version ${version} is not supported (2 and 3 are)`);
  const tensorCount = await c.u64();
  const kvCount = await c.u64();
  if (tensorCount > 1e7 || kvCount > 1e7) c.fail(`declares ${tensorCount} tensors and ${kvCount} metadata entries`);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = await c.str();
    const type = await c.u32();
    metadata.set(key, await readValue(c, type, 0));
  }
  const alignment = Number(metadata.get('general.alignment') ?? 32);
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment > 1 << 20) {
    c.fail(`general.alignment ${alignment} is invalid`);
  }
  const infos: { name: string; dims: number[]; type: number; rel: number }[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = await c.str();
    const nDims = await c.u32();
    if (nDims > 8) c.fail(`tensor '${name}' has ${nDims} dimensions`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(await c.u64());
    const type = await c.u32();
    const rel = await c.u64();
    infos.push({ name, dims, type, rel });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors: GgufTensor[] = infos.map(({ name, dims, type, rel }) => {
    const t = GGML_TYPES[type];
    if (!t) c.fail(`tensor '${name}' has unknown ggml type ${type}`);
    const elements = dims.reduce((a, b) => a * b, 1);
    if ((dims[0] ?? 1) % t.block !== 0) {
      c.fail(`tensor '${name}': row length ${dims[0]} is not a multiple of ${t.name}'s block of ${t.block}`);
    }
    const length = (elements / t.block) * t.bytes;
    const offset = dataOffset + rel;
    if (rel % alignment !== 0) c.fail(`tensor '${name}': offset ${rel} is not aligned to ${alignment}`);
    if (offset + length > source.size) {
      c.fail(
        `tensor '${name}' (${t.name}, [${dims.join(', ')}]) needs bytes [${offset}, ${offset + length}), past the end of the file (${source.size})`,
      );
    }
    return { name, dims, type, typeName: t.name, elements, offset, length };
  });
  return { version, metadata, tensors, alignment, dataOffset };
}

/** GGUF tensor names (llama.cpp's) → Hugging Face names, so GGUF weights join the synthesized graph. */
export function ggufToHfName(name: string): string {
  const map: [RegExp, string][] = [
    [/^token_embd\.weight$/, 'model.embed_tokens.weight'],
    [/^output_norm\.weight$/, 'model.norm.weight'],
    [/^output\.weight$/, 'lm_head.weight'],
    [/^blk\.(\d+)\.attn_norm\.weight$/, 'model.layers.$1.input_layernorm.weight'],
    [/^blk\.(\d+)\.ffn_norm\.weight$/, 'model.layers.$1.post_attention_layernorm.weight'],
    [/^blk\.(\d+)\.attn_q\.(weight|bias)$/, 'model.layers.$1.self_attn.q_proj.$2'],
    [/^blk\.(\d+)\.attn_k\.(weight|bias)$/, 'model.layers.$1.self_attn.k_proj.$2'],
    [/^blk\.(\d+)\.attn_v\.(weight|bias)$/, 'model.layers.$1.self_attn.v_proj.$2'],
    [/^blk\.(\d+)\.attn_output\.weight$/, 'model.layers.$1.self_attn.o_proj.weight'],
    [/^blk\.(\d+)\.ffn_gate\.weight$/, 'model.layers.$1.mlp.gate_proj.weight'],
    [/^blk\.(\d+)\.ffn_up\.weight$/, 'model.layers.$1.mlp.up_proj.weight'],
    [/^blk\.(\d+)\.ffn_down\.weight$/, 'model.layers.$1.mlp.down_proj.weight'],
  ];
  for (const [re, to] of map) if (re.test(name)) return name.replace(re, to);
  return name;
}

/** A Hugging Face-style config from GGUF architecture metadata (`<arch>.block_count`, …). */
export function ggufConfig(g: GgufFile): Record<string, unknown> | undefined {
  const arch = g.metadata.get('general.architecture');
  if (typeof arch !== 'string') return undefined;
  const get = (k: string) => {
    const v = g.metadata.get(`${arch}.${k}`);
    return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
  };
  const layers = get('block_count');
  const hidden = get('embedding_length');
  const heads = get('attention.head_count');
  if (!layers || !hidden || !heads) return undefined;
  const tokens = g.metadata.get('tokenizer.ggml.tokens');
  const embed = g.tensors.find((t) => t.name === 'token_embd.weight');
  const vocab =
    get('vocab_size') ??
    (Array.isArray(tokens)
      ? tokens.length
      : tokens && typeof tokens === 'object' && 'count' in tokens
        ? tokens.count
        : undefined) ??
    embed?.dims[1];
  return {
    model_type: arch === 'llama' || arch === 'mistral' ? 'llama' : arch,
    num_hidden_layers: layers,
    hidden_size: hidden,
    num_attention_heads: heads,
    num_key_value_heads: get('attention.head_count_kv') ?? heads,
    intermediate_size: get('feed_forward_length'),
    vocab_size: vocab,
    max_position_embeddings: get('context_length'),
    head_dim: get('attention.key_length'),
    tie_word_embeddings: !g.tensors.some((t) => t.name === 'output.weight'),
    num_local_experts: get('expert_count'),
    num_experts_per_tok: get('expert_used_count'),
  };
}
