import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { OUTPUT_ERROR } from '../../src/engine/check/precision';
import { estimate, modelChecks } from '../../src/engine/cost/estimate';
import { archWorkload, graphLayersWorkload, type GraphLayerData, type Workload } from '../../src/engine/cost/workload';
import { validatePlan, type ArchSpec, type Plan } from '../../src/engine/plan/plan';
import { optimize, type OptimizeOptions, type SearchResult } from '../../src/engine/search/optimize';
import { paretoAssignments, typicalSqnrDb, type KnapsackLayer } from '../../src/engine/search/precision';
import { splitStages } from '../../src/engine/search/stages';
import { REPO } from '../helpers';

/** A seeded generator (the same cases every run). */
function rng(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

const peak = (r: ReturnType<typeof estimate>) => Math.max(...r.stages.map((s) => s.memory.total));

/** The search's top K against every configuration of the same space estimated in full. */
function againstBruteForce(
  name: string,
  plan: Plan,
  workload: Workload,
  options: OptimizeOptions,
  k = 5,
  /** What the brute force's whole space must show (the dimension the case is about is searched and matters). */
  expectSpace?: (all: SearchResult) => void,
): void {
  it(`${name}: the top ${k} equal brute force`, function () {
    // Brute force estimates every configuration in full (38,850 for the fewest-GPUs case: about a minute here).
    this.timeout(600_000);
    const fast = optimize(plan, workload, { ...options, top: k });
    const brute = optimize(plan, workload, { ...options, top: k, exhaustive: true });
    const keys = (r: SearchResult) =>
      r.candidates
        .slice(0, k)
        .map((c) =>
          options.objective === 'cost'
            ? c.costPerMillionTokens!
            : options.objective === 'gpus'
              ? c.gpus * 1e9 + c.iterationSeconds
              : c.iterationSeconds,
        );
    console.log(
      `        ${brute.searched} configurations: search estimated ${fast.evaluated} (${((1 - fast.evaluated / brute.evaluated) * 100).toFixed(1)}% pruned), brute force ${brute.evaluated}; best ${fast.candidates[0]?.iterationSeconds.toPrecision(4)} s`,
    );
    assert.ok(brute.candidates.length > 0, 'the space has plans that fit');
    assert.strictEqual(fast.candidates.length >= Math.min(k, brute.candidates.length), true);
    const a = keys(fast);
    const b = keys(brute);
    assert.strictEqual(a.length, b.length);
    a.forEach((x, i) =>
      assert.ok(Math.abs(x - b[i]) <= 1e-12 * Math.abs(b[i]), `#${i + 1}: search ${x}, brute force ${b[i]}`),
    );
    // Every configuration estimated in full stayed above its bounds (what makes the pruning exact).
    assert.strictEqual(brute.boundViolations, 0);
    if (expectSpace) expectSpace(optimize(plan, workload, { ...options, top: 100_000, exhaustive: true }));
    if (plan.training) assert.ok(fast.evaluated < brute.evaluated, 'the bounds pruned something');
    for (const c of fast.candidates) {
      // A candidate is a complete plan: the engine gives it the figures the search reported, and the checks pass.
      const again = estimate(c.plan, workload);
      assert.ok(Math.abs(again.iterationSeconds - c.iterationSeconds) < 1e-12 * c.iterationSeconds);
      assert.ok(peak(again) <= c.capacityBytes);
      const { issues } = validatePlan(JSON.stringify(c.plan));
      assert.deepStrictEqual(
        issues.filter((i) => i.severity === 'error').map((i) => i.message),
        [],
      );
      assert.deepStrictEqual(modelChecks(c.plan, workload), []);
    }
  });
}

const gptSmall: ArchSpec = { arch: 'gpt', layers: 8, hidden: 1024, heads: 16, vocab: 50304, seqLen: 1024 };
const llamaSmall: ArchSpec = {
  arch: 'llama',
  layers: 12,
  hidden: 2048,
  heads: 16,
  kvHeads: 4,
  vocab: 32000,
  seqLen: 2048,
};

describe('optimizer: the search equals brute force on small spaces', () => {
  againstBruteForce(
    'GPT, 8 A100s, fastest step',
    {
      model: gptSmall,
      cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 1 },
      training: { globalBatch: 32, microBatch: 1, seqLen: 1024, recompute: 'none' },
      parallel: { data: 8 },
    },
    archWorkload(gptSmall),
    {},
  );
  againstBruteForce(
    'Llama with GQA, 2 nodes of H100s under DeepSpeed, cheapest tokens',
    {
      model: llamaSmall,
      cluster: { gpu: 'h100-sxm', gpusPerNode: 8, nodes: 2 },
      training: { globalBatch: 64, microBatch: 2, seqLen: 2048, framework: 'deepspeed', recompute: 'full' },
      parallel: { data: 16 },
    },
    archWorkload(llamaSmall),
    { objective: 'cost' },
  );
  againstBruteForce(
    'Llama, fewest GPUs (up to 32) for a 2 s step',
    {
      model: llamaSmall,
      cluster: { gpu: 'a100-40gb', gpusPerNode: 8, nodes: 1, maxGpus: 32 },
      training: { globalBatch: 256, microBatch: 1, seqLen: 2048, recompute: 'selective' },
      parallel: { data: 8 },
    },
    archWorkload(llamaSmall),
    { objective: 'gpus', targetSeconds: 2 },
  );
  const big: ArchSpec = { arch: 'gpt', layers: 16, hidden: 8192, heads: 64, vocab: 51200, seqLen: 2048 };
  againstBruteForce(
    'a 13B GPT that barely fits 8 L4s, with tensor and micro-batch locked',
    {
      model: big,
      cluster: { gpu: 'l4', gpusPerNode: 8, nodes: 2 },
      training: { globalBatch: 64, microBatch: 1, seqLen: 2048, recompute: 'full' },
      parallel: { data: 2, tensor: 8 },
    },
    archWorkload(big),
    { locks: ['parallel.tensor', 'training.microBatch'], headroom: 0.05 },
  );
  // Settings the search does not choose stay as the plan has them, in the probes too: tensor-parallel overlap
  // turned on where the framework's default is off (the bounds would otherwise sit over the plans' figures).
  againstBruteForce(
    'a 13B GPT on 16 L4s under Megatron-LM 2021 with the plan’s tensor-parallel overlap on',
    {
      model: big,
      cluster: { gpu: 'l4', gpusPerNode: 8, nodes: 2 },
      training: { globalBatch: 64, microBatch: 1, seqLen: 2048, recompute: 'full', framework: 'megatron-lm-2021' },
      parallel: { data: 2, tensor: 8, tpCommOverlap: true },
    },
    archWorkload(big),
    { headroom: 0.05 },
  );
  // Issue 13's engine models context parallelism (the ring exchange under the attention), expert parallelism
  // (all-to-alls, experts split) and the distributed optimizer: the search chooses them, and stays exact.
  const longLlama: ArchSpec = {
    arch: 'llama',
    layers: 8,
    hidden: 4096,
    heads: 32,
    kvHeads: 8,
    vocab: 32000,
    seqLen: 32768,
  };
  againstBruteForce(
    'a 32k-token Llama on 8 A100-40GBs under Megatron-Core (context parallelism)',
    {
      model: longLlama,
      cluster: { gpu: 'a100-40gb', gpusPerNode: 8, nodes: 1 },
      training: { globalBatch: 8, microBatch: 1, seqLen: 32768, recompute: 'none', framework: 'megatron-core' },
      parallel: { data: 8 },
    },
    archWorkload(longLlama),
    {},
    5,
    (all) => {
      const cp = (c: SearchResult['candidates'][number]) => c.plan.parallel?.context ?? 1;
      assert.ok(new Set(all.candidates.map(cp)).size >= 3, 'context degrees 1, 2, 4, … are searched');
      assert.ok(cp(all.candidates[0]) > 1, 'a context-parallel layout is the fastest here');
    },
  );
  const moe: ArchSpec = {
    arch: 'llama',
    layers: 4,
    hidden: 1024,
    heads: 16,
    kvHeads: 4,
    vocab: 32000,
    seqLen: 4096,
    experts: 8,
    expertsPerToken: 2,
    expertFfn: 2048,
  };
  againstBruteForce(
    'a small mixture of experts on 8 H100s (expert and expert-tensor parallelism, distributed optimizer)',
    {
      model: moe,
      cluster: { gpu: 'h100-sxm', gpusPerNode: 8, nodes: 1 },
      training: { globalBatch: 16, microBatch: 1, seqLen: 4096, recompute: 'selective', framework: 'megatron-core' },
      parallel: { data: 8 },
    },
    archWorkload(moe),
    {},
    5,
    (all) => {
      const par = all.candidates.map((c) => c.plan.parallel ?? {});
      assert.ok(new Set(par.map((p) => p.expert ?? 1)).size >= 3, 'expert degrees are searched');
      assert.ok(
        par.some((p) => p.expertTensor !== undefined && p.expertTensor < (p.tensor ?? 1)),
        'expert tensor parallelism under the tensor degree is searched',
      );
      // Megatron-Core's default (distributed optimizer on) and off are both in the space.
      assert.ok(
        par.some((p) => p.distributedOptimizer === false) &&
          par.some((p) => (p.data ?? 1) > 1 && p.distributedOptimizer === undefined),
      );
    },
  );
  // A model file's layers differ: the search runs Alpa's inter-op pass for each layout (stages split by DP).
  const r = rng(11);
  const uneven: GraphLayerData[] = Array.from({ length: 9 }, (_, i) => {
    const width = 1024 * (1 + Math.floor(r() * 4));
    return {
      name: `layer${i}`,
      parameters: 12 * width * width,
      tensors: [`layer${i}.weight`],
      matmulFlops: 2 * 12 * width * width * 4096,
      matmulBytes: 2 * 12 * width * width,
      otherBytes: 8 * 4096 * width * 2,
      kernels: 20,
      activations: 34 * 4096 * width,
      outputBytes: 4096 * width * 2,
    };
  });
  againstBruteForce(
    'an uneven model file on 8 L4s (stage split by dynamic programming)',
    {
      model: 'model.onnx',
      cluster: { gpu: 'l4', gpusPerNode: 8, nodes: 1 },
      training: { globalBatch: 16, microBatch: 1, seqLen: 2048, recompute: 'none' },
      parallel: { data: 8 },
    },
    graphLayersWorkload(uneven),
    {},
  );
  againstBruteForce(
    'inference: Llama on 8 H100s',
    {
      model: llamaSmall,
      cluster: { gpu: 'h100-sxm', gpusPerNode: 8, nodes: 1 },
      inference: { batch: 16, promptLen: 512, genLen: 128 },
      parallel: { data: 8 },
    },
    archWorkload(llamaSmall),
    {},
  );
});

