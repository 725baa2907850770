import { promises as fsp } from 'fs';
import * as path from 'path';
import { estimate, modelChecks, rebalanceFix, type CostReport } from '../engine/cost/estimate';
import { parseFormat } from '../engine/quant/formats';
import { assignmentReport, budgetIssues, type AssignmentReport } from '../engine/check/precision';
import type { QuantReport } from '../engine/quant/run';
import { quantFile } from './quant-file';
import { archToSpec, graphLayerData, workloadFrom, type Workload, type WorkloadSource } from '../engine/cost/workload';
import { ampIssues } from '../engine/check/amp';
import { InputError } from '../engine/errors';
import { openModel } from '../engine/formats/registry';
import { IssueCollector, parseJsonWithTree, validatePlan, type Fix, type Issue, type Plan } from '../engine/plan/plan';
import { checkDeepSpeed, checkHfConfig, detectKind, type CheckedKind } from '../engine/check/configs';
import { memoryFixes } from '../engine/check/memory';
import { findGpu } from '../engine/hardware/catalog';
import { FileByteSource, FolderResolver } from './file-source';

/** Plans are small JSON files; anything bigger is not a plan. */
const MAX_PLAN_BYTES = 8 * 1024 * 1024;

export async function readTextFile(file: string, what: string): Promise<string> {
  let stat;
  try {
    stat = await fsp.stat(file);
  } catch {
    throw new InputError(file, 'no such file');
  }
  if (!stat.isFile()) throw new InputError(file, 'is not a file');
  if (stat.size > MAX_PLAN_BYTES) throw new InputError(file, `${stat.size} bytes is too large for a ${what}`);
  return fsp.readFile(file, 'utf8');
}

/** The workload a plan names, as plain data: a model file beside the plan, or an architecture object. */
export async function planWorkloadSource(plan: Plan, planFile: string): Promise<WorkloadSource> {
  if (typeof plan.model !== 'string') return { kind: 'arch', arch: archToSpec(plan.model) };
  const modelFile = path.resolve(path.dirname(planFile), plan.model);
  const source = await FileByteSource.open(modelFile);
  const siblings = new FolderResolver(modelFile);
  try {
    const bindings = plan.training
      ? { batch: plan.training.microBatch, sequence: plan.training.seqLen ?? 2048 }
      : { batch: plan.inference?.batch ?? 1, sequence: plan.inference?.promptLen ?? 1 };
    const graph = await openModel(source, { siblings, bindings });
    // Transformers (configs, checkpoints with their config) get the per-block model; other graphs the generic one.
    return graph.transformer
      ? { kind: 'arch', arch: graph.transformer }
      : { kind: 'graph', layers: graphLayerData(graph) };
  } finally {
    await source.close();
    await siblings.close();
  }
}

/**
 * Validates a plan file completely: structure, then the checks that need its model — also when the
 * structure has errors, on the plan without its ill-typed fields, so every independent error shows
 * at once (the Problems panel, the planner and `layerplan check` show this one list). Returns the
 * workload too, as data (`source`, what the planner's worker takes) and built, with the quick fix
 * for stage problems. `plan` is set only when the plan has no errors in its structure.
 */
