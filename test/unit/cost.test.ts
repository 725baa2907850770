import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { estimate, type CostReport } from '../../src/engine/cost/estimate';
import { peakInFlight, simulate, stageOrder } from '../../src/engine/cost/schedule';
import * as reference from './schedule-reference';
import { archWorkload, type CostLayer, type WorkContext, type Workload } from '../../src/engine/cost/workload';
import type { ArchSpec, Plan } from '../../src/engine/plan/plan';
import { REPO } from '../helpers';
import { sourceOf, validateAll } from '../../validation/validate';

/** The validation table's bounds when they were last set (npm run validate prints the table). */
const VALIDATION_BOUNDS = { mean: 0.078, max: 0.177 };
/** Per validation source: mean |error| bounds. */
const SOURCE_BOUNDS: Record<string, number> = {
  sc21: 0.075,
  bloom: 0.04,
  nemo2407: 0.105,
  megatron: 0.075,
  automodel: 0.025,
  torchtitan: 0.045,
};
const CALIBRATION_MEAN_BOUND = 0.125;

const GB = 1e9;

function gptPlan(model: ArchSpec, over: Partial<Plan> & { nodes?: number } = {}): Plan {
  return {
    model,
    cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: over.nodes ?? 1 },
    training: { globalBatch: 8, microBatch: 1, seqLen: 2048, dtype: 'bf16', optimizer: 'adam', recompute: 'none' },
    parallel: { data: 8, tensor: 1, pipeline: 1 },
    ...over,
  };
}

/** A workload of one layer with exactly `n` parameters and nothing else (isolates the memory model). */
function paramsOnly(n: number): Workload {
  const layer: CostLayer = {
    name: 'weights',
    kind: 'generic',
    parameters: n,
    shardedParameters: n,
    tensors: [],
    work: () => ({
      gemms: [],
      selectiveGemms: [],
      memoryBytes: 0,
      memoryKernels: 0,
      selectiveMemoryBytes: 0,
      tpAllReduceBytes: [],
      tpBackwardAllGatherBytes: [],
      activations: { none: 0, selective: 0, full: 0 },
      flops: 0,
      selectiveFlops: 0,
      bulkMatmulFlops: 0,
    }),
  };
  return { layers: [layer], blockIndices: [0] };
}

const states = (r: CostReport) =>
  r.stages[0].memory.weights + r.stages[0].memory.gradients + r.stages[0].memory.optimizer;

