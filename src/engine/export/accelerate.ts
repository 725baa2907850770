/**
 * `layerplan export <plan> --to accelerate`: a Python snippet that loads the model with transformers'
 * from_pretrained and accelerate's device_map + max_memory, as the plan places it (the layers of its
 * stages where it names devices, else accelerate's own infer_auto_device_map result). Keyword names,
 * device keys and size strings as accelerate v1.14.0 takes them (test/fixtures/runtimes/accelerate-v1.14.0.json).
 */
import { accelerateReport, ACCELERATE_VERSION, type AccelerateDevice } from '../cost/accelerate';
import { planDevices } from '../cost/inference-devices';
import type { Plan } from '../plan/plan';
import type { ExportContext, ExportResult, ExportTarget } from './target';

const key = (d: AccelerateDevice) => (typeof d === 'number' ? String(d) : JSON.stringify(d));

/** A size as accelerate's convert_file_size_to_int reads it: whole GiB, else MiB. */
export function sizeString(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return Number.isInteger(gib) ? `${gib}GiB` : `${Math.floor(bytes / 2 ** 20)}MiB`;
}

export const accelerateTarget: ExportTarget = {
  name: 'accelerate',
  description: "transformers from_pretrained with accelerate's device_map and max_memory",
  kind: 'inference',
  export(plan: Plan, context: ExportContext): ExportResult {
    const p: Plan = { ...plan, inference: { ...plan.inference!, runtime: 'accelerate' } };
    const r = accelerateReport(
      p,
      { gguf: context.workload.gguf, spec: context.workload.arch },
      planDevices(p, context.planFile),
      context.planFile,
    );
    const { deviceMap, maxMemory, explicit } = r.accelerate;
    const model = context.modelPath
      ? context.modelPath.replace(/\/(config\.json|model\.safetensors(\.index\.json)?)$/i, '')
      : '<hugging-face-model-id>';
    const dtype = { fp16: 'float16', fp32: 'float32' }[p.precision?.default ?? ''] ?? 'bfloat16';
    const disk = Object.values(deviceMap).includes('disk');
    const lines = [
      '# Load the model as the plan places it (transformers + accelerate).',
      'import torch',
      'from transformers import AutoModelForCausalLM',
      '',
      'device_map = {',
      ...Object.entries(deviceMap).map(([m, d]) => `    ${JSON.stringify(m)}: ${key(d)},`),
      '}',
      ...(explicit
        ? []
        : [
            '# What infer_auto_device_map was given (get_balanced_memory for device_map="auto").',
            'max_memory = {',
            ...[...maxMemory.entries()].map(([d, b]) => `    ${key(d)}: ${JSON.stringify(sizeString(b))},`),
            '}',
          ]),
      '',
      'model = AutoModelForCausalLM.from_pretrained(',
      `    ${JSON.stringify(model)},`,
      `    dtype=torch.${dtype},`,
      '    device_map=device_map,',
      ...(explicit ? [] : ['    max_memory=max_memory,']),
      ...(disk ? ['    offload_folder="offload",'] : []),
      ')',
      '',
    ];
    const notes = [
      'dtype= is transformers v5 spelling; older releases take torch_dtype= (still accepted)',
      ...r.notes,
      ...r.problems.map((x) => x.message),
    ];
    if (!context.modelPath) {
      notes.unshift(
        'the plan describes an architecture, not a checkpoint: put the model id or folder in place of <hugging-face-model-id>',
      );
    }
    return {
      to: 'accelerate',
      version: ACCELERATE_VERSION,
      command: 'python load_model.py',
      files: { 'load_model.py': lines.join('\n') },
      notes,
    };
  },
};
