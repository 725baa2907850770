import {
  findNodeAtLocation,
  parseTree,
  type Node as JsonNode,
  type ParseError,
  printParseErrorCode,
} from 'jsonc-parser';
import { GPUS, closest, findGpu } from '../hardware/catalog';
import type { PlanEdit } from './edits';
import { FORMAT_NAMES, parseFormat } from '../quant/formats';

/** A transformer described by its shape, for planning models that do not exist yet. */
export interface ArchSpec {
  arch: 'gpt' | 'llama';
  layers: number;
  hidden: number;
  heads: number;
  kvHeads?: number;
  ffn?: number;
  vocab: number;
  seqLen?: number;
  tiedEmbeddings?: boolean;
}

export interface LinkOverride {
  bandwidthGBps?: number;
  latencyUs?: number;
}

export interface Plan {
  model: string | ArchSpec;
  cluster: {
    gpu: string;
    gpusPerNode?: number;
    nodes?: number;
    intraNode?: LinkOverride;
    interNode?: LinkOverride;
    memoryGB?: number;
  };
  training?: {
    globalBatch: number;
    microBatch: number;
    seqLen?: number;
    dtype?: 'fp16' | 'bf16' | 'fp32' | 'fp8';
    optimizer?: 'adam' | 'adamw' | 'sgd';
    recompute?: 'none' | 'selective' | 'full';
    /** Overlap the data-parallel gradient all-reduce with the backward pass. */
    overlapGradReduce?: boolean;
    dropout?: boolean;
  };
  inference?: { batch: number; promptLen: number; genLen: number; dtype?: string };
  parallel?: {
    data?: number;
    tensor?: number;
    pipeline?: number;
    schedule?: 'gpipe' | '1f1b' | 'interleaved';
    virtualStages?: number;
    sequenceParallel?: boolean;
    zero?: number;
  };
  stages?: { layers: string }[];
  precision?: { default?: string; rules?: { match: string; format: string }[]; errorBudgetDb?: number };
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
  at(path: (string | number)[], severity: Severity, message: string, fix?: Fix): void {
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
      ...(fix ? { fix } : {}),
    });
  }
  error(path: (string | number)[], message: string, fix?: Fix): void {
    this.at(path, 'error', message, fix);
  }
  warn(path: (string | number)[], message: string, fix?: Fix): void {
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

/**
 * Structural validation of a plan: types, names, degrees that must multiply to the GPU count.
 * Model-dependent checks (heads divisible by the tensor degree, stage coverage) need the model:
 * see validatePlanAgainstModel in cost/estimate.ts.
 */
export function validatePlan(text: string): { plan?: Plan; issues: Issue[]; root?: JsonNode } {
  const { value, root, syntax } = parseJsonWithTree(text);
  const c = new IssueCollector(text, root);
  c.issues.push(...syntax);
  if (syntax.length) return { issues: c.issues, root };
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    c.error([], 'a plan is a JSON object with "model", "cluster" and "training" or "inference"');
    return { issues: c.issues, root };
  }
  const p = value as Record<string, unknown>;
  // model
  if (typeof p.model === 'string') {
    if (!p.model.trim()) c.error(['model'], 'model: an empty path');
  } else if (p.model && typeof p.model === 'object') {
    const m = p.model as Record<string, unknown>;
    if (m.arch !== 'gpt' && m.arch !== 'llama') {
      c.error(['model', 'arch'], `model.arch: '${String(m.arch)}' is not a known architecture (gpt, llama)`);
    }
    for (const k of ['layers', 'hidden', 'heads', 'vocab']) {
      if (!isPosInt(m[k])) c.error(['model', k], `model.${k}: must be a positive integer`);
    }
    for (const k of ['kvHeads', 'ffn', 'seqLen']) {
      if (m[k] !== undefined && !isPosInt(m[k])) c.error(['model', k], `model.${k}: must be a positive integer`);
    }
    if (isPosInt(m.hidden) && isPosInt(m.heads) && m.hidden % m.heads !== 0) {
      c.error(['model', 'heads'], `model.heads: ${m.heads} does not divide hidden (${m.hidden})`);
    }
    if (isPosInt(m.heads) && isPosInt(m.kvHeads) && m.heads % m.kvHeads !== 0) {
      c.error(['model', 'kvHeads'], `model.kvHeads: ${m.kvHeads} does not divide heads (${m.heads})`);
    }
  } else c.error(['model'], 'model: a path to a model file or an architecture object ({"arch": "gpt", …}) is required');
  // cluster
  const cl = p.cluster as Record<string, unknown> | undefined;
  if (!cl || typeof cl !== 'object') {
    c.error(['cluster'], 'cluster: required ({"gpu": "a100-80gb", "gpusPerNode": 8, "nodes": 1})');
  } else {
    if (typeof cl.gpu !== 'string') c.error(['cluster', 'gpu'], 'cluster.gpu: a catalog id is required');
    else if (!findGpu(cl.gpu)) {
      const hint = closest(
        cl.gpu,
        GPUS.map((g) => g.id),
      );
      c.error(
        ['cluster', 'gpu'],
        `cluster.gpu: unknown GPU '${cl.gpu}'${hint ? ` (did you mean '${hint}'?)` : ''}; known: ${GPUS.map((g) => g.id).join(', ')}`,
      );
    }
    for (const k of ['gpusPerNode', 'nodes']) {
      if (cl[k] !== undefined && !isPosInt(cl[k])) c.error(['cluster', k], `cluster.${k}: must be a positive integer`);
    }
    for (const link of ['intraNode', 'interNode']) {
      const l = cl[link] as Record<string, unknown> | undefined;
      if (l === undefined) continue;
      for (const k of ['bandwidthGBps', 'latencyUs']) {
        if (
          l[k] !== undefined &&
          !(typeof l[k] === 'number' && (l[k] as number) >= 0 && (k === 'latencyUs' || (l[k] as number) > 0))
        ) {
          c.error(['cluster', link, k], `cluster.${link}.${k}: must be a positive number`);
        }
      }
    }
  }
  // training / inference
  const tr = p.training as Record<string, unknown> | undefined;
  const inf = p.inference as Record<string, unknown> | undefined;
  if (!tr && !inf) c.error([], 'a plan needs "training" or "inference"');
  if (tr) {
    if (!isPosInt(tr.globalBatch)) {
      c.error(['training', 'globalBatch'], 'training.globalBatch: must be a positive integer');
    }
    if (!isPosInt(tr.microBatch)) {
      c.error(['training', 'microBatch'], 'training.microBatch: must be a positive integer');
    }
    if (tr.seqLen !== undefined && !isPosInt(tr.seqLen)) {
      c.error(['training', 'seqLen'], 'training.seqLen: must be a positive integer');
    }
    if (tr.dtype !== undefined && !['fp16', 'bf16', 'fp32', 'fp8'].includes(tr.dtype as string)) {
      c.error(['training', 'dtype'], `training.dtype: '${String(tr.dtype)}' is not one of fp16, bf16, fp32, fp8`);
    }
    if (tr.recompute !== undefined && !['none', 'selective', 'full'].includes(tr.recompute as string)) {
      c.error(
        ['training', 'recompute'],
        `training.recompute: '${String(tr.recompute)}' is not one of none, selective, full`,
      );
    }
    if (tr.optimizer !== undefined && !['adam', 'adamw', 'sgd'].includes(tr.optimizer as string)) {
      c.error(
        ['training', 'optimizer'],
        `training.optimizer: '${String(tr.optimizer)}' is not one of adam, adamw, sgd`,
      );
    }
  }
  if (inf) {
    for (const k of ['batch', 'promptLen', 'genLen']) {
      if (!isPosInt(inf[k])) c.error(['inference', k], `inference.${k}: must be a positive integer`);
    }
  }
  // parallel
  const par = (p.parallel ?? {}) as Record<string, unknown>;
  for (const k of ['data', 'tensor', 'pipeline', 'virtualStages']) {
    if (par[k] !== undefined && !isPosInt(par[k])) {
      c.error(['parallel', k], `parallel.${k}: must be a positive integer`);
    }
  }
  if (par.schedule !== undefined && !['gpipe', '1f1b', 'interleaved'].includes(par.schedule as string)) {
    c.error(
      ['parallel', 'schedule'],
      `parallel.schedule: '${String(par.schedule)}' is not one of gpipe, 1f1b, interleaved`,
    );
  }
  if (par.zero !== undefined && ![0, 1, 2, 3].includes(par.zero as number)) {
    c.error(['parallel', 'zero'], 'parallel.zero: must be 0, 1, 2 or 3');
  }
  const dp = (par.data as number) ?? 1;
  const tp = (par.tensor as number) ?? 1;
  const pp = (par.pipeline as number) ?? 1;
  if (cl && typeof cl === 'object' && isPosInt(dp) && isPosInt(tp) && isPosInt(pp)) {
    const gpn = (cl.gpusPerNode as number) ?? findGpu(String(cl.gpu))?.gpusPerNode ?? 8;
    const nodes = (cl.nodes as number) ?? 1;
    if (dp * tp * pp !== gpn * nodes) {
      const gpus = gpn * nodes;
      const data = gpus / (tp * pp);
      const fix =
        Number.isInteger(data) && data >= 1
          ? {
              title: `Set parallel.data to ${data} (${data} × ${tp} × ${pp} = ${gpus} GPUs)`,
              edits: [{ path: ['parallel', 'data'], value: data }],
            }
          : undefined;
      c.error(
        ['parallel'],
        `parallel: data × tensor × pipeline = ${dp} × ${tp} × ${pp} = ${dp * tp * pp}, but the cluster has ${nodes} × ${gpn} = ${gpus} GPUs`,
        fix,
      );
    }
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
  if (p.stages !== undefined) {
    if (!Array.isArray(p.stages)) c.error(['stages'], 'stages: a list of {"layers": "0-11"}');
    else {
      if (isPosInt(pp) && p.stages.length !== pp) {
        c.error(['stages'], `stages: ${p.stages.length} stages listed, parallel.pipeline is ${pp}`);
      }
      p.stages.forEach((s: unknown, i) => {
        const spec = (s as Record<string, unknown>)?.layers;
        if (typeof spec !== 'string' || !parseLayerRange(spec)) {
          c.error(['stages', i, 'layers'], `stages[${i}].layers: '${String(spec)}' is not a layer range like "0-11"`);
        }
      });
    }
  }
  // precision
  const prec = p.precision as Record<string, unknown> | undefined;
  if (prec) {
    const checkFormat = (f: unknown, path: (string | number)[]) => {
      if (typeof f !== 'string' || !parseFormat(f)) {
        const hint = typeof f === 'string' ? closest(f, FORMAT_NAMES) : undefined;
        c.error(
          path,
          `${path.join('.')}: unknown number format '${String(f)}'${hint ? ` (did you mean '${hint}'?)` : ''}`,
        );
      }
    };
    if (prec.default !== undefined) checkFormat(prec.default, ['precision', 'default']);
    if (prec.rules !== undefined) {
      if (!Array.isArray(prec.rules)) {
        c.error(['precision', 'rules'], 'precision.rules: a list of {"match": "*.mlp.*", "format": "int4-g128"}');
      } else {
        prec.rules.forEach((r: Record<string, unknown>, i: number) => {
          if (typeof r?.match !== 'string') {
            c.error(['precision', 'rules', i, 'match'], `precision.rules[${i}].match: a name pattern is required`);
          }
          checkFormat(r?.format, ['precision', 'rules', i, 'format']);
        });
      }
    }
  }
  const ok = !c.issues.some((i) => i.severity === 'error');
  return { plan: ok ? (value as Plan) : undefined, issues: c.issues, root };
}

/** Glob match for precision rules: `*` any run of characters, `?` one; matched against the whole name. */
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

export function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$',
  );
  return re.test(name);
}