describe('cost engine: memory', () => {
  it('mixed-precision Adam keeps 16 bytes per parameter (ZeRO paper, fp16)', () => {
    const model: ArchSpec = { arch: 'gpt', layers: 4, hidden: 1024, heads: 16, vocab: 50304, seqLen: 2048 };
    const plan = gptPlan(model, { parallel: { data: 8 } });
    plan.training = { ...plan.training!, dtype: 'fp16', framework: 'deepspeed' };
    plan.parallel = { data: 8, zero: 0 };
    const r = estimate(plan, archWorkload(model));
    assert.strictEqual(states(r), 16 * r.parameters);
    assert.strictEqual(r.stages[0].memory.weights, 2 * r.parameters);
  });

  it("Megatron-LM's rule: 18 bytes per parameter, 6 + 12/DP with the distributed optimizer (theoretical_memory_usage.py)", () => {
    // megatron/training/theoretical_memory_usage.py (Megatron-LM d98e8a64): bf16 weights, fp32 main
    // gradients, fp32 main weights and two Adam moments.
    const model: ArchSpec = { arch: 'llama', layers: 4, hidden: 2048, heads: 16, vocab: 32000, seqLen: 2048 };
    for (const distributedOptimizer of [false, true]) {
      const plan = gptPlan(model, { parallel: { data: 8, distributedOptimizer } });
      plan.training = { ...plan.training!, framework: 'megatron-core' };
      const r = estimate(plan, archWorkload(model));
      const perParameter = states(r) / r.parameters;
      const expected = distributedOptimizer ? 6 + 12 / 8 : 18;
      assert.ok(Math.abs(perParameter - expected) < 1e-9, `${perParameter} bytes per parameter, expected ${expected}`);
    }
  });

  it("reproduces ZeRO's example: 7.5B parameters on 64 GPUs, 120 → 31.4 → 16.6 → 1.88 GB", () => {
    const expected = [120, 31.4, 16.6, 1.88];
    for (let zero = 0; zero <= 3; zero++) {
      const plan: Plan = {
        model: 'x',
        cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 8 },
        training: {
          globalBatch: 64,
          microBatch: 1,
          seqLen: 1,
          dtype: 'fp16',
          optimizer: 'adam',
          framework: 'deepspeed',
        },
        parallel: { data: 64, zero },
      };
      const gb = states(estimate(plan, paramsOnly(7.5e9))) / GB;
      assert.ok(Math.abs(gb - expected[zero]) < 0.05, `ZeRO-${zero}: ${gb.toFixed(3)} GB, paper ${expected[zero]} GB`);
    }
  });

  describe('Korthikanti et al. 2022: activation bytes per transformer layer', () => {
    const [s, b, h, a] = [2048, 2, 4096, 32];
    const layerActs = (t: number, sp: boolean) => {
      const w = archWorkload({ arch: 'gpt', layers: 1, hidden: h, heads: a, vocab: 1000 });
      const ctx: WorkContext = {
        microBatch: b,
        seqLen: s,
        tensor: t,
        sequenceParallel: sp,
        actBytes: 2,
        weightBytes: () => 2,
        dropout: true,
      };
      return w.layers[w.blockIndices[0]].work(ctx).activations;
    };
    const sbh = s * b * h;
    const close = (x: number, y: number) => assert.ok(Math.abs(x - y) / y < 1e-9, `${x} vs ${y}`);
    it('no parallelism: sbh(34 + 5as/h)', () => close(layerActs(1, false).none, sbh * (34 + (5 * a * s) / h)));
    it('tensor parallel: sbh(10 + 24/t + 5as/(ht))', () =>
      close(layerActs(8, false).none, sbh * (10 + 24 / 8 + (5 * a * s) / (h * 8))));
    it('tensor + sequence parallel: sbh/t (34 + 5as/h)', () =>
      close(layerActs(8, true).none, (sbh / 8) * (34 + (5 * a * s) / h)));
    it('tensor parallel + selective recompute: sbh(10 + 24/t)', () =>
      close(layerActs(8, false).selective, sbh * (10 + 24 / 8)));
    it('tensor + sequence parallel + selective recompute: 34 sbh/t', () =>
      close(layerActs(8, true).selective, (34 * sbh) / 8));
    it('full recompute keeps the layer input: 2sbh (2sbh/t with SP)', () => {
      close(layerActs(8, false).full, 2 * sbh);
      close(layerActs(8, true).full, (2 * sbh) / 8);
    });
  });

  it('1F1B keeps p micro-batches in flight on the first stage, GPipe all m', () => {
    const model: ArchSpec = { arch: 'gpt', layers: 8, hidden: 1024, heads: 16, vocab: 50304 };
    const base = {
      training: {
        globalBatch: 32,
        microBatch: 1,
        seqLen: 1024,
        recompute: 'none' as const,
        framework: 'megatron-lm-2021' as const,
      },
      parallel: { data: 1, tensor: 1, pipeline: 4 },
    };
    const oneF = estimate(
      gptPlan(model, {
        ...base,
        cluster: { gpu: 'a100-80gb', gpusPerNode: 4 },
        parallel: { ...base.parallel, schedule: '1f1b' },
      }),
      archWorkload(model),
    );
    const gpipe = estimate(
      gptPlan(model, {
        ...base,
        cluster: { gpu: 'a100-80gb', gpusPerNode: 4 },
        parallel: { ...base.parallel, schedule: 'gpipe' },
      }),
      archWorkload(model),
    );
    // Stages 1 and 2 hold the same two layers: 1F1B keeps 3 and 2 micro-batches in flight there, GPipe 32.
    assert.ok(Math.abs(oneF.stages[1].memory.activations / oneF.stages[2].memory.activations - 3 / 2) < 1e-9);
    assert.ok(Math.abs(gpipe.stages[1].memory.activations / oneF.stages[1].memory.activations - 32 / 3) < 1e-9);
  });

  it('an int4 precision rule shrinks weight memory to 4.125 bits per weight', () => {
    const model: ArchSpec = { arch: 'llama', layers: 4, hidden: 2048, heads: 16, kvHeads: 4, vocab: 32000 };
    const plan = gptPlan(model, {
      precision: { default: 'bf16', rules: [{ match: 'layers.*', format: 'int4-g128' }] },
      parallel: { data: 8 },
    });
    const w = archWorkload(model);
    const r = estimate(plan, w);
    const blocks = w.blockIndices.reduce((s, i) => s + w.layers[i].parameters, 0);
    const rest = r.parameters - blocks;
    assert.ok(Math.abs(r.stages[0].memory.weights - (blocks * 4.125) / 8 - rest * 2) < 1);
  });
});

