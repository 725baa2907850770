/**
 * `layerplan export <plan> --to megatron`: a Megatron-LM launch script (torchrun + pretrain_gpt.py) whose
 * flags are those of Megatron-LM core_v0.19.0 (megatron/training/arguments.py; every flag and value is
 * checked against test/fixtures/frameworks/megatron-args.json in test/unit/launch.test.ts).
 */
import type { Plan } from '../plan/plan';
import { layoutString, megatronSplit } from '../check/launch/megatron';
import { headerLine } from '../check/launch/common';
import { MEGATRON_VERSION } from '../check/launch/options.generated';
import {
  baseName,
  commonNotes,
  effective,
  gcd,
  headerCluster,
  modelRef,
  needTransformer,
  shellWord,
  type Effective,
} from './common';
import type { ExportContext, ExportResult, ExportTarget } from './target';

/** Flags in groups, as Megatron's own example scripts write them. */
type Groups = [name: string, comment: string, flags: string[][]][];

export function megatronArgs(
  plan: Plan,
  ctx: ExportContext,
): { groups: Groups; e: Effective; notes: string[]; env: Record<string, string> } {
  const a = needTransformer(ctx, 'megatron', 'Megatron-LM builds its model from shape flags');
  const e = effective(plan, ctx);
  const notes = commonNotes(plan, e, MEGATRON_VERSION, 'megatron-core', 'Megatron-LM');
  const L = a.layers;

  // ---- model shape
  const model: string[][] = [
    ['--num-layers', String(L)],
    ['--hidden-size', String(a.hidden)],
    ['--num-attention-heads', String(a.heads)],
    ['--ffn-hidden-size', String(a.ffn)],
  ];
  if (a.kvHeads !== a.heads) model.push(['--group-query-attention'], ['--num-query-groups', String(a.kvHeads)]);
  if (a.headDim * a.heads !== a.hidden) model.push(['--kv-channels', String(a.headDim)]);
  const maxPos = Math.max(e.seqLen, a.positions || a.maxSeqLen || e.seqLen);
  model.push(['--seq-length', String(e.seqLen)], ['--max-position-embeddings', String(maxPos)]);
  model.push(['--position-embedding-type', a.positions ? 'learned_absolute' : 'rope']);
  if (a.norm === 'rmsnorm') model.push(['--normalization', 'RMSNorm']);
  if (a.gated) model.push(['--swiglu']);
  if (!a.tied) model.push(['--untie-embeddings-and-output-weights']);
  if (!a.denseBias) {
    model.push(['--disable-bias-linear']);
    if (a.qkvBias) model.push(['--add-qkv-bias']);
  } else if (!a.qkvBias) {
    notes.push(
      'Megatron-LM adds a bias to the QKV projection whenever linear layers have biases; the model has none there',
    );
  }
  if (!e.dropout) model.push(['--attention-dropout', '0.0'], ['--hidden-dropout', '0.0']);
  if (a.experts > 1) {
    model.push(['--num-experts', String(a.experts)], ['--moe-router-topk', String(a.topK)]);
  } else if (typeof plan.model === 'object' && plan.model.experts && plan.model.experts > 1) {
    // The architecture object names experts the synthesized model does not carry yet.
    const m = plan.model;
    model.push(['--num-experts', String(m.experts)], ['--moe-router-topk', String(m.expertsPerToken ?? 2)]);
    if (m.expertFfn !== undefined) model.push(['--moe-ffn-hidden-size', String(m.expertFfn)]);
    if (m.capacityFactor !== undefined) model.push(['--moe-expert-capacity-factor', String(m.capacityFactor)]);
  }
  if (a.family === 'gemma' || (a.gated && a.family.startsWith('gemma'))) {
    notes.push(`${a.family}'s GELU-gated MLP is written as --swiglu (SiLU gate): the same shapes and cost`);
  }

  // ---- vocabulary: NullTokenizer with the plan's vocabulary, padded as little as Megatron allows
  const data: string[][] = [['--mock-data'], ['--tokenizer-type', 'NullTokenizer'], ['--vocab-size', String(a.vocab)]];
  if (a.vocab % (128 * e.tp) !== 0) {
    if (a.vocab % e.tp === 0) {
      const d = gcd(a.vocab / e.tp, 128);
      data.push(['--make-vocab-size-divisible-by', String(d)]);
      const padded = Math.ceil(a.vocab / (128 * e.tp)) * 128 * e.tp;
      notes.push(
        `--make-vocab-size-divisible-by ${d} keeps the vocabulary at the plan's ${a.vocab} rows; Megatron's default (128 × tensor ${e.tp}) would pad it to ${padded}`,
      );
    } else {
      const padded = Math.ceil(a.vocab / (128 * e.tp)) * 128 * e.tp;
      notes.push(
        `Megatron pads the vocabulary to a multiple of 128 × tensor ${e.tp}: ${a.vocab} → ${padded} rows (the estimate of the re-imported configuration counts ${padded})`,
      );
    }
  }
  notes.push(
    'the data arguments train on mock data with a NullTokenizer of the plan’s vocabulary (a throughput run); replace them with --data-path and your tokenizer',
  );

  // ---- batch, precision, optimizer
  const training: string[][] = [
    ['--micro-batch-size', String(e.microBatch)],
    ['--global-batch-size', String(e.globalBatch)],
  ];
  if (e.dtype === 'bf16' || e.dtype === 'fp8') training.push(['--bf16']);
  if (e.dtype === 'fp16') training.push(['--fp16']);
  if (e.dtype === 'fp8') {
    const recipe = { delayed: 'delayed', current: 'tensorwise', blockwise: 'blockwise' }[e.fp8Recipe];
    training.push(['--fp8-format', e.fp8Recipe === 'blockwise' ? 'e4m3' : 'hybrid'], ['--fp8-recipe', recipe]);
  }
  if (e.optimizer === 'sgd') training.push(['--optimizer', 'sgd']);
  else if (e.optimizer === 'adamw') notes.push("Megatron's --optimizer adam is AdamW (decoupled weight decay)");

  // ---- parallelism
  const parallel: string[][] = [
    ['--tensor-model-parallel-size', String(e.tp)],
    ['--pipeline-model-parallel-size', String(e.pp)],
  ];
  if (e.cp > 1) parallel.push(['--context-parallel-size', String(e.cp)]);
  const experts = a.experts > 1 || (typeof plan.model === 'object' && (plan.model.experts ?? 1) > 1);
  if (e.ep > 1) {
    if (experts) parallel.push(['--expert-model-parallel-size', String(e.ep)]);
    else notes.push(`parallel.expert ${e.ep} has no experts to split in this model; not written`);
  }
  if (experts && e.expertTensor !== e.tp) parallel.push(['--expert-tensor-parallel-size', String(e.expertTensor)]);
  if (e.sp && e.tp > 1) parallel.push(['--sequence-parallel']);
  if (e.tpCommOverlap && e.tp > 1) {
    if (e.sp) parallel.push(['--tp-comm-overlap']);
    else {
      notes.push(
        'Megatron overlaps tensor-parallel communication (--tp-comm-overlap) only with --sequence-parallel: not written, so re-importing estimates it exposed',
      );
    }
  }
  if (e.pp > 1) {
    // The estimate's split, in Megatron's words: its default, its account-for-embedding/loss split, or a layout.
    const sizes = e.stageSizes.join();
    const plain = megatronSplit(L, e.pp, e.v, false, false)?.join() === sizes;
    const edges = !plain && megatronSplit(L, e.pp, e.v, true, true)?.join() === sizes;
    if (edges) parallel.push(['--account-for-embedding-in-pipeline-split'], ['--account-for-loss-in-pipeline-split']);
    if ((plain || edges) && e.v > 1) parallel.push(['--num-virtual-stages-per-pipeline-rank', String(e.v)]);
    if (!plain && !edges) {
      parallel.push(['--pipeline-model-parallel-layout', layoutString(e.stageSizes)]);
      notes.push(
        `the layout gives each ${e.v > 1 ? 'chunk' : 'stage'} the layers Layerplan's estimate gives it (${e.stageSizes.join(', ')}); Megatron's default needs the layers divisible by the ${e.v > 1 ? 'chunks' : 'pipeline size'}`,
      );
    }
    if (e.v > 1) {
      notes.push(
        `virtual stages as Megatron counts them: --num-virtual-stages-per-pipeline-rank ${e.v} is the plan's virtualStages (model chunks per GPU); the older --num-layers-per-virtual-pipeline-stage counts layers per chunk instead (${Math.floor(L / (e.pp * e.v))} here)`,
      );
    }
    if (e.schedule === 'gpipe') {
      notes.push('Megatron-LM has no GPipe schedule: it runs 1F1B (the same idle time, fewer activations in flight)');
    }
  }
  // ZeRO: the distributed optimizer (ZeRO-1), Megatron-FSDP for gradients (2) and parameters (3).
  let fsdp = false;
  if (e.zero >= 2) {
    fsdp = true;
    parallel.push(
      ['--use-megatron-fsdp'],
      ['--data-parallel-sharding-strategy', e.zero === 3 ? 'optim_grads_params' : 'optim_grads'],
      ['--ckpt-format', 'fsdp_dtensor'],
    );
    notes.push(
      `ZeRO-${e.zero} is written as Megatron-FSDP (--data-parallel-sharding-strategy ${e.zero === 3 ? 'optim_grads_params' : 'optim_grads'}), which needs the fsdp_dtensor checkpoint format`,
    );
  } else if (e.distOpt || e.zero === 1) {
    parallel.push(['--use-distributed-optimizer']);
    if (e.zero === 1 && !e.distOpt) {
      notes.push("ZeRO-1 is written as Megatron's distributed optimizer (optimizer states sharded over data ranks)");
    }
  }
  if (e.overlapGradReduce) parallel.push(['--overlap-grad-reduce']);
  // The updated weights' all-gather overlaps the next forward: Megatron needs the gradient reduction
  // overlapped too (arguments.py), and something sharded to gather.
  if (e.overlapParamGather && (e.distOpt || e.zero >= 1)) {
    if (e.overlapGradReduce) parallel.push(['--overlap-param-gather']);
    else {
      notes.push(
        'Megatron overlaps the parameter all-gather (--overlap-param-gather) only with --overlap-grad-reduce: not written, so re-importing estimates the gather exposed',
      );
    }
  }

  // ---- recomputation
  const recompute: string[][] = [];
  if (e.recompute === 'selective') recompute.push(['--recompute-granularity', 'selective']);
  if (e.recompute === 'full') {
    recompute.push(
      ['--recompute-granularity', 'full'],
      ['--recompute-method', 'uniform'],
      ['--recompute-num-layers', '1'],
    );
  }

  const env: Record<string, string> = {};
  if ((e.tp > 1 || e.cp > 1) && !fsdp) env.CUDA_DEVICE_MAX_CONNECTIONS = '1';
  const groups: Groups = [
    ['MODEL_ARGS', 'the model (its shape)', model],
    [
      'DATA_ARGS',
      'mock data and a NullTokenizer of the plan’s vocabulary: replace with --data-path and your tokenizer',
      data,
    ],
    ['TRAINING_ARGS', 'batch, precision, optimizer', training],
    ['PARALLEL_ARGS', 'parallelism', parallel],
  ];
  if (recompute.length) groups.push(['RECOMPUTE_ARGS', 'activation recomputation', recompute]);
  groups.push([
    'RUN_ARGS',
    'not part of the plan: how long to run and the learning rate (yours to set)',
    [
      ['--train-iters', '100'],
      ['--lr', '1.0e-4'],
      ['--log-interval', '1'],
    ],
  ]);
  return { groups, e, notes, env };
}

