import { InputError } from '../errors';
import type { ComputeDtype } from '../hardware/catalog';
import type { Plan } from '../plan/plan';
import { allGatherSeconds, allReduceSeconds, p2pSeconds, reduceScatterSeconds } from './comm';
import { gemmFlops, memorySeconds, peakFlops } from './compute';
import { bytesOfDtype, computeDtype, estimateContext, layerFormat, type EstimateContext } from './context';
import { estimateInference, onDevices, withDevices } from './inference';
import { usesDevices } from './inference-devices';
import {
  forwardTime,
  trainingLayerTime,
  type KernelModel,
  type LayerGroups,
  type LayerTime,
  type Recompute,
} from './layer-time';
import { runSettings, type ProfileOverrides, type RunSettings } from './profiles';
import type { CommReport, CostReport, MemoryBreakdown, StageReport } from './report';
import { overCapacity, parametersPerGpu } from './resolve';
import { simulateBounded, type ScheduleResult, type StageTimes } from './schedule';
import { assignLayers, rangeText } from './stages';
import { blockPosition, type CostLayer, type LayerWork, type WorkContext, type Workload } from './workload';

export type { CommReport, CostReport, MemoryBreakdown, StageReport } from './report';
export { layerFormat } from './context';
export { balancedSplit, modelChecks, rangeText, rebalanceFix } from './stages';

/**
 * The estimate of a plan: memory per GPU, step time, communication and the pipeline's idle time.
 *
 * Training runs in phases around one context (EstimateContext + TrainingContext) and one per-layer
 * time function (layer-time.ts): assign layers to stages → each stage's forward / backward per
 * micro-batch (with FSDP's per-micro-batch gathers) → the pipeline schedule's event simulation →
 * memory, data-parallel sync and optimizer per stage → FLOPs and utilization. Inference plans go
 * to inference.ts.
 */
/** What a caller may change of an estimate's work or allow: the optimizer estimates thousands of plans and reads no timeline. */
export interface EstimateOptions {
  /**
   * Estimate although the parallel degrees do not use exactly the cluster's GPUs (the diagnostics
   * say so on their own and still show the memory per stage). Off: such a plan is an InputError,
   * so a 32-GPU plan is never estimated as if it ran on a 16-GPU cluster.
   */
  allowGpuCountMismatch?: boolean;
  /** Build the pipeline timeline (the Gantt chart's events); default true. */
  timeline?: boolean;
  /** Calibration (npm run calibrate) tries profile constants other than the fitted ones. */
  overrides?: ProfileOverrides;
}

