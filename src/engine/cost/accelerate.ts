/**
 * Hugging Face accelerate's placement (v1.14.0, src/accelerate/utils/modeling.py), as transformers'
 * `from_pretrained(device_map=…, max_memory=…)` applies it:
 *
 *   max_memory   unset: 100% of each GPU's free memory and the available RAM (get_max_memory); with
 *                device_map "auto"/"balanced" and one GPU, 90% of it (get_balanced_memory); with several,
 *                each GPU but the last is capped at total ÷ GPUs + 1.25 × the largest no-split layer
 *   device_map   infer_auto_device_map fills GPU 0, 1, …, then mps, then cpu, then disk, in module order,
 *                never splitting a no-split module (a decoder layer); GPU 0 and the CPU keep room for the
 *                largest layer (so an offloaded layer can be brought back); tied weights share a device
 *
 * accelerate counts weights only: the KV cache and activations are added here on the devices that hold
 * the layers (the KV cache of transformers' DynamicCache follows its layer; logits on the last device).
 */
import { InputError } from '../errors';
import { naming, type TransformerSpec } from '../graph/transformer-spec';
import { deviceBytes } from '../hardware/devices';
import type { Plan } from '../plan/plan';
import { decodeStepSeconds, prefillSeconds, type DeviceWork } from './device-speed';
import {
  contextOf,
  overflowProblems,
  rangeList,
  stageDevices,
  type InferenceDevice,
  type InferenceModel,
  type InferenceReport,
  type PlanDevice,
} from './inference-devices';
import { weightBytesPerElement } from './vllm';

export const ACCELERATE_VERSION = 'v1.14.0';

export interface AccelerateModule {
  /** Module name in the model (model.embed_tokens, model.layers.3, lm_head). */
  name: string;
  bytes: number;
  /** Block index for decoder layers. */
  block?: number;
}

/** accelerate's device names: GPU ids as numbers, then "mps" (Apple), "cpu". */
export type AccelerateDevice = number | 'mps' | 'cpu' | 'disk';

export interface AcceleratePlacement {
  deviceMap: Record<string, AccelerateDevice>;
  maxMemory: Map<AccelerateDevice, number>;
  /** Plan device index of each accelerate device. */
  planIndex: Map<AccelerateDevice, number>;
  /** The map follows the plan's stages (max_memory then plays no part). */
  explicit?: boolean;
}

/**
 * infer_auto_device_map over the model's top-level modules in order (their own children are no-split
 * decoder layers and leaves), with `maxMemory` per device in bytes.
 */
export function inferAutoDeviceMap(
  modules: AccelerateModule[],
  maxMemory: Map<AccelerateDevice, number>,
  tied: [string, string][] = [],
): Record<string, AccelerateDevice> {
  const devices = [...maxMemory.keys()];
  if (!devices.includes('disk')) devices.push('disk');
  const gpus = devices.filter((d) => typeof d === 'number');
  const main: AccelerateDevice[] = devices.includes('mps') ? ['mps'] : gpus.length ? [gpus[0], 'cpu'] : ['cpu'];
  const maxLayer = Math.max(0, ...modules.map((m) => m.bytes));
  const map: Record<string, AccelerateDevice> = {};
  const tiedTo = new Map<string, string>();
  for (const [a, b] of tied) {
    tiedTo.set(a, b);
    tiedTo.set(b, a);
  }
  let current = 0;
  let used = 0;
  const queue = [...modules];
  while (queue.length) {
    const m = queue[0];
    const device = devices[current];
    if (map[m.name] !== undefined) {
      queue.shift();
      continue;
    }
    // A tied partner already placed pulls this module to its device (its weights are shared).
    const partner = tiedTo.get(m.name);
    if (partner && map[partner] !== undefined) {
      map[m.name] = map[partner];
      queue.shift();
      continue;
    }
    const limit = device === 'disk' ? Infinity : (maxMemory.get(device) ?? 0) - (main.includes(device) ? maxLayer : 0);
    if (used + m.bytes <= limit) {
      map[m.name] = device;
      used += m.bytes;
      queue.shift();
      continue;
    }
    current++;
    used = 0;
  }
  return map;
}

