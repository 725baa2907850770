/**
 * Inference estimates: the homogeneous cluster's prefill and decode per pipeline stage
 * (estimateInference), its per-device view (DESIGN.md), and plans on their own devices under a
 * runtime's rules (inference-plan.ts) as a CostReport.
 */
import { parseLayerRange, type Plan } from '../plan/plan';
import { allReduceSeconds, p2pSeconds } from './comm';
import { memorySeconds, peakFlops } from './compute';
import type { EstimateContext } from './context';
import type { InferenceDevice } from './inference-devices';
import { estimateDevices } from './inference-plan';
import { forwardTime } from './layer-time';
import type { CostReport, MemoryBreakdown, StageReport } from './report';
import { overCapacity, parametersPerGpu, rangeText } from './resolve';
import { assignLayers } from './stages';
import { blockPosition, type WorkContext, type Workload } from './workload';

/** An inference plan: prefill of the prompt, then decoding token by token, per pipeline stage. */
export function estimateInference(ctx: EstimateContext): CostReport {
  const { plan, workload, weightBytes, actBytes, warnings, tensorGroup } = ctx;
  const inf = plan.inference!;
  const { gpu, tensor: tp, pipeline: pp, data: dp, chunks: v } = ctx.setup;
  const assignment = assignLayers(plan, workload, pp, v);
  const batch = Math.ceil(inf.batch / dp);
  const ctxPrefill: WorkContext = {
    microBatch: batch,
    seqLen: inf.promptLen,
    tensor: tp,
    sequenceParallel: ctx.setup.sequenceParallel,
    actBytes,
    weightBytes,
    dropout: false,
  };
  const a = workload.arch;
  const stages: StageReport[] = [];
  let prefill = 0;
  let decode = 0;
  let kvTotal = 0;
  let tpBytes = 0;
  let tpSeconds = 0;
  let modelFlops = 0;
  for (let s = 0; s < pp; s++) {
    const idx = assignment[s].flat();
    let params = 0;
    let weightMem = 0;
    let kv = 0;
    let stagePrefill = 0;
    let stageDecode = 0;
    let act = 0;
    for (const i of idx) {
      const l = workload.layers[i];
      const perGpu = parametersPerGpu(l, tp);
      params += perGpu;
      const wb = perGpu * weightBytes(l);
      weightMem += wb;
      const w = l.work(ctxPrefill);
      const fwd = forwardTime(w, ctx.computeDtypeOf(l), gpu, tensorGroup);
      const ar = fwd.tensorComm;
      stagePrefill += fwd.gemm + fwd.memory + ar;
      act = Math.max(act, w.activations.none);
      modelFlops += w.flops;
      if (l.kind === 'block' && a) {
        const ctxLen = inf.promptLen + inf.genLen;
        const kvBytes = (2 * batch * ctxLen * a.kvHeads * a.headDim * actBytes) / Math.min(tp, a.kvHeads);
        kv += kvBytes;
        const avgKv = (kvBytes * (inf.promptLen + inf.genLen / 2)) / ctxLen;
        const decodeAr = tp > 1 ? 2 * allReduceSeconds(batch * a.hidden * actBytes, tensorGroup) : 0;
        stageDecode += memorySeconds(wb + avgKv, 10, gpu) + decodeAr;
        tpBytes += tp > 1 ? 2 * batch * a.hidden * actBytes * inf.genLen : 0;
        tpSeconds += decodeAr * inf.genLen;
      } else stageDecode += memorySeconds(wb, 2, gpu);
      tpSeconds += ar;
    }
    const memory: MemoryBreakdown = {
      weights: weightMem,
      gradients: 0,
      optimizer: 0,
      activations: kv + act,
      total: weightMem + kv + act,
    };
    const capacity = gpu.memoryGB * 1e9;
    if (memory.total > capacity) warnings.push(overCapacity(s, memory.total, capacity, gpu));
    const send = s < pp - 1 ? p2pSeconds(batch * (a?.hidden ?? 1) * actBytes, ctx.setup.intra) : 0;
    prefill +=
      stagePrefill +
      (s < pp - 1 ? p2pSeconds(batch * inf.promptLen * (a?.hidden ?? 1) * actBytes, ctx.setup.intra) : 0);
    decode += stageDecode + send;
    kvTotal += kv;
    stages.push({
      index: s,
      layers: rangeText(idx.map((i) => blockPosition(workload, i)).filter((x) => x >= 0)),
      layerNames: idx.map((i) => workload.layers[i].name),
      parameters: params,
      memory,
      capacity,
      computeSeconds: stagePrefill + stageDecode * inf.genLen,
      commSeconds: send * inf.genLen,
      idleSeconds: 0,
      forwardSeconds: stagePrefill,
      backwardSeconds: 0,
    });
  }
  const total = prefill + decode * inf.genLen;
  const gpus = dp * tp * pp;
  const decodeFlops = (modelFlops / (inf.promptLen || 1)) * inf.genLen;
  const allFlops = (modelFlops + decodeFlops) * dp;
  return {
    mode: 'inference',
    iterationSeconds: total,
    tflopsPerGpu: allFlops / (total * gpus) / 1e12,
    mfu: allFlops / (total * gpus * peakFlops(gpu, 'bf16')),
    bubbleFraction: pp > 1 ? 1 - 1 / pp : 0,
    stages,
    communication: {
      data: { bytes: 0, seconds: 0 },
      tensor: { bytes: tpBytes, seconds: tpSeconds },
      pipeline: { bytes: 0, seconds: 0 },
    },
    gpus,
    gpu: gpu.id,
    microBatches: 1,
    modelFlops: allFlops,
    hardwareFlops: allFlops,
    parameters: workload.layers.reduce((x, l) => x + l.parameters, 0),
    optimizerSeconds: 0,
    timeline: [],
    warnings,
    inference: {
      prefillSeconds: prefill,
      decodeSecondsPerToken: decode,
      tokensPerSecond: (inf.batch * inf.genLen) / total,
      kvCacheBytes: kvTotal,
    },
  };
}