describe('cost engine: compute and FLOPs', () => {
  it("counts Megatron-LM's FLOPs per iteration: 96·B·s·l·h²·(1 + s/6h + V/16lh) with full recompute", () => {
    const [l, h, a, V, s, B] = [24, 2048, 16, 51200, 2048, 64];
    const model: ArchSpec = { arch: 'gpt', layers: l, hidden: h, heads: a, vocab: V, seqLen: s };
    const r = estimate(
      gptPlan(model, {
        training: { globalBatch: B, microBatch: 2, seqLen: s, recompute: 'full' },
        parallel: { data: 8 },
      }),
      archWorkload(model),
    );
    const megatron = 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
    assert.ok(Math.abs(r.hardwareFlops / megatron - 1) < 1e-9, `${r.hardwareFlops} vs ${megatron}`);
    // Model FLOPs (for MFU) leave the recomputed forward out: 72·B·s·l·h²·(1 + s/6h + V/12lh).
    const model72 = 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h));
    assert.ok(Math.abs(r.modelFlops / model72 - 1) < 1e-9, `${r.modelFlops} vs ${model72}`);
  });

  it('fp8 compute through a precision rule makes the blocks faster on H100', () => {
    const model: ArchSpec = { arch: 'gpt', layers: 8, hidden: 4096, heads: 32, vocab: 50304 };
    const h100 = (rules: { match: string; format: string }[]) =>
      estimate(
        gptPlan(model, { cluster: { gpu: 'h100-sxm', gpusPerNode: 1 }, parallel: { data: 1 }, precision: { rules } }),
        archWorkload(model),
      ).iterationSeconds;
    assert.ok(h100([{ match: 'layers.*', format: 'fp8-e4m3' }]) < 0.8 * h100([]));
  });
});

