import { estimate, type CostReport } from '../cost/estimate';
import type { Workload } from '../cost/workload';
import type { Fix, Plan } from '../plan/plan';
import { setPlanPaths, type PlanEdit } from '../plan/edits';
import { formatGiB } from '../units';

/**
 * The ways out of a stage over its GPU's memory, each checked by estimating the plan with it: more
 * activation recomputation, a higher ZeRO stage (sharding over the data-parallel ranks), a smaller
 * micro-batch (the global batch stays a multiple). Only changes that shrink the stage are offered,
 * the ones that make every stage fit first; each title says what the stage then needs.
 */
export function memoryFixes(plan: Plan, workload: Workload, stage: number, report: CostReport): Fix[] {
  const before = report.stages[stage]?.memory.total ?? 0;
  const candidates: { title: string; edits: PlanEdit[] }[] = [];
  const t = plan.training;
  if (t) {
    const recompute = t.recompute ?? 'none';
    for (const next of ['selective', 'full'] as const) {
      if (['none', 'selective', 'full'].indexOf(next) > ['none', 'selective', 'full'].indexOf(recompute)) {
        candidates.push({
          title: `Set training.recompute to "${next}"`,
          edits: [{ path: ['training', 'recompute'], value: next }],
        });
      }
    }
    const dp = plan.parallel?.data ?? 1;
    const zero = plan.parallel?.zero ?? 0;
    if (dp > 1) {
      for (let z = zero + 1; z <= 3; z++) {
        candidates.push({ title: `Set parallel.zero to ${z}`, edits: [{ path: ['parallel', 'zero'], value: z }] });
      }
    }
    if (t.microBatch > 1) {
      const mb = Math.max(1, Math.floor(t.microBatch / 2));
      candidates.push({
        title: `Set training.microBatch to ${mb}`,
        edits: [{ path: ['training', 'microBatch'], value: mb }],
      });
    }
  }
  const tryEdits = (edits: PlanEdit[]) => {
    const changed = structuredClone(plan);
    setPlanPaths(changed, edits);
    try {
      const r = estimate(changed, workload, 'plan', { allowGpuCountMismatch: true });
      return {
        after: r.stages[stage]?.memory.total ?? Infinity,
        fits: r.stages.every((s) => s.memory.total <= s.capacity),
      };
    } catch {
      return undefined;
    }
  };
  const title = (what: string, after: number, fits: boolean) =>
    `${what} (stage ${stage}: ${formatGiB(before)} → ${formatGiB(after)} per GPU${fits ? ', fits' : ''})`;
  const scored: (Fix & { after: number; fits: boolean })[] = [];
  // One setting per candidate field (the strongest recompute / ZeRO level that helps is the one to combine).
  const best = new Map<string, { c: (typeof candidates)[number]; after: number }>();
  for (const c of candidates) {
    const r = tryEdits(c.edits);
    if (!r || !(r.after < before)) continue;
    scored.push({ title: title(c.title, r.after, r.fits), edits: c.edits, after: r.after, fits: r.fits });
    const key = c.edits[0].path.join('.');
    if (!best.has(key) || r.after < best.get(key)!.after) best.set(key, { c, after: r.after });
  }
  scored.sort((a, b) => Number(b.fits) - Number(a.fits) || a.after - b.after);
  // No single change is enough: the changes together, strongest first, as far as it takes to fit.
  if (!scored.some((f) => f.fits) && best.size > 1) {
    const order = [...best.values()].sort((a, b) => a.after - b.after);
    const edits: PlanEdit[] = [];
    const names: string[] = [];
    for (const { c } of order) {
      edits.push(...c.edits);
      names.push(c.title.replace(/^Set /, ''));
      const r = tryEdits(edits);
      if (r?.fits) {
        scored.unshift({
          title: title(`Set ${names.join(', ')}`, r.after, true),
          edits: [...edits],
          after: r.after,
          fits: true,
        });
        break;
      }
    }
  }
  return scored.map(({ title: t, edits }) => ({ title: t, edits }));
}
