/**
 * Devices of an inference plan (DESIGN.md `devices`): GPUs of any kind, Apple silicon with its unified
 * memory, and the CPU as its DRAM (kind-speed-channels). One lookup for all of them; the figures and
 * their sources live in devices.data.ts (consumer, workstation, Apple) and catalog.ts (datacenter).
 *
 * Speed classes group devices whose software path is the same (CUDA on GeForce / workstation cards,
 * CUDA on datacenter parts, ROCm, Metal, the CPU): cost/device-speed.ts fits one efficiency per class.
 */
import { GPUS, closest } from './catalog';
import { DEVICE_DATA, DEVICE_SOURCES } from './devices.data';

export type DeviceKind = 'gpu' | 'apple' | 'cpu';
export type SpeedClass = 'nvidia' | 'nvidia-datacenter' | 'amd' | 'apple' | 'cpu';

export interface DeviceSpec {
  id: string;
  name: string;
  kind: DeviceKind;
  speedClass: SpeedClass;
  /** Memory the device holds, GB (1e9 bytes): VRAM, unified memory, or the host's RAM. */
  memoryGB: number;
  /** Apple chips: the configurations sold. */
  memoryOptionsGB?: number[];
  /** Peak memory bandwidth, GB/s. */
  bandwidthGBps: number;
  /** Dense FP16 tensor TFLOP/s (NVIDIA: FP32 accumulate), Apple: GPU FP32 ALU rate, CPU: an estimate (see cpuDevice). */
  tflops: number;
  /** The device's link to the host per direction, GB/s (PCIe); 0 for unified memory and the CPU itself. */
  hostLinkGBps: number;
  /** Figures computed rather than read from a source, and how. */
  derived: string[];
  source: string;
}

/** Datacenter parts (catalog.ts, vendor datasheets) as devices; their host link is the PCIe generation of the part. */
const DATACENTER: DeviceSpec[] = GPUS.map((g) => ({
  id: g.id,
  name: g.name,
  kind: 'gpu',
  speedClass: g.id.startsWith('mi')
    ? 'amd'
    : g.id === 'rtx-4090' || g.id === 'l40s' || g.id === 'l4'
      ? 'nvidia'
      : 'nvidia-datacenter',
  memoryGB: g.memoryGB,
  bandwidthGBps: g.hbmGBps,
  tflops: g.tflops.fp16 ?? g.tflops.bf16 ?? 0,
  // A100 is PCIe 4.0; H100, H200, B200 and MI300X PCIe 5.0 (their datasheets); L40S, L4, RTX 4090 PCIe 4.0 x16.
  hostLinkGBps: /^a100|^l4|^rtx/.test(g.id) ? 31.5 : 63,
  derived: [],
  source: g.source,
}));

function sourceText(keys: string[]): string {
  return keys.map((k) => (DEVICE_SOURCES[k] ? `${DEVICE_SOURCES[k].title}` : k)).join('; ');
}

const LISTED: DeviceSpec[] = [
  ...DEVICE_DATA.filter((d) => !GPUS.some((g) => g.id === d.id)).map<DeviceSpec>((d) => ({
    id: d.id,
    name: d.name,
    kind: d.kind,
    speedClass: d.kind === 'apple' ? 'apple' : /^a100|^h100/.test(d.id) ? 'nvidia-datacenter' : 'nvidia',
    memoryGB: d.memoryGB,
    memoryOptionsGB: d.memoryOptionsGB,
    bandwidthGBps: d.bandwidthGBps,
    tflops: d.tflops,
    hostLinkGBps: d.hostLinkGBps,
    derived: d.derived ?? [],
    source: sourceText(d.sources),
  })),
  ...DATACENTER,
];

const ALIASES: Record<string, string> = {
  a6000: 'rtx-a6000',
  'rtx-6000': 'rtx-6000-ada',
  '6000-ada': 'rtx-6000-ada',
  'rtx-3060': 'rtx-3060-12gb',
  'rtx-3080': 'rtx-3080-10gb',
  'a100-40gb-sxm': 'a100-40gb',
  'a100-80gb-sxm': 'a100-80gb',
  a100: 'a100-80gb',
  h100: 'h100-sxm',
  rtx4090: 'rtx-4090',
  '4090': 'rtx-4090',
  rtx3090: 'rtx-3090',
  '3090': 'rtx-3090',
  mi300: 'mi300x',
};

/** GPU and Apple ids a plan's devices may name (ids, then aliases). */
export const DEVICE_GPU_NAMES: readonly string[] = [...LISTED.map((d) => d.id), ...Object.keys(ALIASES)];

