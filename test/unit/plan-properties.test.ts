import * as assert from 'assert';
import fc from 'fast-check';
import * as path from 'path';
import { estimate } from '../../src/engine/cost/estimate';
import { InputError } from '../../src/engine/errors';
import { checkFile, checkPlanFile } from '../../src/node/plan-file';

/**
 * Property tests over plans, as a user who mistypes writes them: random architectures and clusters,
 * with huge and degenerate values mixed in. Every case must be checked — and, when it is a valid
 * plan, estimated — to a result or an InputError naming the file, within a bounded time and memory
 * (generous bounds: this machine is shared; `npm run bench` shows the real growth, bench/plan-scale).
 */
const FILE = path.join('/tmp', 'property.plan.json');
const PER_CASE_MS = 15000;
const PER_CASE_HEAP = 300 * 2 ** 20;

/** Mostly plausible sizes, sometimes absurd ones (an extra zero, a negative, a float, 2^53). */
const size = (plausible: number) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: plausible }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(0, -1, 1.5, 10 * plausible, 1_000_000, 2 ** 31, 2 ** 53, 1e300),
    },
  );

const planArb = fc.record({
  model: fc.record({
    arch: fc.constantFrom('gpt', 'llama', 'gpt'),
    layers: fc.oneof(
      { weight: 12, arbitrary: size(128) },
      { weight: 1, arbitrary: fc.constantFrom(100_000, 1_000_000) },
    ),
    hidden: fc.constantFrom(64, 256, 1024, 4096, 12_288, 2 ** 31),
    heads: fc.constantFrom(1, 4, 8, 16, 32, 96),
    vocab: size(64_000),
    seqLen: size(8192),
  }),
  cluster: fc.record({
    gpu: fc.constantFrom('a100-80gb', 'h100', 'h100x', 'l4'),
    gpusPerNode: fc.constantFrom(1, 2, 4, 8, 72, 100_000),
    nodes: size(512),
  }),
  training: fc.record({
    globalBatch: size(4096),
    microBatch: size(16),
    seqLen: size(8192),
    recompute: fc.constantFrom('none', 'selective', 'full'),
  }),
  parallel: fc.record({
    data: size(64),
    tensor: fc.constantFrom(1, 2, 4, 8, 3),
    pipeline: fc.oneof({ weight: 12, arbitrary: size(64) }, { weight: 1, arbitrary: fc.constantFrom(1000, 100_000) }),
    schedule: fc.constantFrom('1f1b', 'gpipe', 'interleaved'),
    virtualStages: fc.constantFrom(1, 2, 3, 1000),
  }),
});

/** Plausible plans whose GPU count and batch follow their degrees: these must be valid and estimated. */
const validArb = fc
  .record({
    arch: fc.constantFrom('gpt', 'llama'),
    layers: fc.integer({ min: 1, max: 128 }),
    headDim: fc.constantFrom(32, 64, 128),
    heads: fc.constantFrom(4, 8, 16, 32),
    vocab: fc.integer({ min: 100, max: 128_000 }),
    seqLen: fc.constantFrom(128, 512, 2048, 8192),
    gpu: fc.constantFrom('a100-80gb', 'h100', 'h200', 'l4'),
    microBatch: fc.integer({ min: 1, max: 8 }),
    k: fc.integer({ min: 1, max: 8 }),
    data: fc.integer({ min: 1, max: 16 }),
    tensor: fc.constantFrom(1, 2, 4),
    pipelineShare: fc.double({ min: 0, max: 1, noNaN: true }),
    schedule: fc.constantFrom('1f1b', 'gpipe', 'interleaved'),
    recompute: fc.constantFrom('none', 'selective', 'full'),
  })
  .map((v) => {
    const pipeline = Math.max(1, Math.round(v.pipelineShare * Math.min(8, v.layers)));
    const interleaved = v.schedule === 'interleaved' && pipeline > 1 && v.layers % (2 * pipeline) === 0;
    return {
      model: {
        arch: v.arch,
        layers: v.layers,
        hidden: v.heads * v.headDim,
        heads: v.heads,
        vocab: v.vocab,
        seqLen: v.seqLen,
      },
      cluster: { gpu: v.gpu, gpusPerNode: 1, nodes: v.data * v.tensor * pipeline },
      training: {
        globalBatch: v.microBatch * v.data * pipeline * v.k,
        microBatch: v.microBatch,
        seqLen: v.seqLen,
        recompute: v.recompute,
      },
      parallel: {
        data: v.data,
        tensor: v.tensor,
        pipeline,
        schedule: interleaved ? 'interleaved' : v.schedule === 'interleaved' ? '1f1b' : v.schedule,
        virtualStages: interleaved ? 2 : 1,
      },
    };
  });

