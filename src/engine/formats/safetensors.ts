import type { ByteSource } from '../bytes';
import { InputError } from '../errors';

/** The header is JSON; real ones are a few MB at most (100 MB is the reference implementation's bound). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** safetensors dtype → engine dtype name and bytes per element. */
export const SAFETENSORS_DTYPES: Record<string, [string, number]> = {
  F64: ['double', 8],
  F32: ['float', 4],
  F16: ['float16', 2],
  BF16: ['bfloat16', 2],
  F8_E4M3: ['float8e4m3fn', 1],
  F8_E5M2: ['float8e5m2', 1],
  I64: ['int64', 8],
  I32: ['int32', 4],
  I16: ['int16', 2],
  I8: ['int8', 1],
  U64: ['uint64', 8],
  U32: ['uint32', 4],
  U16: ['uint16', 2],
  U8: ['uint8', 1],
  BOOL: ['bool', 1],
};

export interface SafetensorsTensor {
  name: string;
  /** safetensors dtype code (F32, BF16, …). */
  dtype: string;
  shape: number[];
  elements: number;
  /** Absolute offset of the tensor's bytes in `file`. */
  offset: number;
  length: number;
  file: string;
}

export interface SafetensorsFile {
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
}

/** Reads a .safetensors header (8-byte little-endian length, then JSON) and checks every entry. */
export async function readSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  const fail = (why: string): never => {
    throw new InputError(source.name, why);
  };
  if (source.size < 8) fail('too short for a safetensors file (no header length)');
  const lenBytes = await source.read(0, 8);
  const dv = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8);
  const n = Number(dv.getBigUint64(0, true));
  if (n > MAX_HEADER_BYTES) {
    fail(`header declares ${n} bytes, more than the ${MAX_HEADER_BYTES} a safetensors header may have`);
  }
  if (8 + n > source.size) fail(`header declares ${n} bytes but the file has only ${source.size - 8} after the length`);
  const text = new TextDecoder('utf-8', { fatal: true });
  let header: unknown;
  try {
    header = JSON.parse(text.decode(await source.read(8, n)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataSize = source.size - dataStart;
  const tensors: SafetensorsTensor[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry && typeof entry === 'object') {
        metadata = Object.fromEntries(Object.entries(entry as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') fail(`tensor '${name}': entry is not an object`);
    if (typeof e.dtype !== 'string' || !SAFETENSORS_DTYPES[e.dtype]) {
      fail(`tensor '${name}': unknown dtype ${JSON.stringify(e.dtype)}`);
    }
    if (!Array.isArray(e.shape) || e.shape.length > 64 || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor '${name}': shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    }
    const off = e.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      off[1] < off[0]
    ) {
      fail(`tensor '${name}': data_offsets ${JSON.stringify(off)} is not [begin, end]`);
    }
    const [begin, end] = off as [number, number];
    if (end > dataSize) {
      fail(`tensor '${name}': data [${begin}, ${end}) lies past the end of the data (${dataSize} bytes)`);
    }
    const shape = e.shape as number[];
    const elements = shape.reduce((a, b) => a * b, 1);
    const bytes = elements * SAFETENSORS_DTYPES[e.dtype as string][1];
    if (bytes !== end - begin) {
      fail(
        `tensor '${name}': shape [${shape.join(', ')}] of ${e.dtype} needs ${bytes} bytes, data_offsets hold ${end - begin}`,
      );
    }
    tensors.push({
      name,
      dtype: e.dtype as string,
      shape,
      elements,
      offset: dataStart + begin,
      length: end - begin,
      file: source.name,
    });
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].offset < sorted[i - 1].offset + sorted[i - 1].length) {
      fail(`tensors '${sorted[i - 1].name}' and '${sorted[i].name}' overlap`);
    }
  }
  return { tensors, metadata };
}

/** Reads `model.safetensors.index.json`: its weight map names the shard of every tensor. */
export function parseSafetensorsIndex(json: Record<string, unknown>, file: string): Map<string, string[]> {
  const map = json.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) {
    throw new InputError(file, 'weight_map is missing: not a safetensors index');
  }
  const shards = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || !shard) throw new InputError(file, `weight_map['${tensor}'] is not a file name`);
    if (!shards.has(shard)) shards.set(shard, []);
    shards.get(shard)!.push(tensor);
  }
  if (shards.size > 10000) throw new InputError(file, `${shards.size} shards is more than Layerplan opens`);
  return shards;
}
