import { promises as fsp } from 'fs';
import * as path from 'path';
import { workloadFrom } from '../engine/cost/workload';
import { InputError } from '../engine/errors';
import { setJsonPaths } from '../engine/plan/edits';
import { parseJsonWithTree, validatePlan, type Plan } from '../engine/plan/plan';
import { candidateFormats, optimize, type OptimizeOptions, type SearchResult } from '../engine/search/optimize';
import { MEASURE_MAX_BYTES, planWorkloadSource, readTextFile } from './plan-file';
import { quantFile } from './quant-file';
import { AUTO_CALIBRATE_BYTES, predictPlan } from './quant-plan';

/**
 * Fields the search sets itself: a plan whose only errors are there (degrees that do not multiply to the GPU
 * count, stages that do not match the pipeline, a micro-batch that does not divide the batch) is still searched.
 */
const SEARCHED = ['parallel', 'stages', 'training.microBatch', 'training.recompute'];

/** The plan of a file for the search: valid, or with errors only in the fields the search replaces. */
export function planForSearch(file: string, text: string): Plan {
  const { plan, issues } = validatePlan(text);
  if (plan) return plan;
  const errors = issues.filter((i) => i.severity === 'error');
  const blocking = errors.find(
    (i) =>
      !SEARCHED.some((p) => i.path.join('.') === p || i.path.join('.').startsWith(`${p}.`)) ||
      i.message.startsWith('JSON syntax'),
  );
  if (blocking) {
    throw new InputError(
      `${file}:${blocking.range.start.line + 1}:${blocking.range.start.character + 1}`,
      blocking.message,
    );
  }
  return parseJsonWithTree(text).value as Plan;
}

/**
 * Per layer and candidate format, the SQNR its noise alone gives at the model's output: the weights' SQNR
 * measured on the plan's model file (the plan check's measurement) through the model's calibrated
 * sensitivity (node/sensitivity.ts, as `quant --plan` predicts), or with unit gain where the model cannot be
 * calibrated (the first-order figure: the weights' SQNR itself; a note says so). The search adds these
 * terms with OUTPUT_ERROR, so its output SQNR is the calibrated prediction. Undefined for architectures,
 * configs, or models past MEASURE_MAX_BYTES (a note says so).
 */
export async function measureLayerSqnr(
  plan: Plan,
  planFile: string,
  formats: string[],
  notes: string[],
): Promise<Record<string, Record<string, number | null>> | undefined> {
  if (typeof plan.model !== 'string' || !/\.(onnx|safetensors|gguf)$/i.test(plan.model)) return undefined;
  const model = path.resolve(path.dirname(planFile), plan.model);
  let size: number;
  try {
    size = (await fsp.stat(model)).size;
  } catch {
    return undefined;
  }
  if (size > MEASURE_MAX_BYTES) {
    notes.push(`precision: ${plan.model} is ${(size / 2 ** 30).toFixed(1)} GiB, too large to measure here`);
    return undefined;
  }
  const report = await quantFile(model, { formats, sample: size > 512 * 2 ** 20 ? 1 / 16 : undefined });
  const table: Record<string, Record<string, number | null>> = {};
  let firstOrder: string | undefined;
  for (const f of formats) {
    const p = await predictPlan(model, { default: f }, report, {
      calibrate: size <= AUTO_CALIBRATE_BYTES ? 'always' : 'cached',
    });
    if (p.predicted.errorModel !== 'calibrated') firstOrder = p.predicted.note;
    for (const l of p.assignment.layers) (table[l.name] ??= {})[l.format] = l.outputSqnrDb;
  }
  if (firstOrder) notes.push(`precision: the output error is first-order (${firstOrder})`);
  return table;
}

/** `layerplan optimize`: reads the plan, measures what the precision search needs, searches. */
export async function optimizeFile(
  file: string,
  options: OptimizeOptions = {},
): Promise<{ result: SearchResult; text: string; plan: Plan }> {
  const text = await readTextFile(file, 'plan');
  const plan = planForSearch(file, text);
  let source;
  try {
    source = await planWorkloadSource(plan, file);
  } catch (e) {
    if (e instanceof InputError) throw new InputError(file, `model: ${e.message}`);
    throw e;
  }
  const workload = workloadFrom(source);
  const notes: string[] = [];
  const layerSqnr =
    options.layerSqnr ??
    (plan.precision?.errorBudgetDb !== undefined && !options.locks?.includes('precision')
      ? await measureLayerSqnr(plan, file, candidateFormats(plan, options.formats), notes)
      : undefined);
  const result = optimize(plan, workload, { ...options, layerSqnr, file });
  result.notes.unshift(...notes);
  return { result, text, plan };
}

/** The plan's text with a candidate's fields written in (comments and layout kept). */
export function applyCandidate(text: string, candidate: SearchResult['candidates'][number]): string {
  return setJsonPaths(text, candidate.edits);
}
