/**
 * `layerplan export <plan> --to torchtitan`: a torchtitan TOML job config (fields of torchtitan v0.2.2's
 * JobConfig, its last release with TOML configs; checked against test/fixtures/frameworks/torchtitan-config.json
 * in test/unit/launch.test.ts) and its torchrun line.
 */
import type { Plan } from '../plan/plan';
import { headerLine } from '../check/launch/common';
import { evenSplit } from '../check/launch/megatron';
import { TORCHTITAN_VERSION } from '../check/launch/options.generated';
import { LLAMA3_FLAVORS, flavorArch, llama3Ffn, torchtitanStages } from '../check/launch/torchtitan';
import { baseName, commonNotes, effective, headerCluster, modelRef, needTransformer } from './common';
import type { ExportContext, ExportResult, ExportTarget } from './target';

/** A TOML value: strings quoted (JSON strings are valid TOML basic strings), numbers and booleans as they are. */
function tomlValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

export const torchtitan: ExportTarget = {
  name: 'torchtitan',
  description: 'torchtitan TOML job config (v0.2.2) and its torchrun line',
  kind: 'training',
  export(plan: Plan, ctx: ExportContext): ExportResult {
    const a = needTransformer(ctx, 'torchtitan', "torchtitan builds its model from a flavor's shape");
    const e = effective(plan, ctx);
    const notes = commonNotes(plan, e, TORCHTITAN_VERSION, 'torchtitan', 'torchtitan');
    const base = baseName(ctx.planFile);
    const L = a.layers;
    const tables: [string, [string, unknown][]][] = [];

    // ---- model: a llama3 flavor of the same shape, else a flavor to register
    let flavor = Object.keys(LLAMA3_FLAVORS).find((f) => {
      const fa = flavorArch(f)!;
      return (
        fa.layers === a.layers &&
        fa.hidden === a.hidden &&
        fa.heads === a.heads &&
        (fa.kvHeads ?? fa.heads) === a.kvHeads &&
        fa.ffn === a.ffn &&
        fa.vocab === a.vocab &&
        a.gated &&
        a.norm === 'rmsnorm' &&
        !a.tied &&
        !a.positions
      );
    });
    if (!flavor) {
      flavor = `layerplan_${base.replace(/[^A-Za-z0-9_]/g, '_')}`;
      const mult = a.ffn / Math.floor((8 * a.hidden) / 3);
      const args = [
        `dim=${a.hidden}`,
        `n_layers=${L}`,
        `n_heads=${a.heads}`,
        ...(a.kvHeads !== a.heads ? [`n_kv_heads=${a.kvHeads}`] : []),
        `vocab_size=${a.vocab}`,
        `multiple_of=${a.ffn}`,
        ...(llama3Ffn(a.hidden, a.ffn) !== a.ffn ? [`ffn_dim_multiplier=${mult.toFixed(6)}`] : []),
      ];
      notes.push(
        `torchtitan builds the model from a flavor registered in Python: add "${flavor}": TransformerModelArgs(${args.join(', ')}) to llama3_args in torchtitan/models/llama3/__init__.py`,
      );
      const differs: string[] = [];
      if (!a.gated) differs.push('a GELU MLP');
      if (a.norm !== 'rmsnorm') differs.push('LayerNorm');
      if (a.positions) differs.push('learned positions');
      if (a.tied) differs.push('tied embeddings');
      if (a.qkvBias || a.denseBias) differs.push('linear biases');
      if (a.experts > 1 || (typeof plan.model === 'object' && (plan.model.experts ?? 1) > 1)) {
        differs.push('experts (torchtitan’s MoE models are llama4, qwen3, deepseek_v3, gpt_oss)');
      }
      if (differs.length) {
        notes.push(
          `torchtitan's llama3 has RMSNorm, SwiGLU, rotary positions and no biases; this model has ${differs.join(', ')}: the flavor matches its shapes, not its blocks`,
        );
      }
    }
    const assets =
      typeof plan.model === 'string' && /(^|[\\/])config\.json$/i.test(plan.model)
        ? (modelRef(plan, ctx) ?? plan.model).replace(/[\\/]?config\.json$/i, '') || '.'
        : undefined;
    const modelTable: [string, unknown][] = [
      ['name', 'llama3'],
      ['flavor', flavor],
    ];
    if (assets) modelTable.push(['hf_assets_path', assets]);

    // ---- precision
    const training: [string, unknown][] = [];
    let dataShard: number;
    let dataReplicate: number;
    if (e.zero === 0 && e.tp === 1 && e.pp === 1 && e.cp === 1) {
      dataReplicate = e.dp;
      dataShard = 1;
    } else {
      dataReplicate = 1;
      dataShard = e.dp;
      if (e.zero < 3 && e.dp > 1) {
        notes.push(
          `torchtitan shards data parallelism with FSDP2 (parameters, gradients and optimizer states: ZeRO-3)${e.zero === 0 ? '; plain DDP does not combine with tensor, pipeline or context parallelism there' : `; the plan's ZeRO-${e.zero} is written as FSDP`}, and re-importing estimates ZeRO-3`,
        );
      }
    }
    if (e.cp > 1 && e.zero < 3) {
      notes.push(
        'with context parallelism torchtitan applies FSDP over the context ranks too (re-importing estimates ZeRO-3)',
      );
    }
    const fsdp = dataShard > 1 || e.cp > 1;
    const dtype = e.dtype === 'fp16' ? 'bf16' : e.dtype;
    if (e.dtype === 'fp16') notes.push('torchtitan trains in bfloat16 or float32, not float16: written as bfloat16');
    if (dtype === 'fp32') training.push(['mixed_precision_param', 'float32']);
    else if (!fsdp && (e.tp > 1 || e.pp > 1)) {
      // maybe_enable_amp: with TP or PP and no FSDP, mixed precision is off; the model itself is made bf16.
      training.push(['dtype', 'bfloat16']);
      notes.push(
        'with tensor or pipeline parallelism and no FSDP torchtitan turns mixed precision off, so training.dtype = "bfloat16" makes the model itself bf16 (parameters and optimizer states too)',
      );
    }
    if (dtype === 'fp8') {
      modelTable.push(['converters', ['quantize.linear.float8']]);
      if (e.fp8Recipe === 'delayed') {
        notes.push('torchao has no delayed fp8 scaling any more: written as tensorwise (current) scaling');
      }
      if (e.fp8Recipe === 'blockwise') {
        notes.push(
          'torchtitan v0.2.2 has no 128×128 blockwise fp8 for nn.Linear: written as the rowwise recipe (a scale per row)',
        );
      }
    }
    tables.push([
      'job',
      [
        ['dump_folder', './outputs'],
        ['description', `${base} (Layerplan plan)`],
      ],
    ]);
    tables.push(['model', modelTable]);
    if (e.optimizer === 'sgd') notes.push('torchtitan implements Adam and AdamW only: written as AdamW');
    tables.push(['optimizer', [['name', e.optimizer === 'adam' ? 'Adam' : 'AdamW']]]);

    // ---- batch: a pipeline runs every micro-batch of the step in one schedule (local batch = all of them)
    const local = e.pp > 1 ? e.microBatch * e.microBatches : e.microBatch;
    tables.push([
      'training',
      [['local_batch_size', local], ['global_batch_size', e.globalBatch], ['seq_len', e.seqLen], ...training],
    ]);

    // ---- parallelism
    const par: [string, unknown][] = [
      ['data_parallel_replicate_degree', dataReplicate],
      ['data_parallel_shard_degree', dataShard],
      ['tensor_parallel_degree', e.tp],
      ['pipeline_parallel_degree', e.pp],
      ['context_parallel_degree', e.cp],
    ];
    if (e.ep > 1) par.push(['expert_parallel_degree', e.ep]);
    if (e.tp > 1 && !e.sp) {
      notes.push(
        "torchtitan's tensor parallelism always shards the norms' activations along the sequence (sequence parallel)",
      );
    }
    if (e.tp > 1 && e.tpCommOverlap) {
      notes.push(
        "tensor-parallel communication overlap is torchtitan's async tensor parallel, which needs torch.compile of the model: not written, so re-importing estimates it exposed",
      );
    }
    if (e.pp > 1) {
      const schedule = e.schedule === 'gpipe' ? 'GPipe' : e.v > 1 ? 'Interleaved1F1B' : '1F1B';
      par.push(['pipeline_parallel_schedule', schedule], ['pipeline_parallel_microbatch_size', e.microBatch]);
      const parts = e.pp * e.v;
      // Layerplan's split with no weight for the embedding and the output (they ride on the first and last stages).
      const generated = torchtitanStages(parts, L, 0, 0);
      const same = Array.isArray(generated) && generated.join() === e.stageSizes.join();
      if (same && e.v > 1) {
        par.push(['pipeline_parallel_layers_per_stage', L / parts]);
        par.push(['pipeline_parallel_first_stage_less_layers', 0], ['pipeline_parallel_last_stage_less_layers', 0]);
      } else if (same) {
        par.push(['pipeline_parallel_first_stage_less_layers', 0], ['pipeline_parallel_last_stage_less_layers', 0]);
      } else {
        let at = 0;
        const fqns = e.stageSizes.map((n, k) => {
          const part = Array.from({ length: n }, (_, i) => `layers.${at + i}`);
          at += n;
          if (k === 0) part.unshift('tok_embeddings');
          if (k === parts - 1) part.push('norm', 'output');
          return part;
        });
        par.push(['module_fqns_per_model_part', fqns]);
      }
      if (e.v > 1 && e.stageSizes.join() !== evenSplit(L, parts).join()) {
        notes.push('uneven interleaved chunks are written module by module');
      }
    }
    tables.push(['parallelism', par]);

    // ---- activation checkpointing
    const ac: [string, unknown][] = [['mode', e.recompute]];
    if (e.recompute === 'selective') {
      ac.push(['selective_ac_option', 'op']);
      notes.push(
        'selective recomputation is written as torchtitan\'s per-op policy (selective_ac_option "op": matmul and attention outputs are kept, the rest recomputed), which Layerplan estimates as Megatron\'s selective recomputation',
      );
    }
    tables.push(['activation_checkpoint', ac]);
    if (dtype === 'fp8') {
      tables.push([
        'quantize.linear.float8',
        [['recipe_name', e.fp8Recipe === 'blockwise' ? 'rowwise' : 'tensorwise']],
      ]);
    }
    if (!e.overlapGradReduce && e.dp > 1) {
      notes.push(
        'FSDP2 and DDP always overlap the gradient reduction with the backward pass (re-importing estimates it overlapped)',
      );
    }
    if (e.dropout) notes.push("torchtitan's llama3 has no dropout");

    const file = `${base}.torchtitan.toml`;
    const model = modelRef(plan, ctx) ?? plan.model;
    const text = [
      `# torchtitan job config for ${base}.plan.json, written by Layerplan; fields of ${TORCHTITAN_VERSION} (its last TOML release).`,
      headerLine({ plan: `${base}.plan.json`, model, cluster: headerCluster(plan, e) }),
      ...tables.flatMap(([name, entries]) => ['', `[${name}]`, ...entries.map(([k, v]) => `${k} = ${tomlValue(v)}`)]),
      '',
    ].join('\n');
    const command =
      e.nodes > 1
        ? `torchrun --nnodes ${e.nodes} --nproc_per_node ${e.gpusPerNode} --rdzv_backend c10d --rdzv_endpoint \${MASTER_ADDR:-localhost}:29500 -m torchtitan.train --job.config_file ${file}`
        : `torchrun --standalone --nproc_per_node ${e.gpusPerNode} -m torchtitan.train --job.config_file ${file}`;
    notes.push(
      `run it from a torchtitan ${TORCHTITAN_VERSION.split(' ')[1]} checkout (later versions replaced the TOML configs with Python)`,
    );
    return { to: 'torchtitan', version: TORCHTITAN_VERSION, command, files: { [file]: text }, notes };
  },
};