/**
 * DESIGN.md's per-device view of a homogeneous inference plan: each GPU of a pipeline stage (one data-
 * parallel replica) with its weights, KV cache and the rest of its activations.
 */
export function withDevices(r: CostReport, ctx: EstimateContext): CostReport {
  const { plan, workload, actBytes, setup } = ctx;
  const inf = plan.inference!;
  const a = workload.arch;
  const batch = Math.ceil(inf.batch / setup.data);
  const kvPerBlock = a
    ? (2 * batch * (inf.promptLen + inf.genLen) * a.kvHeads * a.headDim * actBytes) / Math.min(setup.tensor, a.kvHeads)
    : 0;
  const devices: InferenceDevice[] = [];
  for (const st of r.stages) {
    const blocks = parseLayerRange(st.layers) ?? [];
    const kv = kvPerBlock * blocks.length;
    for (let t = 0; t < setup.tensor; t++) {
      const i = devices.length;
      const memory = {
        weights: st.memory.weights,
        kvCache: kv,
        compute: st.memory.activations - kv,
        total: st.memory.total,
      };
      devices.push({
        name: `${i}:${setup.gpu.id}`,
        index: i,
        kind: 'gpu',
        memory,
        capacity: st.capacity,
        layers: st.layers,
        layerList: blocks,
        output: st.index === r.stages.length - 1,
        prefillSeconds: st.forwardSeconds,
        decodeSeconds: (st.computeSeconds - st.forwardSeconds) / Math.max(1, inf.genLen),
      });
    }
  }
  return {
    ...r,
    prefillSeconds: r.inference!.prefillSeconds,
    decodeTokensPerSecond: r.inference!.tokensPerSecond,
    devices,
  };
}

/** An inference plan on its devices, under its runtime's rules (inference-plan.ts), as a CostReport. */
export function onDevices(plan: Plan, workload: Workload, file: string): CostReport {
  const inf = plan.inference!;
  const rep = estimateDevices(plan, { gguf: workload.gguf, spec: workload.arch }, file);
  const { devices, prefillSeconds, decodeTokensPerSecond, ...runtime } = rep;
  const total = prefillSeconds + inf.genLen * rep.decodeStepSeconds;
  const parameters = workload.layers.reduce((x, l) => x + l.parameters, 0);
  const flops = 2 * parameters * inf.batch * (inf.promptLen + inf.genLen);
  const stages: StageReport[] = devices.map((d) => ({
    index: d.index,
    layers: d.layers,
    layerNames: d.layerList.map((i) => workload.layers[workload.blockIndices[i]]?.name ?? `layers.${i}`),
    parameters: 0,
    memory: {
      weights: d.memory.weights,
      gradients: 0,
      optimizer: 0,
      activations: d.memory.kvCache + d.memory.compute,
      total: d.memory.total,
    },
    capacity: d.capacity ?? d.memory.total,
    computeSeconds: d.prefillSeconds + inf.genLen * d.decodeSeconds,
    commSeconds: 0,
    idleSeconds: 0,
    forwardSeconds: d.prefillSeconds,
    backwardSeconds: 0,
  }));
  return {
    mode: 'inference',
    iterationSeconds: total,
    tflopsPerGpu: flops / Math.max(total, 1e-12) / Math.max(1, devices.length) / 1e12,
    mfu: 0,
    bubbleFraction: 0,
    stages,
    communication: {
      data: { bytes: 0, seconds: 0 },
      tensor: { bytes: 0, seconds: 0 },
      pipeline: { bytes: 0, seconds: 0 },
    },
    gpus: devices.filter((d) => d.index >= 0).length,
    gpu: devices.map((d) => d.name.replace(/^\d+:/, '')).join(' + '),
    microBatches: 1,
    modelFlops: flops,
    hardwareFlops: flops,
    parameters,
    optimizerSeconds: 0,
    timeline: [],
    warnings: rep.problems.map((p) => p.message),
    inference: {
      prefillSeconds,
      decodeSecondsPerToken: rep.decodeStepSeconds,
      tokensPerSecond: (inf.batch * inf.genLen) / total,
      kvCacheBytes: devices.reduce((x, d) => x + d.memory.kvCache, 0),
    },
    prefillSeconds,
    decodeTokensPerSecond,
    devices,
    runtime,
  };
}