export function estimate(plan: Plan, workload: Workload, file = 'plan', options: EstimateOptions = {}): CostReport {
  if (usesDevices(plan)) return onDevices(plan, workload, file);
  const ctx = estimateContext(plan, workload, file);
  const { data, tensor, pipeline, context, nodes, gpusPerNode } = ctx.setup;
  if (!options.allowGpuCountMismatch && !plan.devices && ctx.gpus !== nodes * gpusPerNode) {
    throw new InputError(
      file,
      `parallel: data × tensor × pipeline${context > 1 ? ' × context' : ''} = ${data * tensor * pipeline * context} GPUs, but the cluster has ${nodes} × ${gpusPerNode} = ${nodes * gpusPerNode}`,
    );
  }
  if (!plan.training) return withDevices(estimateInference(ctx), ctx);
  const run = trainingContext(ctx, plan.training, options.overrides);
  const { chunks } = ctx.setup;
  const assignment = assignLayers(
    plan,
    workload,
    pipeline,
    chunks,
    (i) => balanceCost(run, i),
    run.settings.profile.balanceEdges,
  );
  const passes = pipelinePasses(run, assignment);
  const schedule = simulateBounded(ctx.setup.schedule, passes.times, run.microBatches, chunks, undefined, {
    events: options.timeline !== false,
  });
  if (schedule.approximation) ctx.warnings.push(schedule.approximation);
  const perStage = stageReports(run, assignment, passes, schedule);
  const embeddingSync = tiedEmbeddingSync(run);
  const iterationSeconds = perStage.stepEnd + embeddingSync + perStage.optimizerSeconds + perStage.paramGatherSeconds;
  const flops = iterationFlops(run);
  const peak = peakFlops(ctx.setup.gpu, computeDtype(ctx.dtype));
  if (ctx.setup.sequenceParallel && ctx.setup.tensor === 1) {
    ctx.warnings.push('parallel.sequenceParallel has no effect without tensor parallelism');
  }
  return {
    mode: 'training',
    iterationSeconds,
    tflopsPerGpu: flops.hardwareFlops / (iterationSeconds * ctx.gpus) / 1e12,
    mfu: flops.modelFlops / (iterationSeconds * ctx.gpus * peak),
    hfu: flops.hardwareFlops / (iterationSeconds * ctx.gpus * peak),
    modelTflopsPerGpu: flops.modelFlops / (iterationSeconds * ctx.gpus) / 1e12,
    peakTflops: peak / 1e12,
    framework: run.settings.profile.id,
    bubbleFraction: schedule.bubbleFraction,
    stages: perStage.stages,
    communication: {
      data: { ...perStage.dataComm, link: ctx.links.data },
      tensor: {
        bytes: passes.tensorComm.bytes / pipeline,
        seconds: passes.tensorComm.seconds / pipeline,
        link: ctx.links.tensor,
      },
      pipeline: {
        bytes: perStage.pipelineBytes / Math.max(1, pipeline - 1),
        seconds: schedule.comm.reduce((a, c) => a + c, 0) / pipeline,
        link: ctx.links.pipeline,
      },
    },
    gpus: ctx.gpus,
    gpu: ctx.setup.gpu.id,
    microBatches: run.microBatches,
    modelFlops: flops.modelFlops,
    hardwareFlops: flops.hardwareFlops,
    parameters: workload.layers.reduce((a, l) => a + l.parameters, 0),
    optimizerSeconds: perStage.optimizerSeconds,
    timeline: schedule.events,
    warnings: ctx.warnings,
  };
}

/** The estimate context of a training plan: the step's shape, its software, each layer's work and time. */
interface TrainingContext extends EstimateContext {
  training: NonNullable<Plan['training']>;
  settings: RunSettings;
  kernels: KernelModel;
  groups: LayerGroups;
  seqLen: number;
  microBatch: number;
  /** Micro-batches per pipeline per step (global batch ÷ (micro-batch × data)). */
  microBatches: number;
  recompute: Recompute;
  /** Bytes per gradient element kept and reduced (fp32 main gradients in Megatron and FSDP). */
  gradientBytes: number;
  work: WorkContext;
  workOf: (layer: number) => LayerWork;
  timeOf: (layer: number) => LayerTime;
}

/** Recomputation applies to the repeated layers; embeddings and the output layer keep their activations. */
const isRecomputed = (kind: string) => kind === 'block' || kind === 'generic';

function activationDtype(dtype: string): ComputeDtype {
  return dtype === 'fp32' ? 'tf32' : dtype === 'fp16' ? 'fp16' : 'bf16';
}

