import type { ComputeDtype, Link } from '../hardware/catalog';
import { globMatch } from '../glob';
import { InputError } from '../errors';
import { parseLayerRange, type Fix, type Plan } from '../plan/plan';
import { parseFormat } from '../quant/formats';
import { allGatherSeconds, allReduceSeconds, p2pSeconds, type GroupTopology } from './comm';
import { gemmFlops, gemmSeconds, memorySeconds, peakFlops } from './compute';
import { simulateBounded, type StageTimes } from './schedule';
import { blockPosition, type CostLayer, type LayerWork, type WorkContext, type Workload } from './workload';
import { usesDevices } from './inference-devices';
import { estimateInference, onDevices, withDevices } from './inference';
import type { CostReport, MemoryBreakdown, StageReport } from './report';
import { overCapacity, parametersPerGpu, rangeText, resolve } from './resolve';

export type { CommReport, CostReport, MemoryBreakdown, StageReport } from './report';
export { rangeText } from './resolve';

/** Checks a plan against its model: degrees that must divide heads / hidden, stage coverage. Returns [path, message] pairs. */
export function modelChecks(plan: Plan, workload: Workload): [(string | number)[], string][] {
  const out: [(string | number)[], string][] = [];
  const par = plan.parallel ?? {};
  const tp = par.tensor ?? 1;
  const pp = par.pipeline ?? 1;
  const a = workload.arch;
  if (a && tp > 1) {
    if (a.heads % tp !== 0) {
      out.push([['parallel', 'tensor'], `parallel.tensor: ${tp} does not divide the attention heads (${a.heads})`]);
    } else if (a.kvHeads % tp !== 0 && tp % a.kvHeads !== 0) {
      out.push([['parallel', 'tensor'], `parallel.tensor: ${tp} does not divide the key/value heads (${a.kvHeads})`]);
    }
    if (a.hidden % tp !== 0) {
      out.push([['parallel', 'tensor'], `parallel.tensor: ${tp} does not divide hidden (${a.hidden})`]);
    }
    if (a.ffn % tp !== 0) {
      out.push([['parallel', 'tensor'], `parallel.tensor: ${tp} does not divide the MLP width (${a.ffn})`]);
    }
  }
  const blocks = workload.blockIndices.length;
  const v = par.schedule === 'interleaved' ? Math.max(1, par.virtualStages ?? 2) : 1;
  if (pp * v > blocks) {
    out.push([
      ['parallel', 'pipeline'],
      `parallel.pipeline: ${pp} stages${v > 1 ? ` × ${v} chunks` : ''} for ${blocks} layers leaves stages empty`,
    ]);
  }
  if (plan.stages) {
    const seen = new Map<number, number>();
    plan.stages.forEach((s, i) => {
      for (const l of parseLayerRange(s.layers) ?? []) {
        if (l >= blocks) {
          out.push([
            ['stages', i, 'layers'],
            `stages[${i}].layers: layer ${l} does not exist (the model has ${blocks} layers, 0-${blocks - 1})`,
          ]);
        } else if (seen.has(l)) {
          out.push([
            ['stages', i, 'layers'],
            `stages[${i}].layers: layer ${l} is already assigned to stage ${seen.get(l)}`,
          ]);
        } else seen.set(l, i);
      }
    });
    const missing = [...Array(blocks).keys()].filter((l) => !seen.has(l));
    if (missing.length) out.push([['stages'], `stages: layers ${rangeText(missing)} are not assigned to any stage`]);
  }
  return out;
}

/** The quick fix for stage problems: the blocks split into `parallel.pipeline` contiguous stages of even parameter counts. */
export function rebalanceFix(plan: Plan, workload: Workload): Fix | undefined {
  const parts = plan.parallel?.pipeline ?? 1;
  const weights = workload.blockIndices.map((i) => Math.max(1, workload.layers[i].parameters));
  if (parts < 1 || parts > weights.length) return undefined;
  const stages = balancedSplit(weights, parts).map(([a, b]) => ({
    layers: rangeText(Array.from({ length: b - a }, (_, i) => a + i)),
  }));
  return {
    title: `Rebalance stages evenly (${stages.map((s) => s.layers).join(' | ')})`,
    edits: [{ path: ['stages'], value: stages }],
  };
}

/**
 * Splits `weights` into `parts` contiguous groups minimizing the heaviest group (binary search on
 * the bound with a greedy fill). Returns each group's [from, to) indices.
 */