describe('optimizer: the search equals brute force on random small spaces', () => {
  it('24 seeded plans over every framework, GPU, dtype, recomputation, MoE and sequence length: top 5 and no bound violated', function () {
    this.timeout(600_000);
    const r = rng(42);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
    const frameworks = [
      undefined,
      'megatron-core',
      'nemo',
      'megatron-lm-2021',
      'deepspeed',
      'fsdp',
      'torchtitan',
    ] as const;
    let estimated = 0;
    for (let trial = 0; trial < 24; trial++) {
      const moe = r() < 0.3;
      const model: ArchSpec = {
        arch: pick(['gpt', 'llama'] as const),
        layers: pick([4, 6, 8]),
        hidden: pick([1024, 2048]),
        heads: 16,
        vocab: 32000,
        seqLen: pick([2048, 8192]),
      };
      if (model.arch === 'llama') model.kvHeads = pick([4, 16]);
      if (moe) {
        Object.assign(model, { arch: 'llama', kvHeads: 4, experts: pick([4, 8]), expertsPerToken: 2, expertFfn: 1024 });
      }
      const framework = pick(frameworks);
      const gpu = pick(['a100-80gb', 'h100-sxm', 'l4', 'a100-40gb']);
      const gpusPerNode = pick([4, 8]);
      const plan: Plan = {
        model,
        cluster: { gpu, gpusPerNode, nodes: pick([1, 2]) },
        training: {
          globalBatch: pick([16, 32]),
          microBatch: 1,
          seqLen: model.seqLen,
          recompute:
            framework === 'fsdp' || framework === 'deepspeed'
              ? pick(['none', 'full'] as const)
              : pick(['none', 'selective', 'full'] as const),
          dtype: gpu === 'h100-sxm' ? pick(['bf16', 'fp8'] as const) : pick(['bf16', 'fp16'] as const),
          ...(framework ? { framework } : {}),
        },
        parallel: {
          data: gpusPerNode,
          ...(r() < 0.3 ? { tpCommOverlap: r() < 0.5 } : {}),
          ...(r() < 0.2 ? { overlapParamGather: false } : {}),
        },
      };
      const w = archWorkload(model);
      const brute = optimize(plan, w, { top: 5, exhaustive: true });
      const fast = optimize(plan, w, { top: 5 });
      estimated += brute.evaluated;
      const what = `trial ${trial}: ${JSON.stringify(plan)}`;
      assert.strictEqual(brute.boundViolations, 0, what);
      const a = fast.candidates.slice(0, 5).map((c) => c.iterationSeconds);
      const b = brute.candidates.slice(0, 5).map((c) => c.iterationSeconds);
      assert.strictEqual(a.length, b.length, what);
      a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= 1e-12 * b[i], `${what}: #${i + 1} ${x} vs ${b[i]}`));
    }
    console.log(`        ${estimated} configurations estimated in full`);
  });
});