function trainingContext(
  ctx: EstimateContext,
  training: NonNullable<Plan['training']>,
  overrides?: ProfileOverrides,
): TrainingContext {
  const { plan, workload, setup } = ctx;
  const settings = runSettings(plan, overrides);
  const seqLen = training.seqLen ?? (typeof plan.model === 'object' ? plan.model.seqLen : undefined) ?? 2048;
  const microBatch = training.microBatch;
  const recompute = training.recompute ?? 'none';
  const fp8 = ctx.dtype === 'fp8' ? (training.fp8Recipe ?? 'delayed') : undefined;
  const work: WorkContext = {
    microBatch,
    seqLen,
    tensor: setup.tensor,
    sequenceParallel: setup.sequenceParallel,
    actBytes: ctx.actBytes,
    weightBytes: ctx.weightBytes,
    dropout: training.dropout ?? (typeof plan.model === 'object' && plan.model.arch === 'gpt'),
    context: setup.context,
    expert: setup.expert,
    expertTensor: setup.expertTensor,
    attention: settings.profile.attention,
    ...(fp8 ? { fp8 } : {}),
  };
  const kernels: KernelModel = {
    gemmSustained: settings.profile.gemmSustained,
    attention: settings.profile.attention,
    activationDtype: activationDtype(ctx.dtype),
    tpCommOverlap: settings.tpCommOverlap,
    contextParallel: settings.profile.contextParallel,
  };
  const groups: LayerGroups = { tensor: ctx.tensorGroup, context: ctx.contextGroup, expert: ctx.expertGroup };
  // Per layer, computed once; layers that share `sameWorkAs` and the same weight bytes share one figure (the
  // 100,000 blocks of a huge architecture cost one computation, not 100,000).
  const sharedKey = (layer: CostLayer) =>
    layer.sameWorkAs === undefined ? undefined : `${layer.sameWorkAs}:${work.weightBytes(layer)}`;
  const works = new Map<number, LayerWork>();
  const sharedWorks = new Map<string, LayerWork>();
  const workOf = (i: number) => {
    let w = works.get(i);
    if (!w) {
      const layer = workload.layers[i];
      const key = sharedKey(layer);
      w = key === undefined ? undefined : sharedWorks.get(key);
      if (!w) {
        w = layer.work(work);
        if (key !== undefined) sharedWorks.set(key, w);
      }
      works.set(i, w);
    }
    return w;
  };
  const times = new Map<number, LayerTime>();
  const sharedTimes = new Map<string, LayerTime>();
  const timeOf = (i: number) => {
    let t = times.get(i);
    if (!t) {
      const layer = workload.layers[i];
      const shared = sharedKey(layer);
      const key =
        shared === undefined ? undefined : `${shared}:${ctx.computeDtypeOf(layer)}:${isRecomputed(layer.kind)}`;
      t = key === undefined ? undefined : sharedTimes.get(key);
      if (t) {
        times.set(i, t);
        return t;
      }
      t = trainingLayerTime(
        workOf(i),
        ctx.computeDtypeOf(layer),
        setup.gpu,
        groups,
        kernels,
        recompute,
        isRecomputed(layer.kind),
      );
      times.set(i, t);
      if (key !== undefined) sharedTimes.set(key, t);
    }
    return t;
  };
  return {
    ...ctx,
    training,
    settings,
    kernels,
    groups,
    seqLen,
    microBatch,
    microBatches: training.globalBatch / (microBatch * setup.data),
    recompute,
    gradientBytes: settings.profile.gradientBytes(ctx.dtype),
    work,
    workOf,
    timeOf,
  };
}

/** What balancing graph models' stages weighs: a layer's compute (forward and backward, no communication). */
function balanceCost(run: TrainingContext, i: number): number {
  const fwd = forwardTime(run.workOf(i), run.computeDtypeOf(run.workload.layers[i]), run.setup.gpu, run.tensorGroup);
  return 3 * (fwd.gemm + fwd.memory);
}

/** Bytes per element of the weights a step keeps and gathers: fp8 training keeps bf16 weights (Transformer Engine). */
function keptWeightBytes(run: TrainingContext, layer: CostLayer): number {
  if (run.dtype === 'fp8' && layerFormat(run.plan, layer) === undefined) return 2;
  return run.weightBytes(layer);
}

/** A stage's weights on one GPU: dense and expert elements (they sync over different groups), and bytes. */
interface StageWeights {
  dense: number;
  experts: number;
  bytes: number;
  /** The largest layer's bytes (FSDP holds it gathered while it runs). */
  largestLayerBytes: number;
}

