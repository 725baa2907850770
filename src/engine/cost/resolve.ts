/**
 * A plan's cluster and layout, resolved against the GPU catalog, and the per-GPU helpers the training
 * and inference estimates share.
 */
import { InputError } from '../errors';
import { findGpu, type GpuSpec, type Link } from '../hardware/catalog';
import type { Plan } from '../plan/plan';
import type { Schedule } from './schedule';
import type { CostLayer } from './workload';

export interface Resolved {
  gpu: GpuSpec;
  intra: Link;
  inter: Link;
  gpusPerNode: number;
  nodes: number;
  dp: number;
  tp: number;
  pp: number;
  v: number;
  schedule: Schedule;
  sp: boolean;
  zero: number;
}

export function resolve(plan: Plan, file: string): Resolved {
  const gpu = findGpu(plan.cluster.gpu);
  if (!gpu) throw new InputError(file, `cluster.gpu: unknown GPU '${plan.cluster.gpu}'`);
  const g: GpuSpec = plan.cluster.memoryGB ? { ...gpu, memoryGB: plan.cluster.memoryGB } : gpu;
  const par = plan.parallel ?? {};
  const schedule = par.schedule ?? '1f1b';
  return {
    gpu: g,
    intra: { ...g.intraNode, ...(plan.cluster.intraNode ?? {}) },
    inter: { ...g.interNode, ...(plan.cluster.interNode ?? {}) },
    gpusPerNode: plan.cluster.gpusPerNode ?? g.gpusPerNode,
    nodes: plan.cluster.nodes ?? 1,
    dp: par.data ?? 1,
    tp: par.tensor ?? 1,
    pp: par.pipeline ?? 1,
    v: schedule === 'interleaved' ? Math.max(1, par.virtualStages ?? 2) : 1,
    schedule,
    sp: par.sequenceParallel ?? false,
    zero: par.zero ?? 0,
  };
}

/** A layer's weight elements on one GPU: tensor parallelism splits the sharded ones, the rest replicate. */
export function parametersPerGpu(l: CostLayer, tp: number): number {
  return l.shardedParameters / tp + (l.parameters - l.shardedParameters);
}

export function overCapacity(stage: number, total: number, capacity: number, gpu: GpuSpec): string {
  const gib = (b: number) => (b / 2 ** 30).toFixed(1);
  return `stage ${stage} needs ${gib(total)} GiB per GPU, over the ${gpu.name}'s ${gib(capacity)} GiB by ${gib(total - capacity)} GiB`;
}

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
