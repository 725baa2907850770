import {
  findNodeAtLocation,
  parseTree,
  type Node as JsonNode,
  type ParseError,
  printParseErrorCode,
} from 'jsonc-parser';
import { GPUS, GPU_NAMES, closest, findGpu } from '../hardware/catalog';
import { CPU_EXAMPLES, DEVICE_GPU_NAMES, closestDeviceGpu, cpuDevice, findDeviceGpu } from '../hardware/devices';
import type { PlanEdit } from './edits';
import { checkField, planFields, type FieldProblem } from './fields';
import { globMatch } from '../glob';
import { FILE_TYPE_FORMATS, FORMAT_NAMES, parseFormat } from '../quant/formats';

/** A transformer described by its shape, for planning models that do not exist yet (fields.ts documents each). */
export interface ArchSpec {
  arch: 'gpt' | 'llama';
  layers: number;
  hidden: number;
  heads: number;
  kvHeads?: number;
  /** Attention head size; default hidden ÷ heads (Qwen3 and Gemma use wider heads). */
  headDim?: number;
  ffn?: number;
  vocab: number;
  seqLen?: number;
  tiedEmbeddings?: boolean;
  /** Mixture of experts: experts per MoE layer, experts per token (top-k), each expert's MLP size. */
  experts?: number;
  expertsPerToken?: number;
  expertFfn?: number;
  capacityFactor?: number;
}

export interface LinkOverride {
  bandwidthGBps?: number;
  latencyUs?: number;
}

export type Framework = 'megatron-lm-2021' | 'megatron-core' | 'nemo' | 'deepspeed' | 'fsdp' | 'torchtitan';

/** A device of a heterogeneous (inference) plan: a GPU or Apple chip by catalog id, or a CPU's DRAM. */
export interface DeviceRef {
  gpu?: string;
  cpu?: string;
  memoryGB?: number;
  /** Overrides of the catalog's bandwidth (GB/s) and compute (TFLOP/s). */
  bandwidthGBps?: number;
  tflops?: number;
}

/** A plan file (docs/ARCHITECTURE.md); fields.ts declares every field with its range and meaning. */
export interface Plan {
  model: string | ArchSpec;
  cluster: {
    gpu: string;
    gpusPerNode?: number;
    nodes?: number;
    maxGpus?: number;
    pricePerGpuHour?: number;
    intraNode?: LinkOverride;
    interNode?: LinkOverride;
    memoryGB?: number;
  };
  training?: {
    globalBatch: number;
    microBatch: number;
    seqLen?: number;
    dtype?: 'fp16' | 'bf16' | 'fp32' | 'fp8';
    fp8Recipe?: 'delayed' | 'current' | 'blockwise';
    optimizer?: 'adam' | 'adamw' | 'sgd';
    recompute?: 'none' | 'selective' | 'full';
    framework?: Framework;
    /** Overlap the data-parallel gradient all-reduce with the backward pass. */
    overlapGradReduce?: boolean;
    dropout?: boolean;
  };
  inference?: {
    batch: number;
    promptLen: number;
    genLen: number;
    contextLen?: number;
    kvCache?: string;
    runtime?: 'llama.cpp' | 'vllm' | 'accelerate';
    runtimeVersion?: string;
    flashAttention?: boolean;
    gpuLayers?: number;
    tensorSplit?: number[];
    gpuMemoryUtilization?: number;
    dtype?: string;
  };
  parallel?: {
    data?: number;
    tensor?: number;
    pipeline?: number;
    context?: number;
    expert?: number;
    /** Tensor parallelism inside each expert (Megatron's expert-tensor-parallel size); default: tensor. */
    expertTensor?: number;
    schedule?: 'gpipe' | '1f1b' | 'interleaved';
    virtualStages?: number;
    sequenceParallel?: boolean;
    zero?: number;
    distributedOptimizer?: boolean;
    /** All-gather the updated parameters during the next step's forward (distributed optimizer, FSDP prefetch). */
    overlapParamGather?: boolean;
    /** Overlap tensor-parallel communication with the GEMMs (Transformer Engine userbuffers, async TP). */
    tpCommOverlap?: boolean;
  };
  stages?: { layers: string; device?: number }[];
  devices?: DeviceRef[];
  precision?: {
    default?: string;
    rules?: { match: string; format: string }[];
    activations?: { format?: string; observer?: string };
    errorBudgetDb?: number;
  };
}