/** The model's modules as accelerate sees them (Hugging Face names), with their bytes at `bytesPerElement`. */
export function accelerateModules(spec: TransformerSpec, bytesPerElement: number): AccelerateModule[] {
  const n = naming(spec.family);
  const h = spec.hidden;
  const q = spec.heads * spec.headDim;
  const kv = spec.kvHeads * spec.headDim;
  const layer = h * (q + 2 * kv) + q * h + Math.max(1, spec.experts) * h * spec.ffn * (spec.gated ? 3 : 2) + 2 * h;
  const out: AccelerateModule[] = [{ name: n.embed, bytes: spec.vocab * h * bytesPerElement }];
  for (let i = 0; i < spec.layers; i++) out.push({ name: n.block(i), bytes: layer * bytesPerElement, block: i });
  if (n.finalNorm) out.push({ name: n.finalNorm, bytes: h * bytesPerElement });
  out.push({ name: n.head, bytes: spec.tied ? 0 : spec.vocab * h * bytesPerElement });
  return out;
}

/** max_memory as accelerate computes it for device_map="auto" when the plan gives none (capacities in bytes). */
export function defaultMaxMemory(
  devices: PlanDevice[],
  modules: AccelerateModule[],
): { maxMemory: Map<AccelerateDevice, number>; planIndex: Map<AccelerateDevice, number> } {
  const maxMemory = new Map<AccelerateDevice, number>();
  const planIndex = new Map<AccelerateDevice, number>();
  let gpu = 0;
  for (const d of devices) {
    const key: AccelerateDevice = d.spec.kind === 'gpu' ? gpu++ : d.spec.kind === 'apple' ? 'mps' : 'cpu';
    if (maxMemory.has(key)) continue;
    maxMemory.set(key, deviceBytes(d.spec));
    planIndex.set(key, d.index);
  }
  const gpuKeys = [...maxMemory.keys()].filter((k) => typeof k === 'number') as number[];
  if (gpuKeys.length === 1) maxMemory.set(gpuKeys[0], Math.floor(maxMemory.get(gpuKeys[0])! * 0.9));
  else if (gpuKeys.length > 1) {
    const total = modules.reduce((a, m) => a + m.bytes, 0);
    const buffer = Math.max(...modules.filter((m) => m.block !== undefined).map((m) => m.bytes), 0);
    const perGpu = Math.floor(total / gpuKeys.length) + Math.floor(1.25 * buffer);
    for (const k of gpuKeys.slice(0, -1)) maxMemory.set(k, Math.min(perGpu, maxMemory.get(k)!));
  }
  return { maxMemory, planIndex };
}

/** The plan's stage devices as a device_map: each decoder layer where its stage says, the embedding with the first layer, the final norm and head with the last (tied weights together). */
export function explicitDeviceMap(
  modules: AccelerateModule[],
  layerDevice: (number | undefined)[],
  planIndex: Map<AccelerateDevice, number>,
  devices: PlanDevice[],
): Record<string, AccelerateDevice> {
  const keyOf = (i: number | undefined): AccelerateDevice => {
    const d = i === undefined ? devices.find((x) => x.spec.kind === 'cpu')?.index : i;
    const k = [...planIndex.entries()].find(([, v]) => v === d)?.[0];
    return k ?? 'cpu';
  };
  const blocks = modules.filter((m) => m.block !== undefined);
  const first = blocks.length ? keyOf(layerDevice[blocks[0].block!]) : keyOf(undefined);
  const last = blocks.length ? keyOf(layerDevice[blocks[blocks.length - 1].block!]) : keyOf(undefined);
  const map: Record<string, AccelerateDevice> = {};
  for (const m of modules) {
    map[m.name] = m.block !== undefined ? keyOf(layerDevice[m.block]) : m === modules[0] ? first : last;
  }
  return map;
}