describe('optimizer: the space', () => {
  it("holds the plan's own choices even where its framework's list lacks them (ZeRO-1 under Megatron-Core)", () => {
    const plan: Plan = {
      model: gptSmall,
      cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 1 },
      training: { globalBatch: 32, microBatch: 1, seqLen: 1024, recompute: 'none', framework: 'megatron-core' },
      parallel: { data: 8, zero: 1 },
    };
    const all = optimize(plan, archWorkload(gptSmall), { exhaustive: true, top: 100_000 });
    assert.ok(
      all.candidates.some((c) => c.edits.length === 0),
      'the current plan is among the estimated configurations',
    );
    // And nothing Megatron-Core cannot run: ZeRO-2/3 with pipelines, or ZeRO-2 at all.
    assert.ok(all.candidates.every((c) => (c.plan.parallel?.zero ?? 0) !== 2));
  });
  it('a locked field keeps its value in every candidate; a model file keeps its micro-batch', () => {
    const plan: Plan = {
      model: llamaSmall,
      cluster: { gpu: 'h100-sxm', gpusPerNode: 8, nodes: 2 },
      training: { globalBatch: 64, microBatch: 2, seqLen: 2048, recompute: 'full' },
      parallel: { data: 16 },
    };
    const res = optimize(plan, archWorkload(llamaSmall), { locks: ['parallel.tensor', 'training.recompute'], top: 20 });
    assert.ok(res.candidates.length > 5);
    for (const c of res.candidates) {
      assert.strictEqual(c.plan.parallel?.tensor ?? 1, 1);
      assert.strictEqual(c.plan.training?.recompute, 'full');
    }
  });
});

