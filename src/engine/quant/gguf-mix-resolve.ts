/**
 * Which format each weight of a model gets under a GGUF file type (q4_k_m …), for measuring the file
 * type's error on real weights: llama-quantize's rules (gguf-filetypes.ts) applied to the model's
 * tensors under llama.cpp's names, mapped back to the names the graph uses.
 */
import { ggufToHfName } from '../formats/gguf';
import type { GraphTensor, ModelGraph } from '../graph/model-graph';
import type { NumberFormat } from './formats';
import { ggufTensorsOf, quantizeTypes } from './gguf-filetypes';
import type { GgufModel } from '../formats/gguf-model';

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
  const model: GgufModel = {
    arch:
      spec.family === 'gpt_neox'
        ? 'gptneox'
        : spec.family === 'mistral' || spec.family === 'mixtral'
          ? 'llama'
          : spec.family,
    nLayer: spec.layers,
    nEmbd: spec.hidden,
    nHead: spec.heads,
    nHeadKv: spec.kvHeads,
    headDimK: spec.headDim,
    headDimV: spec.headDim,
    nFf: spec.ffn,
    nVocab: spec.vocab,
    nExpert: spec.experts > 1 ? spec.experts : 0,
    nExpertUsed: spec.experts > 1 ? spec.topK : 0,
    nCtxTrain: spec.maxSeqLen ?? 4096,
    tensors: ggufTensorsOf(spec),
  };
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