function stageWeights(run: TrainingContext, layers: number[]): StageWeights {
  const { tensor, expert, expertTensor } = run.setup;
  const out: StageWeights = { dense: 0, experts: 0, bytes: 0, largestLayerBytes: 0 };
  for (const i of layers) {
    const layer = run.workload.layers[i];
    const perGpu = parametersPerGpu(layer, tensor, expert, expertTensor);
    const expertPart = (layer.expertParameters ?? 0) / (expertTensor * Math.max(1, expert));
    out.experts += expertPart;
    out.dense += perGpu - expertPart;
    const bytes = perGpu * keptWeightBytes(run, layer);
    out.bytes += bytes;
    out.largestLayerBytes = Math.max(out.largestLayerBytes, bytes);
  }
  return out;
}

/** FSDP / ZeRO-3: per micro-batch, weights are all-gathered for the forward and again for the backward, and gradients reduce-scattered. */
function shardedWeightTraffic(run: TrainingContext, weights: StageWeights): { forward: number; backward: number } {
  if (run.settings.zero < 3 || run.setup.data * run.setup.context <= 1) return { forward: 0, backward: 0 };
  const elementBytes = weights.bytes / Math.max(1, weights.dense + weights.experts);
  const gather = (dense: number, experts: number) =>
    allGatherSeconds(dense * elementBytes, run.dataGroup) +
    allGatherSeconds(experts * elementBytes, run.expertDataGroup);
  const reduce =
    reduceScatterSeconds(weights.dense * run.gradientBytes, run.dataGroup) +
    reduceScatterSeconds(weights.experts * run.gradientBytes, run.expertDataGroup);
  const allGather = gather(weights.dense, weights.experts);
  return { forward: allGather, backward: allGather + reduce };
}

interface PipelinePasses {
  /** Per stage: one micro-batch through one chunk, and the sends between stages (the simulator's input). */
  times: StageTimes[];
  /** Per stage: forward and backward of one micro-batch through all its chunks. */
  stageForward: number[];
  stageBackward: number[];
  /** Tensor-parallel traffic of the whole step, summed over stages. */
  tensorComm: { bytes: number; seconds: number };
}

function pipelinePasses(run: TrainingContext, assignment: number[][][]): PipelinePasses {
  const { tensor, pipeline, chunks, sequenceParallel } = run.setup;
  const out: PipelinePasses = { times: [], stageForward: [], stageBackward: [], tensorComm: { bytes: 0, seconds: 0 } };
  for (let stage = 0; stage < pipeline; stage++) {
    let forward = 0;
    let backward = 0;
    let tensorSeconds = 0;
    let tensorBytes = 0;
    for (const chunk of assignment[stage]) {
      for (const i of chunk) {
        const t = run.timeOf(i);
        forward += t.forward;
        backward += t.backward;
        tensorSeconds += t.tensorCommSeconds;
        tensorBytes += t.tensorCommBytes;
      }
    }
    // FSDP's gathers and reductions run on their own stream, prefetched under the compute; what the
    // compute of the pass cannot cover (plus the first layer's gather) is exposed.
    const sharded = shardedWeightTraffic(run, stageWeights(run, assignment[stage].flat()));
    const layersInStage = Math.max(1, assignment[stage].flat().length);
    if (sharded.forward > 0) {
      forward += Math.max(sharded.forward / layersInStage, sharded.forward - forward);
      backward += Math.max(sharded.backward / layersInStage, sharded.backward - backward);
    }
    out.stageForward.push(forward);
    out.stageBackward.push(backward);
    out.tensorComm.seconds += tensorSeconds * run.microBatches;
    out.tensorComm.bytes += tensorBytes * run.microBatches;
    // Each tensor rank sends 1/t of the activations: with sequence parallelism they are sharded
    // already; without it Megatron scatters them and the next stage all-gathers them.
    const sendBytes = pipelineSendBytes(run, assignment[stage][chunks - 1]);
    const scattered = tensor > 1 && !sequenceParallel;
    const send =
      stage < pipeline - 1 || chunks > 1
        ? p2pSeconds(sendBytes / tensor, run.stageLink(stage)) +
          (scattered ? allGatherSeconds(sendBytes, run.tensorGroup) : 0)
        : 0;
    out.times.push({ forward: forward / chunks, backward: backward / chunks, sendNext: send, sendPrev: send });
  }
  return out;
}

