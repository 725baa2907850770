import { runSettings } from '../cost/profiles';
import type { TransformerSpec } from '../graph/transformer-spec';
import type { PlanEdit } from '../plan/edits';
import type { Framework, Plan } from '../plan/plan';

/**
 * The optimizer's search space: every parallel layout a framework can run for a model on a cluster, with
 * the divisibility rules the frameworks enforce. Pure enumeration; the cost engine judges the configurations.
 */

export type Recompute = 'none' | 'selective' | 'full';
export type Schedule = 'gpipe' | '1f1b' | 'interleaved';

/** How optimizer states, gradients and weights are sharded over the data-parallel ranks. */
export interface Sharding {
  zero: 0 | 1 | 2 | 3;
  distributedOptimizer: boolean;
}

/** What a framework can run: the options the search may choose among (its launch flags exist for each). */
export interface FrameworkOptions {
  recompute: readonly Recompute[];
  /** 'optional': Megatron's --sequence-parallel with TP; 'always': torchtitan turns it on with TP; 'never'. */
  sequenceParallel: 'optional' | 'always' | 'never';
  /** Schedules with more than one pipeline stage (one stage runs no schedule). */
  schedules: readonly Schedule[];
  /** Sharding choices when data × context > 1; `pipeline: false` ones only without pipeline parallelism. */
  sharding: readonly (Sharding & { withPipeline: boolean })[];
  tensor: boolean;
  pipeline: boolean;
  /** Pipeline stages of unequal layer counts (DeepSpeed partitions by parameters, torchtitan by module names). */
  unevenPipeline: boolean;
  context: boolean;
  expert: boolean;
  /** Tensor parallelism inside the experts of its own degree (Megatron-Core's --expert-tensor-parallel-size). */
  expertTensor: boolean;
  /** Where these facts come from. */
  source: string;
}

const NONE: Sharding & { withPipeline: boolean } = { zero: 0, distributedOptimizer: false, withPipeline: true };

const MEGATRON_CORE: FrameworkOptions = {
  recompute: ['none', 'selective', 'full'],
  sequenceParallel: 'optional',
  schedules: ['1f1b', 'interleaved'],
  sharding: [
    NONE,
    { zero: 0, distributedOptimizer: true, withPipeline: true },
    // Torch FSDP2 inside Megatron-Core: PP must be 1 and the distributed optimizer off.
    { zero: 3, distributedOptimizer: false, withPipeline: false },
  ],
  tensor: true,
  pipeline: true,
  unevenPipeline: false,
  context: true,
  expert: true,
  expertTensor: true,
  source:
    'Megatron-LM core_v0.19.0 megatron/training/arguments.py validate_args (research/frameworks/megatron-rules.md)',
};

