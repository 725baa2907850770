/**
 * What the training targets share: the plan's effective values (the estimate's defaults filled in),
 * the notes on what a framework cannot hold of a plan, and small text helpers.
 */
import { findGpu } from '../hardware/catalog';
import type { TransformerSpec } from '../graph/transformer-spec';
import { InputError } from '../errors';
import { parseLayerRange, type Plan } from '../plan/plan';
import { evenSplit } from '../check/launch/megatron';
import { estimatedSplit } from '../check/launch';
import { estimate } from '../cost/estimate';
import { runSettings } from '../cost/profiles';
import type { ExportContext } from './target';

/** A plan with every value the estimate would default filled in. */
export interface Effective {
  gpu: string;
  gpusPerNode: number;
  nodes: number;
  world: number;
  dp: number;
  tp: number;
  pp: number;
  cp: number;
  ep: number;
  /** Model chunks per GPU (1 unless interleaved). */
  v: number;
  schedule: 'gpipe' | '1f1b' | 'interleaved';
  sp: boolean;
  /** Tensor parallelism inside each expert (default: tensor). */
  expertTensor: number;
  zero: number;
  distOpt: boolean;
  globalBatch: number;
  microBatch: number;
  /** Micro-batches per step per data-parallel rank. */
  microBatches: number;
  seqLen: number;
  dtype: 'fp16' | 'bf16' | 'fp32' | 'fp8';
  fp8Recipe: 'delayed' | 'current' | 'blockwise';
  optimizer: 'adam' | 'adamw' | 'sgd';
  recompute: 'none' | 'selective' | 'full';
  overlapGradReduce: boolean;
  /** All-gather of the updated parameters during the next forward (distributed optimizer / ZeRO). */
  overlapParamGather: boolean;
  /** Tensor-parallel communication overlapped with the GEMMs (Megatron --tp-comm-overlap, torchtitan async TP). */
  tpCommOverlap: boolean;
  dropout: boolean;
  /** Transformer layers per pipeline stage (in stage order; pp × v entries when interleaved), as the estimate splits them. */
  stageSizes: number[];
  /** The plan's explicit stages are contiguous and in order (so a framework can express them). */
  stagesExpressible: boolean;
  arch?: TransformerSpec;
}

export function effective(plan: Plan, ctx: ExportContext): Effective {
  const tr = plan.training!;
  const par = plan.parallel ?? {};
  // What the plan leaves out its software profile sets (the estimate's defaults: Megatron-Core's
  // distributed optimizer and overlaps unless the plan names another framework).
  const settings = runSettings(plan);
  const gpu = findGpu(plan.cluster.gpu);
  const gpusPerNode = plan.cluster.gpusPerNode ?? gpu?.gpusPerNode ?? 8;
  const nodes = plan.cluster.nodes ?? 1;
  const schedule = par.schedule ?? '1f1b';
  const pp = par.pipeline ?? 1;
  const v = schedule === 'interleaved' ? Math.max(1, par.virtualStages ?? 2) : 1;
  const dp = par.data ?? 1;
  const blocks = ctx.workload.blockIndices.length;
  // The estimate's own split (the plan's stages, or its default for the plan's software profile), so the
  // framework runs the layers where the estimate put them.
  let stageSizes = evenSplit(blocks, pp * v);
  let stagesExpressible = true;
  if (plan.stages && v === 1 && pp > 1) {
    const flat = plan.stages.flatMap((s) => parseLayerRange(s.layers) ?? []);
    stagesExpressible = flat.length === blocks && flat.every((l, i) => l === i);
  }
  if (pp > 1 && stagesExpressible) {
    const sizes = estimatedSplit(estimate(plan, ctx.workload, ctx.planFile), pp, v);
    if (sizes && sizes.reduce((a, b) => a + b, 0) === blocks) stageSizes = sizes;
  }
  return {
    gpu: plan.cluster.gpu,
    gpusPerNode,
    nodes,
    world: gpusPerNode * nodes,
    dp,
    tp: par.tensor ?? 1,
    pp,
    cp: par.context ?? 1,
    ep: par.expert ?? 1,
    expertTensor: par.expertTensor ?? par.tensor ?? 1,
    v,
    schedule,
    sp: par.sequenceParallel ?? false,
    zero: settings.zero,
    distOpt: settings.distributedOptimizer,
    globalBatch: tr.globalBatch,
    microBatch: tr.microBatch,
    microBatches: tr.globalBatch / (tr.microBatch * dp),
    seqLen: tr.seqLen ?? (typeof plan.model === 'object' ? plan.model.seqLen : undefined) ?? 2048,
    dtype: tr.dtype ?? 'bf16',
    fp8Recipe: tr.fp8Recipe ?? 'delayed',
    optimizer: tr.optimizer ?? 'adam',
    recompute: tr.recompute ?? 'none',
    overlapGradReduce: settings.overlapGradReduce,
    overlapParamGather: settings.overlapParamGather,
    tpCommOverlap: settings.tpCommOverlap,
    dropout: tr.dropout ?? (typeof plan.model === 'object' && plan.model.arch === 'gpt'),
    stageSizes,
    stagesExpressible,
    arch: ctx.workload.arch,
  };
}