describe('optimizer: bounded work on large model files', () => {
  it('a 3,000-layer model file: stages cut between groups of layers, every layer in one stage, no bound violated', () => {
    const r = rng(17);
    const layers: GraphLayerData[] = Array.from({ length: 3000 }, (_, i) => {
      const w = 256 * (1 + Math.floor(r() * 4));
      return {
        name: `l${i}`,
        parameters: 12 * w * w,
        tensors: [],
        matmulFlops: 2 * 12 * w * w * 2048,
        matmulBytes: 24 * w * w,
        otherBytes: 16 * 2048 * w,
        kernels: 10,
        activations: 34 * 2048 * w,
        outputBytes: 2048 * w * 2,
      };
    });
    const plan: Plan = {
      model: 'big.onnx',
      cluster: { gpu: 'l4', gpusPerNode: 8, nodes: 16 },
      training: { globalBatch: 512, microBatch: 1, seqLen: 2048, recompute: 'none' },
      parallel: { data: 128 },
    };
    const res = optimize(plan, graphLayersWorkload(layers), { top: 3 });
    assert.strictEqual(res.boundViolations, 0);
    assert.ok(res.candidates.length > 0);
    for (const c of res.candidates) {
      const covered = (c.plan.stages ?? []).flatMap((st) => {
        const [a, b] = st.layers.split('-').map(Number);
        return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
      });
      assert.deepStrictEqual(covered, [...Array(3000).keys()]);
      assert.ok((c.plan.parallel?.pipeline ?? 1) <= 64);
    }
  });
});

describe('optimizer: stage split (Alpa inter-op pass) equals exhaustive enumeration', () => {
  /** Every way to cut n layers into p non-empty contiguous stages. */
  function* splits(n: number, p: number, from = 0): Generator<[number, number][]> {
    if (p === 1) {
      yield [[from, n]];
      return;
    }
    for (let cut = from + 1; cut <= n - p + 1; cut++) {
      for (const rest of splits(n, p - 1, cut)) yield [[from, cut], ...rest];
    }
  }
  it('minimizes the slowest stage under per-stage memory on 400 random chains', () => {
    const r = rng(5);
    let constrained = 0;
    for (let trial = 0; trial < 400; trial++) {
      const n = 1 + Math.floor(r() * 10);
      const p = 1 + Math.floor(r() * n);
      const time = Array.from({ length: n }, () => r());
      const mem = Array.from({ length: n }, () => r());
      // Earlier stages hold more micro-batches in flight (1F1B), so their limit is tighter.
      const cap = 0.5 + r() * 2;
      const fits = (stage: number, a: number, b: number) =>
        mem.slice(a, b).reduce((x, y) => x + y, 0) * (1 + (p - stage) / p) <= cap;
      let best = Infinity;
      for (const s of splits(n, p)) {
        if (!s.every(([a, b], i) => fits(i, a, b))) continue;
        best = Math.min(best, Math.max(...s.map(([a, b]) => time.slice(a, b).reduce((x, y) => x + y, 0))));
      }
      const got = splitStages(time, p, fits);
      if (best === Infinity) assert.strictEqual(got, undefined, `n=${n} p=${p}: no split fits`);
      else {
        assert.ok(got, `n=${n} p=${p}: a split fits`);
        assert.ok(Math.abs(got.slowest - best) < 1e-12, `n=${n} p=${p}: ${got.slowest} vs ${best}`);
        assert.strictEqual(got.bounds.length, p);
        assert.ok(got.bounds.every(([a, b], i) => b > a && fits(i, a, b)));
        if (
          got.slowest >
          Math.max(
            ...splitStages(time, p, () => true)!.bounds.map(([a, b]) => time.slice(a, b).reduce((x, y) => x + y, 0)),
          )
        ) {
          constrained++;
        }
      }
    }
    assert.ok(constrained > 10, `memory changed the split in ${constrained} cases`);
  });
});

