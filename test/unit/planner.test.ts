import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { estimate, rebalanceFix } from '../../src/engine/cost/estimate';
import { archToSpec, graphLayerData, graphWorkload, workloadFrom } from '../../src/engine/cost/workload';
import { openModel } from '../../src/engine/formats/registry';
import { PendingEdits, setJsonPaths, setPlanPaths } from '../../src/engine/plan/edits';
import type { Plan } from '../../src/engine/plan/plan';
import { ganttSvg, memorySvg } from '../../src/engine/report/charts';
import { planReportHtml, planReportMarkdown } from '../../src/engine/report/plan-report';
import { FileByteSource, FolderResolver } from '../../src/node/file-source';
import { OUR_MODELS, REPO } from '../helpers';
import { formatSeconds } from '../../src/engine/units';

const MODEL = path.join(REPO, 'examples', 'gpt2-tiny.onnx');
const plan: Plan = {
  model: 'gpt2-tiny.onnx',
  cluster: { gpu: 'l4', gpusPerNode: 2, nodes: 1 },
  training: { globalBatch: 32, microBatch: 4, seqLen: 64 },
  parallel: { data: 1, tensor: 1, pipeline: 2, schedule: '1f1b' },
  stages: [{ layers: '0-3' }, { layers: '4-6' }],
};

async function graph() {
  const src = await FileByteSource.open(MODEL);
  try {
    return await openModel(src, { siblings: new FolderResolver(MODEL), bindings: { batch: 4, sequence: 64 } });
  } finally {
    await src.close();
  }
}

describe('the planner engine (what the web worker runs)', () => {
  it("the workload the planner's worker gets (plain data, structured clone) gives the model's own numbers", async () => {
    const g = await graph();
    const source = structuredClone({ kind: 'graph' as const, layers: graphLayerData(g) });
    const r = estimate(plan, workloadFrom(source));
    // Parameters: onnx's count of the file's initializers (test/fixtures/models/expected.json, python onnx).
    const expected = JSON.parse(fs.readFileSync(path.join(OUR_MODELS, 'expected.json'), 'utf8'));
    assert.strictEqual(r.parameters, expected['gpt2-tiny.onnx'].parameters);
    assert.strictEqual(
      r.stages.reduce((a, st) => a + st.parameters, 0),
      r.parameters,
    );
    // FLOPs: Megatron-LM's count for GPT (Narayanan et al. 2021, eq. 3) with the exported model's dims
    // (scripts/make-fixtures.py TinyGPT: vocab 256, hidden 64, 2 layers): 72·B·s·l·h²·(1 + s/6h + V/12lh).
    const [B, s, l, h, V] = [plan.training!.globalBatch, plan.training!.seqLen!, 2, 64, 256];
    // Expanded, in integers: 72·B·s·l·h² + 12·B·s²·l·h + 6·B·s·V·h.
    assert.strictEqual(r.modelFlops, 72 * B * s * l * h * h + 12 * B * s * s * l * h + 6 * B * s * V * h);
    assert.strictEqual(r.hardwareFlops, r.modelFlops, 'no recomputation');
    assert.deepStrictEqual(r.warnings, [], 'batch and sequence are bound');
    assert.deepStrictEqual(
      r.stages.map((st) => st.layers),
      ['0-3', '4-6'],
    );
  });

  it('rebalancing splits the blocks into parallel.pipeline contiguous stages of even parameters', async () => {
    const w = graphWorkload(await graph());
    const fix = rebalanceFix({ ...plan, parallel: { ...plan.parallel, pipeline: 3 } }, w)!;
    const stages = fix.edits[0].value as { layers: string }[];
    assert.strictEqual(stages.length, 3);
    // (input)+wte+wpe = 20.5k | h.0 = 50k | h.1+ln_f+lm_head = 66.5k: the heaviest stage is as light as it can be.
    assert.strictEqual(stages.map((s) => s.layers).join(','), '0-2,3,4-6');
    assert.match(fix.title, /^Rebalance stages evenly/);
  });

  it('charts: one bar segment per memory part and stage, one Gantt box per simulated event, the bubble in the label; names escaped', async () => {
    const r = estimate(plan, graphWorkload(await graph()));
    const mem = memorySvg(r);
    for (const part of ['weights', 'gradients', 'optimizer', 'activations']) {
      assert.strictEqual(mem.match(new RegExp(`<rect [^>]*class="m-${part}"><title>`, 'g'))?.length, 2, part);
    }
    assert.strictEqual(mem.match(/class="cap"/g)?.length, 2);
    const g = ganttSvg(r);
    assert.strictEqual(
      (g.match(/class="fwd"/g)?.length ?? 0) + (g.match(/class="bwd"/g)?.length ?? 0),
      r.timeline.length,
    );
    assert.match(g, new RegExp(`bubble ${(r.bubbleFraction * 100).toFixed(1)}% idle`));
    // 1F1B on 2 stages with 8 micro-batches: (p−1)/(m+p−1) = 1/9 idle.
    assert.ok(Math.abs(r.bubbleFraction - 1 / 9) < 0.05, String(r.bubbleFraction));
    const html = planReportHtml('<script>x</script>', r);
    assert.ok(!html.includes('<script>x'), 'the title is escaped');
    assert.match(html, /<h2>Stages<\/h2><table>/);
    const md = planReportMarkdown('t', r, 'm.report');
    assert.deepStrictEqual(Object.keys(md.files), ['m.report-memory.svg', 'm.report-schedule.svg']);
    assert.match(md.markdown, /!\[pipeline schedule\]\(m\.report-schedule\.svg\)/);
    assert.match(md.markdown, /\| 0 \| 0-3 \|/);
  });
});

