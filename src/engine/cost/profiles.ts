import type { Framework, Plan } from '../plan/plan';
import type { AttentionKernelChoice } from './workload';

/**
 * Software profiles: the same configuration runs at different speeds on Megatron-LM (2021),
 * Megatron-Core, NeMo, DeepSpeed and PyTorch FSDP / torchtitan. A profile carries the framework's
 * defaults (which overlaps it turns on, which attention kernel, how it keeps gradients) and the
 * efficiencies calibrated on published runs of its kernel stack (validation/runs.json, set
 * "calibration"; `npm run validate` prints them and the runs held out).
 *
 * Calibrated constants are few and physical: `gemmSustained`, the fraction of the GPU's best-shape
 * matmul throughput (catalog matmulCeiling, measured) that the stack's GEMMs sustain through a whole
 * training step — clocks under a training load, launch gaps, the host. Everything else (shapes,
 * attention kernels, communication, schedules, overlaps) is modelled from its own measurements.
 */
/**
 * Calibrated per kernel stack (validation/calibrate.ts prints the fit): Megatron-LM's own fused
 * kernels of 2021-22 (unfused attention), Transformer Engine under Megatron-Core / NeMo, and
 * PyTorch's (FSDP, torchtitan).
 */
export const SUSTAINED = {
  megatron2021: 0.862,
  transformerEngine: 0.934,
  pytorch: 0.733,
};

export type KernelStack = keyof typeof SUSTAINED;

export interface SoftwareProfile {
  id: Framework;
  name: string;
  /** Whose kernels it runs: profiles of one stack share its calibrated constants. */
  stack: KernelStack;
  /** Where the defaults come from (file and version). */
  source: string;
  attention: AttentionKernelChoice;
  /** Bytes per gradient element as accumulated and reduced across data-parallel ranks, by training dtype. */
  gradientBytes: (dtype: string) => number;
  overlapGradReduce: boolean;
  overlapParamGather: boolean;
  distributedOptimizer: boolean;
  /** Tensor-parallel communication overlapped with the GEMMs (userbuffers / async TP). */
  tpCommOverlap: boolean;
  /** Sharding of weights, gradients and optimizer states over data-parallel ranks (3: FSDP full shard). */
  zero: 0 | 1 | 2 | 3;
  /** Context parallelism: ring exchange of K/V chunks overlapped with attention, or one all-gather of K/V. */
  contextParallel: 'ring' | 'allgather';
  /** The pipeline split counts the embedding and the output layer as a block each (else blocks split evenly). */
  balanceEdges: boolean;
  /** ZeRO-3 gathers a whole block at a time and prefetches the next (PyTorch FSDP units); DeepSpeed bounds its live parameters by configuration instead. */
  gathersBlocks: boolean;
  /** Calibrated: fraction of the GPU's best-shape matmul throughput sustained through training. */
  gemmSustained: number;
  /** The calibration runs gemmSustained was fitted on (validation/runs.json ids, by prefix). */
  fittedOn: string;
}

/** Megatron-LM keeps fp32 main gradients for bf16 (accumulate-allreduce-grads-in-fp32 is forced on for bf16). */
const megatronGradients = (dtype: string) => (dtype === 'fp16' ? 2 : 4);

