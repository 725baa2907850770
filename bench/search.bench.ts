/**
 * `npm run bench`: the optimizer's full search (time objective, top 10) for a 1T-parameter GPT on 3,072 A100s
 * (SC21 Table 1's largest run) and for Llama-3-70B on 64 H100s, each as the first search in this process (cold,
 * as `layerplan optimize` runs it) and again warm; the goal is under 2 s each on this machine. Printed with it:
 * configurations in the space, estimates run, configurations estimated per second, the pruning ratio, and the
 * ratio to brute force — every configuration estimated in full, projected from the mean time of a random sample
 * of the same space's estimates measured in this run.
 */
import { estimate } from '../src/engine/cost/estimate';
import { archWorkload } from '../src/engine/cost/workload';
import { setPlanPaths } from '../src/engine/plan/edits';
import type { ArchSpec, Plan } from '../src/engine/plan/plan';
import { optimize } from '../src/engine/search/optimize';
import { configEdits, trainingConfigs, type Config } from '../src/engine/search/space';

const cases: { name: string; plan: Plan }[] = [
  {
    name: '1T GPT on 3,072 A100 80GB (SC21 Table 1: TP 8 × PP 64 × DP 6)',
    plan: {
      model: { arch: 'gpt', layers: 128, hidden: 25600, heads: 160, vocab: 51200, seqLen: 2048 },
      cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 384 },
      training: { globalBatch: 3072, microBatch: 1, seqLen: 2048, dtype: 'fp16', recompute: 'full' },
      parallel: { data: 6, tensor: 8, pipeline: 64 },
    },
  },
  {
    name: 'Llama-3-70B on 64 H100 (Megatron-LM examples: TP 4 × PP 8 × DP 2, interleaved ×5)',
    plan: {
      model: {
        arch: 'llama',
        layers: 80,
        hidden: 8192,
        heads: 64,
        kvHeads: 8,
        ffn: 28672,
        vocab: 128256,
        seqLen: 8192,
      },
      cluster: { gpu: 'h100-sxm', gpusPerNode: 8, nodes: 8 },
      training: { globalBatch: 128, microBatch: 1, seqLen: 8192, dtype: 'bf16', recompute: 'selective' },
      parallel: { data: 2, tensor: 4, pipeline: 8, schedule: 'interleaved', virtualStages: 5, sequenceParallel: true },
    },
  },
];

const ms = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;

for (const { name, plan } of cases) {
  const workload = archWorkload(plan.model as ArchSpec);
  let t = process.hrtime.bigint();
  const cold = optimize(plan, workload, { top: 10 });
  const coldMs = ms(t);
  t = process.hrtime.bigint();
  const warm = optimize(plan, workload, { top: 10 });
  const warmMs = ms(t);
  // Brute force, projected: the mean full estimate over a sample of the same space.
  const space: Config[] = [
    ...trainingConfigs(
      plan,
      { blocks: (plan.model as ArchSpec).layers, arch: workload.arch },
      {
        gpuCounts: [8 * (plan.cluster.nodes ?? 1)],
        gpusPerNode: 8,
        locks: [],
        models: { context: false, expert: false, distributedOptimizer: false },
      },
    ),
  ];
  let seed = 7;
  const sample = Array.from({ length: 60 }, () => space[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % space.length]);
  t = process.hrtime.bigint();
  for (const c of sample) {
    const p = JSON.parse(JSON.stringify(plan)) as Plan;
    setPlanPaths(p, configEdits(plan, c));
    estimate(p, workload, 'bench', { timeline: false });
  }
  const perEstimate = ms(t) / sample.length;
  const bruteMs = perEstimate * space.length;
  const best = cold.candidates[0];
  console.log(`search: ${name}`);
  console.log(
    `  ${cold.searched.toLocaleString('en-US')} configurations, ${cold.evaluated} estimated in full (pruning ratio ${((cold.pruned / cold.searched) * 100).toFixed(1)}%), bound violations ${cold.boundViolations}`,
  );
  console.log(
    `  first search ${coldMs.toFixed(0)} ms (${(coldMs / 2000).toFixed(3)}× the 2 s goal), warm ${warmMs.toFixed(0)} ms; ${Math.round(cold.searched / (coldMs / 1000)).toLocaleString('en-US')} configurations per second (${Math.round(warm.searched / (warmMs / 1000)).toLocaleString('en-US')} warm)`,
  );
  console.log(
    `  brute force (every configuration estimated, ${perEstimate.toFixed(2)} ms each): ${(bruteMs / 1000).toFixed(1)} s projected → the search takes ${(warmMs / bruteMs).toFixed(4)}× of it`,
  );
  console.log(`  best: ${best.iterationSeconds.toFixed(2)} s per step — ${best.why}`);
}