describe('communication links', () => {
  it('name the link each kind of traffic crosses: TP inside a node on NVLink, DP across nodes hierarchical, stages across nodes on the network', () => {
    const arch = { arch: 'gpt' as const, layers: 8, hidden: 1024, heads: 16, vocab: 1000, seqLen: 512 };
    const r = estimate(
      {
        model: arch,
        cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 4 },
        training: { globalBatch: 64, microBatch: 1, seqLen: 512 },
        parallel: { data: 4, tensor: 4, pipeline: 2 },
      },
      workloadFrom({ kind: 'arch', arch: archToSpec(arch) }),
    );
    assert.match(r.communication.tensor.link!, /^NVLink[^,]*\(300 GB\/s\)$/);
    // DP groups: 2 of 4 members per node (8 / TP 4), so NVLink then the network.
    assert.match(r.communication.data.link!, /^NVLink.*, then InfiniBand/);
    // Stage 0 fills nodes 0-1 (TP 4 × DP 4 = 16 GPUs), stage 1 nodes 2-3: the one boundary crosses nodes.
    assert.match(r.communication.pipeline.link!, /^InfiniBand/);
  });
});

describe('inference plans in reports', () => {
  it('show prefill, decode, tokens per second and the KV cache instead of an empty schedule', () => {
    const arch = {
      arch: 'llama' as const,
      layers: 32,
      hidden: 4096,
      heads: 32,
      kvHeads: 32,
      ffn: 11008,
      vocab: 32000,
      seqLen: 4096,
    };
    const r = estimate(
      {
        model: arch,
        cluster: { gpu: 'a100-80gb', gpusPerNode: 2, nodes: 1 },
        inference: { batch: 8, promptLen: 512, genLen: 128 },
        parallel: { tensor: 1, pipeline: 2 },
      },
      workloadFrom({ kind: 'arch', arch: archToSpec(arch) }),
    );
    assert.strictEqual(r.timeline.length, 0);
    const html = planReportHtml('llama', r);
    assert.match(html, /<h2>Inference<\/h2>.*tokens per second/s);
    assert.ok(!/class="chart gantt"/.test(html));
    assert.match(planReportMarkdown('llama', r, 'x').markdown, /## Inference\n\n\|/);
  });
});

describe("the planner's edits on their way to the file", () => {
  it('a state read before an edit does not roll the view back; the state that holds it settles it', () => {
    const pending = new PendingEdits(100);
    const view = structuredClone(plan);
    const drag = [{ path: ['stages'], value: [{ layers: '0-4' }, { layers: '5-6' }] }];
    setPlanPaths(view, drag);
    const seq = pending.add(drag);
    assert.strictEqual(seq, 101);
    // The host's state for an earlier edit (editSeq 100) arrives after the drag: the drag stays in view.
    const late = pending.settle(plan, 100)!;
    assert.deepStrictEqual(late.stages, [{ layers: '0-4' }, { layers: '5-6' }]);
    assert.deepStrictEqual(plan.stages, [{ layers: '0-3' }, { layers: '4-6' }], 'the state itself is not modified');
    // A keyboard move computed from that view, then the state holding only the drag: the move stays in view.
    const key = [{ path: ['stages'], value: [{ layers: '0-3' }, { layers: '4-6' }] }];
    pending.add(key);
    const afterDrag = structuredClone(plan);
    setPlanPaths(afterDrag, drag);
    assert.deepStrictEqual(pending.settle(afterDrag, 101)!.stages, [{ layers: '0-3' }, { layers: '4-6' }]);
    assert.strictEqual(pending.size, 1);
    // The state that holds both: nothing left on its way, and a later hand edit shows as it is.
    const hand = { ...structuredClone(plan), stages: [{ layers: '0-5' }, { layers: '6' }] };
    pending.settle(plan, 102);
    assert.strictEqual(pending.size, 0);
    assert.deepStrictEqual(pending.settle(hand, 102)!.stages, hand.stages);
  });

  it('object and text edits agree: set nested paths, create missing objects, delete with undefined', () => {
    const edits = [
      { path: ['training', 'globalBatch'], value: 128 },
      { path: ['cluster', 'interNode', 'bandwidthGBps'], value: 50 },
      { path: ['parallel', 'schedule'], value: undefined },
    ];
    const obj = structuredClone(plan);
    setPlanPaths(obj, edits);
    const text = setJsonPaths(`// a plan\n${JSON.stringify(plan, null, 2)}`, edits);
    assert.ok(text.startsWith('// a plan\n'), 'comments kept');
    assert.deepStrictEqual(JSON.parse(text.slice(text.indexOf('\n'))), obj);
    assert.strictEqual(obj.training!.globalBatch, 128);
    assert.strictEqual(obj.cluster.interNode!.bandwidthGBps, 50);
    assert.ok(!('schedule' in obj.parallel!));
  });
});

describe('what the planner and its report say agree with the estimate', () => {
  it("the Gantt chart's axis ends at the time per step (schedule, then gradient sync and optimizer), not at the last backward", async () => {
    const g = await graph();
    // Gradient reduction not overlapped with the backward (the default Megatron-Core profile overlaps it,
    // leaving nothing exposed to draw), so the sync shows between the schedule and the optimizer step.
    const r = estimate(
      {
        ...plan,
        cluster: { gpu: 'l4', gpusPerNode: 4, nodes: 1 },
        training: { ...plan.training!, overlapGradReduce: false },
        parallel: { ...plan.parallel, data: 2 },
      },
      graphWorkload(g),
    );
    const makespan = Math.max(...r.timeline.map((e) => e.end));
    assert.ok(
      r.iterationSeconds > makespan,
      'data parallel: a gradient all-reduce and an optimizer step follow the schedule',
    );
    const svg = ganttSvg(r);
    const axis = /0 … ([^ ]+ [^ ]+) ·/.exec(svg)?.[1];
    assert.strictEqual(axis, formatSeconds(r.iterationSeconds));
    assert.match(svg, /class="sync"/);
    assert.match(svg, /class="opt"/);
  });

  it('a plan whose degrees use more GPUs than its cluster has is not estimated as if it fit', async () => {
    const w = graphWorkload(await graph());
    // 2 × 1 × 2 = 4 GPUs on a cluster of 2: the estimate used to report it, as 4 × l4.
    assert.throws(
      () => estimate({ ...plan, parallel: { ...plan.parallel, data: 2 } }, w),
      /data × tensor × pipeline = 4 GPUs, but the cluster has 1 × 2 = 2/,
    );
    assert.strictEqual(
      estimate({ ...plan, parallel: { ...plan.parallel, data: 2 } }, w, 'p', { allowGpuCountMismatch: true }).gpus,
      4,
    );
  });

  it('the exported report carries the plan: batch, parallel degrees, ZeRO, precision and its rules', async () => {
    const p: Plan = {
      ...plan,
      parallel: { ...plan.parallel, zero: 1 },
      precision: { default: 'bf16', rules: [{ match: 'h.*', format: 'int4-g128' }], errorBudgetDb: 25 },
    };
    const r = estimate(p, graphWorkload(await graph()));
    const html = planReportHtml('t', r, p);
    for (const want of [
      /<td>global batch<\/td><td>32<\/td>/,
      /<td>micro-batch<\/td><td>4<\/td>/,
      /<td>parallel degrees<\/td><td>data 1 × tensor 1 × pipeline 2<\/td>/,
      /<td>ZeRO stage<\/td><td>1<\/td>/,
      /<td>error budget<\/td><td>25 dB output SQNR<\/td>/,
      /<td>0<\/td><td>h\.\*<\/td><td>int4-g128<\/td>/,
    ]) {
      assert.match(html, want);
    }
    const md = planReportMarkdown('t', r, 'x', p).markdown;
    assert.match(md, /## Plan\n\n\| {2}\| {2}\|/);
    assert.match(md, /\| 0 \| h\.\* \| int4-g128 \|/);
    assert.match(md, /\| ZeRO stage \| 1 \|/);
  });
});
