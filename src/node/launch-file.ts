import { promises as fsp } from 'fs';
import * as path from 'path';
import type { CostReport } from '../engine/cost/estimate';
import { workloadFrom, type Workload, type WorkloadSource } from '../engine/cost/workload';
import { InputError } from '../engine/errors';
import { detectKind } from '../engine/check/configs';
import {
  detectLaunch,
  importLaunch,
  planIssues,
  type LaunchContext,
  type LaunchImport,
  type LaunchKind,
} from '../engine/check/launch';
import { readDeepSpeedScript } from '../engine/check/launch/deepspeed';
import { OffsetIssues, readHeader } from '../engine/check/launch/common';
import { parseJsonWithTree, type Issue, type Plan } from '../engine/plan/plan';
import { checkFile, NotCheckedError, planWorkloadSource, readTextFile } from './plan-file';

/** What the command line or the editor adds to a launch file: the flags --gpu, --nodes, --gpus-per-node, --world-size, --model. */
export interface LaunchOptions {
  gpu?: string;
  nodes?: number;
  gpusPerNode?: number;
  worldSize?: number;
  /** A model file (relative to the current directory, or absolute). */
  model?: string;
}

export interface LaunchFileResult {
  kind: LaunchKind;
  /** The file whose options were read (a DeepSpeed script is read through the config it names). */
  file: string;
  imp: LaunchImport;
  /** Diagnostics of `file`: the framework's rules and the plan's checks, at their ranges. */
  diagnostics: Issue[];
  /** Diagnostics of other files of the launch (a DeepSpeed script's config, or the script of a config). */
  related: { file: string; diagnostics: Issue[] }[];
  plan?: Plan;
  source?: WorkloadSource;
  workload?: Workload;
  report?: CostReport;
  /** The errors that keep the file from being estimated (memory over capacity is a finding, not one of them). */
  blocking?: Issue[];
}

/** Sibling scripts are small; anything bigger is not a launch script. */
const MAX_SCRIPT_BYTES = 1 << 20;

async function readIfSmall(file: string): Promise<string | undefined> {
  try {
    const st = await fsp.stat(file);
    if (!st.isFile() || st.size > MAX_SCRIPT_BYTES) return undefined;
    return await fsp.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The script beside a DeepSpeed config that launches it (deepspeed … --deepspeed_config <this file>). */
async function findDeepSpeedScript(config: string): Promise<{ file: string; text: string } | undefined> {
  const dir = path.dirname(config);
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter((n) => /\.(sh|bash)$/i.test(n)).slice(0, 64);
  } catch {
    return undefined;
  }
  for (const n of names.sort()) {
    const file = path.join(dir, n);
    const text = await readIfSmall(file);
    if (!text || !text.includes(path.basename(config))) continue;
    const s = readDeepSpeedScript(text);
    if (s.config && path.resolve(dir, s.config) === path.resolve(config)) return { file, text };
  }
  return undefined;
}

/** Is this a launch configuration Layerplan reads (by name and content)? */
export function launchKindOf(file: string, text: string): LaunchKind | 'deepspeed-script' | undefined {
  let jsonKind: string | undefined;
  if (/\.jsonc?$/i.test(file)) {
    const { value, syntax } = parseJsonWithTree(text);
    jsonKind = syntax.length ? (/deepspeed|ds_config/i.test(file) ? 'deepspeed' : undefined) : detectKind(file, value);
  }
  return detectLaunch(file, text, jsonKind);
}

/** A model path relative to a launch file (how plan.model names it when the launch file stands in for the plan). */
function relativeTo(launchFile: string, model: string): string {
  return path.relative(path.dirname(launchFile), path.resolve(model)).split(path.sep).join('/') || '.';
}

/**
 * Reads a launch configuration (a Megatron-LM script or argument list, a DeepSpeed config or the script that
 * launches one, a torchtitan TOML) as a plan, with the framework's checks and the plan's checks (the model,
 * memory per GPU) as diagnostics at the file's ranges. `text` is an editor's unsaved buffer.
 */
export async function importLaunchFile(
  file: string,
  options: LaunchOptions = {},
  text?: string,
): Promise<LaunchFileResult> {
  const body = text ?? (await readTextFile(file, 'launch configuration'));
  const detected = launchKindOf(file, body);
  if (!detected) {
    throw new InputError(
      file,
      'not a launch configuration Layerplan reads (a Megatron-LM script, a DeepSpeed config, a torchtitan TOML)',
    );
  }
  const related: LaunchFileResult['related'] = [];
  let kind: LaunchKind;
  let configFile = file;
  let configText = body;
  let companion: LaunchContext['companion'];
  if (detected === 'deepspeed-script') {
    // The script names the config: its options are the config's; the script's own launcher flags are checked here.
    const c = new OffsetIssues(body);
    const s = readDeepSpeedScript(body, c);
    if (!s.config) throw new InputError(file, 'the deepspeed command names no --deepspeed_config');
    configFile = path.resolve(path.dirname(file), s.config);
    const t = await readIfSmall(configFile);
    if (t === undefined) throw new InputError(file, `its --deepspeed_config ${s.config} cannot be read`);
    configText = t;
    companion = { file, text: body };
    kind = 'deepspeed';
    related.push({ file, diagnostics: c.issues });
  } else {
    kind = detected;
    if (kind === 'deepspeed') companion = await findDeepSpeedScript(file);
  }

  // The model: the --model option, else Layerplan's header (in the file, or in the DeepSpeed script), else the file's own.
  const ctx: LaunchContext = {
    gpu: options.gpu,
    nodes: options.nodes,
    gpusPerNode: options.gpusPerNode,
    worldSize: options.worldSize,
    companion,
  };
  if (options.model) ctx.model = relativeTo(configFile, options.model);
  const header = readHeader(companion?.text ?? configText);
  const headerFile = companion?.file ?? configFile;
  let headerModelMissing: string | undefined;
  if (!ctx.model && typeof header?.model === 'string') {
    const resolved = path.resolve(path.dirname(headerFile), header.model);
    try {
      await fsp.access(resolved);
      ctx.model = relativeTo(configFile, resolved);
    } catch {
      headerModelMissing = header.model;
    }
  } else if (!ctx.model && header?.model && typeof header.model === 'object') ctx.model = header.model;
  if (kind === 'torchtitan' && !ctx.model) {
    const m = /^\s*hf_assets_path\s*=\s*"([^"]*)"/m.exec(configText);
    if (m) {
      for (const base of [path.dirname(configFile), process.cwd()]) {
        const cfg = path.resolve(base, m[1], 'config.json');
        if (await readIfSmall(cfg)) {
          ctx.assetsModel = relativeTo(configFile, cfg);
          break;
        }
      }
    }
  }
  // The model's transformer, to check the file's shape flags against it.
  let source: WorkloadSource | undefined;
  const modelFor = ctx.model;
  if (typeof modelFor === 'string') {
    try {
      source = await planWorkloadSource({ model: modelFor, cluster: { gpu: 'h100-sxm' } } as Plan, configFile);
      if (source.kind === 'arch') ctx.modelSpec = source.arch;
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      throw new InputError(file, `model ${modelFor}: ${e.problem}`);
    }
  }
  const imp = importLaunch(kind, configText, ctx);
  if (headerModelMissing) {
    const c = new OffsetIssues(companion?.text ?? configText);
    c.warn(
      header!.span,
      `the model this file was exported for (${headerModelMissing}) is not there; ${kind === 'megatron' ? 'the model is built from the shape flags' : 'pass --model'}`,
    );
    (companion ? related[0]?.diagnostics : imp.issues)?.push(...c.issues);
  }
  const result: LaunchFileResult = { kind, file: configFile, imp, diagnostics: imp.issues, related, plan: imp.plan };
  if (imp.plan) {
    try {
      // The plan's workload: the model as the plan names it, relative to the launch file.
      const planSource =
        source && imp.plan.model === modelFor ? source : await planWorkloadSource(imp.plan, configFile);
      result.source = planSource;
      result.workload = workloadFrom(planSource);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      const c = new OffsetIssues(configText);
      c.error(imp.origins.get('model')?.span ?? imp.anchor, `model: ${e.problem}`);
      imp.issues.push(...c.issues);
    }
    const checked = planIssues(imp, configText, result.workload);
    result.diagnostics = [...imp.issues, ...checked.issues, ...checked.memory];
    result.blocking = [...imp.issues, ...checked.issues].filter((d) => d.severity === 'error');
    result.report = checked.report;
  }
  if (configFile !== file) {
    // The script was asked for: its diagnostics first, the config's as related.
    return {
      ...result,
      file,
      diagnostics: related[0]?.diagnostics ?? [],
      related: [{ file: configFile, diagnostics: result.diagnostics }],
    };
  }
  return result;
}

