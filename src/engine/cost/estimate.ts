import type { Plan } from '../plan/plan';
import { allGatherSeconds, allReduceSeconds, p2pSeconds } from './comm';
import { gemmFlops, memorySeconds, peakFlops } from './compute';
import {
  bytesOfDtype,
  computeDtype,
  estimateContext,
  overCapacity,
  parametersPerGpu,
  type EstimateContext,
} from './context';
import { estimateInference } from './inference';
import { forwardTime, trainingLayerTime, type LayerTime, type Recompute } from './layer-time';
import type { CommReport, CostReport, MemoryBreakdown, StageReport } from './report';
import { simulateBounded, type ScheduleResult, type StageTimes } from './schedule';
import { assignLayers, rangeText } from './stages';
import { blockPosition, type LayerWork, type WorkContext, type Workload } from './workload';

export type { CommReport, CostReport, MemoryBreakdown, StageReport } from './report';
export { layerFormat } from './context';
export { balancedSplit, modelChecks, rangeText, rebalanceFix } from './stages';

/**
 * The estimate of a plan: memory per GPU, step time, communication and the pipeline's idle time.
 *
 * Training runs in phases around one context (EstimateContext + TrainingContext) and one per-layer
 * time function (layer-time.ts): assign layers to stages → each stage's forward / backward per
 * micro-batch → the pipeline schedule's event simulation → memory, data-parallel sync and optimizer
 * per stage → FLOPs and utilization. Inference plans go to inference.ts.
 */