export function balancedSplit(weights: number[], parts: number): [number, number][] {
  const fits = (bound: number) => {
    let groups = 1;
    let sum = 0;
    for (const w of weights) {
      if (w > bound) return false;
      if (sum + w > bound) {
        groups++;
        sum = 0;
      }
      sum += w;
    }
    return groups <= parts;
  };
  let lo = Math.max(0, ...weights);
  let hi = weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < 60 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) hi = mid;
    else lo = mid;
  }
  const out: [number, number][] = [];
  let start = 0;
  let sum = 0;
  for (let i = 0; i < weights.length; i++) {
    // Leave at least one item for each remaining group.
    const remainingGroups = parts - out.length - 1;
    if (i > start && (sum + weights[i] > hi || weights.length - i <= remainingGroups - 0) && out.length < parts - 1) {
      out.push([start, i]);
      start = i;
      sum = 0;
    }
    sum += weights[i];
  }
  out.push([start, weights.length]);
  while (out.length < parts) out.push([weights.length, weights.length]);
  return out;
}

/** Which layers each (stage, chunk) runs: embedding on the first, head and final norm on the last. */
function assignLayers(plan: Plan, w: Workload, pp: number, v: number, cost?: (layer: number) => number): number[][][] {
  const blocks = w.blockIndices;
  const chunks: number[][][] = Array.from({ length: pp }, () => Array.from({ length: v }, () => []));
  if (plan.stages && v === 1) {
    plan.stages.forEach((s, i) => {
      for (const l of parseLayerRange(s.layers) ?? []) if (l < blocks.length) chunks[i][0].push(blocks[l]);
    });
  } else if (cost && !w.arch) {
    // Graph models: layers differ, so balance the stages by their estimated time.
    const groups = balancedSplit(blocks.map(cost), pp * v);
    groups.forEach(([from, to], k) => {
      for (let i = from; i < to; i++) chunks[k % pp][Math.floor(k / pp)].push(blocks[i]);
    });
  } else {
    const parts = pp * v;
    for (let k = 0; k < parts; k++) {
      const stage = k % pp;
      const chunk = Math.floor(k / pp);
      const from = Math.floor((k * blocks.length) / parts);
      const to = Math.floor(((k + 1) * blocks.length) / parts);
      for (let i = from; i < to; i++) chunks[stage][chunk].push(blocks[i]);
    }
  }
  const inBlocks = new Set(blocks);
  const firstBlock = blocks.length ? blocks[0] : w.layers.length;
  w.layers.forEach((_, i) => {
    if (inBlocks.has(i)) return;
    if (i < firstBlock) chunks[0][0].unshift(i);
    else chunks[pp - 1][v - 1].push(i);
  });
  for (const st of chunks) for (const c of st) c.sort((a, b) => a - b);
  return chunks;
}

function bytesOfDtype(dtype: string): number {
  return dtype === 'fp32' ? 4 : dtype === 'fp8' ? 1 : 2;
}

function computeDtype(dtype: string): ComputeDtype {
  return dtype === 'fp32' ? 'tf32' : dtype === 'fp8' ? 'fp8' : dtype === 'fp16' ? 'fp16' : 'bf16';
}

/** The precision format of a layer: the last matching rule (by layer name or any of its tensors), else the default. */
export function layerFormat(plan: Plan, layer: CostLayer): string | undefined {
  const rules = plan.precision?.rules ?? [];
  let fmt = plan.precision?.default;
  for (const r of rules) {
    if (globMatch(r.match, layer.name) || layer.tensors.some((t) => globMatch(r.match, t))) fmt = r.format;
  }
  return fmt;
}

/** What a caller may leave out or allow: the optimizer estimates thousands of plans and reads no timeline. */
export interface EstimateOptions {
  /**
   * Estimate although the parallel degrees do not use exactly the cluster's GPUs (the diagnostics
   * say so on their own and still show the memory per stage). Off: such a plan is an InputError,
   * so a 32-GPU plan is never estimated as if it ran on a 16-GPU cluster.
   */
  allowGpuCountMismatch?: boolean;
  /** Build the pipeline timeline (the Gantt chart's events); default true. */
  timeline?: boolean;
}

