import { parseLayerRange, type Fix, type Plan } from '../plan/plan';
import { rangeText } from './resolve';
import type { Workload } from './workload';

export { rangeText };

/** Checks a plan against its model: degrees that must divide heads / hidden, stage coverage. Returns [path, message] pairs. */
export function modelChecks(plan: Plan, workload: Workload): [(string | number)[], string][] {
  const out: [(string | number)[], string][] = [];
  const par = plan.parallel ?? {};
  const tp = par.tensor ?? 1;
  const pp = par.pipeline ?? 1;
  const a = workload.arch;
  if (a && tp > 1) {
    if (a.heads % tp !== 0) {
      out.push([['parallel', 'tensor'], `parallel.tensor: ${tp} does not divide the attention heads (${a.heads})`]);
    } else if (a.kvHeads % tp !== 0 && tp % a.kvHeads !== 0) {
      out.push([['parallel', 'tensor'], `parallel.tensor: ${tp} does not divide the key/value heads (${a.kvHeads})`]);
    }
    if (a.hidden % tp !== 0) {
      out.push([['parallel', 'tensor'], `parallel.tensor: ${tp} does not divide hidden (${a.hidden})`]);
    }
    if (a.ffn % tp !== 0) {
      out.push([['parallel', 'tensor'], `parallel.tensor: ${tp} does not divide the MLP width (${a.ffn})`]);
    }
  }
  const ep = par.expert ?? 1;
  if (ep > 1) {
    if (!a || a.experts <= 1) {
      out.push([['parallel', 'expert'], `parallel.expert: ${ep}, but the model has no experts (a dense MLP)`]);
    } else if (a.experts % ep !== 0) {
      out.push([['parallel', 'expert'], `parallel.expert: ${ep} does not divide the experts (${a.experts})`]);
    }
  }
  const blocks = workload.blockIndices.length;
  const v = par.schedule === 'interleaved' ? Math.max(1, par.virtualStages ?? 2) : 1;
  if (pp * v > blocks) {
    out.push([
      ['parallel', 'pipeline'],
      `parallel.pipeline: ${pp} stages${v > 1 ? ` × ${v} chunks` : ''} for ${blocks} layers leaves stages empty`,
    ]);
  }
  if (plan.stages) {
    const seen = new Map<number, number>();
    plan.stages.forEach((s, i) => {
      for (const l of parseLayerRange(s.layers) ?? []) {
        if (l >= blocks) {
          out.push([
            ['stages', i, 'layers'],
            `stages[${i}].layers: layer ${l} does not exist (the model has ${blocks} layers, 0-${blocks - 1})`,
          ]);
        } else if (seen.has(l)) {
          out.push([
            ['stages', i, 'layers'],
            `stages[${i}].layers: layer ${l} is already assigned to stage ${seen.get(l)}`,
          ]);
        } else seen.set(l, i);
      }
    });
    const missing = [...Array(blocks).keys()].filter((l) => !seen.has(l));
    if (missing.length) out.push([['stages'], `stages: layers ${rangeText(missing)} are not assigned to any stage`]);
  }
  return out;
}

/** The quick fix for stage problems: the blocks split into `parallel.pipeline` contiguous stages of even parameter counts. */
export function rebalanceFix(plan: Plan, workload: Workload): Fix | undefined {
  const parts = plan.parallel?.pipeline ?? 1;
  const weights = workload.blockIndices.map((i) => Math.max(1, workload.layers[i].parameters));
  if (parts < 1 || parts > weights.length) return undefined;
  const stages = balancedSplit(weights, parts).map(([a, b]) => ({
    layers: rangeText(Array.from({ length: b - a }, (_, i) => a + i)),
  }));
  return {
    title: `Rebalance stages evenly (${stages.map((s) => s.layers).join(' | ')})`,
    edits: [{ path: ['stages'], value: stages }],
  };
}

/**
 * Splits `weights` into `parts` contiguous groups minimizing the heaviest group (binary search on
 * the bound with a greedy fill). Returns each group's [from, to) indices.
 */
export function balancedSplit(weights: number[], parts: number): [number, number][] {
  const fits = (bound: number) => {
    let groups = 1;
    let sum = 0;
    // An index loop: called ~60 times over up to 100,000 weights, where an iterator's results were 190 MiB of garbage.
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i];
      if (w > bound) return false;
      if (sum + w > bound) {
        groups++;
        sum = 0;
      }
      sum += w;
    }
    return groups <= parts;
  };
  let lo = weights.reduce((a, b) => Math.max(a, b), 0);
  let hi = weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < 60 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) hi = mid;
    else lo = mid;
  }
  const out: [number, number][] = [];
  let start = 0;
  let sum = 0;
  for (let i = 0; i < weights.length; i++) {
    // Leave at least one item for each remaining group.
    const remainingGroups = parts - out.length - 1;
    if (i > start && (sum + weights[i] > hi || weights.length - i <= remainingGroups - 0) && out.length < parts - 1) {
      out.push([start, i]);
      start = i;
      sum = 0;
    }
    sum += weights[i];
  }
  out.push([start, weights.length]);
  while (out.length < parts) out.push([weights.length, weights.length]);
  return out;
}

/**
 * Which layers each (stage, chunk) runs: explicit stages, else blocks split evenly (graph models: by
 * `cost`, their estimated time); the embedding goes on the first stage, head and final norm on the last.
 */
export function assignLayers(
  plan: Plan,
  w: Workload,
  pp: number,
  v: number,
  cost?: (layer: number) => number,
  /** Count the embedding and the output layer as one block each in the even split (Megatron-Core's
   * --account-for-embedding-in-pipeline-split / --account-for-loss-in-pipeline-split). */
  edgesAsBlocks = false,
): number[][][] {
  const blocks = w.blockIndices;
  const chunks: number[][][] = Array.from({ length: pp }, () => Array.from({ length: v }, () => []));
  if (plan.stages && v === 1) {
    plan.stages.forEach((s, i) => {
      for (const l of parseLayerRange(s.layers) ?? []) if (l < blocks.length) chunks[i][0].push(blocks[l]);
    });
  } else if (cost && !w.arch) {
    // Graph models: layers differ, so balance the stages by their estimated time.
    const groups = balancedSplit(blocks.map(cost), pp * v);
    groups.forEach(([from, to], k) => {
      for (let i = from; i < to; i++) chunks[k % pp][Math.floor(k / pp)].push(blocks[i]);
    });
  } else {
    const parts = pp * v;
    // With the edges counted, unit 0 is the embedding and the last unit the output layer.
    const edge = edgesAsBlocks && w.arch && parts > 1 ? 1 : 0;
    const units = blocks.length + 2 * edge;
    for (let k = 0; k < parts; k++) {
      const stage = k % pp;
      const chunk = Math.floor(k / pp);
      const from = Math.max(0, Math.floor((k * units) / parts) - edge);
      const to = Math.min(blocks.length, Math.floor(((k + 1) * units) / parts) - edge);
      for (let i = from; i < to; i++) chunks[stage][chunk].push(blocks[i]);
    }
  }
  const inBlocks = new Set(blocks);
  const firstBlock = blocks.length ? blocks[0] : w.layers.length;
  w.layers.forEach((_, i) => {
    if (inBlocks.has(i)) return;
    if (i < firstBlock) chunks[0][0].unshift(i);
    else chunks[pp - 1][v - 1].push(i);
  });
  for (const st of chunks) for (const c of st) c.sort((a, b) => a - b);
  return chunks;
}