const casesArb = fc.oneof(validArb, planArb);

describe('any plan is checked and estimated within bounds (property tests, fast-check)', function () {
  this.timeout(600000);
  it('random plans, huge and degenerate values included: a result or one error naming the file', async () => {
    let valid = 0;
    await fc.assert(
      fc.asyncProperty(casesArb, async (plan) => {
        const text = JSON.stringify(plan);
        const heap0 = process.memoryUsage().heapUsed;
        const t0 = Date.now();
        try {
          const { diagnostics } = await checkFile(FILE, { text });
          for (const d of diagnostics) assert.ok(d.message.length > 10 && d.range.start.line >= 0, d.message);
          const checked = await checkPlanFile(FILE, text);
          // What the product estimates: a plan the check passes (the CLI and the editor refuse the rest).
          const errors = checked.issues.filter((i) => i.severity === 'error');
          if (checked.plan && checked.workload && !errors.length) {
            const r = estimate(checked.plan, checked.workload, FILE);
            assert.ok(Number.isFinite(r.iterationSeconds) && r.iterationSeconds > 0, `iteration ${r.iterationSeconds}`);
            for (const s of r.stages) assert.ok(Number.isFinite(s.memory.total) && s.memory.total > 0);
            valid++;
          }
        } catch (e) {
          assert.ok(e instanceof InputError, `not an InputError: ${(e as Error).stack}`);
          assert.ok((e as Error).message.startsWith(FILE), (e as Error).message);
        }
        const ms = Date.now() - t0;
        if (ms > 2000) console.log(`      ${ms} ms: layers ${plan.model.layers}, pipeline ${plan.parallel.pipeline}`);
        const heap = process.memoryUsage().heapUsed - heap0;
        assert.ok(ms < PER_CASE_MS, `${ms} ms for ${text}`);
        assert.ok(heap < PER_CASE_HEAP, `${(heap / 2 ** 20).toFixed(0)} MiB for ${text}`);
      }),
      { numRuns: 40, seed: 20261130 },
    );
    console.log(`      ${valid} of 40 random plans were valid and estimated`);
    assert.ok(valid >= 10, `${valid} valid plans: the plausible half must be valid`);
    assert.ok(valid > 0, 'some random plans are valid (the generator is not all garbage)');
  });
});

describe('the plans of the bounded-work report: each answers, none runs away', function () {
  this.timeout(600000);
  const arch = (layers: number) => ({ arch: 'gpt', layers, hidden: 1024, heads: 16, vocab: 50000, seqLen: 2048 });
  const cases: [string, object, RegExp | undefined][] = [
    [
      '100,000 layers on 1,000 stages (valid): checked and estimated',
      {
        model: arch(100_000),
        cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 125 },
        training: { globalBatch: 1000, microBatch: 1, seqLen: 2048 },
        parallel: { data: 1, tensor: 1, pipeline: 1000 },
      },
      undefined,
    ],
    [
      '"pipeline": 100000 with 100,000 layers: the schedule is bounded',
      {
        model: arch(100_000),
        cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 12500 },
        training: { globalBatch: 100_000, microBatch: 1, seqLen: 2048 },
        parallel: { data: 1, tensor: 1, pipeline: 100_000 },
      },
      undefined,
    ],
    [
      '1,000,000 layers: refused at the field with the reason',
      {
        model: arch(1_000_000),
        cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 125 },
        training: { globalBatch: 1000, microBatch: 1, seqLen: 2048 },
        parallel: { data: 1, tensor: 1, pipeline: 1000 },
      },
      /model\.layers: 1000000 is past the limit of 100,000 \(no model has that many layers\)/,
    ],
  ];
  for (const [title, plan, refused] of cases) {
    it(title, async () => {
      const text = JSON.stringify(plan);
      const checked = await checkPlanFile(FILE, text);
      if (refused) {
        assert.ok(
          checked.issues.some((i) => refused.test(i.message)),
          checked.issues.map((i) => i.message).join('\n'),
        );
        return;
      }
      assert.ok(checked.plan && checked.workload, checked.issues.map((i) => i.message).join('\n'));
      const r = estimate(checked.plan, checked.workload, FILE);
      assert.ok(Number.isFinite(r.iterationSeconds) && r.iterationSeconds > 0);
      assert.strictEqual(r.stages.length, (plan as { parallel: { pipeline: number } }).parallel.pipeline);
      assert.ok(
        r.warnings.some((w) => /schedule simulated for|closed form/.test(w)),
        r.warnings.join('\n'),
      );
    });
  }
});
