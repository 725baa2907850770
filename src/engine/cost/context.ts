import type { ComputeDtype, Link } from '../hardware/catalog';
import { globMatch } from '../glob';
import type { Plan } from '../plan/plan';
import { parseFormat } from '../quant/formats';
import type { GroupTopology } from './comm';
import { resolveSetup, type ClusterSetup } from './resolve';
import type { CostLayer, Workload } from './workload';

/**
 * Everything an estimate phase needs, built once per estimate: the plan and its workload, the
 * resolved cluster, precisions per layer, the communication groups and the links they cross.
 */
export interface EstimateContext {
  plan: Plan;
  workload: Workload;
  setup: ClusterSetup;
  gpus: number;
  /** The plan's compute dtype (training.dtype, inference.dtype, else bf16). */
  dtype: string;
  /** Bytes per activation element. */
  actBytes: number;
  /** Bytes per weight element of a layer as its GEMMs read it (precision rules, else the dtype). */
  weightBytes: (layer: CostLayer) => number;
  /** The tensor-core path a layer's GEMMs run on. */
  computeDtypeOf: (layer: CostLayer) => ComputeDtype;
  tensorGroup: GroupTopology;
  /** Ranks that reduce the dense weights' gradients: data × context. */
  dataGroup: GroupTopology;
  contextGroup: GroupTopology;
  expertGroup: GroupTopology;
  /** Ranks that hold the same experts and reduce their gradients: data × context ÷ expert. */
  expertDataGroup: GroupTopology;
  /** The link between pipeline stage s and s + 1. */
  stageLink: (stage: number) => Link;
  /** Which links each kind of traffic crosses, for reports. */
  links: { data: string; tensor: string; pipeline: string };
  warnings: string[];
}

export function bytesOfDtype(dtype: string): number {
  return dtype === 'fp32' ? 4 : dtype === 'fp8' ? 1 : 2;
}

export function computeDtype(dtype: string): ComputeDtype {
  return dtype === 'fp32' ? 'tf32' : dtype === 'fp8' ? 'fp8' : dtype === 'fp16' ? 'fp16' : 'bf16';
}

/** The precision format of a layer: the last matching rule (by layer name or any of its tensors), else the default. */
export function layerFormat(plan: Plan, layer: CostLayer): string | undefined {
  const rules = plan.precision?.rules ?? [];
  let format = plan.precision?.default;
  for (const rule of rules) {
    if (globMatch(rule.match, layer.name) || layer.tensors.some((t) => globMatch(rule.match, t))) {
      format = rule.format;
    }
  }
  return format;
}

const linkName = (link: Link) => `${link.kind} (${link.bandwidthGBps} GB/s)`;

export function estimateContext(plan: Plan, workload: Workload, file: string): EstimateContext {
  const setup = resolveSetup(plan, file);
  const { gpu, tensor, pipeline, data, context, expert, expertTensor, gpusPerNode } = setup;
  const dtype = plan.training?.dtype ?? (plan.inference?.dtype as string | undefined) ?? 'bf16';
  const formatOf = (layer: CostLayer) => {
    const name = layerFormat(plan, layer);
    return name ? parseFormat(name) : undefined;
  };
  const weightBytes = (layer: CostLayer) => {
    const format = formatOf(layer);
    return format ? format.bitsPerWeight / 8 : bytesOfDtype(dtype);
  };
  const computeDtypeOf = (layer: CostLayer): ComputeDtype => {
    const format = formatOf(layer);
    if (format?.compute === 'fp8' && gpu.tflops.fp8) return 'fp8';
    if (format?.compute === 'fp4' && gpu.tflops.fp4) return 'fp4';
    return computeDtype(dtype);
  };

  // Rank order as Megatron-Core lays it out (tp-cp-ep-dp-pp): a group whose members are `stride`
  // ranks apart has floor(gpusPerNode / stride) of them in each node.
  const group = (size: number, stride: number): GroupTopology => ({
    size,
    perNode: Math.max(1, Math.min(size, Math.floor(gpusPerNode / stride))),
    intra: setup.intra,
    inter: setup.inter,
  });
  const tensorGroup: GroupTopology = {
    size: tensor,
    perNode: Math.min(tensor, gpusPerNode),
    intra: setup.intra,
    inter: setup.inter,
  };
  const dataGroup = group(data * context, tensor);
  const contextGroup = group(context, tensor);
  // Experts fold their own layout over the stage's ranks: expert-tensor innermost, then expert, then expert-data.
  const expertGroup = group(expert, expertTensor);
  const expertDataGroup = group(
    Math.max(1, (data * context * tensor) / (expert * expertTensor)),
    expertTensor * expert,
  );
  const nodeOf = (rank: number) => Math.floor(rank / gpusPerNode);
  const stageLink = (stage: number) =>
    nodeOf(stage * data * tensor * context) === nodeOf((stage + 1) * data * tensor * context)
      ? setup.intra
      : setup.inter;
  const groupLink = (group: GroupTopology) =>
    group.size <= 1
      ? 'none'
      : group.perNode >= group.size
        ? linkName(setup.intra)
        : group.perNode <= 1
          ? linkName(setup.inter)
          : `${linkName(setup.intra)}, then ${linkName(setup.inter)}`;
  const crossings = Array.from({ length: Math.max(0, pipeline - 1) }, (_, s) => stageLink(s) === setup.inter).filter(
    Boolean,
  ).length;
  const links = {
    data: groupLink(dataGroup),
    tensor: groupLink(tensorGroup),
    pipeline:
      pipeline <= 1
        ? 'none'
        : crossings === 0
          ? linkName(setup.intra)
          : crossings === pipeline - 1
            ? linkName(setup.inter)
            : `${linkName(setup.intra)}; ${crossings} of ${pipeline - 1} stage boundaries on ${linkName(setup.inter)}`,
  };
  return {
    plan,
    workload,
    setup,
    gpus: data * tensor * pipeline * context,
    dtype,
    actBytes: dtype === 'fp32' ? 4 : 2,
    weightBytes,
    computeDtypeOf,
    tensorGroup,
    dataGroup,
    contextGroup,
    expertGroup,
    expertDataGroup,
    stageLink,
    links,
    // What the model's reader could not know comes first: the numbers below miss it.
    warnings: [...(workload.warnings ?? [])],
  };
}