/** DRAM configurations offered as examples (any kind-speed-channels id parses). */
export const CPU_EXAMPLES: readonly string[] = [
  'ddr4-2666-2ch',
  'ddr4-3200-2ch',
  'ddr5-4800-2ch',
  'ddr5-5600-2ch',
  'ddr5-6000-2ch',
  'ddr5-6400-2ch',
  'ddr4-3200-8ch',
  'ddr5-4800-8ch',
  'ddr5-4800-12ch',
  'ddr5-6000-12ch',
];

/** The GPU or Apple chip with this id or alias. */
export function findDeviceGpu(id: string): DeviceSpec | undefined {
  const key = id.toLowerCase().trim();
  return LISTED.find((d) => d.id === key) ?? LISTED.find((d) => d.id === ALIASES[key]);
}

export function closestDeviceGpu(id: string): string | undefined {
  return closest(
    id,
    LISTED.map((d) => d.id),
  );
}

/** RAM assumed when a CPU device gives no memoryGB. */
export const DEFAULT_CPU_MEMORY_GB = 32;

/**
 * CPU prefill throughput per DRAM channel, TFLOP/s: llama.cpp's prompt processing on a 2-channel laptop
 * CPU (Apple M2, 4 threads: pp512 60.5 t/s on Llama-2-7B Q4_0 = 0.82 TFLOP/s; bench.json in
 * test/fixtures/llamacpp, the one CPU point of the speed fit). Core counts grow with channels, so this
 * rough rule scales with them (an 8-channel AMX Xeon, held out, ran 3.7 TFLOP/s); a device may give "tflops".
 */
export const CPU_TFLOPS_PER_CHANNEL = 0.41;

/** A CPU by its DRAM: ddr4-3200-2ch = DDR4 at 3200 MT/s on 2 channels of 64 bits = 51.2 GB/s. */
export function cpuDevice(id: string, memoryGB?: number): DeviceSpec | undefined {
  const m = /^(ddr4|ddr5|lpddr4x|lpddr5|lpddr5x)-(\d{3,5})-(\d{1,2})ch$/.exec(id.toLowerCase().trim());
  if (!m) return undefined;
  const mts = Number(m[2]);
  const channels = Number(m[3]);
  if (mts < 400 || mts > 20000 || channels < 1 || channels > 24) return undefined;
  const bandwidthGBps = (mts * 8 * channels) / 1000;
  return {
    id: id.toLowerCase().trim(),
    name: `${m[1].toUpperCase()}-${mts} × ${channels} channel${channels > 1 ? 's' : ''}`,
    kind: 'cpu',
    speedClass: 'cpu',
    memoryGB: memoryGB ?? DEFAULT_CPU_MEMORY_GB,
    bandwidthGBps,
    tflops: CPU_TFLOPS_PER_CHANNEL * channels,
    hostLinkGBps: 0,
    derived: [
      `bandwidthGBps: ${mts} MT/s × 8 bytes × ${channels} channels (theoretical peak; ${sourceText(['negarinfo', 'apc_ddr'])})`,
      `tflops: ${CPU_TFLOPS_PER_CHANNEL} TFLOP/s per channel, a rough rule from two llama.cpp CPU benchmarks`,
    ],
    source: sourceText(['negarinfo', 'ptcomputador', 'apc_ddr']),
  };
}

/**
 * A device's memory in bytes. Vendors sell memory in binary units under the name "GB": a 24 GB card has
 * 24 GiB (nvidia-smi: 24564 MiB on an RTX 4090), a 64 GB Mac 64 GiB, a 64 GB DIMM kit 64 GiB.
 */
export function deviceBytes(d: { memoryGB: number }): number {
  return d.memoryGB * 2 ** 30;
}

/** What a plan's device entry names, with its memory (and optional overrides) applied. */
export interface DeviceRefLike {
  gpu?: string;
  cpu?: string;
  memoryGB?: number;
  bandwidthGBps?: number;
  tflops?: number;
}

export function resolveDevice(ref: DeviceRefLike): DeviceSpec | undefined {
  let d: DeviceSpec | undefined;
  if (ref.cpu !== undefined) d = cpuDevice(ref.cpu, ref.memoryGB);
  else if (ref.gpu !== undefined) {
    const g = findDeviceGpu(ref.gpu);
    d = g && ref.memoryGB !== undefined ? { ...g, memoryGB: ref.memoryGB } : g;
  }
  if (!d) return undefined;
  if (ref.bandwidthGBps !== undefined) d = { ...d, bandwidthGBps: ref.bandwidthGBps };
  if (ref.tflops !== undefined) d = { ...d, tflops: ref.tflops };
  return d;
}
