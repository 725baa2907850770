import * as assert from 'assert';
import { estimate } from '../../src/engine/cost/estimate';
import type { Workload } from '../../src/engine/cost/workload';
import { checkPlanFile } from '../../src/node/plan-file';

/**
 * The estimate computes a transformer block's work and time once for all blocks with the same weight bytes and
 * compute dtype (`sameWorkAs`). That must change no figure: the same plans estimated with every block computed
 * on its own give the same report, including plans whose precision rules give layers different weights or fp8.
 */
describe('blocks that share their work are computed once, with the same figures', () => {
  const plans: [string, object][] = [
    ['uniform blocks, 4 stages, interleaved', {}],
    [
      'precision rules that differ by layer (int4 and int8 weights on some, fp8 compute on layers.2*)',
      {
        precision: {
          default: 'bf16',
          rules: [
            { match: 'layers.1*', format: 'int4-g128' },
            { match: 'layers.3', format: 'int8-channel' },
            { match: 'layers.2*', format: 'fp8-e4m3' },
          ],
        },
        training: { globalBatch: 64, microBatch: 2, seqLen: 1024, dtype: 'bf16', recompute: 'selective' },
      },
    ],
    [
      'fp8 training, full recomputation',
      { training: { globalBatch: 64, microBatch: 1, seqLen: 1024, dtype: 'fp8', recompute: 'full' } },
    ],
  ];
  for (const [what, extra] of plans) {
    it(what, async () => {
      const plan = {
        model: { arch: 'llama', layers: 24, hidden: 1024, heads: 16, kvHeads: 4, vocab: 32000, seqLen: 4096 },
        cluster: { gpu: 'h100', gpusPerNode: 8, nodes: 2 },
        training: { globalBatch: 64, microBatch: 1, seqLen: 2048, dtype: 'bf16', recompute: 'selective' },
        parallel: { data: 2, tensor: 2, pipeline: 4, schedule: 'interleaved', virtualStages: 2 },
        ...extra,
      };
      const c = await checkPlanFile('shared.plan.json', JSON.stringify(plan));
      assert.ok(c.plan && c.workload, c.issues.map((i) => i.message).join('; '));
      assert.ok(c.workload.layers.filter((l) => l.sameWorkAs === 'block').length === 24);
      const alone: Workload = {
        ...c.workload,
        layers: c.workload.layers.map((l) => ({ ...l, sameWorkAs: undefined })),
      };
      const shared = estimate(c.plan, c.workload, 'shared.plan.json');
      const separate = estimate(c.plan, alone, 'shared.plan.json');
      assert.deepStrictEqual(JSON.parse(JSON.stringify(shared)), JSON.parse(JSON.stringify(separate)));
    });
  }

  it('a key that lies is caught: blocks of different sizes under one key change the figures', async () => {
    const plan = {
      model: { arch: 'gpt', layers: 4, hidden: 512, heads: 8, vocab: 1000, seqLen: 512 },
      cluster: { gpu: 'a100-80gb', gpusPerNode: 2, nodes: 1 },
      training: { globalBatch: 4, microBatch: 1, seqLen: 512 },
      parallel: { data: 1, tensor: 1, pipeline: 2 },
    };
    const big = await checkPlanFile('a.plan.json', JSON.stringify({ ...plan, model: { ...plan.model, hidden: 1024 } }));
    const small = await checkPlanFile('b.plan.json', JSON.stringify(plan));
    // Stage 1's blocks from the bigger model, under the same key as stage 0's: the shared figure is wrong.
    const mixed: Workload = {
      ...small.workload!,
      layers: small.workload!.layers.map((l, i) => (i >= 3 && l.kind === 'block' ? big.workload!.layers[i] : l)),
    };
    const honest: Workload = { ...mixed, layers: mixed.layers.map((l) => ({ ...l, sameWorkAs: undefined })) };
    assert.notStrictEqual(
      estimate(small.plan!, mixed, 'm').iterationSeconds,
      estimate(small.plan!, honest, 'm').iterationSeconds,
    );
  });
});
