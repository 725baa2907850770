/**
 * `layerplan export <plan> --to llama.cpp`: the llama-server command that runs the plan's placement.
 * Options as llama.cpp b8746 spells them (common/arg.cpp; test/fixtures/runtimes/llamacpp-options-b8746.json,
 * which the tests check every flag against), with the older spellings where the plan names an older build:
 * -fa takes on|off|auto from b6325 (a bare flag before). A placement -ngl / --tensor-split cannot say
 * (explicit stages out of llama.cpp's order) is pinned per layer with --override-tensor.
 */
import { estimateDevices } from '../cost/inference-plan';
import { BUILDS } from '../cost/llamacpp';
import { llamaBuild, llamaContext, planDevices, planFileType } from '../cost/inference-devices';
import type { Plan } from '../plan/plan';
import type { ExportContext, ExportResult, ExportTarget } from './target';

/** The llama.cpp build whose options the output was checked against. */
export const LLAMACPP_CHECKED = 'b8746';

/** Shell-quotes a word when it needs it. */
export function shellWord(w: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The ggml backend buffer names llama.cpp prints for GPU i of a kind (CUDA0, MTL0 …). */
function bufferName(kind: 'gpu' | 'apple', i: number): string {
  return kind === 'apple' ? `MTL${i}` : `CUDA${i}`;
}

export const llamaCppTarget: ExportTarget = {
  name: 'llama.cpp',
  description:
    'llama-server with -ngl / --tensor-split (or --override-tensor), -c, the KV cache types and flash attention',
  kind: 'inference',
  export(plan: Plan, context: ExportContext): ExportResult {
    const p: Plan = { ...plan, inference: { ...plan.inference!, runtime: 'llama.cpp' } };
    const inf = p.inference!;
    const r = estimateDevices(p, { gguf: context.workload.gguf, spec: context.workload.arch }, context.planFile);
    const build = llamaBuild(p);
    const devices = planDevices(p, context.planFile);
    const gpus = devices.filter((d) => d.spec.kind !== 'cpu');
    const notes: string[] = [];
    const files: Record<string, string> = {};
    const isGguf = !!context.workload.gguf && !!context.modelPath?.toLowerCase().endsWith('.gguf');
    const ft = planFileType(p).toUpperCase();
    let model = context.modelPath ?? 'model.gguf';
    if (!isGguf) {
      // The GGUF lands in the checkpoint's folder, named after it (convert_hf_to_gguf reads the folder).
      const folder = context.modelPath
        ? context.modelPath.replace(/\/[^/]*$/, '') || '.'
        : '<hugging-face-model-folder>';
      const name = context.modelPath ? (folder.split('/').pop() ?? 'model') : 'model';
      const f16 = `${context.modelPath ? folder : '.'}/${name}-F16.gguf`;
      model = ft === 'F16' ? f16 : `${context.modelPath ? folder : '.'}/${name}-${ft}.gguf`;
      const overrides = (p.precision?.rules ?? []).filter((rule) =>
        /^(q\d_k|q\d_\d|fp16|bf16|f16)$/i.test(rule.format),
      );
      files['convert.sh'] = [
        '#!/bin/sh',
        '# Convert the Hugging Face checkpoint to GGUF, then quantize it as the plan says (llama.cpp tools).',
        'set -e',
        `python convert_hf_to_gguf.py ${shellWord(folder)} --outtype f16 --outfile ${shellWord(f16)}`,
        ...(ft === 'F16'
          ? []
          : [
              `llama-quantize ${overrides.map((o) => `--tensor-type ${shellWord(`${o.match.replace(/\*/g, '')}=${o.format.toLowerCase()}`)} `).join('')}${shellWord(f16)} ${shellWord(model)} ${ft}`,
            ]),
        '',
      ].join('\n');
      notes.push(
        `the model is not a GGUF: convert.sh builds ${model} (${(r.modelBytes / 2 ** 30).toFixed(2)} GiB, the size predicted for llama-quantize's ${ft} mix)`,
      );
    }
    const args: string[] = ['llama-server', '-m', model];
    args.push('-c', String(llamaContext(p)));
    if (inf.batch > 1) args.push('-np', String(inf.batch));
    const kinds = new Set(gpus.map((g) => g.spec.kind));
    if (r.gpuLayers !== undefined) {
      // The plan's own -ngl / -ts where it gives them (the same placement as the counts the estimate derives).
      const own = r.placement === 'gpuLayers';
      args.push('-ngl', String(own ? inf.gpuLayers : r.gpuLayers));
      const ts = own && inf.tensorSplit ? inf.tensorSplit : r.tensorSplit;
      if (gpus.length > 1 && ts) args.push('-ts', ts.join(','));
    } else if (r.layerDevice) {
      // Not an -ngl / -ts split: every layer offloaded, each pinned to its device's buffer.
      args.push('-ngl', String(r.layerDevice.length));
      const byBuffer = new Map<string, number[]>();
      r.layerDevice.slice(0, -1).forEach((d, il) => {
        const g = gpus.findIndex((x) => x.index === d);
        const buf = g < 0 ? 'CPU' : bufferName(gpus[g].spec.kind as 'gpu' | 'apple', g);
        byBuffer.set(buf, [...(byBuffer.get(buf) ?? []), il]);
      });
      for (const [buf, layers] of byBuffer) args.push('-ot', `blk\\.(${layers.join('|')})\\.=${buf}`);
      notes.push(
        "--override-tensor pins each layer to its device; any tensor override turns off llama.cpp's pipeline parallelism",
      );
    }
    if (inf.kvCache && inf.kvCache !== 'f16') args.push('-ctk', inf.kvCache, '-ctv', inf.kvCache);
    if (inf.flashAttention !== undefined) {
      if (build >= BUILDS.faValue) args.push('-fa', inf.flashAttention ? 'on' : 'off');
      else if (inf.flashAttention) args.push('-fa');
    }
    if (kinds.size > 1) {
      notes.push(
        'an Apple chip and other GPUs cannot serve one model together: llama.cpp runs one backend per process build',
      );
    }
    const cpu = devices.find((d) => d.spec.kind === 'cpu');
    const onCpu = r.layerDevice?.filter((d) => d < 0 || d === cpu?.index).length ?? 0;
    if (onCpu) {
      notes.push(
        `${onCpu} layer${onCpu > 1 ? 's stay' : ' stays'} on the CPU${cpu ? ` (${cpu.name})` : ''}: llama.cpp runs ${onCpu > 1 ? 'them' : 'it'} from RAM`,
      );
    }
    if (build !== Number(LLAMACPP_CHECKED.slice(1))) {
      notes.push(
        `the plan targets b${build}; the options were checked against ${LLAMACPP_CHECKED}${build < BUILDS.faValue ? ' (-fa is a bare flag before b6325)' : ''}`,
      );
    }
    return { to: 'llama.cpp', version: LLAMACPP_CHECKED, command: args.map(shellWord).join(' '), files, notes };
  },
};