/** Bytes one micro-batch's activations take crossing from the end of a stage chunk to the next. */
function pipelineSendBytes(run: TrainingContext, chunk: number[]): number {
  const arch = run.workload.arch;
  if (arch) return (run.microBatch * run.seqLen * arch.hidden * run.actBytes) / run.setup.context;
  const last = chunk[chunk.length - 1];
  return last === undefined ? 0 : run.workOf(last).activations.full;
}

interface StageResults {
  stages: StageReport[];
  /** When the last stage finishes its gradient synchronization (the step's end before the optimizer). */
  stepEnd: number;
  /** Exposed data-parallel gradient synchronization (the slowest stage's). */
  dataComm: CommReport;
  optimizerSeconds: number;
  /** Exposed all-gather of the updated weights (distributed optimizer, ZeRO 1–2). */
  paramGatherSeconds: number;
  pipelineBytes: number;
}

/**
 * Each stage's end of its last backward in the simulated schedule (every schedule ends a stage with a
 * backward; the simulator keeps these with or without the timeline's events); where the schedule was
 * extrapolated the step's end stands for all.
 */
function lastBackwardEnds(schedule: ScheduleResult & { approximation?: string }, stages: number): number[] {
  if (schedule.approximation) return new Array<number>(stages).fill(schedule.makespan);
  return schedule.stageEnds;
}