export function estimate(plan: Plan, workload: Workload, file = 'plan', options: EstimateOptions = {}): CostReport {
  if (usesDevices(plan)) return onDevices(plan, workload, file);
  const R = resolve(plan, file);
  const { gpu, tp, pp, dp, v } = R;
  const cp = plan.parallel?.context ?? 1;
  if (!options.allowGpuCountMismatch && !plan.devices && dp * tp * pp * cp !== R.gpusPerNode * R.nodes) {
    throw new InputError(
      file,
      `parallel: data × tensor × pipeline${cp > 1 ? ' × context' : ''} = ${dp * tp * pp * cp} GPUs, but the cluster has ${R.nodes} × ${R.gpusPerNode} = ${R.nodes * R.gpusPerNode}`,
    );
  }
  const training = plan.training;
  const dtype = training?.dtype ?? (plan.inference?.dtype as string | undefined) ?? 'bf16';
  const actBytes = dtype === 'fp32' ? 4 : 2;
  // What the model's reader could not know comes first: the numbers below miss it.
  const warnings: string[] = [...(workload.warnings ?? [])];
  const formatOf = (l: CostLayer) => {
    const f = layerFormat(plan, l);
    return f ? parseFormat(f) : undefined;
  };
  const weightBytes = (l: CostLayer) => {
    const nf = formatOf(l);
    return nf ? nf.bitsPerWeight / 8 : bytesOfDtype(dtype);
  };
  const layerCompute = (l: CostLayer): ComputeDtype => {
    const nf = formatOf(l);
    if (nf?.compute === 'fp8' && gpu.tflops.fp8) return 'fp8';
    if (nf?.compute === 'fp4' && gpu.tflops.fp4) return 'fp4';
    return computeDtype(dtype);
  };

  const gpn = R.gpusPerNode;
  const tpGroup: GroupTopology = { size: tp, perNode: Math.min(tp, gpn), intra: R.intra, inter: R.inter };
  const dpGroup: GroupTopology = {
    size: dp,
    perNode: Math.max(1, Math.min(dp, Math.floor(gpn / tp))),
    intra: R.intra,
    inter: R.inter,
  };
  const nodeOf = (rank: number) => Math.floor(rank / gpn);
  const stageLink = (s: number) => (nodeOf(s * dp * tp) === nodeOf((s + 1) * dp * tp) ? R.intra : R.inter);
  const linkName = (l: Link) => `${l.kind} (${l.bandwidthGBps} GB/s)`;
  const groupLink = (g: GroupTopology) =>
    g.size <= 1
      ? 'none'
      : g.perNode >= g.size
        ? linkName(R.intra)
        : g.perNode <= 1
          ? linkName(R.inter)
          : `${linkName(R.intra)}, then ${linkName(R.inter)}`;
  const crossings = Array.from({ length: Math.max(0, pp - 1) }, (_, s) => stageLink(s) === R.inter).filter(
    Boolean,
  ).length;
  const links = {
    data: groupLink(dpGroup),
    tensor: groupLink(tpGroup),
    pipeline:
      pp <= 1
        ? 'none'
        : crossings === 0
          ? linkName(R.intra)
          : crossings === pp - 1
            ? linkName(R.inter)
            : `${linkName(R.intra)}; ${crossings} of ${pp - 1} stage boundaries on ${linkName(R.inter)}`,
  };

  const gpus = dp * tp * pp;

  if (!training) {
    return withDevices(
      estimateInference(
        plan,
        workload,
        R,
        assignLayers(plan, workload, pp, v),
        weightBytes,
        layerCompute,
        actBytes,
        warnings,
      ),
      plan,
      workload,
      R,
      actBytes,
    );
  }

  const seqLen = training.seqLen ?? (typeof plan.model === 'object' ? plan.model.seqLen : undefined) ?? 2048;
  const b = training.microBatch;
  const m = training.globalBatch / (b * dp);
  const recompute = training.recompute ?? 'none';
  const ctx: WorkContext = {
    microBatch: b,
    seqLen,
    tensor: tp,
    sequenceParallel: R.sp,
    actBytes,
    weightBytes,
    dropout: training.dropout ?? (typeof plan.model === 'object' && plan.model.arch === 'gpt'),
  };
  const works = new Map<number, LayerWork>();
  const workOf = (i: number) => {
    let w = works.get(i);
    if (!w) works.set(i, (w = workload.layers[i].work(ctx)));
    return w;
  };

  const layerSeconds = (i: number) => {
    const w = workOf(i);
    const cd = layerCompute(workload.layers[i]);
    const gemm =
      w.gemms.reduce((x, g) => x + gemmSeconds(g, gpu, cd), 0) +
      w.bulkMatmulFlops / (peakFlops(gpu, cd) * gpu.gemmEfficiency);
    return 3 * (gemm + memorySeconds(w.memoryBytes, w.memoryKernels, gpu));
  };
  const assignment = assignLayers(plan, workload, pp, v, layerSeconds);

  let tpBytesTotal = 0;
  let tpSecondsTotal = 0;
  const times: StageTimes[] = [];
  const stageForward: number[] = [];
  const stageBackward: number[] = [];
  for (let s = 0; s < pp; s++) {
    let fwd = 0;
    let bwd = 0;
    let tpSec = 0;
    let tpBytes = 0;
    for (const chunk of assignment[s]) {
      for (const i of chunk) {
        const w = workOf(i);
        const cd = layerCompute(workload.layers[i]);
        const peak = peakFlops(gpu, cd) * gpu.gemmEfficiency;
        const gemmF = w.gemms.reduce((x, g) => x + gemmSeconds(g, gpu, cd), 0) + w.bulkMatmulFlops / peak;
        const memF = memorySeconds(w.memoryBytes, w.memoryKernels, gpu);
        const ar = w.tpAllReduceBytes.reduce((x, bytes) => x + allReduceSeconds(bytes, tpGroup), 0);
        const arBytes = w.tpAllReduceBytes.reduce((x, y) => x + y, 0);
        const f = gemmF + memF + ar;
        const ag = w.tpBackwardAllGatherBytes.reduce((x, bytes) => x + allGatherSeconds(bytes, tpGroup), 0);
        let back = 2 * gemmF + memorySeconds(2 * w.memoryBytes, 2 * w.memoryKernels, gpu) + ar + ag;
        let passes = 2;
        // Recomputation applies to the repeated layers; embeddings and the output layer keep their activations.
        const recomputed = workload.layers[i].kind === 'block' || workload.layers[i].kind === 'generic';
        if (!recomputed) {
          // nothing to recompute
        } else if (recompute === 'full') {
          back += f;
          passes++;
        } else if (recompute === 'selective') {
          back +=
            w.selectiveGemms.reduce((x, g) => x + gemmSeconds(g, gpu, cd), 0) +
            memorySeconds(w.selectiveMemoryBytes, 2, gpu);
        }
        fwd += f;
        bwd += back;
        tpSec += ar * passes + ag;
        tpBytes += arBytes * passes + w.tpBackwardAllGatherBytes.reduce((x, y) => x + y, 0);
      }
    }
    const fwdPerChunk = fwd / v;
    const bwdPerChunk = bwd / v;
    stageForward.push(fwd);
    stageBackward.push(bwd);
    tpSecondsTotal += tpSec * m;
    tpBytesTotal += tpBytes * m;
    const sendBytes = pipelineSendBytes(workload, assignment[s][v - 1], ctx, workOf);
    const send =
      s < pp - 1 || v > 1
        ? p2pSeconds(sendBytes / (tp > 1 && !R.sp ? tp : 1), stageLink(s)) +
          (tp > 1 && !R.sp ? allGatherSeconds(sendBytes, tpGroup) : 0)
        : 0;
    times.push({ forward: fwdPerChunk, backward: bwdPerChunk, sendNext: send, sendPrev: send });
  }
  const sim = simulateBounded(R.schedule, times, m, v, undefined, { events: options.timeline !== false });
  if (sim.approximation) warnings.push(sim.approximation);

  // Memory per GPU of each stage.
  const gradBytes = dtype === 'fp32' ? 4 : 2;
  const optimizerBytes = training.optimizer === 'sgd' ? (dtype === 'fp32' ? 4 : 8) : dtype === 'fp32' ? 8 : 12;
  const stages: StageReport[] = [];
  let dataBytes = 0;
  let dataSeconds = 0;
  let optimizerSeconds = 0;
  let pipeBytes = 0;
  for (let s = 0; s < pp; s++) {
    const idx = assignment[s].flat();
    let params = 0;
    let weightMem = 0;
    let actPerMicroBatch = 0;
    let worstLayer = 0;
    for (const i of idx) {
      const l = workload.layers[i];
      const perGpu = parametersPerGpu(l, tp);
      params += perGpu;
      weightMem += perGpu * weightBytes(l);
      const a = workOf(i).activations;
      const kind = workload.layers[i].kind;
      actPerMicroBatch += kind === 'block' || kind === 'generic' ? a[recompute] : a.none;
      worstLayer = Math.max(worstLayer, a.none);
    }
    const inFlightChunks = sim.peakInFlight[s];
    let activations = (actPerMicroBatch / v) * inFlightChunks;
    if (recompute === 'full') activations += worstLayer;
    const shard = (level: number) => (R.zero >= level ? dp : 1);
    const memory: MemoryBreakdown = {
      weights: weightMem / shard(3),
      gradients: (params * gradBytes) / shard(2),
      optimizer: (params * optimizerBytes) / shard(1),
      activations,
      total: 0,
    };
    memory.total = memory.weights + memory.gradients + memory.optimizer + memory.activations;
    const capacity = gpu.memoryGB * 1e9;
    if (memory.total > capacity) warnings.push(overCapacity(s, memory.total, capacity, gpu));
    // Data-parallel gradient reduction (all-reduce, or reduce-scatter + all-gather under ZeRO: the same volume).
    const gradVolume = params * gradBytes;
    let dpSec = allReduceSeconds(gradVolume, dpGroup);
    if (R.zero >= 3) dpSec += 2 * m * allGatherSeconds(weightMem, dpGroup);
    dataBytes = Math.max(dataBytes, dp > 1 ? gradVolume : 0);
    const exposed = training.overlapGradReduce ? Math.max(0, dpSec - stageBackward[s] / v) : dpSec;
    dataSeconds = Math.max(dataSeconds, exposed);
    // Optimizer step: streams weights, gradients, master weights and moments (read + write), memory-bound.
    const optParams = params / shard(1);
    optimizerSeconds = Math.max(
      optimizerSeconds,
      memorySeconds(optParams * (gradBytes + 2 * (optimizerBytes + bytesOfDtype(dtype))), 6, gpu),
    );
    pipeBytes += s < pp - 1 || v > 1 ? 2 * m * v * pipelineSendBytes(workload, assignment[s][v - 1], ctx, workOf) : 0;
    stages.push({
      index: s,
      layers: rangeText(idx.map((i) => blockPosition(workload, i)).filter((x) => x >= 0)),
      layerNames: idx.map((i) => workload.layers[i].name),
      parameters: params,
      memory,
      capacity,
      computeSeconds: sim.busy[s],
      commSeconds: sim.comm[s],
      idleSeconds: sim.idle[s],
      forwardSeconds: stageForward[s],
      backwardSeconds: stageBackward[s],
    });
  }
  // Tied word embeddings live on the first and the last stage; their gradients are all-reduced between the two.
  let embeddingSync = 0;
  if (workload.arch?.tied && pp > 1) {
    const e = workload.layers.find((l) => l.kind === 'embedding');
    if (e) {
      embeddingSync = allReduceSeconds((e.shardedParameters / tp) * gradBytes, {
        size: 2,
        perNode: 1,
        intra: R.intra,
        inter: R.inter,
      });
    }
  }
  const iterationSeconds = sim.makespan + dataSeconds + embeddingSync + optimizerSeconds;
  const microBatchesTotal = m * dp;
  let modelFlops = 0;
  let extraFlops = 0;
  workload.layers.forEach((l, i) => {
    const w = workOf(i);
    modelFlops += 3 * w.flops;
    if (l.kind !== 'block' && l.kind !== 'generic') return;
    if (recompute === 'full') extraFlops += w.flops;
    else if (recompute === 'selective') extraFlops += w.selectiveFlops;
  });
  modelFlops *= microBatchesTotal;
  const hardwareFlops = modelFlops + extraFlops * microBatchesTotal;
  const peak = peakFlops(gpu, computeDtype(dtype));
  if (R.sp && tp === 1) warnings.push('parallel.sequenceParallel has no effect without tensor parallelism');
  return {
    mode: 'training',
    iterationSeconds,
    tflopsPerGpu: hardwareFlops / (iterationSeconds * gpus) / 1e12,
    mfu: modelFlops / (iterationSeconds * gpus * peak),
    bubbleFraction: sim.bubbleFraction,
    stages,
    communication: {
      data: { bytes: dataBytes, seconds: dataSeconds, link: links.data },
      tensor: { bytes: tpBytesTotal / pp, seconds: tpSecondsTotal / pp, link: links.tensor },
      pipeline: {
        bytes: pipeBytes / Math.max(1, pp - 1),
        seconds: sim.comm.reduce((a, c) => a + c, 0) / pp,
        link: links.pipeline,
      },
    },
    gpus,
    gpu: gpu.id,
    microBatches: m,
    modelFlops,
    hardwareFlops,
    parameters: workload.layers.reduce((a, l) => a + l.parameters, 0),
    optimizerSeconds,
    timeline: sim.events,
    warnings,
  };
}

/** Bytes one micro-batch's activations take crossing from the end of a stage chunk to the next. */
function pipelineSendBytes(w: Workload, chunk: number[], ctx: WorkContext, workOf: (i: number) => LayerWork): number {
  if (w.arch) return ctx.microBatch * ctx.seqLen * w.arch.hidden * ctx.actBytes;
  const last = chunk[chunk.length - 1];
  return last === undefined ? 0 : workOf(last).activations.full;
}

/** Model FLOPs of one micro-batch forward, for tests and reports. */
export function forwardFlops(w: Workload, ctx: WorkContext): number {
  return w.layers.reduce((a, l) => a + l.work(ctx).flops, 0);
}

export { gemmFlops };