export function estimate(plan: Plan, workload: Workload, file = 'plan'): CostReport {
  const ctx = estimateContext(plan, workload, file);
  if (!plan.training) return estimateInference(ctx);
  const run = trainingContext(ctx, plan.training);
  const { pipeline, chunks } = ctx.setup;
  const assignment = assignLayers(plan, workload, pipeline, chunks, (i) => balanceCost(run, i));
  const passes = pipelinePasses(run, assignment);
  const schedule = simulateBounded(ctx.setup.schedule, passes.times, run.microBatches, chunks);
  if (schedule.approximation) ctx.warnings.push(schedule.approximation);
  const perStage = stageReports(run, assignment, passes, schedule);
  const embeddingSync = tiedEmbeddingSync(run);
  const iterationSeconds = schedule.makespan + perStage.dataComm.seconds + embeddingSync + perStage.optimizerSeconds;
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

/** The estimate context of a training plan: the step's shape and each layer's work and time, computed once. */
interface TrainingContext extends EstimateContext {
  training: NonNullable<Plan['training']>;
  seqLen: number;
  microBatch: number;
  /** Micro-batches per pipeline per step (global batch ÷ (micro-batch × data)). */
  microBatches: number;
  recompute: Recompute;
  work: WorkContext;
  workOf: (layer: number) => LayerWork;
  timeOf: (layer: number) => LayerTime;
}

/** Recomputation applies to the repeated layers; embeddings and the output layer keep their activations. */
const isRecomputed = (kind: string) => kind === 'block' || kind === 'generic';

function trainingContext(ctx: EstimateContext, training: NonNullable<Plan['training']>): TrainingContext {
  const { plan, workload, setup } = ctx;
  const seqLen = training.seqLen ?? (typeof plan.model === 'object' ? plan.model.seqLen : undefined) ?? 2048;
  const microBatch = training.microBatch;
  const recompute = training.recompute ?? 'none';
  const work: WorkContext = {
    microBatch,
    seqLen,
    tensor: setup.tensor,
    sequenceParallel: setup.sequenceParallel,
    actBytes: ctx.actBytes,
    weightBytes: ctx.weightBytes,
    dropout: training.dropout ?? (typeof plan.model === 'object' && plan.model.arch === 'gpt'),
  };
  const works = new Map<number, LayerWork>();
  const workOf = (i: number) => {
    let w = works.get(i);
    if (!w) works.set(i, (w = workload.layers[i].work(work)));
    return w;
  };
  const times = new Map<number, LayerTime>();
  const timeOf = (i: number) => {
    let t = times.get(i);
    if (!t) {
      const layer = workload.layers[i];
      t = trainingLayerTime(
        workOf(i),
        ctx.computeDtypeOf(layer),
        setup.gpu,
        ctx.tensorGroup,
        recompute,
        isRecomputed(layer.kind),
      );
      times.set(i, t);
    }
    return t;
  };
  return {
    ...ctx,
    training,
    seqLen,
    microBatch,
    microBatches: training.globalBatch / (microBatch * setup.data),
    recompute,
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
    out.stageForward.push(forward);
    out.stageBackward.push(backward);
    out.tensorComm.seconds += tensorSeconds * run.microBatches;
    out.tensorComm.bytes += tensorBytes * run.microBatches;
    // Without sequence parallelism each tensor rank sends 1/t of the activations and the next stage all-gathers them.
    const sendBytes = pipelineSendBytes(run, assignment[stage][chunks - 1]);
    const scattered = tensor > 1 && !sequenceParallel;
    const send =
      stage < pipeline - 1 || chunks > 1
        ? p2pSeconds(sendBytes / (scattered ? tensor : 1), run.stageLink(stage)) +
          (scattered ? allGatherSeconds(sendBytes, run.tensorGroup) : 0)
        : 0;
    out.times.push({ forward: forward / chunks, backward: backward / chunks, sendNext: send, sendPrev: send });
  }
  return out;
}

/** Bytes one micro-batch's activations take crossing from the end of a stage chunk to the next. */
function pipelineSendBytes(run: TrainingContext, chunk: number[]): number {
  const arch = run.workload.arch;
  if (arch) return run.microBatch * run.seqLen * arch.hidden * run.actBytes;
  const last = chunk[chunk.length - 1];
  return last === undefined ? 0 : run.workOf(last).activations.full;
}

interface StageResults {
  stages: StageReport[];
  /** Exposed data-parallel gradient synchronization (the slowest stage's). */
  dataComm: CommReport;
  optimizerSeconds: number;
  pipelineBytes: number;
}

/** Memory per GPU of each stage, its data-parallel gradient sync and its optimizer step. */
function stageReports(
  run: TrainingContext,
  assignment: number[][][],
  passes: PipelinePasses,
  schedule: ScheduleResult,
): StageResults {
  const { gpu, tensor, pipeline, chunks, data, zero } = run.setup;
  const { dtype, recompute, workload } = run;
  const gradBytes = dtype === 'fp32' ? 4 : 2;
  const optimizerBytes = run.training.optimizer === 'sgd' ? (dtype === 'fp32' ? 4 : 8) : dtype === 'fp32' ? 8 : 12;
  const shard = (level: number) => (zero >= level ? data : 1);
  const out: StageResults = { stages: [], dataComm: { bytes: 0, seconds: 0 }, optimizerSeconds: 0, pipelineBytes: 0 };
  for (let stage = 0; stage < pipeline; stage++) {
    const layers = assignment[stage].flat();
    let parameters = 0;
    let weightBytes = 0;
    let activationsPerMicroBatch = 0;
    let largestLayerActivations = 0;
    for (const i of layers) {
      const layer = workload.layers[i];
      const perGpu = parametersPerGpu(layer, tensor);
      parameters += perGpu;
      weightBytes += perGpu * run.weightBytes(layer);
      const kept = run.workOf(i).activations;
      activationsPerMicroBatch += isRecomputed(layer.kind) ? kept[recompute] : kept.none;
      largestLayerActivations = Math.max(largestLayerActivations, kept.none);
    }
    let activations = (activationsPerMicroBatch / chunks) * schedule.peakInFlight[stage];
    // Full recomputation rebuilds one layer's activations at a time during the backward.
    if (recompute === 'full') activations += largestLayerActivations;
    const memory: MemoryBreakdown = {
      weights: weightBytes / shard(3),
      gradients: (parameters * gradBytes) / shard(2),
      optimizer: (parameters * optimizerBytes) / shard(1),
      activations,
      total: 0,
    };
    memory.total = memory.weights + memory.gradients + memory.optimizer + memory.activations;
    const capacity = gpu.memoryGB * 1e9;
    if (memory.total > capacity) run.warnings.push(overCapacity(stage, memory.total, capacity, gpu));
    // Data-parallel gradient reduction (all-reduce, or reduce-scatter + all-gather under ZeRO: the same volume).
    const gradientVolume = parameters * gradBytes;
    let dataSeconds = allReduceSeconds(gradientVolume, run.dataGroup);
    if (zero >= 3) dataSeconds += 2 * run.microBatches * allGatherSeconds(weightBytes, run.dataGroup);
    out.dataComm.bytes = Math.max(out.dataComm.bytes, data > 1 ? gradientVolume : 0);
    const exposed = run.training.overlapGradReduce
      ? Math.max(0, dataSeconds - passes.stageBackward[stage] / chunks)
      : dataSeconds;
    out.dataComm.seconds = Math.max(out.dataComm.seconds, exposed);
    // Optimizer step: streams weights, gradients, master weights and moments (read + write), memory-bound.
    const optimizerParameters = parameters / shard(1);
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

/** Tied word embeddings live on the first and the last stage; their gradients are all-reduced between the two. */
function tiedEmbeddingSync(run: TrainingContext): number {
  if (!run.workload.arch?.tied || run.setup.pipeline <= 1) return 0;
  const embedding = run.workload.layers.find((l) => l.kind === 'embedding');
  if (!embedding) return 0;
  const gradBytes = run.dtype === 'fp32' ? 4 : 2;
  return allReduceSeconds((embedding.shardedParameters / run.setup.tensor) * gradBytes, {
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