export const PROFILES: Record<Framework, SoftwareProfile> = {
  'megatron-lm-2021': {
    id: 'megatron-lm-2021',
    name: 'Megatron-LM (2021–22)',
    stack: 'megatron2021',
    source:
      'Megatron-LM 6985e589 (SC21 runs): --DDP-impl local or torch, fused softmax (unfused attention core), no distributed optimizer',
    attention: 'unfused',
    gradientBytes: megatronGradients,
    overlapGradReduce: false,
    overlapParamGather: false,
    distributedOptimizer: false,
    tpCommOverlap: false,
    zero: 0,
    contextParallel: 'ring',
    balanceEdges: false,
    gathersBlocks: false,
    gemmSustained: SUSTAINED.megatron2021,
    fittedOn: 'korthikanti2022-*',
  },
  deepspeed: {
    id: 'deepspeed',
    name: 'DeepSpeed ZeRO',
    stack: 'pytorch',
    source:
      'DeepSpeed ZeRO on PyTorch models (Hugging Face Trainer / accelerate): ZeRO-1 unless the plan says, flash attention (SDPA), gradients accumulated in fp32 for bf16 (BF16_Optimizer); Megatron-DeepSpeed (BLOOM) runs Megatron-LM 2021 kernels: plan it as megatron-lm-2021 with parallel.zero',
    attention: 'flash2',
    gradientBytes: megatronGradients,
    overlapGradReduce: true,
    overlapParamGather: false,
    distributedOptimizer: false,
    tpCommOverlap: false,
    zero: 1,
    contextParallel: 'ring',
    balanceEdges: false,
    gathersBlocks: false,
    gemmSustained: SUSTAINED.pytorch,
    fittedOn: 'llmfoundry-* (the same PyTorch kernels)',
  },
  'megatron-core': {
    id: 'megatron-core',
    name: 'Megatron-Core (Transformer Engine)',
    stack: 'transformerEngine',
    source:
      'Megatron-LM core_r0.8+ with Transformer Engine as its published performance runs configure it (README: --overlap-grad-reduce --overlap-param-gather --tp-comm-overlap, distributed optimizer, fused attention; --account-for-embedding-in-pipeline-split and --account-for-loss-in-pipeline-split, which the Llama 3.1 405B layout needs: 126 layers + 2 in 64 chunks of 2)',
    attention: 'flash3',
    gradientBytes: megatronGradients,
    overlapGradReduce: true,
    overlapParamGather: true,
    distributedOptimizer: true,
    tpCommOverlap: true,
    zero: 0,
    contextParallel: 'ring',
    balanceEdges: true,
    gathersBlocks: false,
    gemmSustained: SUSTAINED.transformerEngine,
    fittedOn: 'bridge2511-* and bridge260401-* (Megatron-Bridge performance archive, dense runs)',
  },
  nemo: {
    id: 'nemo',
    name: 'NeMo (Megatron-Core)',
    stack: 'transformerEngine',
    source: 'NeMo 2.x performance recipes: Megatron-Core defaults plus tensor-parallel communication overlap',
    attention: 'flash3',
    gradientBytes: megatronGradients,
    overlapGradReduce: true,
    overlapParamGather: true,
    distributedOptimizer: true,
    tpCommOverlap: true,
    zero: 0,
    contextParallel: 'ring',
    balanceEdges: true,
    gathersBlocks: false,
    gemmSustained: SUSTAINED.transformerEngine,
    fittedOn: 'bridge2511-* and bridge260401-* (Megatron-Bridge performance archive, dense runs)',
  },
  fsdp: {
    id: 'fsdp',
    name: 'PyTorch FSDP',
    stack: 'pytorch',
    source: 'PyTorch FSDP FULL_SHARD with prefetch (bf16 parameters, fp32 gradient reduction), flash attention',
    attention: 'flash2',
    gradientBytes: (dtype) => (dtype === 'fp32' ? 4 : 4),
    overlapGradReduce: true,
    overlapParamGather: true,
    distributedOptimizer: false,
    tpCommOverlap: false,
    zero: 3,
    contextParallel: 'ring',
    balanceEdges: false,
    gathersBlocks: true,
    gemmSustained: SUSTAINED.pytorch,
    fittedOn: 'llmfoundry-*',
  },
  torchtitan: {
    id: 'torchtitan',
    name: 'torchtitan (FSDP2)',
    stack: 'pytorch',
    source: 'torchtitan: FSDP2 full shard, fp32 gradient reduction, SDPA flash attention, torch.compile',
    attention: 'flash2',
    gradientBytes: () => 4,
    overlapGradReduce: true,
    overlapParamGather: true,
    distributedOptimizer: false,
    tpCommOverlap: false,
    zero: 3,
    contextParallel: 'ring',
    balanceEdges: false,
    gathersBlocks: true,
    gemmSustained: SUSTAINED.pytorch,
    fittedOn: 'llmfoundry-* (the same PyTorch kernels)',
  },
};

/** The default when a plan names no framework: current Megatron-Core (DESIGN.md). */
export const DEFAULT_FRAMEWORK: Framework = 'megatron-core';

/** What a plan runs with: its framework's defaults, overridden by what the plan states. */
export interface RunSettings {
  profile: SoftwareProfile;
  zero: number;
  distributedOptimizer: boolean;
  overlapGradReduce: boolean;
  overlapParamGather: boolean;
  tpCommOverlap: boolean;
}

/** What a calibration run may vary: the stacks' sustained fractions. */
export type ProfileOverrides = Partial<Record<KernelStack, number>>;

export function runSettings(plan: Plan, overrides?: ProfileOverrides): RunSettings {
  const base = PROFILES[plan.training?.framework ?? DEFAULT_FRAMEWORK];
  const sustained = overrides?.[base.stack];
  const profile = sustained === undefined ? base : { ...base, gemmSustained: sustained };
  const parallel = plan.parallel ?? {};
  const overlapGradReduce = plan.training?.overlapGradReduce ?? profile.overlapGradReduce;
  // Megatron overlaps the parameter all-gather only with the gradient reduction overlapped, and tensor-parallel
  // communication only with sequence parallelism (arguments.py validate_args asserts both): its defaults follow
  // the plan's settings, so a plan that turns one off does not keep an overlap Megatron cannot run.
  const megatron = profile.stack !== 'pytorch';
  return {
    profile,
    zero: parallel.zero ?? profile.zero,
    distributedOptimizer: parallel.distributedOptimizer ?? profile.distributedOptimizer,
    overlapGradReduce,
    overlapParamGather: parallel.overlapParamGather ?? (profile.overlapParamGather && (!megatron || overlapGradReduce)),
    tpCommOverlap:
      parallel.tpCommOverlap ?? (profile.tpCommOverlap && (!megatron || (parallel.sequenceParallel ?? false))),
  };
}