export type Severity = 'error' | 'warning' | 'information';

export interface Position {
  line: number;
  character: number;
}

/** One diagnostic with its exact JSON range (zero-based, as VS Code counts). */
export interface Issue {
  severity: Severity;
  message: string;
  path: (string | number)[];
  range: { start: Position; end: Position };
  /** A fix where it is clear: JSON paths to set (the editor offers it as a quick fix). */
  fix?: Fix;
  /** Further quick fixes, after `fix`, where there are several ways out (a stage over memory: recompute, ZeRO, a smaller micro-batch…). */
  fixes?: Fix[];
}

export interface Fix {
  title: string;
  edits: PlanEdit[];
}

/** Converts offsets in `text` to line/character positions. */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }
  position(offset: number): Position {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: offset - this.starts[lo] };
  }
}

/** Collects issues against a parsed JSON tree, locating each at its value (or its parent when missing). */
export class IssueCollector {
  readonly issues: Issue[] = [];
  private readonly lines: LineIndex;
  constructor(
    readonly text: string,
    readonly root: JsonNode | undefined,
  ) {
    this.lines = new LineIndex(text);
  }
  at(path: (string | number)[], severity: Severity, message: string, fix?: Fix | Fix[]): void {
    const all = Array.isArray(fix) ? fix : fix ? [fix] : [];
    let node: JsonNode | undefined;
    for (let n = path.length; n >= 0 && !node; n--) node = this.root && findNodeAtLocation(this.root, path.slice(0, n));
    // Point at the property name/value pair for object members, like VS Code's JSON diagnostics.
    const target = node?.parent?.type === 'property' ? node.parent : node;
    const start = target?.offset ?? 0;
    const end = target ? target.offset + target.length : Math.min(this.text.length, 1);
    this.issues.push({
      severity,
      message,
      path,
      range: { start: this.lines.position(start), end: this.lines.position(end) },
      ...(all.length ? { fix: all[0] } : {}),
      ...(all.length > 1 ? { fixes: all.slice(1) } : {}),
    });
  }
  error(path: (string | number)[], message: string, fix?: Fix | Fix[]): void {
    this.at(path, 'error', message, fix);
  }
  warn(path: (string | number)[], message: string, fix?: Fix | Fix[]): void {
    this.at(path, 'warning', message, fix);
  }
}

/** Parses JSON (with comments) into a value and a tree for positions; syntax errors become issues. */
export function parseJsonWithTree(text: string): { value: unknown; root: JsonNode | undefined; syntax: Issue[] } {
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  const lines = new LineIndex(text);
  const syntax = errors.map<Issue>((e) => ({
    severity: 'error',
    message: `JSON syntax: ${printParseErrorCode(e.error)}`,
    path: [],
    range: { start: lines.position(e.offset), end: lines.position(e.offset + e.length) },
  }));
  return { value: root ? nodeValue(root) : undefined, root, syntax };
}