describe('optimizer: per-layer precision (multiple-choice knapsack) equals exhaustive enumeration', () => {
  it('the cheapest assignment within the error budget and the whole Pareto set, on 300 random small models', () => {
    const r = rng(9);
    for (let trial = 0; trial < 300; trial++) {
      const L = 1 + Math.floor(r() * 6);
      const F = 1 + Math.floor(r() * 4);
      // Integer costs and noises: ties happen, and comparisons are exact.
      const layers: KnapsackLayer[] = Array.from({ length: L }, (_, l) => ({
        name: `l${l}`,
        choices: Array.from({ length: F }, (_, f) => ({
          format: `f${f}`,
          cost: Math.floor(r() * 20),
          noise: Math.floor(r() * 20),
        })),
      }));
      const budget = Math.floor(r() * 15 * L);
      const all: { cost: number; noise: number }[] = [];
      const walk = (l: number, cost: number, noise: number) => {
        if (l === L) return void all.push({ cost, noise });
        for (const c of layers[l].choices) walk(l + 1, cost + c.cost, noise + c.noise);
      };
      walk(0, 0, 0);
      const within = all.filter((a) => a.noise <= budget);
      const bestCost = Math.min(...within.map((a) => a.cost));
      const { points } = paretoAssignments(layers, budget);
      if (!within.length) {
        assert.strictEqual(points.length, 0);
        continue;
      }
      assert.strictEqual(points[0].cost, bestCost);
      // The Pareto set: for each cost, the least noise anything that cheap reaches.
      const staircase = [...new Set(within.map((a) => a.cost))]
        .sort((a, b) => a - b)
        .map((c) => ({ cost: c, noise: Math.min(...within.filter((a) => a.cost <= c).map((a) => a.noise)) }))
        .filter((p, i, arr) => i === 0 || p.noise < arr[i - 1].noise);
      assert.deepStrictEqual(
        points.map((p) => ({ cost: p.cost, noise: p.noise })),
        staircase,
      );
      for (const p of points) {
        // The picks add up to the point.
        assert.strictEqual(
          p.picks.reduce((s, k, l) => s + layers[l].choices[k].cost, 0),
          p.cost,
        );
        assert.strictEqual(
          p.picks.reduce((s, k, l) => s + layers[l].choices[k].noise, 0),
          p.noise,
        );
      }
    }
  });

  it('typical SQNR of Gaussian weights: more bits, finer scales, less error (int8 per channel as the uniform-noise formula says)', () => {
    const db = (f: string) => typicalSqnrDb(f)!;
    assert.ok(db('int8-channel') > db('int4-channel') + 20, `${db('int8-channel')} vs ${db('int4-channel')}`);
    assert.ok(db('int4-g32') > db('int4-g128') && db('int4-g128') > db('int4-channel'));
    assert.ok(db('fp8-e4m3') > db('int4-g128'));
    // Symmetric int8 with the row's max at 127: step Δ = max/127, noise Δ²/12 against σ² = 1; the largest of
    // 1024 |N(0,1)| is about 3.35, so SQNR ≈ 10·log10(12 · 127² / 3.35²) = 42.4 dB.
    assert.ok(Math.abs(db('int8-channel') - 42.4) < 1, `int8-channel ${db('int8-channel')} dB`);
    assert.strictEqual(typicalSqnrDb('bf16'), typicalSqnrDb('bf16'));
  });

  it('on a small Llama, the chosen precision is the fastest assignment within the budget (all 3^4 enumerated)', () => {
    const spec: ArchSpec = {
      arch: 'llama',
      layers: 4,
      hidden: 4096,
      heads: 32,
      kvHeads: 8,
      vocab: 32000,
      seqLen: 4096,
    };
    const w = archWorkload(spec);
    // int8 weights save bytes but not time (the GEMMs stay bf16); fp8 saves both but errs more.
    const formats = ['bf16', 'fp8-e4m3', 'int8-channel'];
    // Weight SQNR per layer as a measurement would give it: the layers differ.
    const layerSqnr: Record<string, Record<string, number | null>> = {};
    const r = rng(3);
    for (let l = 0; l < 4; l++) {
      layerSqnr[`layers.${l}`] = { bf16: null, 'fp8-e4m3': 27 + 6 * r(), 'int8-channel': 40 + 6 * r() };
    }
    const plan: Plan = {
      model: spec,
      cluster: { gpu: 'h100-sxm', gpusPerNode: 1, nodes: 1 },
      training: { globalBatch: 8, microBatch: 1, seqLen: 4096, recompute: 'full' },
      parallel: { data: 1 },
      precision: { default: 'bf16', errorBudgetDb: 30 },
    };
    const res = optimize(plan, w, { formats, layerSqnr, locks: ['parallel', 'training', 'cluster'], top: 1 });
    const best = res.candidates[0];
    let want = { seconds: Infinity, sqnr: 0, rules: [] as { match: string; format: string }[] };
    for (let code = 0; code < 3 ** 4; code++) {
      const picks = [0, 1, 2, 3].map((l) => Math.floor(code / 3 ** l) % 3);
      const rules = picks.map((k, l) => ({ match: `layers.${l}`, format: formats[k] }));
      const sqnr = OUTPUT_ERROR.outputSqnrDb(
        picks.map((k, l) => OUTPUT_ERROR.layerNoise(`layers.${l}`, layerSqnr[`layers.${l}`][formats[k]])),
      );
      if (sqnr !== null && sqnr < 30) continue;
      const t = estimate({ ...plan, precision: { ...plan.precision, rules } }, w).iterationSeconds;
      if (t < want.seconds) want = { seconds: t, sqnr: sqnr ?? Infinity, rules };
    }
    console.log(
      `        search ${best.iterationSeconds.toFixed(4)} s at ${best.outputSqnrDb?.toFixed(1)} dB; enumeration ${want.seconds.toFixed(4)} s at ${want.sqnr.toFixed(1)} dB (${want.rules.map((x) => x.format).join(', ')})`,
    );
    assert.ok(Math.abs(best.iterationSeconds - want.seconds) < 1e-9 * want.seconds);
    assert.ok(best.outputSqnrDb! >= 30);
    // Neither all-fp8 nor all-bf16: the budget binds and the layers' errors decide.
    assert.ok(new Set(want.rules.map((x) => x.format)).size > 1, 'a mixed assignment');
    assert.ok(best.binds.includes('error budget'), best.binds.join());
  });
});

