import { promises as fsp } from 'fs';
import * as path from 'path';
import { estimate, modelChecks, rebalanceFix, type CostReport } from '../engine/cost/estimate';
import { parseFormat } from '../engine/quant/formats';
import { budgetIssues, type AssignmentReport, type Predicted } from '../engine/check/precision';
import { AUTO_CALIBRATE_BYTES, predictPlan } from './quant-plan';
import type { QuantReport } from '../engine/quant/run';
import { quantFile } from './quant-file';
import { archToSpec, graphLayerData, workloadFrom, type Workload, type WorkloadSource } from '../engine/cost/workload';
import { ampIssues } from '../engine/check/amp';
import { InputError } from '../engine/errors';
import { openModel } from '../engine/formats/registry';
import { graphWarnings } from '../engine/graph/warnings';
import { readGguf } from '../engine/formats/gguf';
import { ggufModel } from '../engine/formats/gguf-model';
import { IssueCollector, parseJsonWithTree, validatePlan, type Fix, type Issue, type Plan } from '../engine/plan/plan';
import { checkDeepSpeed, checkHfConfig, detectKind, type CheckedKind } from '../engine/check/configs';
import { memoryFixes } from '../engine/check/memory';
import { findGpu } from '../engine/hardware/catalog';
import type { LayerErrors } from '../protocol';
import { FileByteSource, FolderResolver } from './file-source';
import { optimize } from '../engine/search/optimize';
import { describeEdits } from '../engine/search/describe';
import { formatGiB, formatSeconds } from '../engine/units';

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
    // A GGUF's tensors and types as llama.cpp loads them (inference plans place them on devices).
    const gguf = graph.format === 'gguf' ? ggufModel(await readGguf(source)) : undefined;
    // Transformers (configs, checkpoints with their config) get the per-block model; other graphs the generic one.
    // The per-block model does not use the graph's shapes: only the reader's own warnings apply to it.
    const w = graph.transformer ? (graph.warnings ?? []) : graphWarnings(graph);
    const warnings = w.length ? { warnings: w } : {};
    const base: WorkloadSource = graph.transformer
      ? { kind: 'arch', arch: graph.transformer, ...warnings }
      : { kind: 'graph', layers: graphLayerData(graph), ...warnings };
    return gguf ? { ...base, gguf } : base;
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
  // What the model's numbers miss (no config.json beside a checkpoint, dims counted as 1) is said at `model`.
  for (const w of source.warnings ?? []) c.warn(['model'], `model: ${w}`);
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
        (plan.devices || (plan.cluster?.gpu && findGpu(plan.cluster.gpu))) &&
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
        // Inference on devices: the runtime's problems (a device over its memory gets the auto-fit quick fix).
        for (const p of report?.runtime?.problems ?? []) {
          const overflow = p.message.startsWith('device ');
          c.at(p.path, p.severity, p.message, overflow ? report?.runtime?.fix : undefined);
        }
        const over = !!report && !report.runtime && report.stages.some((st) => st.memory.total > st.capacity);
        // The optimizer's fastest plan that fits, when the plan's degrees use the cluster (the search keeps its GPUs).
        const mismatch = diagnostics.some((d) => d.severity === 'error');
        const fits = over && !mismatch ? fastestThatFits(plan, r.workload, file) : undefined;
        for (const st of !report || report.runtime ? [] : report.stages) {
          if (st.memory.total <= st.capacity) continue;
          const over = (st.memory.total - st.capacity) / 2 ** 30;
          const where = plan.stages ? ['stages', st.index] : ['cluster', 'gpu'];
          // The optimizer's plan first (the fastest that fits), then the single changes (those that fit first, each
          // estimated), then an even split of the listed stages.
          const fixes = [...(fits ? [fits] : []), ...memoryFixes(plan, r.workload, st.index, report!)];
          if (plan.stages && r.rebalance) fixes.push(r.rebalance);
          c.error(
            where,
            `stage ${st.index} needs ${(st.memory.total / 2 ** 30).toFixed(1)} GiB per GPU, ${over.toFixed(1)} GiB over the ${(st.capacity / 2 ** 30).toFixed(1)} GiB of ${report!.gpu}`,
            fixes,
          );
        }
      }
      if (plan) {
        // One check that cannot run (weights that cannot be measured) is one diagnostic, not the end of the others.
        let budget: Awaited<ReturnType<typeof budgetChecks>>;
        try {
          budget = await budgetChecks(plan, file);
        } catch (e) {
          if (!(e instanceof InputError)) throw e;
          budget = [
            {
              path: ['precision', 'errorBudgetDb'],
              message: `precision.errorBudgetDb: not checked: ${e.message}`,
            },
          ];
        }
        for (const b of budget) c.at(b.path, b.severity ?? 'warning', b.message);
      }
      diagnostics.push(...c.issues);
      return { kind, diagnostics, source: r.source };
    }
    case 'hf-config':
      return { kind, diagnostics: checkHfConfig(text) };
    case 'deepspeed':
      return { kind, diagnostics: checkDeepSpeed(text, options.worldSize) };
    default:
      throw new NotCheckedError(file, 'not a plan, a Hugging Face config.json or a DeepSpeed config');
  }
}