/** The model of a training target's flags: the plan's transformer, or an error naming the plan. */
export function needTransformer(ctx: ExportContext, target: string, why: string): TransformerSpec {
  const arch = ctx.workload.arch;
  if (!arch) {
    throw new InputError(
      ctx.planFile,
      `${target}: ${why}; this plan's model is a graph without a transformer shape Layerplan can read (plan a Hugging Face config.json, a checkpoint with its config, or an architecture object)`,
    );
  }
  if (arch.encoder) {
    throw new InputError(
      ctx.planFile,
      `${target}: exports decoder language models; this model is an encoder (${arch.family})`,
    );
  }
  return arch;
}

/** The format a dtype trains its weights in, as the plan's precision names it. */
const DTYPE_FORMAT: Record<string, string> = { bf16: 'bf16', fp16: 'fp16', fp32: 'fp32' };

/** Notes every training target shares: precision the framework cannot express, the plan's software profile. */
export function commonNotes(plan: Plan, e: Effective, framework: string, profile: string, name: string): string[] {
  const notes: string[] = [];
  const rules = plan.precision?.rules ?? [];
  if (rules.length) {
    const shown = rules
      .slice(0, 3)
      .map((r) => `${r.match} → ${r.format}`)
      .join(', ');
    notes.push(
      `per-layer precision rules (${shown}${rules.length > 3 ? ', …' : ''}) are not training options of ${name}: it trains every layer in ${e.dtype}; quantize for inference after training`,
    );
  }
  const def = plan.precision?.default;
  if (def && def !== DTYPE_FORMAT[e.dtype]) {
    notes.push(`precision.default ${def} is not a training option of ${name}: the weights are held in ${e.dtype}`);
  }
  if (plan.precision?.activations?.format) {
    notes.push(`activation quantization (${plan.precision.activations.format}) is not a training option of ${name}`);
  }
  const planProfile = plan.training?.framework;
  if (planProfile && planProfile !== profile) {
    notes.push(
      `the plan is estimated with the ${planProfile} software profile; this configuration runs ${framework}, so re-importing it estimates with the ${profile} profile`,
    );
  }
  if (plan.devices) {
    notes.push(`"devices" (heterogeneous GPUs) are not expressible in ${name}: it assumes one GPU kind`);
  }
  if (plan.stages && !e.stagesExpressible) {
    notes.push(
      `the plan's stages are not contiguous runs of layers in order; ${name} assigns layers to stages in order, so the configuration splits them evenly (${e.stageSizes.join(', ')} layers)`,
    );
  }
  return notes;
}

/** `name.plan.json` → `name`. */
export function baseName(planFile: string): string {
  const file = planFile.split(/[\\/]/).pop() ?? 'plan';
  return file.replace(/\.plan\.json$/i, '').replace(/\.json$/i, '') || 'plan';
}

/** A word for a POSIX shell: bare when safe, else single-quoted. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The model as the exported files name it (relative to where they are written), when it is a file. */
export function modelRef(plan: Plan, ctx: ExportContext): string | undefined {
  if (typeof plan.model !== 'string') return undefined;
  return ctx.modelRef ?? plan.model;
}

/** What an exported header records of the cluster: the GPU and any overrides of the catalog. */
export function headerCluster(plan: Plan, e: Effective): Plan['cluster'] {
  return { ...plan.cluster, gpu: e.gpu, gpusPerNode: e.gpusPerNode, nodes: e.nodes };
}

/** Greatest common divisor. */
export function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
