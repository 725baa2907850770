/**
 * The inference estimate of a plan on its devices, by runtime: llama.cpp (explicit stage devices, else
 * -ngl / --tensor-split, else auto-fit), vLLM, accelerate. An overflowing device gets the auto-fit
 * placement as its quick fix; a model given as a transformer (not a GGUF) also gets the best file type.
 */
import { deviceBytes } from '../hardware/devices';
import type { Fix, Plan } from '../plan/plan';
import { accelerateReport } from './accelerate';
import {
  flashAttentionOf,
  inferenceSettingProblems,
  llamaBuild,
  llamaCppReport,
  llamaModelOf,
  llamaOptions,
  planDevices,
  planFileType,
  runtimeOf,
  stageDevices,
  type InferenceModel,
  type InferenceReport,
  type PlanDevice,
} from './inference-devices';
import { autoFitEdits, autoFitLayers, bestFileType } from './inference-fit';
import { layerDevices } from './llamacpp';
import { vllmReport } from './vllm';

export interface InferencePlanReport extends InferenceReport {
  /** The quick fix for a device over its memory: the auto-fit placement (and a file type that fits, for transformers). */
  fix?: Fix;
  /** Other placements worth offering. */
  suggestions: Fix[];
}

/** GPUs (and Apple chips) with their capacities, in plan order; the Apple chip carries the host's buffers when no CPU is listed. */
function fitTargets(devices: PlanDevice[]): { gpus: { index: number; capacity: number }[]; hostShareOn?: number } {
  const gpus = devices
    .filter((d) => d.spec.kind !== 'cpu')
    .map((d) => ({ index: d.index, capacity: deviceBytes(d.spec), bandwidthGBps: d.spec.bandwidthGBps }));
  const apple = devices.find((d) => d.spec.kind === 'apple');
  const cpu = devices.find((d) => d.spec.kind === 'cpu');
  return { gpus, hostShareOn: apple && !cpu ? apple.index : undefined };
}

export function estimateDevices(plan: Plan, model: InferenceModel, file: string): InferencePlanReport {
  const devices = planDevices(plan, file);
  const runtime = runtimeOf(plan);
  const settings = inferenceSettingProblems(plan);
  if (runtime === 'vllm' || runtime === 'accelerate') {
    const r =
      runtime === 'vllm' ? vllmReport(plan, model, devices, file) : accelerateReport(plan, model, devices, file);
    return { ...r, problems: [...settings, ...r.problems], suggestions: [] };
  }
  const build = llamaBuild(plan);
  const gguf = llamaModelOf(plan, model, build, file);
  const o = llamaOptions(plan, build);
  const { gpus, hostShareOn } = fitTargets(devices);
  const cpuIndex = devices.find((d) => d.spec.kind === 'cpu')?.index ?? -1;
  const nLayer = gguf.nLayer;
  let layerDevice: number[];
  let placement: InferenceReport['placement'];
  const explicit = stageDevices(plan, nLayer);
  if (explicit) {
    const blocks = explicit.map((d) => d ?? cpuIndex);
    layerDevice = [...blocks, blocks[nLayer - 1] ?? -1];
    placement = 'stages';
  } else if (plan.inference?.gpuLayers !== undefined) {
    const split = plan.inference.tensorSplit ?? gpus.map((g) => g.capacity);
    layerDevice = layerDevices(
      nLayer,
      plan.inference.gpuLayers,
      gpus.length ? split.slice(0, gpus.length) : [],
      build,
    ).map((g) => (g < 0 || g >= gpus.length ? -1 : gpus[g].index));
    placement = 'gpuLayers';
  } else {
    layerDevice = autoFitLayers(gguf, gpus, o, { hostShareOn }).layerDevice;
    placement = 'auto-fit';
  }
  const report = llamaCppReport(plan, gguf, devices, layerDevice, placement, build);
  const problems = [...settings, ...report.problems];
  if ((plan.inference?.tensorSplit?.length ?? 0) > gpus.length) {
    problems.push({
      path: ['inference', 'tensorSplit'],
      severity: 'warning',
      message: `inference.tensorSplit: ${plan.inference!.tensorSplit!.length} proportions for ${gpus.length} GPU${gpus.length === 1 ? '' : 's'}; llama.cpp uses the first ${gpus.length}`,
    });
  }
  const suggestions: InferencePlanReport['suggestions'] = [];
  let fix: InferencePlanReport['fix'];
  const overflow = report.problems.some((p) => p.message.startsWith('device '));
  if (gpus.length) {
    const fit = autoFitLayers(gguf, gpus, o, { hostShareOn });
    const differs = fit.layerDevice.some((d, i) => d !== report.layerDevice![i]);
    if (differs || placement !== 'auto-fit') {
      const split = gpus.length > 1 ? `, -ts ${fit.tensorSplit.join(',')}` : '';
      const title = `Auto-fit: -ngl ${fit.gpuLayers}${split} (${fit.allOnGpu ? 'every layer' : `${fit.layerDevice.filter((d) => d >= 0).length} of ${nLayer + 1} layers`} on the GPUs at ${o.nCtx} tokens)`;
      const f = { title, edits: autoFitEdits(plan, fit, gpus.length) };
      if (overflow) fix = f;
      else if (differs) suggestions.push(f);
    }
    if (model.spec && !model.gguf && (overflow || !fit.allOnGpu)) {
      const best = bestFileType(model.spec, gpus, o, { hostShareOn, errorBudgetDb: undefined });
      if (best && best.fileType !== planFileType(plan)) {
        const edits = [
          { path: ['precision', 'default'], value: best.fileType },
          ...autoFitEdits(plan, best.fit, gpus.length),
        ];
        const t = {
          title: `Use ${best.fileType} (${(best.bytes / 2 ** 30).toFixed(2)} GiB): every layer fits on the GPUs`,
          edits,
        };
        if (overflow && !fix) fix = t;
        else suggestions.push(t);
      }
    }
  }
  if (flashAttentionOf(plan, build) && plan.inference?.flashAttention === undefined && build >= 6325) {
    report.notes.push(`flash attention: auto (llama.cpp b${build} turns it on where the backend supports it)`);
  }
  return { ...report, problems, fix, suggestions };
}
