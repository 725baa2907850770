/**
 * Which format each weight of a model gets under a GGUF file type (q4_k_m …), for measuring the file
 * type's error on real weights: llama-quantize's rules (gguf-filetypes.ts) applied to the model's
 * tensors under llama.cpp's names, mapped back to the names the graph uses.
 */
import { ggufToHfName } from '../formats/gguf';
import type { GraphTensor, ModelGraph } from '../graph/model-graph';
import type { NumberFormat } from './formats';
import { ggufModelOf, quantizeTypes } from './gguf-filetypes';

/** ggml type → the format name this build quantizes it with. */
const FORMAT_OF: Record<string, string> = {
  F32: 'fp32',
  F16: 'fp16',
  BF16: 'bf16',
  Q4_0: 'q4_0',
  Q4_1: 'q4_1',
  Q5_0: 'q5_0',
  Q5_1: 'q5_1',
  Q8_0: 'q8_0',
  Q2_K: 'q2_k',
  Q3_K: 'q3_k',
  Q4_K: 'q4_k',
  Q5_K: 'q5_k',
  Q6_K: 'q6_k',
};

/** For each file type among `formats`: graph tensor name → the format llama-quantize's type for it is measured as. */
export function mixFormatsFor(graph: ModelGraph, formats: NumberFormat[]): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  const spec = graph.transformer;
  const mixes = [...new Set(formats.filter((f) => f.mix).map((f) => f.mix!))];
  if (!spec || !mixes.length) return out;
  // Which rule applies reads the hyperparameters and tensor names, not the training context.
  const model = ggufModelOf(spec);
  for (const mix of mixes) {
    const map = new Map<string, string>();
    for (const t of quantizeTypes(model, mix)) {
      const f = FORMAT_OF[t.type];
      if (!f) continue;
      map.set(t.name, f);
      map.set(ggufToHfName(t.name), f);
    }
    out.set(mix, map);
  }
  return out;
}

/** A tensor the rules do not name: the file type's default k-quant, or the type llama-quantize falls back to for its row length. */
export function mixFallback(mix: string, t: GraphTensor): string {
  const base = `q${mix[1]}_k`;
  const shape = (t.shape ?? []).map((d) => (typeof d === 'number' ? d : 0));
  const row = shape[shape.length - 1] ?? 0;
  if (row % 256 === 0) return base;
  const fallback: Record<string, string> = { q2_k: 'q4_0', q3_k: 'q4_0', q4_k: 'q5_0', q5_k: 'q5_1' };
  return row % 32 === 0 ? fallback[base] : 'fp16';
}