function nodeValue(n: JsonNode): unknown {
  switch (n.type) {
    case 'object':
      return Object.fromEntries(
        (n.children ?? []).map((p) => [
          p.children![0].value as string,
          p.children![1] ? nodeValue(p.children![1]) : undefined,
        ]),
      );
    case 'array':
      return (n.children ?? []).map(nodeValue);
    default:
      return n.value;
  }
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Parses a layer range list "0-11", "3", "0-3,8-11" into indices. */
export function parseLayerRange(spec: string): number[] | undefined {
  const out: number[] = [];
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    if (b < a || b - a > 100000) return undefined;
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}

/** The plan's field table with this build's catalogs (GPU ids and aliases, format names). */
export const PLAN_FIELDS = planFields({
  gpus: GPU_NAMES,
  formats: [...FORMAT_NAMES, ...FILE_TYPE_FORMATS],
  devices: CPU_EXAMPLES,
  deviceGpus: DEVICE_GPU_NAMES,
});

/**
 * Structural validation of a plan: every field against the field table (types, ranges, limits,
 * unknown names), then the rules that tie fields together (degrees that must multiply to the GPU
 * count, batch divisibility, stages vs pipeline). Model-dependent checks (heads divisible by the
 * tensor degree, stage coverage) need the model: see modelChecks in cost/stages.ts.
 */
export function validatePlan(text: string): {
  plan?: Plan;
  /**
   * The plan with its ill-typed or out-of-range fields left out, when it has errors but a model and a
   * cluster: what the checks that need the model run on, so that every independent error shows at once.
   */
  usable?: Plan;
  issues: Issue[];
  root?: JsonNode;
} {
  const { value, root, syntax } = parseJsonWithTree(text);
  const c = new IssueCollector(text, root);
  c.issues.push(...syntax);
  if (syntax.length) return { issues: c.issues, root };
  const problems: FieldProblem[] = [];
  checkField(value, PLAN_FIELDS, [], problems);
  for (const pr of problems) c.at(pr.path, pr.severity, pr.message);
  if (!value || typeof value !== 'object' || Array.isArray(value)) return { issues: c.issues, root };
  const p = value as Record<string, unknown>;
  // model
  if (p.model && typeof p.model === 'object') {
    const m = p.model as Record<string, unknown>;
    if (isPosInt(m.hidden) && isPosInt(m.heads) && m.headDim === undefined && m.hidden % m.heads !== 0) {
      c.error(['model', 'heads'], `model.heads: ${m.heads} does not divide hidden (${m.hidden})`);
    }
    if (isPosInt(m.heads) && isPosInt(m.kvHeads) && m.heads % m.kvHeads !== 0) {
      c.error(['model', 'kvHeads'], `model.kvHeads: ${m.kvHeads} does not divide heads (${m.heads})`);
    }
  }
  // cluster (optional when devices are listed)
  const cl = p.cluster as Record<string, unknown> | undefined;
  if (cl === undefined && p.devices === undefined) {
    c.error(['cluster'], 'cluster: required ({"gpu": "a100-80gb", "gpusPerNode": 8, "nodes": 1})');
  }
  if (cl && typeof cl === 'object' && !Array.isArray(cl)) {
    if (cl.gpu === undefined && p.devices === undefined) {
      c.error(['cluster', 'gpu'], 'cluster.gpu: a catalog id is required');
    } else if (typeof cl.gpu === 'string' && !findGpu(cl.gpu)) {
      // Nearest among ids and aliases ('h100x' is one letter from 'h100'), offered as the catalog id it stands for.
      const near = closest(cl.gpu, [...GPU_NAMES]);
      const hint = near ? findGpu(near)?.id : undefined;
      c.error(
        ['cluster', 'gpu'],
        `cluster.gpu: unknown GPU '${cl.gpu}'${hint ? ` (did you mean '${hint}'?)` : ''}; known: ${GPUS.map((g) => g.id).join(', ')}`,
        hint ? { title: `Use '${hint}'`, edits: [{ path: ['cluster', 'gpu'], value: hint }] } : undefined,
      );
    }
  }
  // training / inference
  const tr = p.training as Record<string, unknown> | undefined;
  const inf = p.inference as Record<string, unknown> | undefined;
  if (!tr && !inf) c.error([], 'a plan needs "training" or "inference"');
  // parallel
  const par = (p.parallel && typeof p.parallel === 'object' ? p.parallel : {}) as Record<string, unknown>;
  const dp = (par.data as number) ?? 1;
  const tp = (par.tensor as number) ?? 1;
  const pp = (par.pipeline as number) ?? 1;
  const cp = (par.context as number) ?? 1;
  const ep = (par.expert as number) ?? 1;
  if (cl && typeof cl === 'object' && isPosInt(dp) && isPosInt(tp) && isPosInt(pp) && isPosInt(cp)) {
    const gpn = isPosInt(cl.gpusPerNode) ? cl.gpusPerNode : (findGpu(String(cl.gpu))?.gpusPerNode ?? 8);
    const nodes = isPosInt(cl.nodes) ? cl.nodes : 1;
    if (dp * tp * pp * cp !== gpn * nodes) {
      const gpus = gpn * nodes;
      const data = gpus / (tp * pp * cp);
      const others = cp > 1 ? `${tp} × ${pp} × ${cp}` : `${tp} × ${pp}`;
      const fix =
        Number.isInteger(data) && data >= 1
          ? {
              title: `Set parallel.data to ${data} (${data} × ${others} = ${gpus} GPUs)`,
              edits: [{ path: ['parallel', 'data'], value: data }],
            }
          : undefined;
      const names = cp > 1 ? 'data × tensor × pipeline × context' : 'data × tensor × pipeline';
      c.error(
        ['parallel'],
        `parallel: ${names} = ${dp} × ${others} = ${dp * tp * pp * cp}, but the cluster has ${nodes} × ${gpn} = ${gpus} GPUs`,
        fix,
      );
    }
  }
  // Expert parallelism folds expert × expertTensor ranks over the tensor × context × data ranks of a
  // pipeline stage (Megatron-Core MoE parallel folding); with expertTensor = tensor (the default) that
  // is: expert divides data × context.
  const etp = (par.expertTensor as number) ?? tp;
  if (isPosInt(ep) && ep > 1 && isPosInt(dp) && isPosInt(cp) && isPosInt(tp) && isPosInt(etp)) {
    if ((dp * cp * tp) % (ep * etp) !== 0) {
      c.error(
        ['parallel', 'expert'],
        etp === tp
          ? `parallel.expert: ${ep} does not divide data × context = ${dp} × ${cp}`
          : `parallel.expert: expert × expertTensor = ${ep} × ${etp} does not divide tensor × context × data = ${tp} × ${cp} × ${dp}`,
      );
    }
  }
  if (tr) checkTrainingSoftware(c, tr, par, p.model, cl);
  if (par.sequenceParallel === true && isPosInt(tp) && tp === 1) {
    c.warn(
      ['parallel', 'sequenceParallel'],
      'parallel.sequenceParallel: has no effect with tensor = 1 (Megatron turns it off)',
    );
  }
  if (tr && isPosInt(tr.globalBatch) && isPosInt(tr.microBatch) && isPosInt(dp)) {
    if (tr.globalBatch % (tr.microBatch * dp) !== 0) {
      const per = tr.microBatch * dp;
      const batch = Math.max(per, Math.round(tr.globalBatch / per) * per);
      c.error(
        ['training', 'microBatch'],
        `training.microBatch: globalBatch ${tr.globalBatch} is not a multiple of microBatch × data = ${tr.microBatch} × ${dp}`,
        { title: `Set training.globalBatch to ${batch}`, edits: [{ path: ['training', 'globalBatch'], value: batch }] },
      );
    }
  }
  if (
    par.schedule === 'interleaved' &&
    isPosInt(pp) &&
    pp > 1 &&
    tr &&
    isPosInt(tr.globalBatch) &&
    isPosInt(tr.microBatch) &&
    isPosInt(dp)
  ) {
    const m = tr.globalBatch / (tr.microBatch * dp);
    if (m % pp !== 0) {
      c.error(
        ['parallel', 'schedule'],
        `parallel.schedule: interleaved 1F1B needs the micro-batch count (${m}) to be a multiple of pipeline (${pp})`,
      );
    }
  }
  // stages
  if (Array.isArray(p.stages)) {
    if (isPosInt(pp) && p.stages.length !== pp && p.devices === undefined) {
      c.error(['stages'], `stages: ${p.stages.length} stages listed, parallel.pipeline is ${pp}`);
    }
    p.stages.forEach((s: unknown, i) => {
      const spec = (s as Record<string, unknown>)?.layers;
      if (typeof spec === 'string' && !parseLayerRange(spec)) {
        c.error(['stages', i, 'layers'], `stages[${i}].layers: '${String(spec)}' is not a layer range like "0-11"`);
      }
      const device = (s as Record<string, unknown>)?.device;
      if (typeof device === 'number' && (!Array.isArray(p.devices) || device >= p.devices.length)) {
        c.error(
          ['stages', i, 'device'],
          `stages[${i}].device: ${device} is not an index into "devices" (${Array.isArray(p.devices) ? p.devices.length : 0} listed)`,
        );
      }
    });
  }
  if (Array.isArray(p.devices)) {
    p.devices.forEach((d: unknown, i) => {
      const dev = d as Record<string, unknown>;
      if (!dev || typeof dev !== 'object') return;
      if ((dev.gpu === undefined) === (dev.cpu === undefined)) {
        c.error(['devices', i], `devices[${i}]: one of "gpu" (a catalog id) or "cpu" (e.g. "ddr5-6000-2ch")`);
      } else if (typeof dev.gpu === 'string' && !findDeviceGpu(dev.gpu)) {
        const hint = closestDeviceGpu(dev.gpu);
        c.error(
          ['devices', i, 'gpu'],
          `devices[${i}].gpu: unknown GPU '${dev.gpu}'${hint ? ` (did you mean '${hint}'?)` : ''}`,
          hint ? { title: `Use '${hint}'`, edits: [{ path: ['devices', i, 'gpu'], value: hint }] } : undefined,
        );
      } else if (typeof dev.cpu === 'string' && !cpuDevice(dev.cpu)) {
        c.error(
          ['devices', i, 'cpu'],
          `devices[${i}].cpu: '${dev.cpu}' is not a DRAM id like ddr5-6000-2ch (kind-MT/s-channels: ddr4, ddr5, lpddr5, lpddr5x)`,
        );
      } else if (typeof dev.cpu === 'string' && dev.memoryGB === undefined) {
        c.warn(['devices', i], `devices[${i}]: no "memoryGB" for the CPU's RAM; 32 GB is assumed`);
      }
    });
  }
  // precision: format names are open-ended (int4-g128-asym, q4_k_m, …), so the engine parses them
  const prec = p.precision as Record<string, unknown> | undefined;
  if (prec && typeof prec === 'object') {
    const checkFormat = (f: unknown, path: (string | number)[]) => {
      if (typeof f === 'string' && !parseFormat(f)) {
        const hint = closest(f, [...FORMAT_NAMES, ...FILE_TYPE_FORMATS]);
        c.error(
          path,
          `${path.join('.')}: unknown number format '${String(f)}'${hint ? ` (did you mean '${hint}'?)` : ''}`,
          hint ? { title: `Use '${hint}'`, edits: [{ path, value: hint }] } : undefined,
        );
      }
    };
    if (prec.default !== undefined) checkFormat(prec.default, ['precision', 'default']);
    if (Array.isArray(prec.rules)) {
      prec.rules.forEach((r: unknown, i: number) =>
        checkFormat((r as Record<string, unknown>)?.format, ['precision', 'rules', i, 'format']),
      );
    }
    const act = prec.activations as Record<string, unknown> | undefined;
    if (act && typeof act === 'object') checkFormat(act.format, ['precision', 'activations', 'format']);
  }
  const ok = !c.issues.some((i) => i.severity === 'error');
  return {
    plan: ok ? (value as Plan) : undefined,
    usable: ok ? undefined : withoutBadFields(p, problems),
    issues: c.issues,
    root,
  };
}

/** A copy of a plan without the fields that failed their type or range check (undefined when its model or cluster did). */
function withoutBadFields(value: Record<string, unknown>, problems: FieldProblem[]): Plan | undefined {
  const bad = problems.filter((pr) => pr.severity === 'error');
  if (
    bad.some((pr) => pr.path.length <= 1 && (pr.path[0] === 'model' || pr.path[0] === 'cluster' || !pr.path.length))
  ) {
    return undefined;
  }
  if (bad.some((pr) => pr.path[0] === 'model')) return undefined;
  const copy = structuredClone(value);
  for (const pr of bad) {
    let at: unknown = copy;
    for (const key of pr.path.slice(0, -1)) {
      at = at && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined;
    }
    if (at && typeof at === 'object') delete (at as Record<string | number, unknown>)[pr.path[pr.path.length - 1]];
  }
  const plan = copy as unknown as Plan;
  if (!plan.model || !plan.cluster || typeof plan.cluster !== 'object') return undefined;
  return plan;
}

/** Frameworks without context parallelism, expert parallelism or fp8 training (their profiles' sources). */
const NO_CONTEXT_PARALLEL: Partial<Record<Framework, string>> = {
  'megatron-lm-2021': 'Megatron-LM of 2021 has no context parallelism (Megatron-Core added it)',
  deepspeed: 'Megatron-DeepSpeed splits sequences with Ulysses, not ring context parallelism',
  fsdp: 'plain PyTorch FSDP has no context parallelism (torchtitan and Megatron-Core do)',
};
const NO_EXPERT_PARALLEL: Partial<Record<Framework, string>> = {
  'megatron-lm-2021': 'Megatron-LM of 2021 has no expert parallelism',
};
const NO_FP8: Partial<Record<Framework, string>> = {
  'megatron-lm-2021': 'Megatron-LM of 2021 trains in fp16 / bf16 only (Transformer Engine came with Megatron-Core)',
  deepspeed: 'Megatron-DeepSpeed trains in fp16 / bf16',
};

/**
 * What a plan's training software and precision must agree on: fp8 needs fp8 tensor cores and a
 * framework with fp8 training; a scaling recipe needs fp8; context parallelism splits the sequence
 * into 2 × context chunks (causal load balancing) and needs a framework that has it; expert
 * parallelism likewise. Model-dependent checks (experts divisible by the expert degree) are in
 * cost/stages.ts modelChecks.
 */
function checkTrainingSoftware(
  c: IssueCollector,
  tr: Record<string, unknown>,
  par: Record<string, unknown>,
  model: unknown,
  cl: Record<string, unknown> | undefined,
): void {
  const framework = (typeof tr.framework === 'string' ? tr.framework : 'megatron-core') as Framework;
  const cp = par.context;
  const ep = par.expert;
  if (tr.dtype === 'fp8') {
    const gpu = typeof cl?.gpu === 'string' ? findGpu(cl.gpu) : undefined;
    if (gpu && !gpu.tflops.fp8) {
      c.warn(
        ['training', 'dtype'],
        `training.dtype: fp8 needs fp8 tensor cores (Hopper or later); ${gpu.id} has none, so the estimate runs the GEMMs in bf16`,
      );
    }
    const why = NO_FP8[framework];
    if (why) c.warn(['training', 'dtype'], `training.dtype: fp8 with framework '${framework}': ${why}`);
  } else if (tr.fp8Recipe !== undefined && tr.dtype !== undefined) {
    c.warn(['training', 'fp8Recipe'], `training.fp8Recipe: has no effect unless training.dtype is "fp8"`, {
      title: 'Set training.dtype to fp8',
      edits: [{ path: ['training', 'dtype'], value: 'fp8' }],
    });
  }
  if (isPosInt(cp) && cp > 1) {
    const modelSeq = model && typeof model === 'object' ? (model as Record<string, unknown>).seqLen : undefined;
    const seq = isPosInt(tr.seqLen) ? tr.seqLen : isPosInt(modelSeq) ? modelSeq : 2048;
    if (seq % (2 * cp) !== 0) {
      c.error(
        ['parallel', 'context'],
        `parallel.context: the sequence (${seq} tokens) must split into 2 × context = ${2 * cp} equal chunks (causal load balancing)`,
      );
    }
    const why = NO_CONTEXT_PARALLEL[framework];
    if (why) c.warn(['parallel', 'context'], `parallel.context: framework '${framework}': ${why}`);
  }
  if (isPosInt(ep) && ep > 1) {
    const why = NO_EXPERT_PARALLEL[framework];
    if (why) c.warn(['parallel', 'expert'], `parallel.expert: framework '${framework}': ${why}`);
  }
}

/** The precision a plan gives each tensor: its last matching rule (by tensor or layer name), else the default. */
export function formatFor(
  precision: { default?: string; rules?: { match: string; format: string }[] } | undefined,
  tensor: string,
  layer: string,
): string {
  let f = precision?.default ?? 'bf16';
  for (const r of precision?.rules ?? []) if (globMatch(r.match, tensor) || globMatch(r.match, layer)) f = r.format;
  return f;
}