/** Per framework (the plan's training.framework; none named: Megatron-Core, the cost engine's default profile). */
export const FRAMEWORKS: Record<Framework, FrameworkOptions> = {
  'megatron-lm-2021': {
    // Megatron-LM as SC21 ran it (commit 6985e58): --checkpoint-activations recomputes whole layers; selective
    // recomputation, sequence parallelism and the distributed optimizer came in 2022 (Korthikanti et al.).
    recompute: ['none', 'full'],
    sequenceParallel: 'never',
    schedules: ['1f1b', 'interleaved'],
    sharding: [NONE],
    tensor: true,
    pipeline: true,
    unevenPipeline: false,
    context: false,
    expert: false,
    expertTensor: false,
    source: 'Narayanan et al. SC21; Megatron-LM examples/academic_paper_scripts/sc21 (commit 6985e58)',
  },
  'megatron-core': MEGATRON_CORE,
  nemo: { ...MEGATRON_CORE, source: `NeMo runs Megatron-Core: ${MEGATRON_CORE.source}` },
  deepspeed: {
    recompute: ['none', 'full'],
    sequenceParallel: 'never',
    // The pipeline engine runs its own 1F1B TrainSchedule; ZeRO-2/3 are refused with pipeline parallelism.
    schedules: ['1f1b'],
    sharding: [
      NONE,
      { zero: 1, distributedOptimizer: false, withPipeline: true },
      { zero: 2, distributedOptimizer: false, withPipeline: false },
      { zero: 3, distributedOptimizer: false, withPipeline: false },
    ],
    tensor: true,
    pipeline: true,
    unevenPipeline: true,
    context: false,
    expert: false,
    expertTensor: false,
    source: 'DeepSpeed v0.19.5 runtime/pipe/engine.py, runtime/zero/config.py (research/frameworks/deepspeed-rules.md)',
  },
  fsdp: {
    recompute: ['none', 'full'],
    sequenceParallel: 'never',
    schedules: [],
    // DDP, SHARD_GRAD_OP (ZeRO-2), FULL_SHARD (ZeRO-3).
    sharding: [
      NONE,
      { zero: 2, distributedOptimizer: false, withPipeline: false },
      { zero: 3, distributedOptimizer: false, withPipeline: false },
    ],
    tensor: false,
    pipeline: false,
    unevenPipeline: false,
    context: false,
    expert: false,
    expertTensor: false,
    source: 'PyTorch FullyShardedDataParallel sharding strategies (NO_SHARD, SHARD_GRAD_OP, FULL_SHARD)',
  },
  torchtitan: {
    recompute: ['none', 'selective', 'full'],
    sequenceParallel: 'always',
    schedules: ['1f1b', 'gpipe', 'interleaved'],
    // FSDP2 shards over dp_shard × cp; DDP only without other parallelism.
    sharding: [{ zero: 3, distributedOptimizer: false, withPipeline: true }],
    tensor: true,
    pipeline: true,
    unevenPipeline: true,
    context: true,
    expert: true,
    // Expert tensor parallelism is left at the tensor degree here (not searched).
    expertTensor: false,
    source:
      'torchtitan v0.2.2 distributed/parallel_dims.py, pipeline_parallel.py (research/frameworks/torchtitan-rules.md)',
  },
};

/**
 * A plan that names no framework: every option a plan field can express (the Megatron-Core choices and the
 * ZeRO stages), so the search is not narrower than what the user may write.
 */
export const ANY_FRAMEWORK: FrameworkOptions = {
  ...MEGATRON_CORE,
  sharding: [
    NONE,
    { zero: 1, distributedOptimizer: false, withPipeline: true },
    { zero: 2, distributedOptimizer: false, withPipeline: true },
    { zero: 3, distributedOptimizer: false, withPipeline: true },
    { zero: 0, distributedOptimizer: true, withPipeline: true },
  ],
  // The cost engine splits an architecture's layers as evenly as they go.
  unevenPipeline: true,
  source: 'the plan fields (no training.framework named)',
};

export function frameworkOf(plan: Plan): FrameworkOptions {
  const named = plan.training?.framework;
  return named ? (FRAMEWORKS[named] ?? ANY_FRAMEWORK) : ANY_FRAMEWORK;
}

/** A complete choice of the searched fields. */
export interface Config {
  gpus: number;
  gpusPerNode: number;
  nodes: number;
  data: number;
  tensor: number;
  pipeline: number;
  context: number;
  expert: number;
  /** Tensor parallelism inside each expert (the tensor degree unless the search or the plan says). */
  expertTensor: number;
  schedule: Schedule;
  /** Chunks per device (interleaved), else 1. */
  virtualStages: number;
  sequenceParallel: boolean;
  zero: 0 | 1 | 2 | 3;
  distributedOptimizer: boolean;
  /** Training: sequences per micro-batch; inference: unused (1). */
  microBatch: number;
  /** Micro-batches per step on each data-parallel rank (globalBatch / (microBatch × data)). */
  microBatches: number;
  recompute: Recompute;
}

/**
 * A model file's stages are split by dynamic programming (quadratic in its layers, linear in the stages):
 * the search offers it up to this many stages (SC21's largest run used 64).
 */
export const MAX_FILE_STAGES = 64;

