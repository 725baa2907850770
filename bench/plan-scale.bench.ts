/**
 * `npm run bench`: how checking and estimating a plan grow with its size — layers × stages ×
 * micro-batches up to 100,000 layers — in time and memory. The baseline is the smallest plan of the
 * same run; a plan that is 1,000× larger should cost about 1,000× (linear), not 10^6×. Each case runs
 * in a fresh process so its peak memory is its own.
 */
import { execFileSync } from 'child_process';
import * as path from 'path';

interface Case {
  layers: number;
  stages: number;
  microBatches: number;
}

const CASES: Case[] = [
  { layers: 100, stages: 1, microBatches: 8 },
  { layers: 1_000, stages: 10, microBatches: 100 },
  { layers: 10_000, stages: 100, microBatches: 1_000 },
  { layers: 100_000, stages: 1_000, microBatches: 1_000 },
  { layers: 100_000, stages: 100_000, microBatches: 100_000 },
];

const child = `
const { checkPlanFile } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'node', 'plan-file.js'))});
const { estimate } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'engine', 'cost', 'estimate.js'))});
const [layers, stages, micro] = process.argv.slice(1).map(Number);
const plan = {
  model: { arch: 'gpt', layers, hidden: 1024, heads: 16, vocab: 50000, seqLen: 2048 },
  cluster: { gpu: 'h100', gpusPerNode: 8, nodes: Math.ceil(stages / 8) },
  training: { globalBatch: micro, microBatch: 1, seqLen: 2048 },
  parallel: { data: 1, tensor: 1, pipeline: stages },
};
plan.cluster.gpusPerNode = stages % 8 === 0 ? 8 : 1;
plan.cluster.nodes = stages / plan.cluster.gpusPerNode;
const t0 = process.hrtime.bigint();
checkPlanFile('bench.plan.json', JSON.stringify(plan)).then((c) => {
  const t1 = process.hrtime.bigint();
  if (!c.plan) throw new Error(c.issues.map((i) => i.message).join('; '));
  const r = estimate(c.plan, c.workload, 'bench.plan.json');
  const t2 = process.hrtime.bigint();
  process.stdout.write(JSON.stringify({ check: Number(t1 - t0) / 1e6, estimate: Number(t2 - t1) / 1e6,
    rss: process.resourceUsage().maxRSS / 1024, approx: r.warnings.find((w) => /schedule|closed form/.test(w)) ?? '' }));
});
`;

function run(c: Case): { check: number; estimate: number; rss: number; approx: string } {
  const out = execFileSync(
    process.execPath,
    ['-e', child, String(c.layers), String(c.stages), String(c.microBatches)],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    },
  );
  return JSON.parse(out);
}

console.log('plan scale: check + estimate of a GPT plan, by layers × stages × micro-batches (fresh process each)');
const results = CASES.map((c) => ({ c, r: run(c) }));
const base = results[0];
const size = (c: Case) => c.layers + c.stages + c.stages * c.microBatches;
for (const { c, r } of results) {
  const grow = size(c) / size(base.c);
  console.log(
    `  ${String(c.layers).padStart(7)} layers ${String(c.stages).padStart(7)} stages ${String(c.microBatches).padStart(7)} micro-batches:` +
      ` check ${r.check.toFixed(0).padStart(6)} ms, estimate ${r.estimate.toFixed(0).padStart(6)} ms, peak ${r.rss.toFixed(0).padStart(5)} MiB;` +
      ` ${((r.check + r.estimate) / (base.r.check + base.r.estimate)).toFixed(1)}× the time of the smallest for ${grow.toExponential(1)}× the size` +
      (r.approx ? `\n      (${r.approx})` : ''),
  );
}
