/**
 * A plan's cluster and layout, resolved against the GPU catalog, and the per-GPU helpers the training
 * and inference estimates share.
 */
import { InputError } from '../errors';
import { findGpu, type GpuSpec, type Link } from '../hardware/catalog';
import type { Plan } from '../plan/plan';
import type { Schedule } from './schedule';
import type { CostLayer } from './workload';

/** The cluster and the parallel layout of a plan, with the catalog's defaults filled in. */
export interface ClusterSetup {
  gpu: GpuSpec;
  intra: Link;
  inter: Link;
  gpusPerNode: number;
  nodes: number;
  data: number;
  tensor: number;
  pipeline: number;
  /** Context-parallel degree (the sequence split across GPUs). */
  context: number;
  /** Expert-parallel degree (MoE experts split across GPUs, folded over tensor × context × data). */
  expert: number;
  /** Tensor parallelism inside each expert. */
  expertTensor: number;
  /** Model chunks per pipeline stage: the interleaved schedule's virtual stages, else 1. */
  chunks: number;
  schedule: Schedule;
  sequenceParallel: boolean;
  zero: number;
}

export function resolveSetup(plan: Plan, file: string): ClusterSetup {
  const catalogGpu = findGpu(plan.cluster.gpu);
  if (!catalogGpu) throw new InputError(file, `cluster.gpu: unknown GPU '${plan.cluster.gpu}'`);
  const gpu: GpuSpec = plan.cluster.memoryGB ? { ...catalogGpu, memoryGB: plan.cluster.memoryGB } : catalogGpu;
  const parallel = plan.parallel ?? {};
  const schedule = parallel.schedule ?? '1f1b';
  return {
    gpu,
    intra: { ...gpu.intraNode, ...(plan.cluster.intraNode ?? {}) },
    inter: { ...gpu.interNode, ...(plan.cluster.interNode ?? {}) },
    gpusPerNode: plan.cluster.gpusPerNode ?? gpu.gpusPerNode,
    nodes: plan.cluster.nodes ?? 1,
    data: parallel.data ?? 1,
    tensor: parallel.tensor ?? 1,
    pipeline: parallel.pipeline ?? 1,
    context: parallel.context ?? 1,
    expert: parallel.expert ?? 1,
    expertTensor: parallel.expertTensor ?? parallel.tensor ?? 1,
    chunks: schedule === 'interleaved' ? Math.max(1, parallel.virtualStages ?? 2) : 1,
    schedule,
    sequenceParallel: parallel.sequenceParallel ?? false,
    zero: parallel.zero ?? 0,
  };
}

/**
 * A layer's weight elements on one GPU: tensor parallelism splits the sharded ones, expert
 * parallelism splits the experts' further, the rest (norms, biases) replicate.
 */
export function parametersPerGpu(layer: CostLayer, tensor: number, expert = 1, expertTensor = tensor): number {
  const experts = layer.expertParameters ?? 0;
  if ((expert <= 1 && expertTensor === tensor) || !experts) {
    return layer.shardedParameters / tensor + (layer.parameters - layer.shardedParameters);
  }
  return (
    (layer.shardedParameters - experts) / tensor +
    experts / (expertTensor * expert) +
    (layer.parameters - layer.shardedParameters)
  );
}

export function overCapacity(stage: number, total: number, capacity: number, gpu: GpuSpec): string {
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  return `stage ${stage} needs ${gib(total)} GiB per GPU, over the ${gpu.name}'s ${gib(capacity)} GiB by ${gib(total - capacity)} GiB`;
}

/** Indices as a plan's `stages[].layers` spells them: "0-3,7". */
export function rangeText(ix: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ix.length;) {
    let j = i;
    while (j + 1 < ix.length && ix[j + 1] === ix[j] + 1) j++;
    parts.push(j > i ? `${ix[i]}-${ix[j]}` : `${ix[i]}`);
    i = j + 1;
  }
  return parts.join(',');
}