describe('cost engine: pipeline schedule simulation', () => {
  it('the figures do not depend on the timeline: estimate(…, { timeline: false }) gives the same report less its events', () => {
    // Each stage's gradient sync starts at its own last backward: without the events (the optimizer's
    // estimates) the stage ends must still come from the simulation, not from an empty timeline.
    const model: ArchSpec = { arch: 'gpt', layers: 8, hidden: 2048, heads: 16, vocab: 50304, seqLen: 2048 };
    for (const parallel of [
      { data: 8 },
      { data: 2, pipeline: 4 },
      { data: 2, tensor: 2, pipeline: 2, schedule: 'interleaved' as const, virtualStages: 2 },
    ]) {
      const plan = gptPlan(model, {
        parallel,
        training: { globalBatch: 16, microBatch: 1, seqLen: 2048, recompute: 'none', overlapGradReduce: false },
      });
      const full = estimate(plan, archWorkload(model));
      const lean = estimate(plan, archWorkload(model), 'plan', { timeline: false });
      assert.ok(full.timeline.length > 0 && lean.timeline.length === 0);
      assert.deepStrictEqual({ ...lean, timeline: full.timeline }, full, JSON.stringify(parallel));
    }
  });
  it('agrees exactly with the reference simulation (object per op) on random uneven pipelines', () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let trial = 0; trial < 60; trial++) {
      const p = 1 + Math.floor(rand() * 9);
      const schedule = (['gpipe', '1f1b', 'interleaved'] as const)[trial % 3];
      const v = schedule === 'interleaved' ? 1 + Math.floor(rand() * 4) : 1;
      const m = schedule === 'interleaved' ? p * (1 + Math.floor(rand() * 4)) : 1 + Math.floor(rand() * 20);
      const stages = Array.from({ length: p }, () => ({
        forward: rand(),
        backward: 2 * rand(),
        sendNext: rand() / 10,
        sendPrev: rand() / 10,
      }));
      const want = reference.simulate(schedule, stages, m, v);
      const got = simulate(schedule, stages, m, v);
      assert.deepStrictEqual(got, want, `${schedule} p=${p} m=${m} v=${v}`);
      const lean = simulate(schedule, stages, m, v, { events: false });
      assert.deepStrictEqual({ ...lean, events: want.events }, want);
      assert.strictEqual(lean.events.length, 0);
      for (let s = 0; s < p; s++) {
        assert.deepStrictEqual(stageOrder(schedule, p, m, v, s), reference.stageOrder(schedule, p, m, v, s));
      }
      assert.deepStrictEqual(peakInFlight(schedule, p, m, v), want.peakInFlight);
    }
  });
  it('reproduces the 1F1B and GPipe bubble (p−1)/(m+p−1) with uniform stages', () => {
    for (const [p, m] of [
      [2, 4],
      [4, 8],
      [8, 8],
      [8, 64],
      [3, 1],
    ]) {
      for (const schedule of ['1f1b', 'gpipe'] as const) {
        const r = simulate(
          schedule,
          Array.from({ length: p }, () => ({ forward: 1, backward: 2, sendNext: 0, sendPrev: 0 })),
          m,
        );
        assert.ok(
          Math.abs(r.bubbleFraction - (p - 1) / (m + p - 1)) < 1e-12,
          `${schedule} p=${p} m=${m}: ${r.bubbleFraction}`,
        );
        assert.strictEqual(r.makespan, (m + p - 1) * 3);
      }
    }
  });
  it('interleaving v chunks divides the bubble by v: (p−1)/v / (m + (p−1)/v)', () => {
    for (const [p, m, v] of [
      [4, 8, 2],
      [4, 16, 4],
      [8, 16, 2],
    ]) {
      const r = simulate(
        'interleaved',
        Array.from({ length: p }, () => ({ forward: 1 / v, backward: 2 / v, sendNext: 0, sendPrev: 0 })),
        m,
        v,
      );
      const expected = (p - 1) / v / (m + (p - 1) / v);
      assert.ok(
        Math.abs(r.bubbleFraction - expected) < 1e-9,
        `p=${p} m=${m} v=${v}: ${r.bubbleFraction} vs ${expected}`,
      );
    }
  });
  it('uneven stages show their idle time; 1F1B keeps p − i micro-batches in flight', () => {
    const r = simulate(
      '1f1b',
      [
        { forward: 1, backward: 2, sendNext: 0.1, sendPrev: 0.1 },
        { forward: 2, backward: 4, sendNext: 0, sendPrev: 0 },
      ],
      8,
    );
    assert.ok(r.idle[0] > r.idle[1] + 8, `the fast stage waits: idle ${r.idle}`);
    assert.deepStrictEqual(r.peakInFlight, [2, 1]);
    assert.strictEqual(r.events.length, 2 * 2 * 8);
    for (const e of r.events) assert.ok(e.end > e.start);
  });
});

/**
 * Published training runs (validation/runs.json; `npm run validate` prints the tables). The bounds
 * below are the validation table's as measured when they were set: a change that makes the estimate
 * worse on runs it was never fitted on fails here. The calibration set is bounded too, loosely.
 */