/** Memory per GPU of each stage, its data-parallel gradient sync and its optimizer step. */
function stageReports(
  run: TrainingContext,
  assignment: number[][][],
  passes: PipelinePasses,
  schedule: ScheduleResult,
): StageResults {
  const { gpu, pipeline, chunks, data, context } = run.setup;
  const { dtype, recompute, workload, settings } = run;
  const zero = settings.zero;
  const replicas = data * context;
  const gradBytes = run.gradientBytes;
  const optimizerBytes = optimizerBytesPerParameter(run);
  const shardStates = zero >= 1 || settings.distributedOptimizer;
  const fsdp = zero >= 3;
  const backwardEnds = lastBackwardEnds(schedule, pipeline);
  const out: StageResults = {
    stages: [],
    stepEnd: 0,
    dataComm: { bytes: 0, seconds: 0 },
    optimizerSeconds: 0,
    paramGatherSeconds: 0,
    pipelineBytes: 0,
  };
  for (let stage = 0; stage < pipeline; stage++) {
    const layers = assignment[stage].flat();
    const weights = stageWeights(run, layers);
    const parameters = weights.dense + weights.experts;
    let activationsPerMicroBatch = 0;
    let largestLayerActivations = 0;
    for (const i of layers) {
      const layer = workload.layers[i];
      const kept = run.workOf(i).activations;
      activationsPerMicroBatch += isRecomputed(layer.kind) ? kept[recompute] : kept.none;
      largestLayerActivations = Math.max(largestLayerActivations, kept.none);
    }
    let activations = (activationsPerMicroBatch / chunks) * schedule.peakInFlight[stage];
    // Full recomputation rebuilds one layer's activations at a time during the backward.
    if (recompute === 'full') activations += largestLayerActivations;
    // Sharded copies: weights by ZeRO-3, gradients by ZeRO-2+, optimizer states by ZeRO-1+ or the
    // distributed optimizer. PyTorch FSDP gathers a whole block at a time: it holds the running block
    // and the prefetched next one unsharded (DeepSpeed bounds its live parameters by configuration,
    // and the ZeRO paper counts the sharded states only).
    // With one replica nothing is sharded or gathered (torchtitan applies no FSDP with a shard degree of 1).
    const gatheredBlocks = fsdp && replicas > 1 && settings.profile.gathersBlocks ? 2 * weights.largestLayerBytes : 0;
    const memory: MemoryBreakdown = {
      weights: fsdp ? weights.bytes / replicas + gatheredBlocks : weights.bytes,
      gradients: (parameters * gradBytes) / (zero >= 2 ? replicas : 1),
      optimizer: (parameters * optimizerBytes) / (shardStates ? replicas : 1),
      activations,
      total: 0,
    };
    memory.total = memory.weights + memory.gradients + memory.optimizer + memory.activations;
    const capacity = gpu.memoryGB * 1e9;
    if (memory.total > capacity) run.warnings.push(overCapacity(stage, memory.total, capacity, gpu));

    // Gradient synchronization after the stage's last backward: all-reduce, or reduce-scatter when
    // the optimizer states are sharded (and an all-gather of the updated weights after the step).
    // FSDP reduced its gradients micro-batch by micro-batch inside the passes.
    const dense = weights.dense * gradBytes;
    const experts = weights.experts * gradBytes;
    let gradientSeconds = 0;
    let gatherSeconds = 0;
    if (!fsdp) {
      if (shardStates) {
        gradientSeconds =
          reduceScatterSeconds(dense, run.dataGroup) + reduceScatterSeconds(experts, run.expertDataGroup);
        const elementBytes = weights.bytes / Math.max(1, parameters);
        gatherSeconds =
          allGatherSeconds(weights.dense * elementBytes, run.dataGroup) +
          allGatherSeconds(weights.experts * elementBytes, run.expertDataGroup);
      } else {
        gradientSeconds = allReduceSeconds(dense, run.dataGroup) + allReduceSeconds(experts, run.expertDataGroup);
      }
    }
    out.dataComm.bytes = Math.max(out.dataComm.bytes, replicas > 1 ? parameters * gradBytes : 0);
    // Overlapped: buckets reduce while the last micro-batch's backward still runs.
    const exposed = settings.overlapGradReduce
      ? Math.max(0, gradientSeconds - passes.stageBackward[stage])
      : gradientSeconds;
    out.dataComm.seconds = Math.max(out.dataComm.seconds, exposed);
    out.stepEnd = Math.max(out.stepEnd, backwardEnds[stage] + exposed);
    const exposedGather = settings.overlapParamGather
      ? Math.max(0, gatherSeconds - passes.stageForward[stage])
      : gatherSeconds;
    out.paramGatherSeconds = Math.max(out.paramGatherSeconds, exposedGather);
    // Optimizer step: streams weights, gradients, master weights and moments (read + write), memory-bound.
    const optimizerParameters = parameters / (shardStates ? replicas : 1);
    out.optimizerSeconds = Math.max(
      out.optimizerSeconds,
      memorySeconds(optimizerParameters * (gradBytes + 2 * (optimizerBytes + bytesOfDtype(dtype))), 6, gpu),
    );
    out.pipelineBytes +=
      stage < pipeline - 1 || chunks > 1
        ? 2 * run.microBatches * chunks * pipelineSendBytes(run, assignment[stage][chunks - 1])
        : 0;
    out.stages.push({
      index: stage,
      layers: rangeText(layers.map((i) => blockPosition(workload, i)).filter((x) => x >= 0)),
      layerNames: layers.map((i) => workload.layers[i].name),
      parameters,
      memory,
      capacity,
      computeSeconds: schedule.busy[stage],
      commSeconds: schedule.comm[stage],
      idleSeconds: schedule.idle[stage],
      forwardSeconds: passes.stageForward[stage],
      backwardSeconds: passes.stageBackward[stage],
    });
  }
  return out;
}

/** Bytes of optimizer state per parameter: fp32 master weights (unless training in fp32) and the moments. */
function optimizerBytesPerParameter(run: TrainingContext): number {
  const fp32 = run.dtype === 'fp32';
  return run.training.optimizer === 'sgd' ? (fp32 ? 4 : 8) : fp32 ? 8 : 12;
}