/** A JSON file that is none of the kinds Layerplan checks: `layerplan check` refuses it; the editor leaves it alone. */
export class NotCheckedError extends InputError {}

/**
 * The quick fix for a stage over memory: the optimizer's fastest plan that fits, its changes named in the title
 * ("Apply the fastest plan that fits: pipeline 2 → 4, recompute none → selective (1.23 s per step)"). The
 * precision stays as it is; the search stops after a few seconds with what it has.
 */
export function fastestThatFits(plan: Plan, workload: Workload, file: string): Fix | undefined {
  const deadline = Date.now() + 3000;
  let best;
  try {
    best = optimize(plan, workload, { top: 1, locks: ['precision'], file, shouldStop: () => Date.now() > deadline })
      .candidates[0];
  } catch {
    return undefined;
  }
  if (!best?.edits.length) return undefined;
  const changes = describeEdits(plan, best.edits).join(', ');
  return {
    title: `Apply the fastest plan that fits: ${changes} (${formatSeconds(best.iterationSeconds)} per step, ${formatGiB(best.peakMemoryBytes)} of ${formatGiB(best.capacityBytes)})`,
    edits: best.edits,
  };
}

const measured = new Map<string, QuantReport>();

/** Past this size measuring the weights would read gigabytes on every check or edit: callers say so instead. */
export const MEASURE_MAX_BYTES = 2 * 2 ** 30;

/**
 * The plan's precision assignment measured on its model's weights, and its predicted output SQNR (the
 * diagnostics' error budget and the planner's heatmap share it): the weights' error is cached per model
 * file, its mtime and the formats; the prediction is calibrated on the model's per-layer sensitivities
 * (node/sensitivity.ts) for ONNX models up to AUTO_CALIBRATE_BYTES, or larger ones already calibrated
 * (an export run), and first-order otherwise. Undefined where there is nothing to measure (an
 * architecture object, a config, a missing file, an unknown format); `tooLargeBytes` past
 * MEASURE_MAX_BYTES. `onMeasure` is called when a measurement starts.
 */
export async function measurePlanPrecision(
  plan: Plan,
  planFile: string,
  onMeasure?: (formats: string[]) => void,
): Promise<{ assignment: AssignmentReport; predicted: Predicted } | { tooLargeBytes: number } | undefined> {
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
  const p = await predictPlan(model, plan.precision, report, {
    calibrate: stat.size <= AUTO_CALIBRATE_BYTES ? 'always' : 'cached',
  });
  return { assignment: p.assignment, predicted: p.predicted };
}

/**
 * What the planner's error heatmap shows for a plan: the measured error per layer, or why there is
 * none. Always an answer, never nothing: a measurement that fails must not leave the last plan's
 * heatmap (or "measuring…") on screen. `onMeasure` is called when a measurement starts.
 */
export async function planLayerErrors(
  plan: Plan,
  planFile: string,
  onMeasure?: (formats: string[]) => void,
): Promise<LayerErrors> {
  const budgetDb = plan.precision?.errorBudgetDb;
  const none = (note?: string): LayerErrors => ({
    budgetDb,
    outputSqnrDb: null,
    layers: [],
    ...(note ? { note } : {}),
  });
  let m: Awaited<ReturnType<typeof measurePlanPrecision>>;
  try {
    m = await measurePlanPrecision(plan, planFile, onMeasure);
  } catch (e) {
    return none(
      `error heatmap: not measured: ${e instanceof InputError ? e.message : `internal error: ${(e as Error).message}`}`,
    );
  }
  if (!m) return none();
  if ('tooLargeBytes' in m) {
    return none(
      `error heatmap: the model is ${(m.tooLargeBytes / 2 ** 30).toFixed(1)} GiB, too large to measure on every edit; run layerplan quant --plan`,
    );
  }
  const a = m.assignment;
  return {
    budgetDb,
    outputSqnrDb: a.outputSqnrDb,
    firstOrderSqnrDb: a.firstOrderSqnrDb,
    errorModel: a.errorModel,
    ...(m.predicted.note ? { note: `first-order: ${m.predicted.note}` } : {}),
    layers: a.layers.map((l) => ({
      name: l.name,
      format: l.format,
      sqnrDb: l.sqnrDb,
      sensitivity: l.sensitivity,
      outputSqnrDb: l.outputSqnrDb,
    })),
  };
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