export function divisors(n: number): number[] {
  const small: number[] = [];
  const large: number[] = [];
  for (let d = 1; d * d <= n; d++) {
    if (n % d !== 0) continue;
    small.push(d);
    if (d * d !== n) large.unshift(n / d);
  }
  return [...small, ...large];
}

/** A field the user locked: the plan's own value stays. Locks are JSON paths; a lock on a parent locks its children. */
export function isLocked(locks: readonly string[], path: string): boolean {
  return locks.some((l) => path === l || path.startsWith(`${l}.`));
}

/** What the space needs to know about the model (a transformer's shape, or only its block count). */
export interface ModelShape {
  blocks: number;
  arch?: Pick<TransformerSpec, 'heads' | 'kvHeads' | 'hidden' | 'ffn' | 'experts'>;
}

export interface SpaceOptions {
  /** GPU counts to consider (ascending); each is laid out as whole nodes, or one partial node. */
  gpuCounts: number[];
  gpusPerNode: number;
  locks: readonly string[];
  /** Degrees the cost engine models: context / expert parallel are left at 1 where it does not. */
  models: { context: boolean; expert: boolean; distributedOptimizer: boolean };
}

/** Why configurations were left out, by rule (reported with the search so the space is visible). */
export type RuleCounts = Record<string, number>;

/**
 * The training layouts of a plan, each a Config, lazily. Rules (each from the frameworks' sources):
 * world = data × tensor × pipeline × context; tensor inside one node (divides gpusPerNode) and divides the
 * attention heads, hidden and MLP sizes, with key/value heads a multiple or divisor of it (Megatron's
 * num_query_groups rule); pipeline divides the layers of an architecture (Megatron: num_layers % PP; DeepSpeed
 * and torchtitan split unevenly), at most
 * one stage per layer of a model file; interleaving needs layers/pipeline divisible by the chunks, ≥ 2 chunks,
 * pipeline > 1 and micro-batches a multiple of pipeline; context parallel needs seqLen % (2 × context) = 0;
 * expert parallel divides the experts and data × context; globalBatch % (microBatch × data) = 0.
 */
