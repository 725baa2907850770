/**
 * `layerplan export <plan> --to deepspeed`: a DeepSpeed config (keys of DeepSpeed v0.19.5, checked against
 * test/fixtures/frameworks/deepspeed-config.json in test/unit/launch.test.ts) and the `deepspeed` launcher line
 * (launcher/runner.py). The model, the data and the pipeline's PipelineModule are the training script's: the
 * launch script records the model for Layerplan in its header, so importing it finds the same plan.
 */
import { InputError } from '../errors';
import type { Plan } from '../plan/plan';
import { headerLine } from '../check/launch/common';
import { DEEPSPEED_VERSION } from '../check/launch/options.generated';
import { baseName, commonNotes, effective, headerCluster, modelRef } from './common';
import type { ExportContext, ExportResult, ExportTarget } from './target';

export const deepspeed: ExportTarget = {
  name: 'deepspeed',
  description: 'DeepSpeed config (ds_config.json) and the deepspeed launcher line',
  kind: 'training',
  export(plan: Plan, ctx: ExportContext): ExportResult {
    const e = effective(plan, ctx);
    const notes = commonNotes(plan, e, DEEPSPEED_VERSION, 'deepspeed', 'DeepSpeed');
    const refuse = (why: string) => {
      throw new InputError(ctx.planFile, `deepspeed: ${why}; export to megatron instead`);
    };
    // What one DeepSpeed config can describe (DeepSpeed v0.19.5).
    if (e.tp > 1 && e.pp > 1) {
      refuse(
        'tensor × pipeline parallelism needs Megatron-DeepSpeed’s topology in the training script, not a DeepSpeed config',
      );
    }
    if (e.tp > 1 && e.cp > 1) {
      refuse('AutoTP tensor parallelism and Ulysses sequence parallelism are not combined in one DeepSpeed config');
    }
    if (e.pp > 1 && e.cp > 1) {
      refuse('pipeline parallelism and Ulysses sequence parallelism are not combined in one DeepSpeed config');
    }
    if (e.pp > 1 && e.zero >= 2) {
      refuse(
        `ZeRO-${e.zero} is incompatible with DeepSpeed's pipeline engine (runtime/pipe/engine.py asserts stage < 2)`,
      );
    }
    if (e.tp > 1 && e.zero === 3) {
      refuse('AutoTP training supports ZeRO stages 0, 1 and 2 (docs/_tutorials/autotp-training.md)');
    }

    let zero = e.zero;
    if (e.distOpt && zero === 0) {
      zero = 1;
      notes.push(
        "Megatron's distributed optimizer is written as ZeRO stage 1 (optimizer states sharded over data ranks)",
      );
    }
    const config: Record<string, unknown> = {};
    // Batch identity over DeepSpeed's data-parallel world (config.py _batch_assertion): world / pipeline stages,
    // / sequence_parallel_size. With AutoTP the config is read before the TP groups exist, so DeepSpeed's world
    // is every GPU: its derived train_batch_size counts each sequence once per TP rank. Leave it to DeepSpeed.
    const accum = e.microBatches;
    if (e.tp === 1) config.train_batch_size = e.globalBatch;
    config.train_micro_batch_size_per_gpu = e.microBatch;
    config.gradient_accumulation_steps = accum;
    if (e.tp > 1) {
      notes.push(
        `with AutoTP (tensor_parallel.autotp_size ${e.tp}) DeepSpeed reads its config before the TP groups exist and derives train_batch_size over all ${e.world} GPUs (${e.microBatch * accum * e.world}); the distinct sequences per step are ${e.globalBatch}, so train_batch_size is left out`,
      );
    }
    if (e.dtype === 'bf16' || e.dtype === 'fp8') config.bf16 = { enabled: true };
    if (e.dtype === 'fp16') config.fp16 = { enabled: true };
    if (e.dtype === 'fp8') {
      notes.push(
        `fp8 is not a DeepSpeed config option: Transformer Engine's fp8_autocast in the model code (${e.fp8Recipe === 'current' ? 'Float8CurrentScaling' : e.fp8Recipe === 'blockwise' ? 'Float8BlockScaling' : 'DelayedScaling'} recipe) does it; the config trains in bf16, and re-importing it estimates bf16`,
      );
    }
    config.zero_optimization = { stage: zero, overlap_comm: e.overlapGradReduce };
    if (e.optimizer === 'sgd') {
      config.optimizer = { type: 'SGD' };
      notes.push('DeepSpeed builds torch.optim.SGD from the config: give it params.lr');
    } else config.optimizer = { type: e.optimizer === 'adamw' ? 'AdamW' : 'Adam' };
    notes.push('the optimizer has no params here: the learning rate and betas are yours to set');
    if (e.tp > 1) config.tensor_parallel = { autotp_size: e.tp };
    if (e.cp > 1) {
      config.sequence_parallel_size = e.cp;
      notes.push(
        'context parallelism is written as DeepSpeed-Ulysses (sequence_parallel_size): the sequence is split and attention heads exchanged by all-to-all; your script wraps attention in deepspeed.sequence.layer.DistributedAttention',
      );
    }
    if (e.pp > 1) {
      config.pipeline = { stages: e.pp, ...(e.recompute === 'full' ? { activation_checkpoint_interval: 1 } : {}) };
      notes.push(
        `DeepSpeed builds the pipeline in the training script: PipelineModule(layers, num_stages=${e.pp}, partition_method="uniform"); pipeline.stages records it for Layerplan (DeepSpeed does not read it)`,
      );
      if (e.schedule !== '1f1b') {
        notes.push(`DeepSpeed's PipelineEngine runs 1F1B; the plan's ${e.schedule} schedule is not available`);
      }
      if (plan.stages && e.stageSizes.some((n) => n !== e.stageSizes[0])) {
        notes.push(
          `uneven stages (${e.stageSizes.join(', ')} layers) are not a DeepSpeed option: partition_method "uniform" splits them evenly`,
        );
      }
    }
    if (e.recompute === 'full') {
      config.activation_checkpointing = { partition_activations: false, contiguous_memory_optimization: false };
      notes.push(
        'activation checkpointing: the model code calls deepspeed.checkpointing.checkpoint per layer (Hugging Face: model.gradient_checkpointing_enable())',
      );
    } else if (e.recompute === 'selective') {
      notes.push(
        'selective recomputation (of the attention core) is the model code’s choice, not a DeepSpeed option: the config leaves activation checkpointing off, and re-importing it estimates no recomputation',
      );
    }
    if (e.ep > 1) {
      notes.push(
        `expert parallelism is the model code's: deepspeed.moe.layer.MoE(..., ep_size=${e.ep}); re-importing the config estimates without it`,
      );
    }
    if (e.sp && e.tp > 1) notes.push('Megatron sequence parallelism is not an AutoTP option');

    const base = baseName(ctx.planFile);
    const configFile = `${base}.ds_config.json`;
    const scriptFile = `${base}.deepspeed.sh`;
    const launcher = [
      'deepspeed',
      ...(e.nodes > 1 ? ['--hostfile', 'hostfile'] : []),
      '--num_nodes',
      String(e.nodes),
      '--num_gpus',
      String(e.gpusPerNode),
      'train.py',
      '--deepspeed',
      '--deepspeed_config',
      configFile,
    ];
    if (e.nodes > 1) notes.push(`list the ${e.nodes} nodes in hostfile, one "host slots=${e.gpusPerNode}" line each`);
    notes.push('train.py is your training script (it calls deepspeed.initialize with this config)');
    const model = modelRef(plan, ctx) ?? (typeof plan.model === 'object' ? plan.model : undefined);
    const training: { seqLen: number; dropout?: boolean } = { seqLen: e.seqLen };
    if (plan.training?.dropout !== undefined) training.dropout = plan.training.dropout;
    const script = [
      '#!/bin/bash',
      `# DeepSpeed launch for ${base}.plan.json, written by Layerplan; config keys of ${DEEPSPEED_VERSION}.`,
      '# The model, its data and its sequence length are train.py’s: the line below records them for Layerplan.',
      headerLine({
        plan: `${base}.plan.json`,
        ...(model !== undefined ? { model } : {}),
        cluster: headerCluster(plan, e),
        training,
      }),
      '',
      launcher.join(' '),
      '',
    ].join('\n');
    return {
      to: 'deepspeed',
      version: DEEPSPEED_VERSION,
      command: launcher.join(' '),
      files: { [configFile]: JSON.stringify(config, null, 2) + '\n', [scriptFile]: script },
      notes,
    };
  },
};
