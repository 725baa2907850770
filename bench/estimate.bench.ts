/**
 * `npm run bench` (second part): time of one `estimate` for a 100-layer GPT on 1,024 A100s
 * (TP 8 × PP 16 × DP 8, interleaved 1F1B with 2 chunks: 8,192 simulated pipeline events).
 * Prints the first (cold, JIT warming) call and the median of warm calls, and the ratio to the
 * 5 ms budget; the planner re-estimates on every edit, so the warm figure is what users feel.
 */
import { estimate } from '../src/engine/cost/estimate';
import { archWorkload } from '../src/engine/cost/workload';
import type { Plan } from '../src/engine/plan/plan';

const plan: Plan = {
  model: { arch: 'gpt', layers: 100, hidden: 12288, heads: 96, vocab: 51200, seqLen: 2048 },
  cluster: { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 128 },
  training: { globalBatch: 1024, microBatch: 1, seqLen: 2048, dtype: 'bf16', recompute: 'selective' },
  parallel: { data: 8, tensor: 8, pipeline: 16, schedule: 'interleaved', virtualStages: 2, sequenceParallel: true },
};

function timeOnce(): number {
  const t = process.hrtime.bigint();
  estimate(plan, archWorkload(plan.model as Exclude<Plan['model'], string>));
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const cold = timeOnce();
const warm = Array.from({ length: 200 }, timeOnce).sort((a, b) => a - b);
const median = warm[Math.floor(warm.length / 2)];
console.log('estimate: 100-layer GPT, 1,024 GPUs (TP 8, PP 16, DP 8, interleaved v=2, 128 micro-batches)');
console.log(
  `  first call ${cold.toFixed(2)} ms, warm median ${median.toFixed(3)} ms (p90 ${warm[Math.floor(warm.length * 0.9)].toFixed(3)} ms)`,
);
console.log(`  ratio to the 5 ms budget: warm ${(median / 5).toFixed(3)}x, first call ${(cold / 5).toFixed(2)}x`);

// The planner's path: a 100-layer model file's workload as plain data (what the host sends the web
// worker), rebuilt and estimated on every edit, with stages set explicitly. Budget: 50 ms per edit.
import { graphLayersWorkload, type GraphLayerData } from '../src/engine/cost/workload';
const layers: GraphLayerData[] = Array.from({ length: 100 }, (_, i) => ({
  name: `h.${i}`,
  parameters: 12 * 4096 * 4096,
  tensors: [],
  matmulFlops: 2 * 12 * 4096 * 4096 * 2048,
  matmulBytes: 2 * 12 * 4096 * 4096,
  otherBytes: 8 * 2048 * 4096 * 2,
  kernels: 40,
  activations: 34 * 2048 * 4096,
  outputBytes: 2048 * 4096 * 2,
}));
const plannerPlan: Plan = {
  model: 'model.onnx',
  cluster: { gpu: 'h100-sxm', gpusPerNode: 8, nodes: 4 },
  training: { globalBatch: 256, microBatch: 1, seqLen: 2048, dtype: 'bf16', recompute: 'selective' },
  parallel: { data: 4, tensor: 1, pipeline: 8, schedule: '1f1b' },
  stages: Array.from({ length: 8 }, (_, s) => ({
    layers: `${s * 12 + Math.min(s, 4)}-${(s + 1) * 12 + Math.min(s + 1, 4) - 1}`,
  })),
};
const edit = () => {
  const t = process.hrtime.bigint();
  estimate(plannerPlan, graphLayersWorkload(layers));
  return Number(process.hrtime.bigint() - t) / 1e6;
};
const editCold = edit();
const edits = Array.from({ length: 100 }, edit).sort((a, b) => a - b);
const editMedian = edits[Math.floor(edits.length / 2)];
console.log(
  'planner edit: a 100-layer model file (workload rebuilt from its data + estimate), 32 GPUs, 8 explicit stages, 64 micro-batches',
);
console.log(
  `  first ${editCold.toFixed(2)} ms, warm median ${editMedian.toFixed(3)} ms → ratio to the 50 ms budget ${(editMedian / 50).toFixed(4)}x (first ${(editCold / 50).toFixed(3)}x)`,
);
