/**
 * Inference on the user's own devices (DESIGN.md `devices`, `stages[].device`, `inference.runtime`):
 * which layers go where under the runtime's rules, the memory of each device (weights, KV cache,
 * compute) against its capacity, and prefill / decode speed. llama.cpp here (llamacpp.ts holds its
 * rules); vLLM and accelerate in vllm.ts and accelerate.ts, sharing the report.
 */
import { InputError } from '../errors';
import type { GgufModel } from '../formats/gguf-model';
import type { TransformerSpec } from '../graph/transformer-spec';
import { GPUS } from '../hardware/catalog';
import { cpuDevice, resolveDevice, type DeviceSpec, deviceBytes } from '../hardware/devices';
import { globMatch } from '../glob';
import type { Plan } from '../plan/plan';
import { parseLayerRange } from '../plan/plan';
import { DEFAULT_BUILD, fileType, synthesizeGguf } from '../quant/gguf-filetypes';
import { decodeStepSeconds, prefillSeconds, type DeviceWork } from './device-speed';
import {
  BUILDS,
  KV_TYPES,
  LLAMACPP_DEFAULTS,
  kvLayerBytes,
  llamaCppMemory,
  nglAndSplit,
  parseBuild,
  tensorLayer,
  type LlamaCppOptions,
} from './llamacpp';

export type Runtime = 'llama.cpp' | 'vllm' | 'accelerate';

export interface DeviceMemory {
  weights: number;
  kvCache: number;
  compute: number;
  total: number;
}

/** One device of the report (DESIGN.md: `{name, memory{weights, kvCache, compute, total}, capacity, layers}`). */
export interface InferenceDevice {
  /** `<index>:<catalog id>` for a device of the plan; `host` for the host's RAM when the plan lists no CPU. */
  name: string;
  /** Index into the plan's devices (−1 for the implicit host). */
  index: number;
  kind: 'gpu' | 'apple' | 'cpu';
  memory: DeviceMemory;
  /** Bytes it holds; null where the plan does not say (the implicit host). */
  capacity: number | null;
  /** Its repeating layers as a range ("0-15"), as stages[].layers spells them. */
  layers: string;
  /** Block indices. */
  layerList: number[];
  /** It holds the output layer (final norm and lm_head). */
  output: boolean;
  /** Its share of prefill and of one decode step, seconds. */
  prefillSeconds: number;
  decodeSeconds: number;
}

/** A problem of the placement (a device over its memory, a setting the runtime refuses), at a plan path. */
export interface InferenceProblem {
  path: (string | number)[];
  message: string;
  severity: 'error' | 'warning';
}

export interface InferenceReport {
  runtime: Runtime;
  /** The runtime version whose rules were applied (llama.cpp build, vLLM / accelerate release). */
  version: string;
  prefillSeconds: number;
  decodeTokensPerSecond: number;
  /** Seconds of one decode step for the whole batch. */
  decodeStepSeconds: number;
  devices: InferenceDevice[];
  /** How layers were placed. */
  placement: 'stages' | 'gpuLayers' | 'auto-fit' | 'runtime';
  /** llama.cpp's -ngl / -ts for this placement, when it can say it (else tensor overrides). */
  gpuLayers?: number;
  tensorSplit?: number[];
  /** Block index → plan device index (−1 host), output layer last (llama.cpp). */
  layerDevice?: number[];
  /** The context the runtime allocates (after padding), tokens. */
  contextCells: number;
  /** GGUF file type and bytes of the model as placed (llama.cpp). */
  fileType?: string;
  modelBytes: number;
  /** What is estimated rather than derived, and what the runtime cannot do. */
  notes: string[];
  problems: InferenceProblem[];
}

/** The model as the inference engine needs it: a real GGUF (llama.cpp reads it as is), or a transformer to synthesize from. */
export interface InferenceModel {
  gguf?: GgufModel;
  spec?: TransformerSpec;
}

/** A plan device resolved against the catalogs. */
export interface PlanDevice {
  index: number;
  name: string;
  spec: DeviceSpec;
}