/** `layerplan estimate` on a launch file: the plan's estimate, or the first error as an InputError at its line. */
export async function estimateLaunchFile(
  file: string,
  options: LaunchOptions = {},
): Promise<{ report: CostReport; plan: Plan; notes: string[]; version: string }> {
  const r = await importLaunchFile(file, options);
  const all = [
    { file: r.file, diagnostics: r.blocking ?? r.diagnostics },
    ...r.related.map((x) => ({ file: x.file, diagnostics: x.diagnostics })),
  ];
  for (const { file: f, diagnostics } of all) {
    const e = diagnostics.find((d) => d.severity === 'error' && !/^stage \d+ needs .* GiB per GPU/.test(d.message));
    if (e) throw new InputError(`${f}:${e.range.start.line + 1}:${e.range.start.character + 1}`, e.message);
  }
  if (!r.plan || !r.report) {
    const why = [...all.flatMap((x) => x.diagnostics)].find((d) => d.severity !== 'error')?.message;
    throw new InputError(file, why ?? 'no plan could be read from it');
  }
  return { report: r.report, plan: r.plan, notes: r.imp.notes, version: r.imp.version };
}

/**
 * Diagnostics for any file `layerplan check` takes: a launch configuration (through importLaunchFile),
 * else a plan or a Hugging Face config (checkFile).
 */
export async function checkAnyFile(
  file: string,
  options: LaunchOptions & { text?: string } = {},
): Promise<{
  kind: string;
  diagnostics: Issue[];
  related: { file: string; diagnostics: Issue[] }[];
  source?: WorkloadSource;
  launch?: LaunchFileResult;
}> {
  const text = options.text ?? (await readTextFile(file, 'file'));
  if (launchKindOf(file, text)) {
    const r = await importLaunchFile(file, options, text);
    return { kind: r.kind, diagnostics: r.diagnostics, related: r.related, source: r.source, launch: r };
  }
  if (!/\.jsonc?$/i.test(file) && !/^\s*[{[/]/.test(text)) {
    throw new NotCheckedError(
      file,
      'not a file Layerplan checks (a plan, a Hugging Face config, a launch configuration)',
    );
  }
  const r = await checkFile(file, { worldSize: options.worldSize, text });
  return { kind: r.kind, diagnostics: r.diagnostics, related: [], source: r.source };
}
