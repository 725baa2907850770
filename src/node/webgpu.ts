/// <reference types="@webgpu/types" />
import * as fs from 'fs';
import * as os from 'os';
import { adapterName } from '../gpu/runner';
import { esmImport } from './esm-import';

/** Debian's chromium package ships SwiftShader's Vulkan driver: Dawn runs on it where no GPU is. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export type NodeGpu =
  { device: GPUDevice; name: string; instance: GPU; close: () => void } | { device?: undefined; reason: string };

/**
 * A WebGPU device in Node through the npm package `webgpu` (Dawn). Sets VK_ICD_FILENAMES to
 * SwiftShader's driver when that file exists and nothing else is configured. Never throws: where
 * no adapter exists it says why, and callers fall back to the CPU reference.
 */
export async function nodeGpu(): Promise<NodeGpu> {
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && fs.existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  // SwiftShader's WSI complains on stderr without one; compute needs no display.
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = os.tmpdir();
  let mod: { create: (flags: string[]) => GPU };
  try {
    mod = (await esmImport('webgpu')) as typeof mod;
  } catch (e) {
    return {
      reason: `the npm package 'webgpu' (Dawn) is not installed or does not load here: ${(e as Error).message.split('\n')[0]}`,
    };
  }
  try {
    const gpu = mod.create([]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      const hint = fs.existsSync(SWIFTSHADER_ICD)
        ? 'no Vulkan driver answered (is libvulkan1 installed?)'
        : `no Vulkan driver (Debian: apt-get install chromium libvulkan1 provides SwiftShader at ${SWIFTSHADER_ICD})`;
      return { reason: `no WebGPU adapter: ${hint}` };
    }
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
      },
    });
    // The GPU instance must outlive the device: Dawn tears the device down when it is collected.
    return { device, name: adapterName(adapter.info), instance: gpu, close: () => device.destroy() };
  } catch (e) {
    return { reason: `WebGPU failed to start: ${(e as Error).message}` };
  }
}