interface PublishedRun {
  id: string;
  source: string;
  model: ArchSpec;
  gpu: string;
  gpus: number;
  gpusPerNode: number;
  parallel: NonNullable<Plan['parallel']>;
  training: NonNullable<Plan['training']>;
  measuredSeconds: number;
}

/**
 * Published configurations the cost engine (as calibrated today) ranks low, each with the engine's reason.
 * When a run here starts ranking well the test says so, and it leaves the list. After issue 13's engine
 * (interleaved schedules, measured GEMM and attention efficiency, Megatron-Core defaults) two runs left it
 * (sc21-table1-3.6B now ranks 10th at 1.06×, korthikanti2022-table4-22B-selective 2nd at 1.002×) and two
 * joined it (the 530B and 1T full-recomputation runs of Korthikanti Table 4, below).
 */
const KNOWN_MISRANKED = new Set([
  // Tensor parallelism over 8 NVLink GPUs priced dearer, and small-TP (interleaved) pipelines cheaper, than
  // these runs measured: the engine finds TP 2–4 with many chunks faster.
  'sc21-table1-7.5B',
  'sc21-table1-18B',
  'sc21-table1-39B',
  'sc21-table1-145B',
  'bloom-176B-384gpu-iter85376',
  'korthikanti2022-table4-22B-full',
  'korthikanti2022-table4-175B-full',
  // Megatron-Core's FSDP path (zero 3, data over every GPU, TP 1, PP 1) with its per-micro-batch weight
  // gathers overlapped under the compute — which full recomputation's extra forward makes longer — is
  // 30–40% faster in the engine than the published TP 8 × PP 35/64 layouts (Megatron-LM of 2022 had no
  // FSDP; with selective recomputation the same runs rank 1st and 6th).
  'korthikanti2022-table4-530B-full',
  'korthikanti2022-table4-1T-full',
]);

