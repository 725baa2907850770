/**
 * `npm run validate`: every published training run in validation/runs.json, estimated from its
 * configuration and compared with what its source published. Two tables: the calibration set (the
 * runs the software profiles' constants are fitted on) and the validation set (other sources, never
 * used for fitting), each with mean and max |error|.
 */
import * as fs from 'fs';
import * as path from 'path';
import { estimate, type CostReport } from '../src/engine/cost/estimate';
import { archWorkload } from '../src/engine/cost/workload';
import { validatePlan, type ArchSpec, type Plan } from '../src/engine/plan/plan';
import type { ProfileOverrides } from '../src/engine/cost/profiles';

export interface PublishedRun {
  id: string;
  set: 'calibration' | 'validation';
  source: string;
  url?: string;
  published: {
    figure: 'iterationSeconds' | 'tokensPerSecondPerGpu' | 'tflopsPerGpu' | 'modelTflopsPerGpu';
    value: number;
    flops?: string;
  };
  plan: Plan;
  assumptions?: string;
  notes?: string;
  /** Calibration runs listed but left out of the fit, and why. */
  notFitted?: string;
}

export interface RunsFile {
  description: string;
  errorDefinition: string;
  runs: PublishedRun[];
  excluded: { id: string; reason: string }[];
}

export interface RunResult {
  run: PublishedRun;
  report: CostReport;
  /** The estimate in the published figure's unit. */
  predicted: number;
  /** Predicted step time ÷ published step time − 1 (negative: predicted faster). */
  error: number;
}

export const RUNS_FILE = path.join(__dirname, '..', '..', 'validation', 'runs.json');

export function loadRuns(file = RUNS_FILE): RunsFile {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as RunsFile;
}

/** The step's tokens: global batch × sequence. */
const stepTokens = (plan: Plan) => plan.training!.globalBatch * (plan.training!.seqLen ?? 2048);

export function evaluate(run: PublishedRun, overrides?: ProfileOverrides): RunResult {
  const { plan } = run;
  const checked = validatePlan(JSON.stringify(plan));
  const errors = checked.issues.filter((i) => i.severity === 'error');
  if (errors.length) throw new Error(`${run.id}: ${errors.map((e) => e.message).join('; ')}`);
  const report = estimate(plan, archWorkload(plan.model as ArchSpec), run.id, { overrides });
  const value = run.published.value;
  let predicted: number;
  let error: number;
  switch (run.published.figure) {
    case 'iterationSeconds':
      predicted = report.iterationSeconds;
      error = predicted / value - 1;
      break;
    case 'tokensPerSecondPerGpu':
      predicted = stepTokens(plan) / (report.iterationSeconds * report.gpus);
      error = value / predicted - 1;
      break;
    case 'tflopsPerGpu':
      predicted = report.tflopsPerGpu;
      error = value / predicted - 1;
      break;
    case 'modelTflopsPerGpu':
      predicted = report.modelTflopsPerGpu ?? report.tflopsPerGpu;
      error = value / predicted - 1;
      break;
  }
  return { run, report, predicted, error };
}

export interface SetSummary {
  results: RunResult[];
  meanAbsError: number;
  maxAbsError: number;
  worst?: RunResult;
  sources: number;
}

/** The source of a run: its id up to the first dash-separated configuration part. */
export const sourceOf = (id: string) => id.split('-')[0];

export function summarize(results: RunResult[]): SetSummary {
  const abs = results.map((r) => Math.abs(r.error));
  const max = Math.max(0, ...abs);
  return {
    results,
    meanAbsError: abs.reduce((a, b) => a + b, 0) / Math.max(1, abs.length),
    maxAbsError: max,
    worst: results[abs.indexOf(max)],
    sources: new Set(results.map((r) => sourceOf(r.run.id))).size,
  };
}