/** The plan's devices, or the cluster's GPUs as devices; unknown ids are an InputError naming the field. */
export function planDevices(plan: Plan, file: string): PlanDevice[] {
  if (plan.devices?.length) {
    return plan.devices.map((d, i) => {
      const spec = resolveDevice(d);
      if (!spec) {
        throw new InputError(
          file,
          `devices[${i}]: unknown ${d.cpu !== undefined ? `CPU '${d.cpu}'` : `GPU '${d.gpu}'`}`,
        );
      }
      return { index: i, name: `${i}:${spec.id}`, spec };
    });
  }
  const gpu = GPUS.find((g) => g.id === plan.cluster?.gpu) ?? resolveDevice({ gpu: plan.cluster?.gpu ?? '' });
  const spec = gpu && 'hbmGBps' in gpu ? resolveDevice({ gpu: gpu.id }) : (gpu as DeviceSpec | undefined);
  if (!spec) throw new InputError(file, `cluster.gpu: unknown GPU '${plan.cluster?.gpu}'`);
  const withMemory = plan.cluster.memoryGB ? { ...spec, memoryGB: plan.cluster.memoryGB } : spec;
  const n = (plan.cluster.gpusPerNode ?? 1) * (plan.cluster.nodes ?? 1);
  return Array.from({ length: n }, (_, i) => ({ index: i, name: `${i}:${spec.id}`, spec: withMemory }));
}

/** Does this plan use the device model (a `devices` list, or a named runtime)? */
export function usesDevices(plan: Plan): boolean {
  return !plan.training && !!plan.inference && (!!plan.devices?.length || plan.inference.runtime !== undefined);
}

export function runtimeOf(plan: Plan): Runtime {
  return plan.inference?.runtime ?? 'llama.cpp';
}

/** llama.cpp's -c: the cache all slots share (-np = batch): contextLen, else batch × (prompt + generation). */
export function llamaContext(plan: Plan): number {
  const inf = plan.inference!;
  return inf.contextLen ?? Math.max(1, inf.batch) * (inf.promptLen + inf.genLen);
}

/** The context a plan asks the runtime for per request: contextLen, else prompt + generation. */
export function contextOf(plan: Plan): number {
  const inf = plan.inference!;
  return inf.contextLen ?? inf.promptLen + inf.genLen;
}

/** The GGUF file type a plan's precision names for llama.cpp (precision.default; bf16/fp16 → f16/bf16), default q4_k_m where there is none. */
export function planFileType(plan: Plan): string {
  const d = plan.precision?.default?.toLowerCase();
  if (!d) return 'f16';
  if (d === 'fp16') return 'f16';
  if (d === 'fp32') return 'f32';
  return fileType(d) ?? 'f16';
}

/** The model llama.cpp loads: the GGUF as it is, or the plan's file type built from the transformer, with precision rules as --tensor-type overrides. */
export function llamaModelOf(plan: Plan, model: InferenceModel, build: number, file: string): GgufModel {
  if (model.gguf) return model.gguf;
  if (!model.spec) {
    throw new InputError(
      file,
      'model: llama.cpp needs a transformer (a GGUF, a checkpoint with its config.json, a config or an architecture object)',
    );
  }
  const overrides = (plan.precision?.rules ?? [])
    .map((r) => ({ r, t: ggmlTypeOf(r.format) }))
    .filter((x): x is { r: { match: string; format: string }; t: string } => !!x.t)
    .map(({ r, t }) => ({ test: (name: string) => globMatch(r.match, name), type: t }));
  return synthesizeGguf(model.spec, planFileType(plan), { build, overrides: overrides.length ? overrides : undefined });
}

/** A single ggml type a precision rule may name for one tensor (q8_0, q6_k, fp16 …). */
function ggmlTypeOf(format: string): string | undefined {
  const f = format.toLowerCase();
  const map: Record<string, string> = { fp16: 'F16', f16: 'F16', bf16: 'BF16', fp32: 'F32', f32: 'F32' };
  if (map[f]) return map[f];
  if (/^(q[2-6]_k|q[458]_[01]|q8_0|iq4_nl|iq4_xs)$/.test(f)) return f.toUpperCase();
  return undefined;
}

export function llamaBuild(plan: Plan): number {
  return parseBuild(plan.inference?.runtimeVersion) ?? DEFAULT_BUILD;
}

/** Flash attention as llama.cpp resolves it: the plan's flag, else on (auto) since b6325, off before. */
export function flashAttentionOf(plan: Plan, build: number): boolean {
  return plan.inference?.flashAttention ?? build >= BUILDS.faValue;
}

export function llamaOptions(plan: Plan, build: number): LlamaCppOptions {
  const inf = plan.inference!;
  const kv = inf.kvCache ?? LLAMACPP_DEFAULTS.typeK;
  return {
    build,
    nCtx: llamaContext(plan),
    nSeq: Math.max(1, inf.batch),
    nUbatch: LLAMACPP_DEFAULTS.nUbatch,
    flashAttention: flashAttentionOf(plan, build),
    typeK: kv,
    typeV: kv,
    offloadKqv: true,
  };
}

