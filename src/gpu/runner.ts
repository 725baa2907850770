/// <reference types="@webgpu/types" />
import type { PackedWeight } from '../engine/quant/pack';
import { kernelParams, kernelSource, kernelSplits, metaWords, reduceSource, WORKGROUP } from '../engine/quant/wgsl';

/**
 * Runs the packed-weight kernel on a WebGPU device: the same code in Node (Dawn, src/node/webgpu.ts)
 * and in the webview (navigator.gpu). Usage flags are spelled as numbers so that this module needs
 * no WebGPU globals (GPUBufferUsage is a browser global Dawn only installs on request).
 */
const STORAGE = 0x80;
const UNIFORM = 0x40;
const COPY_DST = 0x08;
const COPY_SRC = 0x04;
const MAP_READ = 0x01;

export interface KernelRun {
  /** y [batch, rows], row-major. */
  y: Float32Array;
  /** Seconds per run (median of `repeats` timed runs after one warm-up), queue submission to completion. */
  seconds: number;
  /** Bytes of packed weight (codes and scales) each run reads. */
  weightBytes: number;
}

/** A short description of an adapter, for reports ("SwiftShader Device (Subzero) · google"). */
export function adapterName(
  info: { vendor?: string; architecture?: string; device?: string; description?: string } | undefined,
): string {
  if (!info) return 'WebGPU adapter';
  const parts = [info.description || info.device, info.vendor, info.architecture].filter((s) => !!s);
  return parts.length ? [...new Set(parts)].join(' · ') : 'WebGPU adapter';
}

function bytesOf(a: ArrayBufferView): number {
  return Math.max(4, Math.ceil(a.byteLength / 4) * 4);
}

export async function runPackedKernel(
  device: GPUDevice,
  p: PackedWeight,
  x: Float32Array,
  batch: number,
  repeats = 0,
  splitsWanted?: number,
): Promise<KernelRun> {
  if (x.length !== batch * p.cols) throw new Error(`input has ${x.length} values, expected ${batch}×${p.cols}`);
  const meta = metaWords(p);
  const lut = p.lut ?? new Float32Array(1);
  const splits = Math.max(1, splitsWanted ?? kernelSplits(p));
  const params = kernelParams(p, splits);
  const limit = device.limits.maxStorageBufferBindingSize;
  for (const [what, a] of [
    ['packed codes', p.codes],
    ['scales', meta],
    ['input', x],
  ] as const) {
    if (a.byteLength > limit) {
      throw new Error(
        `the layer's ${what} (${a.byteLength} bytes) exceed this device's storage buffer limit (${limit} bytes)`,
      );
    }
  }
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: kernelSource(p, batch) });
  // An explicit layout: 'auto' would drop the bindings a format does not use (the table, the scales).
  const types: GPUBufferBindingType[] = [
    'read-only-storage',
    'read-only-storage',
    'read-only-storage',
    'read-only-storage',
    'storage',
    'uniform',
  ];
  const layout = device.createBindGroupLayout({
    entries: types.map((type, binding) => ({ binding, visibility: 4 /* COMPUTE */, buffer: { type } })),
  });
  // Synchronous creation: Dawn's async pipeline compilation aborts the Node process on SwiftShader.
  const pipeline = device.createComputePipeline({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: 'main' },
  });
  const reduceTypes: GPUBufferBindingType[] = ['read-only-storage', 'storage', 'uniform'];
  const reduceLayout =
    splits > 1
      ? device.createBindGroupLayout({
          entries: reduceTypes.map((type, binding) => ({ binding, visibility: 4, buffer: { type } })),
        })
      : undefined;
  const reducePipeline =
    reduceLayout &&
    device.createComputePipeline({
      layout: device.createPipelineLayout({ bindGroupLayouts: [reduceLayout] }),
      compute: { module: device.createShaderModule({ code: reduceSource() }), entryPoint: 'main' },
    });
  const upload = (a: ArrayBufferView, usage: number) => {
    const b = device.createBuffer({ size: bytesOf(a), usage: usage | COPY_DST });
    device.queue.writeBuffer(b, 0, a.buffer as ArrayBuffer, a.byteOffset, a.byteLength);
    return b;
  };
  const codesBuf = upload(p.codes, STORAGE);
  const metaBuf = upload(meta, STORAGE);
  const lutBuf = upload(lut, STORAGE);
  const xBuf = upload(x, STORAGE);
  const paramsBuf = upload(params, UNIFORM);
  const n = batch * p.rows;
  const ySize = bytesOf(new Float32Array(n));
  const yBuf = device.createBuffer({ size: ySize, usage: STORAGE | COPY_SRC });
  // With split-K the kernel writes one partial y per split; the reduction sums them into y.
  const partBuf = splits > 1 ? device.createBuffer({ size: ySize * splits, usage: STORAGE }) : yBuf;
  const readBuf = device.createBuffer({ size: ySize, usage: MAP_READ | COPY_DST });
  const reduceParams = upload(Uint32Array.from([n, splits, 0, 0]), UNIFORM);
  const bind = device.createBindGroup({
    layout,
    entries: [codesBuf, metaBuf, lutBuf, xBuf, partBuf, paramsBuf].map((buffer, binding) => ({
      binding,
      resource: { buffer },
    })),
  });
  const reduceBind =
    reduceLayout &&
    device.createBindGroup({
      layout: reduceLayout,
      entries: [partBuf, yBuf, reduceParams].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  const grid = (threads: number) => {
    const groups = Math.ceil(threads / WORKGROUP);
    const gx = Math.min(groups, 65535);
    return [gx, Math.ceil(groups / gx)] as const;
  };
  const [gx, gy] = grid(p.rows);
  const [rx, ry] = grid(n);
  const dispatch = (copy: boolean) => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(gx, gy, splits);
    pass.end();
    if (reducePipeline && reduceBind) {
      // A second pass: WebGPU orders passes, so every partial sum is written before it is read.
      const sum = enc.beginComputePass();
      sum.setPipeline(reducePipeline);
      sum.setBindGroup(0, reduceBind);
      sum.dispatchWorkgroups(rx, ry);
      sum.end();
    }
    if (copy) enc.copyBufferToBuffer(yBuf, 0, readBuf, 0, ySize);
    device.queue.submit([enc.finish()]);
  };
  try {
    dispatch(true);
    const err = await device.popErrorScope();
    if (err) throw new Error(`WebGPU validation failed for the ${p.format} kernel: ${err.message}`);
    await readBuf.mapAsync(1);
    const y = new Float32Array(readBuf.getMappedRange().slice(0, batch * p.rows * 4));
    readBuf.unmap();
    const times: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      dispatch(false);
      await device.queue.onSubmittedWorkDone();
      times.push((performance.now() - t0) / 1000);
    }
    times.sort((a, b) => a - b);
    const weightBytes = p.codes.byteLength + meta.byteLength;
    return { y, seconds: times.length ? times[times.length >> 1] : NaN, weightBytes };
  } finally {
    for (const b of new Set([codesBuf, metaBuf, lutBuf, xBuf, paramsBuf, yBuf, partBuf, readBuf, reduceParams])) {
      b.destroy();
    }
  }
}