export function validateAll(file = RUNS_FILE): { calibration: SetSummary; validation: SetSummary; data: RunsFile } {
  const data = loadRuns(file);
  const results = data.runs.map((run) => evaluate(run));
  return {
    calibration: summarize(results.filter((r) => r.run.set === 'calibration')),
    validation: summarize(results.filter((r) => r.run.set === 'validation')),
    data,
  };
}

const UNITS: Record<PublishedRun['published']['figure'], string> = {
  iterationSeconds: 's/step',
  tokensPerSecondPerGpu: 'tok/s/GPU',
  tflopsPerGpu: 'TFLOP/s/GPU (hw)',
  modelTflopsPerGpu: 'TFLOP/s/GPU (model)',
};

function configuration(plan: Plan): string {
  const m = plan.model as ArchSpec;
  const p = plan.parallel ?? {};
  const t = plan.training!;
  const size = archWorkload(m).layers.reduce((a, l) => a + l.parameters, 0);
  const gpus = (plan.cluster.nodes ?? 1) * (plan.cluster.gpusPerNode ?? 8);
  const layout = [
    `TP${p.tensor ?? 1}`,
    `PP${p.pipeline ?? 1}${p.schedule === 'interleaved' ? `v${p.virtualStages}` : ''}`,
    p.context && p.context > 1 ? `CP${p.context}` : '',
    p.expert && p.expert > 1 ? `EP${p.expert}` : '',
    `DP${p.data ?? 1}`,
    p.zero ? `Z${p.zero}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const moe = m.experts && m.experts > 1 ? ` MoE ${m.experts}×top${m.expertsPerToken ?? 2}` : '';
  return `${(size / 1e9).toFixed(size < 1e10 ? 1 : 0)}B${moe} ${gpus}×${plan.cluster.gpu} ${layout} mb${t.microBatch} gb${t.globalBatch} s${t.seqLen} ${t.dtype}${t.fp8Recipe ? `/${t.fp8Recipe}` : ''} rc:${t.recompute ?? 'none'} ${t.framework}`;
}

export function formatTable(title: string, s: SetSummary): string {
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
  const num = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const rows = s.results.map((r) => [
    r.run.notFitted ? `${r.run.id} (not fitted)` : r.run.id,
    configuration(r.run.plan),
    `${num(r.run.published.value)} ${UNITS[r.run.published.figure]}`,
    num(r.predicted),
    pct(r.error),
  ]);
  const head = ['source (run)', 'configuration', 'published', 'predicted', 'error'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  const out = [
    `${title}: ${s.results.length} runs from ${s.sources} sources`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    `mean |error| ${(s.meanAbsError * 100).toFixed(2)}%, max |error| ${(s.maxAbsError * 100).toFixed(1)}%${s.worst ? ` (${s.worst.run.id})` : ''}`,
  ];
  const left = s.results.filter((r) => r.run.notFitted);
  if (left.length) {
    const fitted = summarize(s.results.filter((r) => !r.run.notFitted));
    out.push(
      `fitted runs only (${fitted.results.length}): mean |error| ${(fitted.meanAbsError * 100).toFixed(2)}%, max ${(fitted.maxAbsError * 100).toFixed(1)}%; not fitted: ${left[0].run.notFitted}`,
    );
  }
  return out.join('\n');
}

if (require.main === module) {
  const { calibration, validation, data } = validateAll();
  console.log(data.errorDefinition);
  console.log('');
  console.log(formatTable('Calibration set (the profiles\u2019 constants are fitted on these)', calibration));
  console.log('');
  console.log(formatTable('Validation set (other sources, never used for fitting)', validation));
  console.log('');
  console.log(
    `Not scored: ${data.excluded.length} further published runs (validation/runs.json "excluded" gives each one's reason: configuration not published, hardware not in the catalog, architectures a plan cannot describe). --sources prints every scored run's citation and assumptions.`,
  );
  if (process.argv.includes('--sources')) {
    for (const r of [...calibration.results, ...validation.results]) {
      console.log(`${r.run.id}: ${r.run.source}${r.run.assumptions ? `\n    assumed: ${r.run.assumptions}` : ''}`);
    }
  }
}
