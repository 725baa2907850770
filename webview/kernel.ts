import { adapterName, runPackedKernel } from '../src/gpu/runner';
import type { HostToWebview } from '../src/protocol';
import { post } from './vscode-api';

// Verification: the kernel runs here, on navigator.gpu; the host packs the weight and judges the result.
let gpuDevice: Promise<{ device: GPUDevice; name: string } | { reason: string }> | undefined;
function webgpu(): Promise<{ device: GPUDevice; name: string } | { reason: string }> {
  gpuDevice ??= (async () => {
    const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
    if (!gpu) return { reason: 'navigator.gpu is not available in this webview (WebGPU disabled or unsupported)' };
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { reason: 'navigator.gpu found no adapter' };
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
      },
    });
    device.lost.then(() => (gpuDevice = undefined));
    return { device, name: `${adapterName(adapter.info)} (webview)` };
  })().catch((e: Error) => ({ reason: `WebGPU failed: ${e.message}` }));
  return gpuDevice;
}

export async function runKernel(m: Extract<HostToWebview, { type: 'verifyRun' }>): Promise<void> {
  const g = await webgpu();
  if (!('device' in g)) return post({ type: 'verifyResult', id: m.id, fallback: g.reason });
  try {
    const r = await runPackedKernel(g.device, m.packed, m.x, m.batch, m.repeats);
    post({ type: 'verifyResult', id: m.id, y: r.y, device: g.name, seconds: r.seconds });
  } catch (e) {
    post({ type: 'verifyResult', id: m.id, error: (e as Error).message });
  }
}
