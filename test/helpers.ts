import * as fs from 'fs';
import * as path from 'path';
import { MemoryByteSource } from '../src/engine/bytes';
import { openModel } from '../src/engine/formats/registry';
import type { ModelGraph } from '../src/engine/graph/model-graph';
import { FileByteSource } from '../src/node/file-source';
import { nodeGpu, type NodeGpu } from '../src/node/webgpu';

export const REPO = path.resolve(__dirname, '..', '..');
export const SHARED_FIXTURES = path.resolve(REPO, '..', 'shared', 'fixtures');
export const OUR_MODELS = path.join(REPO, 'test', 'fixtures', 'models');
/** Real exports made outside this repository (test/fixtures/external/SOURCES.md says where each comes from). */
export const EXTERNAL_MODELS = path.join(REPO, 'test', 'fixtures', 'external');

/** A model file opened as a graph (its dims bound as `bindings` says). */
export async function openGraph(file: string, bindings?: Record<string, number>): Promise<ModelGraph> {
  const src = await FileByteSource.open(file);
  try {
    return await openModel(src, { bindings });
  } finally {
    await src.close();
  }
}

/** Blocks per stage: the backbone.stageN.blockK layer names counted by N (0 for a stage with none). */
export function stageSizes(names: string[]): number[] {
  const sizes: number[] = [];
  for (const n of names) {
    const m = /^backbone\.stage(\d+)\.block\d+$/.exec(n);
    if (m) sizes[Number(m[1]) - 1] = (sizes[Number(m[1]) - 1] ?? 0) + 1;
  }
  return [...sizes].map((s) => s ?? 0);
}

/** Every file under `dir` whose name ends with `suffix`. */
export function walk(dir: string, suffix: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p, suffix));
    else if (entry.name.endsWith(suffix)) out.push(p);
  }
  return out.sort();
}

export function memorySource(file: string): MemoryByteSource {
  return new MemoryByteSource(file, new Uint8Array(fs.readFileSync(file)));
}

/** A deterministic PRNG (mulberry32) for fuzzing. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A minimal protobuf writer for crafting malformed and huge test files by hand. */
export class PbWriter {
  private parts: number[] = [];
  varint(v: number): this {
    let n = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(n & 0x7fn);
      n >>= 7n;
      if (n) b |= 0x80;
      this.parts.push(b);
    } while (n);
    return this;
  }
  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }
  int(field: number, v: number): this {
    return this.tag(field, 0).varint(v);
  }
  bytes(field: number, data: Uint8Array | number[]): this {
    this.tag(field, 2).varint(data.length);
    this.parts.push(...data);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, Array.from(Buffer.from(s, 'utf8')));
  }
  message(field: number, m: PbWriter): this {
    return this.bytes(field, m.finish());
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/**
 * A WebGPU device for a suite (Dawn in Node): skips the suite when none exists, except under
 * LAYERPLAN_REQUIRE_WEBGPU=1 (npm test), where a missing adapter fails it.
 */
export async function suiteGpu(ctx: Mocha.Context): Promise<Extract<NodeGpu, { device: GPUDevice }>> {
  const gpu = await nodeGpu();
  if (!gpu.device) {
    if (process.env.LAYERPLAN_REQUIRE_WEBGPU === '1') throw new Error(`LAYERPLAN_REQUIRE_WEBGPU=1 but ${gpu.reason}`);
    console.log(`      (skipped: ${gpu.reason})`);
    ctx.skip();
    throw new Error('skipped');
  }
  return gpu;
}
