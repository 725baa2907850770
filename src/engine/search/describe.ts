import type { PlanEdit } from '../plan/edits';
import type { Plan } from '../plan/plan';

/**
 * Each edit in words against the plan it changes: "pipeline 8 → 16", "recompute none → selective",
 * "stages 0-3 | 4-6", "precision rules +2 (layers.0 fp8-e4m3, …)".
 */
export function describeEdits(base: Plan, edits: readonly PlanEdit[]): string[] {
  return edits.map((ed) => {
    const path = ed.path.join('.');
    if (path === 'stages') {
      return ed.value === undefined
        ? 'even stages'
        : `stages ${(ed.value as { layers: string }[]).map((s) => s.layers).join(' | ')}`;
    }
    if (path === 'precision.rules') {
      return `precision rules ${describeRules(ed.value as { match: string; format: string }[], base)}`;
    }
    const own = ed.path.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], base);
    return `${ed.path[ed.path.length - 1]} ${own === undefined ? '—' : String(own)} → ${ed.value === undefined ? '—' : String(ed.value)}`;
  });
}

/** "layers.0-3 fp8-e4m3, layers.7 int4-g128" for the rules the search added. */
function describeRules(rules: { match: string; format: string }[], base: Plan): string {
  const added = rules.slice(base.precision?.rules?.length ?? 0);
  const shown = added.slice(0, 4).map((r) => `${r.match} ${r.format}`);
  return `+${added.length} (${shown.join(', ')}${added.length > 4 ? ', …' : ''})`;
}