export async function checkPlanFile(
  file: string,
  buffer?: string,
): Promise<{
  plan?: Plan;
  /** The plan the model checks ran on: `plan`, or the plan without its ill-typed fields. */
  checked?: Plan;
  source?: WorkloadSource;
  workload?: Workload;
  rebalance?: Fix;
  issues: Issue[];
  text: string;
}> {
  const text = buffer ?? (await readTextFile(file, 'plan'));
  const { plan, usable, issues, root } = validatePlan(text);
  const checked = plan ?? usable;
  if (!checked) return { issues, text };
  const c = new IssueCollector(text, root);
  let source: WorkloadSource;
  try {
    source = await planWorkloadSource(checked, file);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    c.error(['model'], `model: ${e.message}`);
    return { plan, checked, issues: [...issues, ...c.issues], text };
  }
  const workload = workloadFrom(source);
  const rebalance = rebalanceFix(checked, workload);
  for (const [p, message] of modelChecks(checked, workload)) {
    c.error(p, message, p[0] === 'stages' ? rebalance : undefined);
  }
  // Mixed precision keeps softmax, norms and summing reductions in fp32: a rule that names them gets a warning.
  for (const a of ampIssues(checked.precision, source)) c.warn(a.path, a.message, a.fix);
  // Structural stage problems (a stage count that is not parallel.pipeline) have the same fix.
  for (const i of issues) if (i.path[0] === 'stages' && !i.fix && rebalance) i.fix = rebalance;
  return { plan, checked, source, workload, rebalance, issues: [...issues, ...c.issues], text };
}

/** Diagnostics for any JSON file Layerplan understands: a plan, a Hugging Face config, a DeepSpeed config. */
export async function checkFile(
  file: string,
  options: { worldSize?: number; text?: string } = {},
): Promise<{ kind: CheckedKind; diagnostics: Issue[]; source?: WorkloadSource }> {
  // `text`: an editor's unsaved buffer; otherwise the file on disk.
  const text = options.text ?? (await readTextFile(file, 'JSON file'));
  const { value, syntax } = parseJsonWithTree(text);
  const kind = detectKind(file, value);
  if (syntax.length) return { kind, diagnostics: syntax };
  switch (kind) {
    case 'plan': {
      const r = await checkPlanFile(file, text);
      const diagnostics = [...r.issues];
      const c = new IssueCollector(r.text, parseJsonWithTree(r.text).root);
      // The memory per stage means something when the plan's only error is a GPU count off the cluster (at 'parallel').
      const blocking = diagnostics.some(
        (d) => d.severity === 'error' && !(d.path.length === 1 && d.path[0] === 'parallel'),
      );
      const plan = r.checked;
      if (
        plan &&
        r.workload &&
        !blocking &&
        plan.cluster?.gpu &&
        findGpu(plan.cluster.gpu) &&
        (plan.training || plan.inference)
      ) {
        // Memory per stage against the GPU's capacity, located at the stage (or the GPU when stages are implicit),
        // with the changes that bring it down as quick fixes. Also with a GPU count that does not match the cluster.
        let report: CostReport | undefined;
        try {
          report = estimate(plan, r.workload, file, { allowGpuCountMismatch: true });
        } catch (e) {
          if (!(e instanceof InputError)) throw e;
        }
        for (const st of report?.stages ?? []) {
          if (st.memory.total <= st.capacity) continue;
          const over = (st.memory.total - st.capacity) / 2 ** 30;
          const where = plan.stages ? ['stages', st.index] : ['cluster', 'gpu'];
          const fixes = memoryFixes(plan, r.workload, st.index, report!);
          if (plan.stages && r.rebalance) fixes.push(r.rebalance);
          c.error(
            where,
            `stage ${st.index} needs ${(st.memory.total / 2 ** 30).toFixed(1)} GiB per GPU, ${over.toFixed(1)} GiB over the ${(st.capacity / 2 ** 30).toFixed(1)} GiB of ${report!.gpu}`,
            fixes,
          );
        }
      }
      if (plan) for (const b of await budgetChecks(plan, file)) c.at(b.path, b.severity ?? 'warning', b.message);
      diagnostics.push(...c.issues);
      return { kind, diagnostics, source: r.source };
    }
    case 'hf-config':
      return { kind, diagnostics: checkHfConfig(text) };
    case 'deepspeed':
      return { kind, diagnostics: checkDeepSpeed(text, options.worldSize) };
    default:
      throw new InputError(file, 'not a plan, a Hugging Face config.json or a DeepSpeed config');
  }
}

const measured = new Map<string, QuantReport>();

