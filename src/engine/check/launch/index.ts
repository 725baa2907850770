/**
 * Launch configurations of the training frameworks as plans: which reader a file needs, and the plan's
 * own checks (structure, the model, memory per GPU) mapped back onto the file's ranges.
 */
import { estimate, modelChecks, type CostReport } from '../../cost/estimate';
import { parseLayerRange } from '../../plan/plan';
import type { Workload } from '../../cost/workload';
import { validatePlan, type Issue, type Plan } from '../../plan/plan';
import { locate, OffsetIssues, type LaunchContext, type LaunchImport, type LaunchKind } from './common';
import { importDeepSpeed } from './deepspeed';
import { importMegatron } from './megatron';
import { importTorchtitan } from './torchtitan';
import { stagesOf } from './megatron';

export type { LaunchContext, LaunchImport, LaunchKind } from './common';

/**
 * What launch configuration a file is, by its name and (for scripts) its text: a torchtitan TOML, a
 * DeepSpeed config (JSON with DeepSpeed's keys), a script that runs the deepspeed launcher on a config
 * ('deepspeed-script'), or a Megatron-LM launch script or argument list. Undefined for anything else.
 */
export function detectLaunch(
  fileName: string,
  text: string,
  jsonKind?: string,
): LaunchKind | 'deepspeed-script' | undefined {
  if (/\.toml$/i.test(fileName)) return 'torchtitan';
  if (/\.jsonc?$/i.test(fileName)) return jsonKind === 'deepspeed' ? 'deepspeed' : undefined;
  const head = text.slice(0, 1 << 20);
  const megatronFlags = /--(num-layers|tensor-model-parallel-size|micro-batch-size|hidden-size)\b/.test(head);
  if (/(^|[\s/])deepspeed\s/m.test(head) && /--deepspeed_config\b/.test(head) && !megatronFlags) {
    return 'deepspeed-script';
  }
  if (/\.(sh|bash|zsh|args|txt)$/i.test(fileName) || /^#!.*\b(ba|z)?sh\b/.test(head)) {
    return megatronFlags || /pretrain_\w+\.py/.test(head) ? 'megatron' : undefined;
  }
  return undefined;
}

/** Reads a launch configuration of a known kind (the DeepSpeed script form is read through its config). */
export function importLaunch(kind: LaunchKind, text: string, ctx: LaunchContext = {}): LaunchImport {
  return kind === 'megatron'
    ? importMegatron(text, ctx)
    : kind === 'deepspeed'
      ? importDeepSpeed(text, ctx)
      : importTorchtitan(text, ctx);
}

/** The imported plan as plan-file text (JSON with the notes as comments). */
export function planText(imp: LaunchImport, from: string): string {
  const lines = [`// Imported by Layerplan from ${from} (options of ${imp.version}).`];
  for (const n of imp.notes) lines.push(`// note: ${n}`);
  return `{\n${lines.map((l) => `  ${l}`).join('\n')}\n${JSON.stringify(imp.plan, null, 2).slice(2)}\n`;
}

/**
 * The estimate's own split of a plan's transformer layers: per (stage, chunk), chunk-major (the order
 * Megatron's layouts and torchtitan's model parts use). Undefined when a stage's chunks cannot be told apart.
 */
export function estimatedSplit(report: CostReport, pp: number, v: number): number[] | undefined {
  const perStage: number[][] = [];
  for (const st of report.stages) {
    const ix = parseLayerRange(st.layers) ?? [];
    const runs: number[] = [];
    ix.forEach((l, i) => (i > 0 && l === ix[i - 1] + 1 ? runs[runs.length - 1]++ : runs.push(1)));
    if (v === 1) perStage.push([ix.length]);
    else if (runs.length === v) perStage.push(runs);
    else return undefined;
  }
  if (perStage.length !== pp) return undefined;
  const out: number[] = [];
  for (let c = 0; c < v; c++) for (let s = 0; s < pp; s++) out.push(perStage[s][c]);
  return out;
}

/**
 * Makes the imported plan split its layers as the framework does: where the estimate would split them
 * otherwise (its default split, or its software profile's), the plan gets explicit stages; interleaved chunks
 * cannot be pinned, so a difference there becomes a note.
 */
export function completeImport(imp: LaunchImport, text: string, workload: Workload): Issue[] {
  const plan = imp.plan;
  const split = imp.split;
  if (!plan || !split || plan.stages) return [];
  const pp = plan.parallel?.pipeline ?? 1;
  const v = plan.parallel?.schedule === 'interleaved' ? Math.max(1, plan.parallel.virtualStages ?? 2) : 1;
  if (pp <= 1 || split.length !== pp * v || split.reduce((a, b) => a + b, 0) !== workload.blockIndices.length) {
    return [];
  }
  let sizes: number[] | undefined;
  try {
    sizes = estimatedSplit(estimate(plan, workload), pp, v);
  } catch {
    return [];
  }
  if (!sizes || sizes.join() === split.join()) return [];
  if (v === 1) {
    plan.stages = stagesOf(split);
    return [];
  }
  const c = new OffsetIssues(text);
  const l = locate(imp, ['stages'], '');
  c.info(
    l.span,
    `${imp.version} splits the interleaved chunks ${split.join(', ')} layers; Layerplan estimates them as ${sizes.join(', ')}`,
  );
  imp.notes.push(`the interleaved chunks (${split.join(', ')} layers) are estimated as ${sizes.join(', ')}`);
  return c.issues;
}

/**
 * The plan's own checks, on the launch file: field rules (degrees × GPUs, batch), the model (heads vs
 * tensor degree, layers vs stages) and memory per GPU against its capacity, each at the flag or key the
 * plan field came from. Only when the framework's own checks found no error (they name the same mistakes
 * in the framework's words).
 */
export function planIssues(
  imp: LaunchImport,
  text: string,
  workload: Workload | undefined,
): { issues: Issue[]; memory: Issue[]; report?: CostReport } {
  const c = new OffsetIssues(text);
  if (!imp.plan || imp.issues.some((i) => i.severity === 'error')) return { issues: [], memory: [] };
  if (workload) c.issues.push(...completeImport(imp, text, workload));
  const put = (severity: Issue['severity'], path: (string | number)[], message: string) => {
    const l = locate(imp, path, message);
    c.add(severity, l.span, l.message, path);
  };
  const checked = validatePlan(JSON.stringify(imp.plan));
  for (const i of checked.issues) put(i.severity, i.path, i.message);
  if (!checked.plan || !workload || c.issues.some((i) => i.severity === 'error')) {
    return { issues: c.issues, memory: [] };
  }
  for (const [p, message] of modelChecks(checked.plan, workload)) put('error', p, message);
  if (c.issues.some((i) => i.severity === 'error')) return { issues: c.issues, memory: [] };
  const report = estimate(checked.plan as Plan, workload);
  // Memory over a GPU's capacity: a finding of the estimate, not a reason to withhold it.
  const m = new OffsetIssues(text);
  for (const st of report.stages) {
    if (st.memory.total <= st.capacity) continue;
    const gib = (b: number) => (b / 2 ** 30).toFixed(1);
    const where = imp.plan.stages ? ['stages', st.index] : ['cluster', 'gpu'];
    const l = locate(
      imp,
      where,
      `stage ${st.index} needs ${gib(st.memory.total)} GiB per GPU, ${gib(st.memory.total - st.capacity)} GiB over the ${gib(st.capacity)} GiB of ${report.gpu}`,
    );
    m.add('error', l.span, l.message, where);
  }
  return { issues: c.issues, memory: m.issues, report };
}