/** Checks of the inference settings that need no placement (the runtime would refuse them). */
export function inferenceSettingProblems(plan: Plan): InferenceProblem[] {
  const out: InferenceProblem[] = [];
  const inf = plan.inference;
  if (!inf) return out;
  const runtime = runtimeOf(plan);
  const kv = inf.kvCache;
  if (runtime === 'llama.cpp') {
    const build = llamaBuild(plan);
    if (kv && !(KV_TYPES as readonly string[]).includes(kv)) {
      out.push({
        path: ['inference', 'kvCache'],
        message: `inference.kvCache: llama.cpp's cache types are ${KV_TYPES.join(', ')} (not '${kv}')`,
        severity: 'error',
      });
    } else if (kv && !['f32', 'f16', 'bf16'].includes(kv) && !flashAttentionOf(plan, build)) {
      out.push({
        path: ['inference', 'flashAttention'],
        message: `inference.flashAttention: a quantized V cache (${kv}) requires flash attention; llama.cpp refuses to start ("quantized V cache was requested, but this requires Flash Attention")`,
        severity: 'error',
      });
    }
    if (inf.runtimeVersion !== undefined && parseBuild(inf.runtimeVersion) === undefined) {
      out.push({
        path: ['inference', 'runtimeVersion'],
        message: `inference.runtimeVersion: '${inf.runtimeVersion}' is not a llama.cpp build (bNNNN); the rules of b${DEFAULT_BUILD} apply`,
        severity: 'warning',
      });
    }
    if (inf.flashAttention && build < BUILDS.flashAttention) {
      out.push({
        path: ['inference', 'flashAttention'],
        message: `inference.flashAttention: llama.cpp has flash attention from b${BUILDS.flashAttention}; b${build} has none`,
        severity: 'error',
      });
    }
  } else if (runtime === 'vllm') {
    if (kv && !['auto', 'bf16', 'f16', 'fp8', 'fp8_e4m3', 'fp8_e5m2'].includes(kv)) {
      out.push({
        path: ['inference', 'kvCache'],
        message: `inference.kvCache: vLLM's --kv-cache-dtype takes auto, bfloat16, float16, fp8, fp8_e4m3, fp8_e5m2 (not '${kv}')`,
        severity: 'error',
      });
    }
  }
  for (const f of ['gpuLayers', 'tensorSplit', 'flashAttention'] as const) {
    if (runtime !== 'llama.cpp' && inf[f] !== undefined && !(f === 'flashAttention')) {
      out.push({
        path: ['inference', f],
        message: `inference.${f}: llama.cpp's setting; ${runtime} places layers by its own rules and ignores it`,
        severity: 'warning',
      });
    }
  }
  return out;
}