export function* trainingConfigs(
  plan: Plan,
  shape: ModelShape,
  opts: SpaceOptions,
  rejected: RuleCounts = {},
): Generator<Config> {
  const fw = frameworkOf(plan);
  const tr = plan.training!;
  const par = plan.parallel ?? {};
  const locked = (p: string) => isLocked(opts.locks, p);
  const reject = (rule: string) => void (rejected[rule] = (rejected[rule] ?? 0) + 1);
  // A locked field keeps the plan's value (the rules below still apply to it).
  const keep = <T>(path: string, own: T, options: readonly T[]): readonly T[] => (locked(path) ? [own] : options);
  const seqLen = tr.seqLen ?? 2048;
  const a = shape.arch;
  const fixedGpus = locked('cluster.nodes') || locked('cluster.gpusPerNode') || locked('cluster');
  const current = opts.gpusPerNode * (plan.cluster.nodes ?? 1);
  const counts = fixedGpus ? [current] : opts.gpuCounts;
  for (const gpus of counts) {
    const gpn = gpus >= opts.gpusPerNode ? opts.gpusPerNode : gpus;
    if (gpus >= opts.gpusPerNode && gpus % opts.gpusPerNode !== 0) continue;
    const nodes = gpus / gpn;
    const tensors = keep('parallel.tensor', par.tensor ?? 1, fw.tensor ? divisors(gpn) : [1]);
    for (const tp of tensors) {
      if (gpus % tp !== 0) continue;
      if (a && (a.heads % tp || a.hidden % tp || a.ffn % tp)) {
        reject('tensor must divide heads, hidden and MLP width');
        continue;
      }
      if (a && a.kvHeads % tp !== 0 && tp % a.kvHeads !== 0) {
        reject('tensor must divide or be a multiple of the key/value heads');
        continue;
      }
      const pipes = keep(
        'parallel.pipeline',
        par.pipeline ?? 1,
        fw.pipeline
          ? divisors(gpus / tp).filter((p) => p <= shape.blocks && (shape.arch || p <= MAX_FILE_STAGES))
          : [1],
      );
      for (const pp of pipes) {
        if ((gpus / tp) % pp !== 0) continue;
        if (a && !fw.unevenPipeline && shape.blocks % pp !== 0) {
          reject('pipeline must divide the layers');
          continue;
        }
        const contexts = keep(
          'parallel.context',
          par.context ?? 1,
          fw.context && opts.models.context ? divisors(gpus / (tp * pp)) : [1],
        );
        for (const cp of contexts) {
          if ((gpus / (tp * pp)) % cp !== 0) continue;
          if (cp > 1 && seqLen % (2 * cp) !== 0) {
            reject('sequence length must divide by 2 × context');
            continue;
          }
          const dp = gpus / (tp * pp * cp);
          if (locked('parallel.data') && dp !== (par.data ?? 1)) continue;
          if (tr.globalBatch % dp !== 0) {
            reject('data must divide the global batch');
            continue;
          }
          const moe = !!a && a.experts > 1;
          const experts = moe && fw.expert && opts.models.expert ? divisors(a.experts) : [1];
          // Expert tensor parallelism at most the tensor degree, dividing the experts' MLP width; a dense model
          // keeps whatever the plan says (the engine reads it for experts only).
          const expertTensors =
            moe && fw.expertTensor && opts.models.expert ? divisors(tp).filter((e) => a.ffn % e === 0) : [tp];
          for (const ep of keep('parallel.expert', par.expert ?? 1, experts)) {
            for (const etp of moe
              ? keep('parallel.expertTensor', par.expertTensor ?? tp, expertTensors)
              : [par.expertTensor ?? tp]) {
              // Megatron-Core's MoE parallel folding: expert × expertTensor ranks over tensor × context × data.
              if (moe && (tp * cp * dp) % (ep * etp) !== 0) {
                reject(
                  etp === tp
                    ? 'expert must divide data × context'
                    : 'expert × expertTensor must divide tensor × context × data',
                );
                continue;
              }
              const perRank = tr.globalBatch / dp;
              for (const mb of keep('training.microBatch', tr.microBatch, divisors(perRank))) {
                if (perRank % mb !== 0) continue;
                const m = perRank / mb;
                yield* variants(plan, fw, opts, { gpus, gpn, nodes, tp, pp, cp, dp, ep, etp, mb, m }, shape, rejected);
              }
            }
          }
        }
      }
    }
  }
}