describe('cost engine: published training runs (npm run validate)', () => {
  const { calibration, validation, data } = validateAll();
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

  it('validation set: at least 30 runs from 6 sources none of the fitted constants saw', () => {
    assert.ok(validation.results.length >= 30, `${validation.results.length} runs`);
    assert.ok(validation.sources >= 6, `${validation.sources} sources`);
    const calibrationSources = new Set(calibration.results.map((r) => sourceOf(r.run.id)));
    for (const r of validation.results) assert.ok(!calibrationSources.has(sourceOf(r.run.id)), r.run.id);
  });
  it(`validation set: mean |error| ≤ ${VALIDATION_BOUNDS.mean * 100}%, max ≤ ${VALIDATION_BOUNDS.max * 100}%`, () => {
    assert.ok(validation.meanAbsError <= VALIDATION_BOUNDS.mean, `mean ${pct(validation.meanAbsError)}`);
    assert.ok(
      validation.maxAbsError <= VALIDATION_BOUNDS.max,
      `max ${pct(validation.maxAbsError)} (${validation.worst?.run.id})`,
    );
  });
  it("validation set, per source: each source's mean |error| stays within its bound", () => {
    for (const [source, bound] of Object.entries(SOURCE_BOUNDS)) {
      const runs = validation.results.filter((r) => sourceOf(r.run.id) === source);
      assert.ok(runs.length, source);
      const mean = runs.reduce((a, r) => a + Math.abs(r.error), 0) / runs.length;
      assert.ok(mean <= bound, `${source}: mean |error| ${pct(mean)} over ${runs.length} runs, bound ${pct(bound)}`);
    }
  });
  it('calibration set: the fitted dense runs stay within their bound', () => {
    const fitted = calibration.results.filter((r) => !r.run.notFitted);
    const mean = fitted.reduce((a, r) => a + Math.abs(r.error), 0) / fitted.length;
    assert.ok(mean <= CALIBRATION_MEAN_BOUND, `mean |error| ${pct(mean)} over ${fitted.length} runs`);
  });
  it('Korthikanti et al. 2022: each of the eight iteration times within 5% (the runs the 2021 stack is fitted on)', () => {
    const runs = calibration.results.filter((r) => r.run.id.startsWith('korthikanti2022'));
    assert.strictEqual(runs.length, 8);
    for (const r of runs) assert.ok(Math.abs(r.error) < 0.05, `${r.run.id}: ${pct(r.error)}`);
  });
  it('every scored run names its source, and every excluded run its reason', () => {
    for (const r of data.runs) assert.ok(r.source.length > 20 && r.published.value > 0, r.id);
    for (const x of data.excluded) assert.ok(x.reason.length > 20, x.id);
  });
});