/** Block ranges of a list of indices ("0-11,14"). */
export function rangeList(ix: number[]): string {
  const s = [...ix].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length;) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    parts.push(j > i ? `${s[i]}-${s[j]}` : `${s[i]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Explicit stages with devices → the device of each layer (plan device indices), undefined where no stage names one. */
export function stageDevices(plan: Plan, nLayer: number): (number | undefined)[] | undefined {
  if (!plan.stages?.some((s) => s.device !== undefined)) return undefined;
  const out: (number | undefined)[] = Array(nLayer).fill(undefined);
  for (const s of plan.stages) {
    if (s.device === undefined) continue;
    for (const l of parseLayerRange(s.layers) ?? []) if (l < nLayer) out[l] = s.device;
  }
  return out;
}

/** What each device reads, computes and holds per token, from the tensors placed on it. */
export function deviceWork(
  model: GgufModel,
  layerDevice: number[],
  devices: { spec: DeviceSpec }[],
  host: DeviceSpec,
  kvBytesPerToken: number,
): { work: DeviceWork[]; owners: number[] } {
  const nLayer = model.nLayer;
  const hasOutput = model.tensors.some((t) => t.name === 'output.weight');
  const byDev = new Map<number, DeviceWork>();
  const get = (d: number): DeviceWork => {
    let w = byDev.get(d);
    if (!w) {
      w = {
        device: d < 0 ? host : devices[d].spec,
        weightBytes: 0,
        kvBytesPerToken: 0,
        layers: 0,
        flopsPerToken: 0,
        attnFlopsPerContext: 0,
      };
      byDev.set(d, w);
    }
    return w;
  };
  const elements = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
  for (const t of model.tensors) {
    const il = tensorLayer(t.name, nLayer);
    if (il < 0) {
      // The token embedding is a row lookup per token; with tied embeddings the output layer multiplies by it.
      if (!hasOutput && t.name === 'token_embd.weight') {
        const w = get(layerDevice[nLayer] ?? -1);
        w.weightBytes += t.bytes;
        w.flopsPerToken += 2 * elements(t.dims);
      }
      continue;
    }
    const w = get(layerDevice[il] ?? -1);
    // MoE expert tensors (ffn_*_exps): a token reads and multiplies only its routed experts' slices.
    const active = t.name.includes('_exps') && model.nExpert > 0 ? (model.nExpertUsed || 2) / model.nExpert : 1;
    w.weightBytes += t.bytes * active;
    if (t.dims.length >= 2) w.flopsPerToken += 2 * elements(t.dims) * active;
  }
  for (let il = 0; il <= nLayer; il++) {
    const w = get(layerDevice[il] ?? -1);
    w.layers++;
    if (il < nLayer) {
      w.kvBytesPerToken += kvBytesPerToken;
      w.attnFlopsPerContext += 2 * model.nHead * (model.headDimK + model.headDimV);
    }
  }
  const owners = [...byDev.keys()];
  return { work: owners.map((d) => byDev.get(d)!), owners };
}

/** The device changes along the layers (input on the host, then layer 0 …, output, logits back to the host). */
export function crossings(
  model: GgufModel,
  layerDevice: number[],
  devices: { spec: DeviceSpec }[],
): { bytes: number; gbps: number }[] {
  const link = (d: number) => (d < 0 ? Infinity : devices[d].spec.hostLinkGBps || Infinity);
  const out: { bytes: number; gbps: number }[] = [];
  let prev = -1;
  for (const d of layerDevice) {
    if (d !== prev) out.push({ bytes: model.nEmbd * 4, gbps: Math.min(link(prev), link(d)) });
    prev = d;
  }
  if (prev !== -1) out.push({ bytes: model.nVocab * 4, gbps: link(prev) });
  return out.filter((c) => Number.isFinite(c.gbps));
}

const sum = (m: { weights: number; kvCache: number; compute: number }): DeviceMemory => ({
  ...m,
  total: m.weights + m.kvCache + m.compute,
});

/** The llama.cpp estimate for a placement (layerDevice over plan device indices, −1 = host). */
export function llamaCppReport(
  plan: Plan,
  model: GgufModel,
  devices: PlanDevice[],
  layerDevice: number[],
  placement: InferenceReport['placement'],
  build: number,
): InferenceReport {
  const inf = plan.inference!;
  const gpuIdx = devices.filter((d) => d.spec.kind !== 'cpu').map((d) => d.index);
  const cpu = devices.find((d) => d.spec.kind === 'cpu');
  const apple = devices.find((d) => d.spec.kind === 'apple');
  const toGpu = layerDevice.map((d) => (d >= 0 && devices[d]?.spec.kind !== 'cpu' ? gpuIdx.indexOf(d) : -1));
  const o = llamaOptions(plan, build);
  const mem = llamaCppMemory(model, toGpu, gpuIdx.length, o);
  const notes = [...mem.estimated];
  // The host: a listed CPU, the unified memory of an Apple chip, or an implicit "host" entry.
  const hostDevice = cpu?.spec ?? apple?.spec ?? cpuDevice('ddr5-4800-2ch')!;
  const placedOn = layerDevice.map((d) => (d >= 0 && devices[d]?.spec.kind !== 'cpu' ? d : -1));
  const { work, owners } = deviceWork(model, placedOn, devices, hostDevice, kvLayerBytes(model, 1, o.typeK, o.typeV));
  const firstGpu = gpuIdx.length ? devices[gpuIdx[0]].spec : undefined;
  const cross = crossings(model, placedOn, devices);
  const pre = prefillSeconds(work, { batch: inf.batch, tokens: inf.promptLen, crossings: cross, offloadTo: firstGpu });
  const avgContext = inf.promptLen + inf.genLen / 2;
  const dec = decodeStepSeconds(work, { batch: inf.batch, context: avgContext, crossings: cross });
  const secondsOf = (planIndex: number) => {
    const k = owners.indexOf(planIndex);
    return k < 0 ? { p: 0, d: 0 } : { p: pre.perDevice[k], d: dec.perDevice[k] };
  };
  const out: InferenceDevice[] = [];
  const hostShare = mem.host;
  for (const d of devices) {
    const g = gpuIdx.indexOf(d.index);
    let share = g >= 0 ? mem.gpus[g] : undefined;
    if (d.spec.kind === 'cpu' && d === cpu) share = hostShare;
    // Unified memory: the host's buffers live in the Apple chip's memory too.
    if (d === apple && !cpu) {
      share = {
        weights: mem.gpus[g].weights + hostShare.weights,
        kvCache: mem.gpus[g].kvCache + hostShare.kvCache,
        compute: mem.gpus[g].compute + hostShare.compute,
        layers: [...mem.gpus[g].layers, ...hostShare.layers],
        output: mem.gpus[g].output || hostShare.output,
      };
    }
    const s = share ?? { weights: 0, kvCache: 0, compute: 0, layers: [], output: false };
    const t = d.spec.kind === 'cpu' ? (d === cpu ? secondsOf(-1) : { p: 0, d: 0 }) : secondsOf(d.index);
    const tHost = d === apple && !cpu ? secondsOf(-1) : { p: 0, d: 0 };
    out.push({
      name: d.name,
      index: d.index,
      kind: d.spec.kind,
      memory: sum(s),
      capacity: deviceBytes(d.spec),
      layers: rangeList(s.layers),
      layerList: [...s.layers].sort((a, b) => a - b),
      output: s.output,
      prefillSeconds: t.p + tHost.p,
      decodeSeconds: t.d + tHost.d,
    });
  }
  if (!cpu && !apple) {
    const t = secondsOf(-1);
    out.push({
      name: 'host',
      index: -1,
      kind: 'cpu',
      memory: sum(hostShare),
      capacity: null,
      layers: rangeList(hostShare.layers),
      layerList: [...hostShare.layers].sort((a, b) => a - b),
      output: hostShare.output,
      prefillSeconds: t.p,
      decodeSeconds: t.d,
    });
    if (hostShare.layers.length) {
      notes.push(
        `layers ${rangeList(hostShare.layers)} run on the host CPU, which the plan does not list: its speed assumes dual-channel DDR5-4800 (add {"cpu": "ddr5-6000-2ch", "memoryGB": 64} to "devices")`,
      );
    }
  }
  const problems = overflowProblems(plan, out);
  const ngl = nglAndSplit(toGpu, gpuIdx.length, build);
  if (!ngl && placement === 'stages') {
    notes.push('this placement is not a -ngl / --tensor-split split: the export pins layers with --override-tensor');
  }
  if (ngl && mem.gpus.filter((g) => g.layers.length > 0).length > 1 && mem.host.layers.length === 0) {
    notes.push(
      'several GPUs with every layer offloaded: llama.cpp pipelines micro-batches across them (prefill overlaps; decode does not)',
    );
  }
  return {
    runtime: 'llama.cpp',
    version: `b${build}`,
    prefillSeconds: pre.seconds,
    decodeTokensPerSecond: inf.batch / dec.seconds,
    decodeStepSeconds: dec.seconds,
    devices: out,
    placement,
    gpuLayers: ngl?.ngl,
    tensorSplit: ngl && gpuIdx.length > 1 ? ngl.tensorSplit : undefined,
    layerDevice: placedOn,
    contextCells: mem.cells,
    fileType: model.fileType,
    modelBytes: model.tensors.reduce((a, t) => a + t.bytes, 0),
    notes,
    problems,
  };
}

/** A device over its capacity, located where the plan says where layers go. */
export function overflowProblems(plan: Plan, devices: InferenceDevice[]): InferenceProblem[] {
  const gib = (b: number) => (b / 2 ** 30).toFixed(2);
  const out: InferenceProblem[] = [];
  for (const d of devices) {
    if (d.capacity === null || d.memory.total <= d.capacity) continue;
    const stage = plan.stages?.findIndex((s) => s.device === d.index) ?? -1;
    const path: (string | number)[] =
      stage >= 0
        ? ['stages', stage]
        : plan.devices?.length
          ? ['devices', d.index]
          : plan.inference?.gpuLayers !== undefined
            ? ['inference', 'gpuLayers']
            : ['cluster', 'gpu'];
    out.push({
      path,
      severity: 'error',
      message: `device ${d.name} needs ${gib(d.memory.total)} GiB (weights ${gib(d.memory.weights)}, KV cache ${gib(d.memory.kvCache)}, compute ${gib(d.memory.compute)}), over its ${gib(d.capacity)} GiB by ${gib(d.memory.total - d.capacity)} GiB`,
    });
  }
  return out;
}