function* variants(
  plan: Plan,
  fw: FrameworkOptions,
  opts: SpaceOptions,
  l: {
    gpus: number;
    gpn: number;
    nodes: number;
    tp: number;
    pp: number;
    cp: number;
    dp: number;
    ep: number;
    etp: number;
    mb: number;
    m: number;
  },
  shape: ModelShape,
  rejected: RuleCounts,
): Generator<Config> {
  const par = plan.parallel ?? {};
  const tr = plan.training!;
  const locked = (p: string) => isLocked(opts.locks, p);
  const reject = (rule: string) => void (rejected[rule] = (rejected[rule] ?? 0) + 1);
  // Schedules and chunks.
  const schedules: { schedule: Schedule; v: number }[] = [];
  if (l.pp === 1) schedules.push({ schedule: '1f1b', v: 1 });
  else {
    for (const s of new Set([...fw.schedules, par.schedule ?? '1f1b'])) {
      if (s !== 'interleaved') schedules.push({ schedule: s, v: 1 });
      else if (shape.arch) {
        // Megatron: layers per stage divisible by the layers per chunk, ≥ 2 chunks, micro-batches a multiple of PP.
        for (const v of divisors(shape.blocks / l.pp).filter((x) => x >= 2)) {
          if (l.m % l.pp !== 0) {
            reject('interleaving needs micro-batches a multiple of pipeline');
            break;
          }
          schedules.push({ schedule: 'interleaved', v });
        }
      }
    }
  }
  const ownSchedule = par.schedule ?? '1f1b';
  const ownV = ownSchedule === 'interleaved' ? (par.virtualStages ?? 2) : 1;
  const scheduleOptions = locked('parallel.schedule')
    ? schedules.filter((s) => s.schedule === ownSchedule && (locked('parallel.virtualStages') ? s.v === ownV : true))
    : locked('parallel.virtualStages')
      ? schedules.filter((s) => s.v === ownV || (s.schedule !== 'interleaved' && ownV === 1))
      : schedules;
  // The plan's own choices are always in the space (what the user runs is ranked with the rest).
  const recomputes = locked('training.recompute')
    ? [tr.recompute ?? 'none']
    : [...new Set([...fw.recompute, tr.recompute ?? 'none'])];
  const sps: boolean[] =
    l.tp === 1
      ? [false]
      : locked('parallel.sequenceParallel')
        ? [par.sequenceParallel ?? false]
        : fw.sequenceParallel === 'optional'
          ? [false, true]
          : // The plan's own choice stays in the space, as its recomputation does (what the user runs is ranked).
            [...new Set([fw.sequenceParallel === 'always', par.sequenceParallel ?? fw.sequenceParallel === 'always'])];
  const own = ownSharding(plan);
  const shardings: Sharding[] =
    l.dp * l.cp === 1
      ? [own]
      : locked('parallel.zero') || locked('parallel.distributedOptimizer')
        ? [own]
        : fw.sharding
            .filter(
              (s) => (s.withPipeline || l.pp === 1) && (!s.distributedOptimizer || opts.models.distributedOptimizer),
            )
            .map(({ zero, distributedOptimizer }) => ({ zero, distributedOptimizer }));
  if (
    l.dp * l.cp > 1 &&
    !shardings.some((x) => x.zero === own.zero && x.distributedOptimizer === own.distributedOptimizer)
  ) {
    shardings.push(own);
  }
  for (const { schedule, v } of scheduleOptions) {
    for (const recompute of recomputes) {
      for (const sequenceParallel of sps) {
        for (const sh of shardings) {
          yield {
            gpus: l.gpus,
            gpusPerNode: l.gpn,
            nodes: l.nodes,
            data: l.dp,
            tensor: l.tp,
            pipeline: l.pp,
            context: l.cp,
            expert: l.ep,
            expertTensor: l.etp,
            schedule,
            virtualStages: v,
            sequenceParallel,
            zero: sh.zero,
            distributedOptimizer: sh.distributedOptimizer,
            microBatch: l.mb,
            microBatches: l.m,
            recompute,
          };
        }
      }
    }
  }
}

/**
 * Inference layouts: tensor × pipeline × data = GPUs (data splits the batch), tensor inside a node with the
 * same head rules as training, pipeline at most one stage per layer.
 */
export function* inferenceConfigs(
  plan: Plan,
  shape: ModelShape,
  opts: SpaceOptions,
  rejected: RuleCounts = {},
): Generator<Config> {
  const par = plan.parallel ?? {};
  const locked = (p: string) => isLocked(opts.locks, p);
  const a = shape.arch;
  const fixedGpus = locked('cluster.nodes') || locked('cluster.gpusPerNode') || locked('cluster');
  const counts = fixedGpus ? [opts.gpusPerNode * (plan.cluster.nodes ?? 1)] : opts.gpuCounts;
  for (const gpus of counts) {
    const gpn = gpus >= opts.gpusPerNode ? opts.gpusPerNode : gpus;
    if (gpus >= opts.gpusPerNode && gpus % opts.gpusPerNode !== 0) continue;
    for (const tp of locked('parallel.tensor') ? [par.tensor ?? 1] : divisors(gpn)) {
      if (gpus % tp !== 0) continue;
      if (a && (a.heads % tp || a.hidden % tp || (a.kvHeads % tp !== 0 && tp % a.kvHeads !== 0))) {
        rejected['tensor must divide the heads'] = (rejected['tensor must divide the heads'] ?? 0) + 1;
        continue;
      }
      for (const pp of locked('parallel.pipeline')
        ? [par.pipeline ?? 1]
        : divisors(gpus / tp).filter((p) => p <= shape.blocks)) {
        if ((gpus / tp) % pp !== 0) continue;
        const dp = gpus / (tp * pp);
        if (locked('parallel.data') && dp !== (par.data ?? 1)) continue;
        if (dp > plan.inference!.batch) continue;
        yield {
          gpus,
          gpusPerNode: gpn,
          nodes: gpus / gpn,
          data: dp,
          tensor: tp,
          pipeline: pp,
          context: 1,
          expert: 1,
          expertTensor: par.expertTensor ?? tp,
          schedule: '1f1b',
          virtualStages: 1,
          sequenceParallel: false,
          zero: 0,
          distributedOptimizer: false,
          microBatch: 1,
          microBatches: 1,
          recompute: 'none',
        };
      }
    }
  }
}