describe('optimizer: published training runs (the configurations teams used)', () => {
  const runs = (
    JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'published-runs.json'), 'utf8')) as {
      runs: PublishedRun[];
    }
  ).runs;
  const rows: string[] = [];
  after(() => {
    console.log(
      [
        '',
        '      Best plan under the same GPUs, batch, sequence length and recomputation vs the published layout (both as the cost engine predicts them):',
        '      run                                            GPUs  published layout           engine s   best s   published/best  rank  verdict',
        ...rows,
      ].join('\n'),
    );
  });
  for (const run of runs) {
    it(run.id, () => {
      const plan: Plan = {
        model: run.model,
        cluster: { gpu: run.gpu, gpusPerNode: run.gpusPerNode, nodes: run.gpus / run.gpusPerNode },
        training: run.training,
        parallel: run.parallel,
      };
      const w = archWorkload(run.model);
      const published = estimate(plan, w);
      const fits = peak(published) <= published.stages[0].capacity;
      // Recomputation is held: it trades time for the memory the run had, which the engine models without FlashAttention.
      const res = optimize(plan, w, { top: 10, locks: ['training.recompute'] });
      const best = res.candidates[0];
      const rank = res.candidates.slice(0, 10).findIndex((c) => c.edits.length === 0);
      const ratio = published.iterationSeconds / best.iterationSeconds;
      const good = rank >= 0 || ratio <= 1.05;
      const p = run.parallel;
      const layout = `t${p.tensor ?? 1} p${p.pipeline ?? 1}${p.virtualStages ? `×${p.virtualStages}` : ''} d${p.data ?? 1} mb${run.training.microBatch}${p.zero ? ` z${p.zero}` : ''} ${run.training.recompute}`;
      const verdict = !fits
        ? 'published over memory in the engine'
        : good
          ? 'ok'
          : KNOWN_MISRANKED.has(run.id)
            ? 'known: engine'
            : 'MISS';
      rows.push(
        `      ${run.id.padEnd(46)} ${String(run.gpus).padStart(5)}  ${layout.padEnd(25)} ${published.iterationSeconds.toFixed(2).padStart(8)} ${best.iterationSeconds.toFixed(2).padStart(8)}   ${ratio.toFixed(3).padStart(6)}        ${rank >= 0 ? String(rank + 1).padStart(3) : '  —'}  ${verdict}`,
      );
      assert.strictEqual(res.boundViolations, 0);
      if (!fits) return;
      // The search never does worse than what the team ran.
      assert.ok(best.iterationSeconds <= published.iterationSeconds * (1 + 1e-9), `best ${best.iterationSeconds}`);
      if (KNOWN_MISRANKED.has(run.id)) {
        assert.ok(!good, `${run.id} now ranks ${rank + 1} (${ratio.toFixed(3)}×): take it off KNOWN_MISRANKED`);
      } else {
        assert.ok(
          good,
          `published layout ranks ${rank < 0 ? 'below 10' : rank + 1}, ${((ratio - 1) * 100).toFixed(1)}% slower than the best (${best.why})`,
        );
      }
    });
  }
});

