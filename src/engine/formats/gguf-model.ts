/**
 * A model as llama.cpp loads it: its hyperparameters and its tensors with their ggml types and exact
 * byte sizes, under llama.cpp's tensor names (token_embd.weight, blk.N.attn_q.weight, output.weight).
 * Read from a GGUF file's header here; synthesized for a Hugging Face config or checkpoint by
 * quant/gguf-filetypes.ts (the per-tensor types llama-quantize picks). cost/llamacpp.ts places these
 * tensors on devices.
 */
import { GGML_TYPES, type GgufFile } from './gguf';

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the row length (the input dimension of a weight matrix). */
  dims: number[];
  /** ggml type name: F32, F16, Q4_K, … */
  type: string;
  bytes: number;
}

export interface GgufModel {
  /** general.architecture (llama, qwen2, gptneox, …). */
  arch: string;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  /** Per-head widths of K and V (attention.key_length / value_length; default n_embd / n_head). */
  headDimK: number;
  headDimV: number;
  nFf: number;
  nVocab: number;
  nExpert: number;
  /** Experts each token is routed to (expert_used_count). */
  nExpertUsed: number;
  /** Training context (context_length), what llama.cpp uses for -c 0. */
  nCtxTrain: number;
  tensors: GgufTensorInfo[];
  /** The llama-quantize file type the tensors follow, when synthesized (q4_k_m …). */
  fileType?: string;
}

const BY_NAME = new Map(Object.values(GGML_TYPES).map((t) => [t.name, t]));

/** ggml block layout of a type name (ggml-common.h): elements and bytes per block. */
export function ggmlType(name: string): { block: number; bytes: number } | undefined {
  return BY_NAME.get(name.toUpperCase());
}

/** Bytes of a tensor of `type` with ggml dims: rows × (row length / block) × block bytes. */
export function ggmlBytes(type: string, dims: number[]): number {
  const t = ggmlType(type);
  if (!t) throw new Error(`unknown ggml type ${type}`);
  const rows = dims.slice(1).reduce((a, b) => a * b, 1);
  return rows * Math.ceil(dims[0] / t.block) * t.bytes;
}

/** llama.cpp's view of a GGUF file: hyperparameters from `<arch>.*` metadata, tensors as stored. */
export function ggufModel(g: GgufFile): GgufModel | undefined {
  const arch = g.metadata.get('general.architecture');
  if (typeof arch !== 'string') return undefined;
  const num = (k: string): number | undefined => {
    const v = g.metadata.get(`${arch}.${k}`);
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    // Per-layer arrays (head_count_kv of some models): the largest.
    if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'number')) return Math.max(...(v as number[]));
    return undefined;
  };
  const nLayer = num('block_count');
  const nEmbd = num('embedding_length');
  const nHead = num('attention.head_count');
  if (!nLayer || !nEmbd || !nHead) return undefined;
  const embd = g.tensors.find((t) => t.name === 'token_embd.weight');
  const tokens = g.metadata.get('tokenizer.ggml.tokens');
  const nVocab =
    num('vocab_size') ??
    embd?.dims[1] ??
    (Array.isArray(tokens)
      ? tokens.length
      : tokens && typeof tokens === 'object' && 'count' in tokens
        ? tokens.count
        : 0);
  const headDim = Math.floor(nEmbd / nHead);
  return {
    arch,
    nLayer,
    nEmbd,
    nHead,
    nHeadKv: num('attention.head_count_kv') ?? nHead,
    headDimK: num('attention.key_length') ?? headDim,
    headDimV: num('attention.value_length') ?? headDim,
    nFf: num('feed_forward_length') ?? 0,
    nVocab,
    nExpert: num('expert_count') ?? 0,
    nExpertUsed: num('expert_used_count') ?? 0,
    nCtxTrain: num('context_length') ?? 4096,
    tensors: g.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.typeName, bytes: t.length })),
  };
}