/**
 * The sharding a plan runs with: its own fields, else its framework's defaults as the cost engine takes them
 * (Megatron-Core's distributed optimizer, FSDP's full shard, DeepSpeed's ZeRO-1).
 */
export function ownSharding(plan: Plan): Sharding {
  const run = runSettings(plan);
  return { zero: run.zero as Sharding['zero'], distributedOptimizer: run.distributedOptimizer };
}

/**
 * The plan edits that give a plan this configuration: the searched fields only, written where the plan has
 * them or where they differ from their defaults (a plan stays as short as it was).
 */
export function configEdits(plan: Plan, c: Config): PlanEdit[] {
  const par = plan.parallel ?? {};
  const edits: PlanEdit[] = [];
  // A default the plan does not spell (context: 1, zero: 0, …) stays unspelled; a field the plan has is rewritten.
  const set = (path: (string | number)[], value: unknown, own: unknown, fallback: unknown) => {
    if (value !== (own ?? fallback)) edits.push({ path, value });
  };
  if (c.gpus !== (plan.cluster.gpusPerNode ?? c.gpusPerNode) * (plan.cluster.nodes ?? 1)) {
    if (c.gpusPerNode !== plan.cluster.gpusPerNode) {
      edits.push({ path: ['cluster', 'gpusPerNode'], value: c.gpusPerNode });
    }
    if (c.nodes !== (plan.cluster.nodes ?? 1)) edits.push({ path: ['cluster', 'nodes'], value: c.nodes });
  }
  set(['parallel', 'data'], c.data, par.data, 1);
  set(['parallel', 'tensor'], c.tensor, par.tensor, 1);
  set(['parallel', 'pipeline'], c.pipeline, par.pipeline, 1);
  set(['parallel', 'context'], c.context, par.context, 1);
  set(['parallel', 'expert'], c.expert, par.expert, 1);
  if (plan.training) {
    set(['parallel', 'expertTensor'], c.expertTensor, par.expertTensor, c.tensor);
    set(['parallel', 'schedule'], c.schedule, par.schedule, '1f1b');
    if (c.schedule === 'interleaved') set(['parallel', 'virtualStages'], c.virtualStages, par.virtualStages, 2);
    else if (par.virtualStages !== undefined) edits.push({ path: ['parallel', 'virtualStages'], value: undefined });
    set(['parallel', 'sequenceParallel'], c.sequenceParallel, par.sequenceParallel, false);
    // Unspelled sharding is the framework's default (the cost engine's profile), not zero.
    const own = ownSharding(plan);
    set(['parallel', 'zero'], c.zero, par.zero, own.zero);
    set(
      ['parallel', 'distributedOptimizer'],
      c.distributedOptimizer,
      par.distributedOptimizer,
      own.distributedOptimizer,
    );
    set(['training', 'microBatch'], c.microBatch, plan.training.microBatch, undefined);
    set(['training', 'recompute'], c.recompute, plan.training.recompute, 'none');
  }
  return edits;
}