describe('layerplan optimize (CLI)', () => {
  const CLI = path.join(REPO, 'out', 'src', 'cli.js');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-optimize-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const copy = (name: string) => {
    const file = path.join(tmp, `${Math.random().toString(36).slice(2)}-${name}`);
    fs.copyFileSync(path.join(REPO, 'examples', name), file);
    return file;
  };

  it("prints DESIGN.md's JSON: searched, seconds, candidates with complete plans, the Pareto front", () => {
    const r = cli('optimize', path.join(REPO, 'examples', 'gpt3-175b.plan.json'), '--json', '--top', '5');
    assert.strictEqual(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as SearchResult;
    assert.ok(doc.searched > 1000 && typeof doc.seconds === 'number');
    assert.ok(doc.candidates.length >= 5);
    for (const c of doc.candidates) {
      for (const k of ['plan', 'iterationSeconds', 'mfu', 'peakMemoryBytes', 'outputSqnrDb', 'why', 'binds'] as const) {
        assert.ok(k in c, k);
      }
      assert.ok(Array.isArray(c.binds) && typeof c.why === 'string');
      assert.deepStrictEqual(
        validatePlan(JSON.stringify(c.plan)).issues.filter((i) => i.severity === 'error'),
        [],
      );
    }
    const times = doc.candidates.slice(0, 5).map((c) => c.iterationSeconds);
    assert.deepStrictEqual(
      [...times].sort((a, b) => a - b),
      times,
      'best first',
    );
    assert.ok(doc.pareto.length >= 1 && doc.pareto.every((i) => i >= 0 && i < doc.candidates.length));
  });

  it('--write puts the best plan into the file, keeping its comments; check and estimate agree with the search', () => {
    const file = copy('gpt3-175b.plan.json');
    const before = fs.readFileSync(file, 'utf8');
    const r = cli('optimize', file, '--write', '--json', '--top', '3');
    assert.strictEqual(r.status, 0, r.stderr);
    const best = (JSON.parse(r.stdout) as SearchResult).candidates[0];
    const after = fs.readFileSync(file, 'utf8');
    assert.notStrictEqual(after, before);
    assert.ok(after.includes('// GPT-3 175B as Korthikanti et al. (2022) trained it'), 'the comment stays');
    const check = cli('check', file, '--json');
    assert.strictEqual(check.status, 0, check.stdout);
    const est = JSON.parse(cli('estimate', file, '--json').stdout) as { iterationSeconds: number };
    assert.ok(Math.abs(est.iterationSeconds - best.iterationSeconds) < 1e-9 * best.iterationSeconds);
  });

  it("per-layer precision on a model file's real weights: within the budget, and layerplan quant --plan measures the same output SQNR", () => {
    const file = path.join(tmp, 'tiny-budget.plan.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        model: path.join(REPO, 'examples', 'gpt2-tiny.onnx'),
        cluster: { gpu: 'l4', gpusPerNode: 2, nodes: 1 },
        training: { globalBatch: 32, microBatch: 4, seqLen: 64 },
        parallel: { data: 2 },
        precision: { default: 'bf16', errorBudgetDb: 30 },
      }),
    );
    const r = cli(
      'optimize',
      file,
      '--json',
      '--top',
      '1',
      '--lock',
      'parallel,training,cluster',
      '--formats',
      'bf16,fp8-e4m3,int8-channel,int4-g128',
    );
    assert.strictEqual(r.status, 0, r.stderr);
    const best = (JSON.parse(r.stdout) as SearchResult).candidates[0];
    assert.ok(best.outputSqnrDb !== null && best.outputSqnrDb >= 30, `output SQNR ${best.outputSqnrDb}`);
    const rules = best.plan.precision?.rules ?? [];
    assert.ok(rules.length > 0 && rules.some((x) => x.format !== 'bf16'), JSON.stringify(rules));
    const chosen = path.join(tmp, 'tiny-chosen.plan.json');
    fs.writeFileSync(chosen, JSON.stringify(best.plan));
    const q = cli('quant', path.join(REPO, 'examples', 'gpt2-tiny.onnx'), '--plan', chosen, '--json');
    assert.strictEqual(q.status, 0, q.stderr);
    const measured = (JSON.parse(q.stdout) as { assignment: { outputSqnrDb: number } }).assignment.outputSqnrDb;
    assert.ok(
      Math.abs(measured - best.outputSqnrDb!) < 0.01,
      `quant --plan ${measured} dB, optimize ${best.outputSqnrDb} dB`,
    );
  });

  it('--lock keeps the locked fields as the plan has them', () => {
    const r = cli(
      'optimize',
      path.join(REPO, 'examples', 'gpt3-175b.plan.json'),
      '--json',
      '--lock',
      'parallel.tensor,parallel.pipeline',
    );
    assert.strictEqual(r.status, 0, r.stderr);
    for (const c of (JSON.parse(r.stdout) as SearchResult).candidates) {
      assert.strictEqual(c.plan.parallel?.tensor, 8);
      assert.strictEqual(c.plan.parallel?.pipeline, 8);
    }
  });

  it('a plan whose degrees do not match its GPUs is still searched (the search sets them)', () => {
    const file = path.join(tmp, 'broken.plan.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        model: gptSmall,
        cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 1 },
        training: { globalBatch: 32, microBatch: 3, seqLen: 1024 },
        parallel: { data: 3, tensor: 2, pipeline: 2 },
      }),
    );
    const r = cli('optimize', file, '--json', '--top', '1');
    assert.strictEqual(r.status, 0, r.stderr);
    assert.strictEqual((JSON.parse(r.stdout) as SearchResult).candidates[0].gpus, 8);
  });

  const bad: [string, string[], RegExp][] = [
    ['an unknown objective', ['--objective', 'speed'], /--objective expects time, gpus or cost/],
    ['the gpus objective without a target', ['--objective', 'gpus'], /needs --target-seconds/],
    ['a zero --top', ['--top', '0'], /--top expects an integer/],
  ];
  for (const [what, args, pattern] of bad) {
    it(`refuses ${what} with one line and exit 2`, () => {
      const r = cli('optimize', path.join(REPO, 'examples', 'gpt3-175b.plan.json'), ...args);
      assert.strictEqual(r.status, 2);
      assert.strictEqual(r.stderr.trim().split('\n').length, 1);
      assert.match(r.stderr, pattern);
    });
  }
  it('refuses a plan with a broken field the search does not set, naming the file and line', () => {
    const file = path.join(tmp, 'badgpu.plan.json');
    fs.writeFileSync(
      file,
      JSON.stringify(
        { model: gptSmall, cluster: { gpu: 'a100-81gb' }, training: { globalBatch: 8, microBatch: 1 } },
        null,
        2,
      ),
    );
    const r = cli('optimize', file);
    assert.strictEqual(r.status, 2);
    assert.match(r.stderr, /badgpu\.plan\.json:\d+:\d+: cluster\.gpu: unknown GPU 'a100-81gb'/);
  });
});
