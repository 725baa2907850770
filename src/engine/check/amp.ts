import { globMatch } from '../glob';
import type { Fix, Plan } from '../plan/plan';
import { parseFormat } from '../quant/formats';
import type { GraphLayerData, WorkloadSource } from '../cost/workload';
import { transformerPrecisionLayers } from '../graph/transformer-spec';

type PrecisionLayer = Pick<GraphLayerData, 'name' | 'fp32Ops' | 'matrices'>;

/** One warning: a rule that puts fp32 ops lower, at its format, with the fix of keeping them in fp32. */
export interface AmpIssue {
  path: (string | number)[];
  message: string;
  fix: Fix;
}

/**
 * Rules that put ops mixed precision keeps in fp32 into a lower precision. The plan's default and
 * broad rules (any rule that also matches a matrix weight, such as `h.*` or `*`) leave those ops in
 * fp32, as AMP does; a rule that names them — their op type (`Softmax`), their node or weights
 * (`*ln_1*`), or a layer made only of them (`ln_f`, an architecture's `final_norm`) — says otherwise,
 * and gets a warning.
 */
export function ampIssues(precision: Plan['precision'], source: WorkloadSource): AmpIssue[] {
  const out: AmpIssue[] = [];
  // An architecture's layers are named only when a rule needs them (100,000 layers' names are 100 MiB of strings).
  let cached: PrecisionLayer[] | undefined;
  const precisionLayers = () =>
    (cached ??= source.kind === 'graph' ? source.layers : transformerPrecisionLayers(source.arch));
  (precision?.rules ?? []).forEach((rule, i) => {
    const format = parseFormat(rule.format);
    if (!format || format.bitsPerWeight >= 32) return;
    const layers = precisionLayers();
    const m = (name: string) => globMatch(rule.match, name);
    // Broad: the rule reaches matrix weights (by their names or their layer's); AMP keeps its fp32 ops in fp32.
    if (layers.some((l) => l.matrices?.length && (m(l.name) || l.matrices.some(m)))) return;
    const named: { layer: string; op: string }[] = [];
    for (const l of layers) {
      for (const o of l.fp32Ops ?? []) {
        if (m(l.name) || m(o.op) || m(o.node) || o.tensors.some(m)) named.push({ layer: l.name, op: o.op });
      }
    }
    if (!named.length) return;
    const byOp = new Map<string, number>();
    for (const n of named) byOp.set(n.op, (byOp.get(n.op) ?? 0) + 1);
    const where = [...new Set(named.map((n) => n.layer))];
    out.push({
      path: ['precision', 'rules', i, 'format'],
      message:
        `precision.rules[${i}] ('${rule.match}') puts ops that mixed precision keeps in fp32 into ${format.name}: ` +
        `${[...byOp].map(([op, n]) => `${op} ×${n}`).join(', ')} in ${where.slice(0, 4).join(', ')}${where.length > 4 ? ', …' : ''} ` +
        `(softmax, normalizations, exp/log and summing reductions need fp32's range)`,
      fix: { title: 'Keep these ops in fp32', edits: [{ path: ['precision', 'rules', i, 'format'], value: 'fp32' }] },
    });
  });
  return out;
}