export function accelerateReport(
  plan: Plan,
  model: InferenceModel,
  devices: PlanDevice[],
  file: string,
): InferenceReport & { accelerate: AcceleratePlacement } {
  const spec = model.spec;
  if (!spec) {
    throw new InputError(
      file,
      'model: accelerate plans need a Hugging Face transformer (a config.json, a checkpoint with its config, or an architecture object)',
    );
  }
  const inf = plan.inference!;
  const wb = weightBytesPerElement(plan);
  const modules = accelerateModules(spec, wb);
  const { maxMemory, planIndex } = defaultMaxMemory(devices, modules);
  const n = naming(spec.family);
  const explicit = stageDevices(plan, spec.layers);
  const deviceMap = explicit
    ? explicitDeviceMap(modules, explicit, planIndex, devices)
    : inferAutoDeviceMap(modules, maxMemory, spec.tied ? [[n.embed, n.head]] : []);
  const ctx = contextOf(plan);
  const kvPerLayer = 2 * inf.batch * ctx * spec.kvHeads * spec.headDim * 2;
  const share = new Map<
    AccelerateDevice,
    { weights: number; kv: number; compute: number; layers: number[]; output: boolean }
  >();
  const of = (d: AccelerateDevice) => {
    let s = share.get(d);
    if (!s) share.set(d, (s = { weights: 0, kv: 0, compute: 0, layers: [], output: false }));
    return s;
  };
  for (const m of modules) {
    const d = deviceMap[m.name];
    const s = of(d);
    s.weights += m.bytes;
    if (m.block !== undefined) {
      s.layers.push(m.block);
      s.kv += kvPerLayer;
    }
    if (m.name === n.head) {
      s.output = true;
      // Prefill logits in fp32 for every prompt token (transformers upcasts them), and the hidden states.
      s.compute += inf.batch * inf.promptLen * spec.vocab * 4;
    }
  }
  // Activations of the prefill through the widest layer, on each device that runs layers (estimated).
  for (const s of share.values()) {
    if (s.layers.length) s.compute += inf.batch * inf.promptLen * (3 * spec.ffn + 4 * spec.hidden) * 2;
  }
  const out: InferenceDevice[] = [];
  const work: DeviceWork[] = [];
  for (const d of devices) {
    const key = [...planIndex.entries()].find(([, i]) => i === d.index)?.[0];
    const s = key !== undefined ? share.get(key) : undefined;
    const memory = { weights: s?.weights ?? 0, kvCache: s?.kv ?? 0, compute: s?.compute ?? 0, total: 0 };
    memory.total = memory.weights + memory.kvCache + memory.compute;
    out.push({
      name: d.name,
      index: d.index,
      kind: d.spec.kind,
      memory,
      capacity: deviceBytes(d.spec),
      layers: rangeList(s?.layers ?? []),
      layerList: [...(s?.layers ?? [])],
      output: s?.output ?? false,
      prefillSeconds: 0,
      decodeSeconds: 0,
    });
    if (s && (s.layers.length || s.output)) {
      work.push({
        device: d.spec,
        weightBytes: s.weights,
        kvBytesPerToken: (s.layers.length * kvPerLayer) / ctx / inf.batch,
        layers: s.layers.length,
        flopsPerToken: (2 * s.weights) / wb,
        attnFlopsPerContext: s.layers.length * 4 * spec.heads * spec.headDim,
      });
    }
  }
  const onDisk = Object.values(deviceMap).includes('disk');
  const cross = work.slice(1).map((w) => ({ bytes: spec.hidden * 2, gbps: w.device.hostLinkGBps || 32 }));
  const step = decodeStepSeconds(work, { batch: inf.batch, context: inf.promptLen + inf.genLen / 2, crossings: cross });
  const pre = prefillSeconds(work, { batch: inf.batch, tokens: inf.promptLen, crossings: cross });
  let k = 0;
  for (const d of out) {
    if (d.layerList.length || d.output) {
      d.prefillSeconds = pre.perDevice[k];
      d.decodeSeconds = step.perDevice[k];
      k++;
    }
  }
  const problems = overflowProblems(plan, out);
  if (onDisk) {
    problems.push({
      path: plan.devices?.length ? ['devices'] : ['cluster', 'gpu'],
      severity: 'warning',
      message: `accelerate offloads ${Object.entries(deviceMap)
        .filter(([, v]) => v === 'disk')
        .map(([m]) => m)
        .join(', ')} to disk: the devices do not hold the weights`,
    });
  }
  return {
    runtime: 'accelerate',
    version: ACCELERATE_VERSION,
    prefillSeconds: pre.seconds,
    decodeTokensPerSecond: inf.batch / step.seconds,
    decodeStepSeconds: step.seconds,
    devices: out,
    placement: 'runtime',
    contextCells: ctx,
    modelBytes: modules.reduce((a, m) => a + m.bytes, 0),
    notes: [
      "accelerate's device_map counts weights only; the KV cache (transformers' DynamicCache, on each layer's device) and the activations are added here, estimated",
      'speed: the llama.cpp-fitted efficiencies of each device class (not validated against transformers)',
    ],
    problems,
    accelerate: { deviceMap, maxMemory, planIndex, explicit: !!explicit },
  };
}
