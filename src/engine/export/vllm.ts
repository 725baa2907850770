/**
 * `layerplan export <plan> --to vllm`: the `vllm serve` command for the plan, options as vLLM v0.19.0
 * spells them (vllm/engine/arg_utils.py; test/fixtures/runtimes/vllm-options-v0.19.0.json, which the
 * tests check every flag and value against).
 */
import { estimateDevices } from '../cost/inference-plan';
import { planDevices } from '../cost/inference-devices';
import { VLLM_VERSION } from '../cost/vllm';
import type { Plan } from '../plan/plan';
import { shellWord } from './llamacpp';
import type { ExportContext, ExportResult, ExportTarget } from './target';

/** Plan KV cache names → vLLM's --kv-cache-dtype (v0.19.0 CacheDType). */
const KV: Record<string, string> = {
  f16: 'float16',
  bf16: 'bfloat16',
  fp8: 'fp8',
  fp8_e4m3: 'fp8_e4m3',
  fp8_e5m2: 'fp8_e5m2',
};

/** Plan dtypes → vLLM's --dtype. */
const DTYPE: Record<string, string> = { bf16: 'bfloat16', fp16: 'float16', fp32: 'float32' };

export const vllmTarget: ExportTarget = {
  name: 'vllm',
  description:
    'vllm serve with tensor / pipeline parallel sizes, gpu-memory-utilization, max-model-len and the KV cache dtype',
  kind: 'inference',
  export(plan: Plan, context: ExportContext): ExportResult {
    const p: Plan = { ...plan, inference: { ...plan.inference!, runtime: 'vllm' } };
    const inf = p.inference!;
    const r = estimateDevices(p, { gguf: context.workload.gguf, spec: context.workload.arch }, context.planFile);
    const devices = planDevices(p, context.planFile).filter((d) => d.spec.kind !== 'cpu');
    const tp = p.parallel?.tensor ?? 1;
    const pp = p.parallel?.pipeline ?? 1;
    const notes: string[] = [];
    const model = context.modelPath
      ? context.modelPath.replace(/\/(config\.json|model\.safetensors(\.index\.json)?)$/i, '')
      : '<hugging-face-model-id>';
    if (!context.modelPath) {
      notes.push(
        'the plan describes an architecture, not a checkpoint: put the model id or folder in place of <hugging-face-model-id>',
      );
    }
    if (context.modelPath?.toLowerCase().endsWith('.gguf')) {
      notes.push("vLLM's GGUF support is experimental and needs the original model's tokenizer (--tokenizer)");
    }
    const args = ['vllm', 'serve', model];
    if (tp > 1) args.push('--tensor-parallel-size', String(tp));
    if (pp > 1) args.push('--pipeline-parallel-size', String(pp));
    args.push('--gpu-memory-utilization', String(inf.gpuMemoryUtilization ?? 0.9));
    const maxLen = inf.contextLen ?? context.workload.arch?.maxSeqLen;
    if (maxLen !== undefined) args.push('--max-model-len', String(maxLen));
    if (inf.kvCache) {
      if (KV[inf.kvCache]) args.push('--kv-cache-dtype', KV[inf.kvCache]);
      else {
        notes.push(
          `vLLM has no '${inf.kvCache}' KV cache (its types: auto, bfloat16, float16, fp8, fp8_e4m3, fp8_e5m2): left at auto`,
        );
      }
    }
    const dtype = DTYPE[p.precision?.default ?? inf.dtype ?? ''];
    if (dtype) args.push('--dtype', dtype);
    if (inf.batch > 1) args.push('--max-num-seqs', String(inf.batch));
    const used = devices.slice(0, tp * pp);
    if (new Set(used.map((d) => d.spec.id)).size > 1) {
      notes.push(
        `vLLM shards evenly: the smallest GPU (${used.map((d) => d.name).join(', ')}) bounds every rank's KV cache`,
      );
    }
    const prefix =
      used.length && used.length < devices.length ? `CUDA_VISIBLE_DEVICES=${used.map((d) => d.index).join(',')} ` : '';
    for (const pr of r.problems.filter((x) => x.severity === 'error')) notes.push(pr.message);
    return { to: 'vllm', version: VLLM_VERSION, command: prefix + args.map(shellWord).join(' '), files: {}, notes };
  },
};