export const megatron: ExportTarget = {
  name: 'megatron',
  description: 'Megatron-LM / Megatron-Core launch script (torchrun pretrain_gpt.py)',
  kind: 'training',
  export(plan: Plan, ctx: ExportContext): ExportResult {
    const { groups, e, notes, env } = megatronArgs(plan, ctx);
    const base = baseName(ctx.planFile);
    const file = `${base}.megatron.sh`;
    const model = modelRef(plan, ctx);
    const lines: string[] = [
      '#!/bin/bash',
      `# Megatron-LM launch for ${base}.plan.json, written by Layerplan; flags of ${MEGATRON_VERSION}.`,
      '# Run it from the root of a Megatron-LM checkout, on every node (NODE_RANK, MASTER_ADDR set per node).',
      headerLine({ plan: `${base}.plan.json`, ...(model ? { model } : {}), cluster: headerCluster(plan, e) }),
      '',
    ];
    for (const [k, v] of Object.entries(env)) lines.push(`export ${k}=${v}`);
    lines.push(
      '',
      `GPUS_PER_NODE=${e.gpusPerNode}`,
      `NUM_NODES=${e.nodes}`,
      'NODE_RANK=${NODE_RANK:-0}',
      'MASTER_ADDR=${MASTER_ADDR:-localhost}',
      'MASTER_PORT=${MASTER_PORT:-6000}',
      '',
      'DISTRIBUTED_ARGS=(',
      '    --nproc_per_node $GPUS_PER_NODE',
      '    --nnodes $NUM_NODES',
      '    --node_rank $NODE_RANK',
      '    --master_addr $MASTER_ADDR',
      '    --master_port $MASTER_PORT',
      ')',
    );
    for (const [name, comment, flags] of groups) {
      lines.push('', `# ${comment}`, `${name}=(`);
      for (const f of flags) lines.push(`    ${f.map(shellWord).join(' ')}`);
      lines.push(')');
    }
    lines.push(
      '',
      'torchrun "${DISTRIBUTED_ARGS[@]}" pretrain_gpt.py \\',
      ...groups.map(([name], i) => `    "\${${name}[@]}"${i < groups.length - 1 ? ' \\' : ''}`),
      '',
    );
    const envPrefix = Object.entries(env)
      .map(([k, v]) => `${k}=${v} `)
      .join('');
    const command =
      `${envPrefix}torchrun --nproc_per_node ${e.gpusPerNode} --nnodes ${e.nodes} --node_rank \${NODE_RANK:-0} ` +
      `--master_addr \${MASTER_ADDR:-localhost} --master_port \${MASTER_PORT:-6000} pretrain_gpt.py ` +
      groups
        .flatMap(([, , flags]) => flags)
        .map((f) => f.map(shellWord).join(' '))
        .join(' ');
    return { to: 'megatron', version: MEGATRON_VERSION, command, files: { [file]: lines.join('\n') }, notes };
  },
};