describe('layerplan estimate (CLI)', () => {
  const CLI = path.join(REPO, 'out', 'src', 'cli.js');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-plan-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const run = (plan: unknown) => {
    const file = path.join(tmp, `p${Math.random().toString(36).slice(2)}.plan.json`);
    fs.writeFileSync(file, typeof plan === 'string' ? plan : JSON.stringify(plan, null, 2));
    const r = spawnSync(process.execPath, [CLI, 'estimate', file, '--json'], { encoding: 'utf8' });
    return { ...r, file };
  };
  const model = { arch: 'gpt', layers: 12, hidden: 768, heads: 12, vocab: 50304, seqLen: 1024 };
  const good = {
    model,
    cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 1 },
    training: { globalBatch: 32, microBatch: 2, seqLen: 1024 },
    parallel: { data: 2, tensor: 2, pipeline: 2 },
  };

  it('prints the DESIGN.md JSON', () => {
    const r = run(good);
    assert.strictEqual(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    for (const k of ['iterationSeconds', 'tflopsPerGpu', 'mfu', 'bubbleFraction', 'stages', 'communication']) {
      assert.ok(k in doc, k);
    }
    assert.strictEqual(doc.stages.length, 2);
    for (const s of doc.stages) {
      for (const k of ['index', 'layers', 'memory', 'computeSeconds', 'commSeconds', 'idleSeconds']) {
        assert.ok(k in s, k);
      }
      for (const k of ['weights', 'gradients', 'optimizer', 'activations', 'total']) {
        assert.ok(typeof s.memory[k] === 'number', k);
      }
    }
    for (const k of ['data', 'tensor', 'pipeline']) assert.ok(typeof doc.communication[k].seconds === 'number');
    assert.strictEqual(doc.stages[0].layers, '0-5');
  });
  it('estimates a plan whose model is an ONNX file beside it', () => {
    const r = spawnSync(
      process.execPath,
      [CLI, 'estimate', path.join(REPO, 'examples', 'gpt2-tiny.plan.json'), '--json'],
      { encoding: 'utf8' },
    );
    assert.strictEqual(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepStrictEqual(
      doc.stages.map((s: { layers: string }) => s.layers),
      ['0-3', '4-6'],
    );
    // The model's own numbers, from references outside the engine: onnx's parameter count of the file
    // (test/fixtures/models/expected.json; examples/gpt2-tiny.onnx is the same file) and Megatron-LM's
    // FLOPs for GPT (Narayanan et al. 2021, eq. 3) with the exported dims (scripts/make-fixtures.py:
    // vocab 256, hidden 64, 2 layers), for the plan's 32 sequences of 64 tokens, in integers:
    // 72·B·s·l·h² + 12·B·s²·l·h + 6·B·s·V·h.
    const expected = JSON.parse(
      fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'models', 'expected.json'), 'utf8'),
    );
    assert.strictEqual(doc.parameters, expected['gpt2-tiny.onnx'].parameters);
    const [B, s, l, h, V] = [32, 64, 2, 64, 256];
    assert.strictEqual(doc.modelFlops, 72 * B * s * l * h * h + 12 * B * s * s * l * h + 6 * B * s * V * h);
    // No faster than the two L4s' dense bf16 peak (121 TFLOPS each, NVIDIA L4 datasheet) allows.
    assert.ok(doc.iterationSeconds >= doc.modelFlops / (2 * 121e12), String(doc.iterationSeconds));
    assert.deepStrictEqual(doc.warnings, []);
  });
  const bad: [string, unknown, RegExp][] = [
    [
      'an unknown GPU, with a suggestion',
      { ...good, cluster: { ...good.cluster, gpu: 'a100-80' } },
      /cluster\.gpu: unknown GPU 'a100-80' \(did you mean 'a100-80gb'\?\)/,
    ],
    [
      'degrees whose product is not the GPU count',
      { ...good, parallel: { data: 1, tensor: 2, pipeline: 2 } },
      /parallel: data × tensor × pipeline = 1 × 2 × 2 = 4, but the cluster has 1 × 8 = 8 GPUs/,
    ],
    [
      'a tensor degree that does not divide the heads',
      { ...good, model: { ...model, heads: 6, hidden: 768 }, parallel: { data: 1, tensor: 4, pipeline: 2 } },
      /parallel\.tensor: 4 does not divide the attention heads \(6\)/,
    ],
    [
      'stages that skip a layer',
      { ...good, stages: [{ layers: '0-4' }, { layers: '6-11' }] },
      /stages: layers 5 are not assigned/,
    ],
    [
      'stages that repeat a layer',
      { ...good, stages: [{ layers: '0-6' }, { layers: '6-11' }] },
      /stages\[1\]\.layers: layer 6 is already assigned to stage 0/,
    ],
    [
      'a micro-batch that does not divide the batch',
      { ...good, training: { ...good.training, microBatch: 3 } },
      /training\.microBatch: globalBatch 32 is not a multiple of microBatch × data = 3 × 2/,
    ],
    ['a missing model file', { ...good, model: 'nope.onnx' }, /nope\.onnx: no such file/],
    ['broken JSON', '{"model": ', /JSON syntax/],
  ];
  for (const [what, plan, pattern] of bad) {
    it(`refuses ${what} with one line and exit 2`, () => {
      const r = run(plan);
      assert.strictEqual(r.status, 2, r.stdout);
      const lines = r.stderr.trim().split('\n');
      assert.strictEqual(lines.length, 1, r.stderr);
      assert.match(lines[0], pattern);
      assert.ok(lines[0].includes(path.basename(r.file)) || /nope/.test(lines[0]), lines[0]);
    });
  }
});