/** Past this size measuring the weights would read gigabytes on every check or edit: callers say so instead. */
export const MEASURE_MAX_BYTES = 2 * 2 ** 30;

/**
 * The plan's precision assignment measured on its model's weights (the diagnostics' error budget
 * and the planner's heatmap share it), cached per model file, its mtime and the formats. Undefined
 * where there is nothing to measure (an architecture object, a config, a missing file, an unknown
 * format); `tooLargeBytes` past MEASURE_MAX_BYTES. `onMeasure` is called when a measurement starts.
 */
export async function measurePlanPrecision(
  plan: Plan,
  planFile: string,
  onMeasure?: (formats: string[]) => void,
): Promise<{ assignment: AssignmentReport } | { tooLargeBytes: number } | undefined> {
  if (typeof plan.model !== 'string' || !/\.(onnx|safetensors|gguf)$/i.test(plan.model)) return undefined;
  const model = path.resolve(path.dirname(planFile), plan.model);
  const formats = [
    ...new Set([plan.precision?.default ?? 'bf16', ...(plan.precision?.rules ?? []).map((r) => r.format)]),
  ];
  if (formats.some((f) => !parseFormat(f))) return undefined;
  let stat;
  try {
    stat = await fsp.stat(model);
  } catch {
    return undefined;
  }
  if (stat.size > MEASURE_MAX_BYTES) return { tooLargeBytes: stat.size };
  const key = JSON.stringify([model, stat.mtimeMs, stat.size, [...formats].sort()]);
  let report = measured.get(key);
  if (!report) {
    onMeasure?.(formats);
    // Large models: every 16th row (the sampled estimate is within a fraction of a dB).
    report = await quantFile(model, { formats, sample: stat.size > 512 * 2 ** 20 ? 1 / 16 : undefined });
    if (measured.size > 16) measured.clear();
    measured.set(key, report);
  }
  return { assignment: assignmentReport(report, plan.precision) };
}

/** The plan's precision against its error budget (warnings at the rules), or why it was not checked. */
async function budgetChecks(
  plan: Plan,
  file: string,
): Promise<{ path: (string | number)[]; message: string; severity?: 'information' | 'error' }[]> {
  if (plan.precision?.errorBudgetDb === undefined) return [];
  const m = await measurePlanPrecision(plan, file);
  if (!m) return [];
  if ('tooLargeBytes' in m) {
    return [
      {
        path: ['precision', 'errorBudgetDb'],
        severity: 'information',
        message: `precision.errorBudgetDb: not checked here (the model is ${(m.tooLargeBytes / 2 ** 30).toFixed(1)} GiB); run layerplan quant ${plan.model as string} --plan <this plan> for the measured error`,
      },
    ];
  }
  return budgetIssues(plan.precision, m.assignment);
}

function firstError(file: string, issues: Issue[]): InputError | undefined {
  const e = issues.find((i) => i.severity === 'error');
  return e ? new InputError(`${file}:${e.range.start.line + 1}:${e.range.start.character + 1}`, e.message) : undefined;
}

/** Validates, then estimates (the file, or an editor's buffer `text`); the first error comes back as an InputError naming the field. */
export async function tryEstimatePlan(
  file: string,
  text?: string,
): Promise<{ plan?: Plan; report?: CostReport; error?: InputError }> {
  const { plan, workload, issues } = await checkPlanFile(file, text);
  const err = firstError(file, issues);
  if (err || !plan || !workload) return { plan, error: err ?? new InputError(file, 'invalid plan') };
  return { plan, report: estimate(plan, workload, file) };
}

/** `layerplan estimate`: validates, then estimates; the first error is thrown as an InputError naming the field. */
export async function estimatePlanFile(file: string): Promise<CostReport> {
  const r = await tryEstimatePlan(file);
  if (r.error || !r.report) throw r.error ?? new InputError(file, 'invalid plan');
  return r.report;
}
