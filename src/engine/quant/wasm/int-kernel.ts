import { WASM_BASE64 } from './int-quant.generated';

/** The slice of the WebAssembly JS API the engine uses (the ES2022 lib does not declare it). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
};
interface WasmMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** The int-quant WebAssembly SIMD kernels (int-quant.wat), instantiated on first use; undefined where WebAssembly SIMD is missing. */
interface Kernels {
  memory: WasmMemory;
  group_range(x: number, n: number, block: number, outA: number, outB: number, asym: number): void;
  quant_error(
    x: number,
    y: number,
    n: number,
    block: number,
    scales: number,
    invs: number,
    zeros: number,
    qmin: number,
    qmax: number,
    out: number,
  ): void;
  metrics(x: number, y: number, n: number, out: number): void;
}

/**
 * The kernel memory layout for a tensor of n floats: x at 0, the per-group arrays, the 5 result
 * sums, then a y buffer the JS quantizers can write into directly (so metrics need no copy).
 */
export function kernelLayout(n: number): {
  xOff: number;
  groupsOff: number;
  outOff: number;
  yOff: number;
  bytes: number;
} {
  const groupsOff = n * 4;
  const outOff = Math.ceil((groupsOff + 5 * 4 * Math.ceil(n / 4)) / 16) * 16;
  const yOff = outOff + 64;
  return { xOff: 0, groupsOff, outOff, yOff, bytes: yOff + n * 4 };
}

let kernels: Kernels | null | undefined;

export function intKernels(): Kernels | undefined {
  if (kernels === undefined) {
    try {
      const bin = atob(WASM_BASE64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      kernels = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as Kernels;
    } catch {
      kernels = null;
    }
  }
  return kernels ?? undefined;
}

/** Makes the kernel memory at least `bytes` long and returns it. */
export function ensureMemory(k: Kernels, bytes: number): ArrayBuffer {
  const have = k.memory.buffer.byteLength;
  if (bytes > have) k.memory.grow(Math.ceil((bytes - have) / 65536));
  return k.memory.buffer;
}