/** Per layer of a training plan, for one micro-batch on one GPU: the figures each stage adds up. */
export interface LayerFigures {
  /** Forward and backward seconds (trainingLayerTime, as pipelinePasses sums them; FSDP's gathers not included). */
  forward: Float64Array;
  backward: Float64Array;
  /** Bytes of weights, gradients and optimizer states, unsharded (ZeRO and the distributed optimizer divide them). */
  weights: Float64Array;
  gradients: Float64Array;
  optimizer: Float64Array;
  /** Activation bytes kept for the backward (with the plan's recomputation), per micro-batch in flight. */
  activations: Float64Array;
}

/**
 * The per-layer phase of a training estimate on its own: what estimate() sums over each stage's layers —
 * forward and backward times, weights, gradients, optimizer states and kept activations — with the same
 * context, kernels and communication groups, without the stage assignment, the schedule or the step's
 * synchronization. The optimizer bounds whole layouts from these (a stage's figures are sums of its layers').
 */
export function trainingLayerFigures(
  plan: Plan,
  workload: Workload,
  file = 'plan',
  options: Pick<EstimateOptions, 'overrides'> = {},
): LayerFigures {
  const ctx = estimateContext(plan, workload, file);
  if (!plan.training) throw new Error('trainingLayerFigures: not a training plan');
  const run = trainingContext(ctx, plan.training, options.overrides);
  const n = workload.layers.length;
  const out: LayerFigures = {
    forward: new Float64Array(n),
    backward: new Float64Array(n),
    weights: new Float64Array(n),
    gradients: new Float64Array(n),
    optimizer: new Float64Array(n),
    activations: new Float64Array(n),
  };
  const optimizerBytes = optimizerBytesPerParameter(run);
  for (let i = 0; i < n; i++) {
    const layer = workload.layers[i];
    const t = run.timeOf(i);
    out.forward[i] = t.forward;
    out.backward[i] = t.backward;
    const w = stageWeights(run, [i]);
    const parameters = w.dense + w.experts;
    out.weights[i] = w.bytes;
    out.gradients[i] = parameters * run.gradientBytes;
    out.optimizer[i] = parameters * optimizerBytes;
    const kept = run.workOf(i).activations;
    out.activations[i] = isRecomputed(layer.kind) ? kept[run.recompute] : kept.none;
  }
  return out;
}

/** Tied word embeddings live on the first and the last stage; their gradients are all-reduced between the two. */
function tiedEmbeddingSync(run: TrainingContext): number {
  if (!run.workload.arch?.tied || run.setup.pipeline <= 1) return 0;
  const embedding = run.workload.layers.find((l) => l.kind === 'embedding');
  if (!embedding) return 0;
  return allReduceSeconds((embedding.shardedParameters / run.setup.tensor) * run.gradientBytes, {
    size: 2,
    perNode: 1,
    intra: run.setup.intra,
    inter: run.setup.inter,
  });
}

/** Model FLOPs of the step (forward and backward, as MFU counts them) and the hardware's (recomputation included). */
function iterationFlops(run: TrainingContext): { modelFlops: number; hardwareFlops: number } {
  const microBatchesTotal = run.microBatches * run.setup.data;
  let modelFlops = 0;
  let recomputedFlops = 0;
  run.workload.layers.forEach((layer, i) => {
    const w = run.workOf(i);
    modelFlops += 3 * w.flops;
    if (!isRecomputed(layer.kind)) return;
    if (run.recompute === 'full') recomputedFlops += w.flops;
    else if (run.recompute === 'selective') recomputedFlops += w.selectiveFlops;
  });
  modelFlops *= microBatchesTotal;
  return { modelFlops, hardwareFlops: modelFlops + recomputedFlops * microBatchesTotal };
}

/** Model FLOPs of one micro-batch forward, for tests and reports. */
export function forwardFlops(w: Workload, ctx: WorkContext): number {
  return w.layers.reduce((a, l) => a + l.work(ctx).flops, 0);
}

export { gemmFlops };
