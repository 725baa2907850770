/**
 * What importing a launch configuration produces, shared by the three frameworks: the plan it describes,
 * diagnostics on the original file (offsets → ranges), and for each plan field where in the file it came
 * from, so the plan's own checks (degrees, heads, memory) land on the flag or key that set it.
 */
import { LineIndex, type Issue, type Plan, type Severity } from '../../plan/plan';
import type { ArchSpec } from '../../plan/plan';
import type { TransformerSpec } from '../../graph/transformer-spec';
import type { Span } from './shell';

export type LaunchKind = 'megatron' | 'deepspeed' | 'torchtitan';

/**
 * What a launch file does not say and the caller supplies: the command line's --gpu, --nodes, … (or the
 * editor's prompts), and the model when the file names one Layerplan can read. Options override the file.
 */
export interface LaunchContext {
  gpu?: string;
  nodes?: number;
  gpusPerNode?: number;
  /** World size, when only the total is known (DeepSpeed's --world-size). */
  worldSize?: number;
  /** The model for plan.model: a path relative to the launch file, or an architecture object. */
  model?: string | ArchSpec;
  /** A model found beside the configuration (torchtitan: config.json in model.hf_assets_path), relative to it. */
  assetsModel?: string;
  /** The model's transformer shape, when it was read (to check the file's shape flags against it). */
  modelSpec?: TransformerSpec;
  /** Another file of the launch (DeepSpeed: the script that runs this config, or the config a script names). */
  companion?: { file: string; text: string };
}

/** Where a plan field came from: its span in the file and the name the file uses for it. */
export interface Origin {
  span: Span;
  name?: string;
}

export interface LaunchImport {
  kind: LaunchKind;
  /** The tool and version whose options the file was checked against, e.g. "Megatron-LM core_v0.19.0". */
  version: string;
  plan?: Plan;
  /** The file's own diagnostics (the framework's rules), with exact ranges. */
  issues: Issue[];
  /** Plan path ("parallel.tensor") → where the file sets it. */
  origins: Map<string, Origin>;
  /** Where a diagnostic about the plan as a whole goes (the launch command, the first table). */
  anchor: Span;
  /** What the plan cannot hold of the file (and what the estimate assumes instead). */
  notes: string[];
  /** The header Layerplan writes into exported files, when present. */
  header?: LaunchHeader;
  /**
   * How the framework splits the transformer layers: per pipeline stage, in the framework's stage order
   * (pipeline × virtual stages entries, chunk-major). completeImport pins the plan's stages to it where the
   * estimate would split differently.
   */
  split?: number[];
}

/** `# layerplan: {…}` — what an exported file records that the framework has no option for. */
export interface LaunchHeader {
  model?: string | ArchSpec;
  cluster?: Plan['cluster'];
  plan?: string;
  /** What the framework leaves to the model's code (DeepSpeed: the sequence length, dropout). */
  training?: { seqLen?: number; dropout?: boolean };
  span: Span;
}

/** Collects issues at offsets of a text. */
export class OffsetIssues {
  readonly issues: Issue[] = [];
  private readonly lines: LineIndex;
  constructor(readonly text: string) {
    this.lines = new LineIndex(text);
  }
  range(span: Span): Issue['range'] {
    return { start: this.lines.position(span.start), end: this.lines.position(Math.max(span.start, span.end)) };
  }
  add(severity: Severity, span: Span, message: string, path: (string | number)[] = []): void {
    this.issues.push({ severity, message, path, range: this.range(span) });
  }
  error(span: Span, message: string): void {
    this.add('error', span, message);
  }
  warn(span: Span, message: string): void {
    this.add('warning', span, message);
  }
  info(span: Span, message: string): void {
    this.add('information', span, message);
  }
}

const HEADER = /^[ \t]*#[ \t]*layerplan:[ \t]*(\{.*\})[ \t]*$/m;

/** Reads the `# layerplan: {…}` header line (shell scripts and TOML share the comment syntax). */
export function readHeader(text: string): LaunchHeader | undefined {
  const m = HEADER.exec(text.slice(0, 64 * 1024));
  if (!m) return undefined;
  const start = m.index + m[0].indexOf('{');
  let value: unknown;
  try {
    value = JSON.parse(m[1]);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  const model =
    typeof v.model === 'string' || (v.model && typeof v.model === 'object')
      ? (v.model as string | ArchSpec)
      : undefined;
  const cluster = v.cluster && typeof v.cluster === 'object' ? (v.cluster as Plan['cluster']) : undefined;
  const t = v.training && typeof v.training === 'object' ? (v.training as Record<string, unknown>) : undefined;
  const training = t
    ? {
        ...(typeof t.seqLen === 'number' ? { seqLen: t.seqLen } : {}),
        ...(typeof t.dropout === 'boolean' ? { dropout: t.dropout } : {}),
      }
    : undefined;
  return {
    model,
    cluster,
    plan: typeof v.plan === 'string' ? v.plan : undefined,
    training,
    span: { start, end: start + m[1].length },
  };
}

/** The header line for an exported file. */
export function headerLine(header: Omit<LaunchHeader, 'span'>): string {
  const v: Record<string, unknown> = {};
  if (header.plan) v.plan = header.plan;
  if (header.model !== undefined) v.model = header.model;
  if (header.cluster) v.cluster = header.cluster;
  if (header.training) v.training = header.training;
  return `# layerplan: ${JSON.stringify(v)}`;
}

/** The GPU a plan gets when neither the file, its header nor the caller names one. */
export const DEFAULT_GPU = 'h100-sxm';

/** Plan paths as text ("parallel.tensor"), the key of `origins`. */
export const pathKey = (path: (string | number)[]): string => path.join('.');

/**
 * Where a plan-level diagnostic goes: the origin of its path or of the nearest enclosing path, else the
 * anchor. Messages that start with the plan path ("parallel.tensor: …") are renamed to the file's
 * spelling ("--tensor-model-parallel-size: …").
 */
export function locate(
  imp: Pick<LaunchImport, 'origins' | 'anchor'>,
  path: (string | number)[],
  message: string,
): { span: Span; message: string } {
  for (let n = path.length; n > 0; n--) {
    const o = imp.origins.get(pathKey(path.slice(0, n)));
    if (!o) continue;
    const key = pathKey(path);
    const renamed =
      o.name && message.startsWith(`${key}:`) && n === path.length
        ? `${o.name}:${message.slice(key.length + 1)}`
        : o.name && message.startsWith(`${key}:`)
          ? `${o.name} (${key}):${message.slice(key.length + 1)}`
          : message;
    return { span: o.span, message: renamed };
  }
  return { span: imp.anchor, message };
}

/** A world size as nodes × GPUs per node: whole nodes of `perNode` when it divides, else one node. */
export function splitWorld(world: number, perNode = 8): { nodes: number; gpusPerNode: number } {
  return world > perNode && world % perNode === 0
    ? { nodes: world / perNode, gpusPerNode: perNode }
    : { nodes: 1, gpusPerNode: world };
}

/** Integer division that is exact, or undefined. */
export function exactDiv(a: number, b: number): number | undefined {
  return b > 0 && Number.isInteger(a / b) ? a / b : undefined;
}
