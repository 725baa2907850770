/**
 * GGUF file types (q4_k_m, q5_k_s, …) as llama-quantize builds them: which ggml type each tensor gets.
 * A re-implementation of llama.cpp's src/llama-quant.cpp (tensor_allows_quantization,
 * llama_tensor_get_type_impl, tensor_type_fallback, llama_ftype_get_default_type; read at b10587,
 * history from b616), with the build switch for the behaviour that changed:
 *   - b8266 (#19770): attn_qkv and attn_kv_b follow the attn_v rules (before: attn_qkv had its own,
 *     Q3_K_M/L and IQ3_M → Q4_K, Q4_K_M → Q5_K, Q5_K_M → Q6_K); the fallback of Q2_K / Q3_K for rows
 *     not divisible by 256 became Q4_0 (was IQ4_NL).
 *   - b8266..b8277 counted attn_v tensors while quantizing (#20357, fixed in b8278); not modelled.
 * The sizes this predicts are compared in tests with llama-quantize's published tables (Llama-3.1-8B
 * and Llama-3-70B; test/fixtures/llamacpp/sizes.json) and with real files' tensor types.
 */
import { ggmlBytes, ggmlType, type GgufModel, type GgufTensorInfo } from '../formats/gguf-model';
import { naming, type TransformerSpec } from '../graph/transformer-spec';

/** llama_ftype values (include/llama.h) and each file type's default tensor type (llama_ftype_get_default_type). */
export const FILE_TYPES: Record<string, { ftype: number; base: string }> = {
  f32: { ftype: 0, base: 'F32' },
  f16: { ftype: 1, base: 'F16' },
  bf16: { ftype: 32, base: 'BF16' },
  q4_0: { ftype: 2, base: 'Q4_0' },
  q4_1: { ftype: 3, base: 'Q4_1' },
  q8_0: { ftype: 7, base: 'Q8_0' },
  q5_0: { ftype: 8, base: 'Q5_0' },
  q5_1: { ftype: 9, base: 'Q5_1' },
  q2_k: { ftype: 10, base: 'Q2_K' },
  q3_k_s: { ftype: 11, base: 'Q3_K' },
  q3_k_m: { ftype: 12, base: 'Q3_K' },
  q3_k_l: { ftype: 13, base: 'Q3_K' },
  q4_k_s: { ftype: 14, base: 'Q4_K' },
  q4_k_m: { ftype: 15, base: 'Q4_K' },
  q5_k_s: { ftype: 16, base: 'Q5_K' },
  q5_k_m: { ftype: 17, base: 'Q5_K' },
  q6_k: { ftype: 18, base: 'Q6_K' },
  iq2_xxs: { ftype: 19, base: 'IQ2_XXS' },
  iq2_xs: { ftype: 20, base: 'IQ2_XS' },
  q2_k_s: { ftype: 21, base: 'Q2_K' },
  iq3_xs: { ftype: 22, base: 'IQ3_S' },
  iq3_xxs: { ftype: 23, base: 'IQ3_XXS' },
  iq1_s: { ftype: 24, base: 'IQ1_S' },
  iq4_nl: { ftype: 25, base: 'IQ4_NL' },
  iq3_s: { ftype: 26, base: 'IQ3_S' },
  iq3_m: { ftype: 27, base: 'IQ3_S' },
  iq2_s: { ftype: 28, base: 'IQ2_XS' },
  iq2_m: { ftype: 29, base: 'IQ2_S' },
  iq4_xs: { ftype: 30, base: 'IQ4_XS' },
  iq1_m: { ftype: 31, base: 'IQ1_M' },
  tq1_0: { ftype: 36, base: 'TQ1_0' },
  tq2_0: { ftype: 37, base: 'TQ2_0' },
  mxfp4_moe: { ftype: 38, base: 'MXFP4' },
};

/** File types whose tensors differ by role (the mixes); q6_k and q8_0 … are also file types, uniform but for the output rule. */
export const FILE_TYPE_NAMES = Object.keys(FILE_TYPES).filter((n) => !['f32', 'f16', 'bf16'].includes(n));

/** The aliases llama-quantize accepts (QUANT_OPTIONS: "Q4_K" is "alias for Q4_K_M"). */
const ALIASES: Record<string, string> = { q3_k: 'q3_k_m', q4_k: 'q4_k_m', q5_k: 'q5_k_m' };

/** The file type a name stands for (case-insensitive), or undefined. */
export function fileType(name: string): string | undefined {
  const key = name.toLowerCase().trim();
  const k = ALIASES[key] ?? key;
  return FILE_TYPES[k] ? k : undefined;
}

/** A mix llama-quantize builds (different types per tensor), as opposed to one ggml type for all. */
export function isMixName(name: string): boolean {
  return /^(q[2-6]_k_[sml]|q2_k_s|iq[1-4]_(xxs|xs|s|m|nl)|tq[12]_0|mxfp4_moe)$/.test(name.toLowerCase().trim());
}

/** The build llama.cpp behaviour is taken from when a plan names none (the option lists in test/fixtures are from b8746). */
export const DEFAULT_BUILD = 8746;

export interface QuantizeOptions {
  /** llama.cpp build number (bNNNN) whose rules apply. */
  build?: number;
  /** An importance matrix was given (--imatrix): changes a few IQ / Q4_0 choices. */
  imatrix?: boolean;
  /** --pure: every quantizable tensor gets the default type. */
  pure?: boolean;
  /** --leave-output-tensor. */
  leaveOutputTensor?: boolean;
  /** --output-tensor-type / --token-embedding-type. */
  outputTensorType?: string;
  tokenEmbeddingType?: string;
  /** --tensor-type: the first override whose test matches a tensor name sets its type (b7807+: before the mix). */
  overrides?: { test: (name: string) => boolean; type: string }[];
}

const IQ_LOW = new Set(['iq2_xxs', 'iq2_xs', 'iq1_s', 'iq2_s', 'iq2_m', 'iq1_m']);

function useMoreBits(i: number, n: number): boolean {
  const n8 = Math.floor(n / 8);
  return i < n8 || i >= Math.floor((7 * n) / 8) || (i - n8) % 3 === 2;
}

/** tensor_allows_quantization: 2-D+ weights except norms, routers, position and token-type embeddings and a few special ones. */
export function allowsQuantization(t: { name: string; dims: number[] }, options: QuantizeOptions = {}): boolean {
  const n = t.name;
  if (t.dims.length < 2) return false;
  if (!n.endsWith('weight')) return false;
  if (n.includes('_norm.weight')) return false;
  if (n === 'output.weight' && options.leaveOutputTensor) return false;
  const excluded = [
    'ffn_gate_inp.weight',
    'ffn_gate_tid2eid.weight',
    'altup',
    'laurel',
    'per_layer_model_proj',
    'position_embd.weight',
    'token_types.weight',
    'ssm_conv1d',
    'shortconv.conv.weight',
    'attn_rel_b.weight',
  ];
  return !excluded.some((x) => n.includes(x));
}

type Category =
  | 'output'
  | 'token_embd'
  | 'attn_qkv'
  | 'attn_kv_b'
  | 'attn_v'
  | 'attn_k'
  | 'attn_q'
  | 'attn_output'
  | 'ffn_up'
  | 'ffn_gate'
  | 'ffn_down'
  | 'other';

function category(name: string): Category {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight') return 'token_embd';
  for (const c of ['attn_qkv', 'attn_kv_b', 'attn_v', 'attn_k', 'attn_q', 'attn_output'] as const) {
    if (name.includes(`${c}.weight`)) return c;
  }
  if (name.includes('ffn_up')) return 'ffn_up';
  if (name.includes('ffn_gate')) return 'ffn_gate';
  if (name.includes('ffn_down')) return 'ffn_down';
  return 'other';
}

/** tensor_type_fallback: rows not divisible by the type's block take a type with a smaller block. */
function fallback(ne0: number, type: string, build: number): string {
  const block = ggmlType(type)?.block ?? 1;
  if (ne0 % block === 0) return type;
  const table: Record<string, string> = {
    IQ1_S: 'IQ4_NL',
    IQ1_M: 'IQ4_NL',
    IQ2_XXS: 'IQ4_NL',
    IQ2_XS: 'IQ4_NL',
    IQ2_S: 'IQ4_NL',
    IQ3_XXS: 'IQ4_NL',
    IQ3_S: 'IQ4_NL',
    IQ4_XS: 'IQ4_NL',
    Q2_K: build >= 8266 ? 'Q4_0' : 'IQ4_NL',
    Q3_K: build >= 8266 ? 'Q4_0' : 'IQ4_NL',
    TQ1_0: 'Q4_0',
    TQ2_0: 'Q4_0',
    Q4_K: 'Q5_0',
    Q5_K: 'Q5_1',
    Q6_K: 'Q8_0',
  };
  // A type outside the table (Q8_0 on rows not divisible by 32) makes llama-quantize stop with
  // "Unsupported tensor size encountered"; such toy shapes are kept in F16 here.
  let r = table[type] ?? 'F16';
  if (ne0 % (ggmlType(r)?.block ?? 1) !== 0) r = 'F16';
  return r;
}

/**
 * The types llama-quantize gives each tensor of a model for a file type, in the model's tensor order
 * (the counters of attn_v and ffn_down tensors follow it), with their exact bytes.
 */
export function quantizeTypes(model: GgufModel, fileTypeName: string, options: QuantizeOptions = {}): GgufTensorInfo[] {
  const ft = fileType(fileTypeName);
  if (!ft) throw new Error(`unknown GGUF file type ${fileTypeName}`);
  const build = options.build ?? DEFAULT_BUILD;
  const base = FILE_TYPES[ft].base;
  const quantizedBase = !['F32', 'F16', 'BF16'].includes(base);
  const arch = model.arch;
  const falcon = arch === 'falcon';
  const nGqa = model.nHeadKv > 0 ? Math.floor(model.nHead / model.nHeadKv) : 1;
  const nExpert = model.nExpert;
  const llm70b = arch === 'llama' && model.nLayer === 80;
  const attnVLike = (c: Category) => c === 'attn_v' || (build >= 8266 && (c === 'attn_qkv' || c === 'attn_kv_b'));
  const nAttentionWv = model.tensors.filter((t) =>
    ['attn_v', 'attn_qkv', 'attn_kv_b'].includes(category(t.name)),
  ).length;
  const hasTied = !model.tensors.some((t) => t.name === 'output.weight');
  const n = model.nLayer;
  let iAttnWv = 0;
  const counters = { ffn_down: 0, ffn_gate: 0, ffn_up: 0 };
  const layerInfo = (c: 'ffn_down' | 'ffn_gate' | 'ffn_up', name: string): [number, number] => {
    if (nExpert > 1) {
      const m = /blk\.(\d+)\./.exec(name);
      if (m) return [Number(m[1]), n];
    }
    return [counters[c], n];
  };

  const impl = (t: GgufTensorInfo, c: Category): string => {
    let t2 = base;
    const ne0 = t.dims[0];
    if (c === 'output' || (hasTied && c === 'token_embd')) {
      if (options.outputTensorType) return options.outputTensorType;
      if (ft === 'mxfp4_moe') t2 = 'Q8_0';
      else if (falcon || ne0 % (ggmlType(t2)?.block ?? 1) !== 0) t2 = 'Q8_0';
      else if (['iq2_xxs', 'iq2_xs', 'iq3_xxs', 'iq1_s', 'iq2_s', 'iq2_m', 'iq1_m'].includes(ft)) t2 = 'Q5_K';
      else if (t2 !== 'Q8_0') t2 = 'Q6_K';
      return t2;
    }
    if (ft === 'mxfp4_moe') return t.dims.length > 2 && t.dims[2] > 1 ? 'MXFP4' : 'Q8_0';
    if (c === 'token_embd') {
      if (options.tokenEmbeddingType) return options.tokenEmbeddingType;
      if (['iq2_xxs', 'iq2_xs', 'iq1_s', 'iq1_m'].includes(ft)) t2 = 'Q2_K';
      else if (ft === 'iq2_s' || ft === 'iq2_m' || ft === 'iq3_xxs') t2 = 'IQ3_S';
      else if (ft === 'tq1_0' || ft === 'tq2_0') t2 = 'Q4_K';
      return t2;
    }
    if (IQ_LOW.has(ft)) {
      if (attnVLike(c)) {
        t2 = nGqa >= 4 || nExpert >= 4 ? 'Q4_K' : ft === 'iq2_s' || ft === 'iq2_m' ? 'IQ3_S' : 'Q2_K';
        iAttnWv++;
      } else if (nExpert === 8 && c === 'attn_k') t2 = 'Q4_K';
      else if (c === 'ffn_down') {
        if (counters.ffn_down < Math.floor(n / 8)) t2 = ft === 'iq2_s' || ft === 'iq2_m' ? 'IQ3_S' : 'Q2_K';
        counters.ffn_down++;
      } else if (c === 'attn_output') {
        if (nExpert === 8) t2 = 'Q5_K';
        else if (ft === 'iq1_s' || ft === 'iq1_m') t2 = 'IQ2_XXS';
        else if (ft === 'iq2_s' || ft === 'iq2_m') t2 = 'IQ3_S';
      }
      return t2;
    }
    if (attnVLike(c)) {
      if (ft === 'q2_k') t2 = nGqa >= 4 ? 'Q4_K' : 'Q3_K';
      else if (ft === 'q2_k_s' && nGqa >= 4) t2 = 'Q4_K';
      else if (ft === 'iq3_xxs') t2 = nGqa >= 4 ? 'Q4_K' : options.imatrix ? 'IQ3_XXS' : 'IQ3_S';
      else if ((ft === 'iq3_xs' || ft === 'iq3_s') && nGqa >= 4) t2 = 'Q4_K';
      else if (ft === 'iq3_m') t2 = 'Q4_K';
      else if (ft === 'q3_k_m') t2 = iAttnWv < 2 ? 'Q5_K' : 'Q4_K';
      else if (ft === 'q3_k_l') t2 = 'Q5_K';
      else if ((ft === 'iq4_nl' || ft === 'iq4_xs') && nGqa >= 4) t2 = 'Q5_K';
      else if ((ft === 'q4_k_m' || ft === 'q5_k_m') && useMoreBits(iAttnWv, nAttentionWv)) t2 = 'Q6_K';
      else if (ft === 'q4_k_s' && iAttnWv < 4) t2 = 'Q5_K';
      if (llm70b && (t2 === 'Q3_K' || t2 === 'Q4_K')) t2 = 'Q5_K';
      if (nExpert === 8) t2 = 'Q8_0';
      iAttnWv++;
      return t2;
    }
    if (c === 'attn_k') {
      if (nExpert === 8) t2 = 'Q8_0';
      else if (ft === 'iq3_xs') t2 = 'IQ3_XXS';
      else if (ft === 'iq3_xxs') t2 = 'IQ2_S';
      return t2;
    }
    if (c === 'attn_q') {
      if (ft === 'iq3_xs') t2 = 'IQ3_XXS';
      else if (ft === 'iq3_xxs') t2 = 'IQ2_S';
      return t2;
    }
    if (c === 'ffn_down') {
      const [i, nn] = layerInfo('ffn_down', t.name);
      const n8 = Math.floor(nn / 8);
      if (ft === 'q2_k') t2 = 'Q3_K';
      else if (ft === 'q2_k_s') {
        if (i < n8) t2 = 'Q4_K';
      } else if (ft === 'iq3_xxs' && !options.imatrix) t2 = i < n8 ? 'Q4_K' : 'Q3_K';
      else if (ft === 'q3_k_m') {
        t2 = i < Math.floor(nn / 16) ? 'Q5_K' : !falcon || useMoreBits(i, nn) ? 'Q4_K' : 'Q3_K';
      } else if (ft === 'iq3_m' && (i < n8 || (nExpert === 8 && useMoreBits(i, nn)))) t2 = 'Q4_K';
      else if (ft === 'q3_k_l') t2 = falcon ? 'Q4_K' : 'Q5_K';
      else if (ft === 'q4_k_m') {
        if (falcon) t2 = i < Math.floor(nn / 16) ? 'Q6_K' : useMoreBits(i, nn) ? 'Q5_K' : 'Q4_K';
        else if (useMoreBits(i, nn)) t2 = 'Q6_K';
      } else if (i < n8 && (ft === 'iq4_nl' || ft === 'iq4_xs') && !options.imatrix) t2 = 'Q5_K';
      else if (ft === 'q5_k_m' && useMoreBits(i, nn)) t2 = 'Q6_K';
      else if (ft === 'q4_k_s' && !falcon && i < n8) t2 = 'Q5_K';
      else if ((ft === 'q4_0' || ft === 'q5_0') && options.imatrix && i < n8) t2 = ft === 'q4_0' ? 'Q4_1' : 'Q5_1';
      counters.ffn_down++;
      return t2;
    }
    if (c === 'attn_output') {
      if (!falcon) {
        if (nExpert === 8) {
          const bump = [
            'q2_k',
            'iq3_xs',
            'iq3_xxs',
            'q3_k_s',
            'q3_k_m',
            'iq4_nl',
            'q4_k_s',
            'q4_k_m',
            'iq3_s',
            'iq3_m',
            'iq4_xs',
          ];
          if (bump.includes(ft)) t2 = 'Q5_K';
        } else {
          const to: Record<string, string> = {
            q2_k: 'Q3_K',
            iq3_xxs: 'IQ3_S',
            q3_k_m: 'Q4_K',
            q3_k_l: 'Q5_K',
            iq3_m: 'Q4_K',
          };
          if (to[ft]) t2 = to[ft];
        }
      } else if (ft === 'q3_k_l') t2 = 'Q4_K';
      return t2;
    }
    if (c === 'attn_qkv') {
      // Reached only before b8266 (since then attn_qkv takes the attn_v rules above).
      if (ft === 'q3_k_m' || ft === 'q3_k_l' || ft === 'iq3_m') t2 = 'Q4_K';
      else if (ft === 'q4_k_m') t2 = 'Q5_K';
      else if (ft === 'q5_k_m') t2 = 'Q6_K';
      return t2;
    }
    if (c === 'ffn_gate' || c === 'ffn_up') {
      const [i, nn] = layerInfo(c, t.name);
      if (ft === 'iq3_xs' && i >= Math.floor(nn / 8) && i < Math.floor((7 * nn) / 8)) t2 = 'IQ3_XXS';
      counters[c]++;
      return t2;
    }
    return t2;
  };

  return model.tensors.map((t) => {
    let type = t.type;
    if (allowsQuantization(t, options)) {
      const c = category(t.name);
      if (options.tokenEmbeddingType && c === 'token_embd') type = options.tokenEmbeddingType;
      else if (options.outputTensorType && c === 'output') type = options.outputTensorType;
      else {
        type = base;
        if (quantizedBase) {
          const manual = build >= 7807 ? options.overrides?.find((o) => o.test(t.name)) : undefined;
          if (manual) type = manual.type;
          else if (!options.pure) type = impl(t, c);
          type = fallback(t.dims[0], type, build);
          if (manual && build < 7807) type = manual.type;
        }
      }
    }
    type = type.toUpperCase();
    return { name: t.name, dims: t.dims, type, bytes: ggmlBytes(type, t.dims) };
  });
}

/** The tensors convert_hf_to_gguf writes for a transformer (llama.cpp names, F16 matrices, F32 vectors), in file order. */
export function ggufTensorsOf(spec: TransformerSpec, matrixType = 'F16'): GgufTensorInfo[] {
  const h = spec.hidden;
  const q = spec.heads * spec.headDim;
  const kv = spec.kvHeads * spec.headDim;
  const out: GgufTensorInfo[] = [];
  const add = (name: string, dims: number[], type?: string) => {
    const ty = type ?? (dims.length >= 2 ? matrixType : 'F32');
    out.push({ name, dims, type: ty, bytes: ggmlBytes(ty, dims) });
  };
  const fam = spec.family;
  const fusedQkv = fam === 'gpt2' || fam === 'gpt_neox' || fam === 'phi3' || 'fused' in naming(fam).qkv;
  const layernorm = spec.norm === 'layernorm';
  add('token_embd.weight', [h, spec.vocab]);
  if (spec.positions) add('position_embd.weight', [h, spec.positions]);
  for (let i = 0; i < spec.layers; i++) {
    const p = `blk.${i}.`;
    add(p + 'attn_norm.weight', [h]);
    if (layernorm) add(p + 'attn_norm.bias', [h]);
    if (fusedQkv) {
      add(p + 'attn_qkv.weight', [h, q + 2 * kv]);
      if (spec.qkvBias) add(p + 'attn_qkv.bias', [q + 2 * kv]);
    } else {
      add(p + 'attn_q.weight', [h, q]);
      if (spec.qkvBias) add(p + 'attn_q.bias', [q]);
      add(p + 'attn_k.weight', [h, kv]);
      if (spec.qkvBias) add(p + 'attn_k.bias', [kv]);
      add(p + 'attn_v.weight', [h, kv]);
      if (spec.qkvBias) add(p + 'attn_v.bias', [kv]);
    }
    add(p + 'attn_output.weight', [q, h]);
    if (spec.denseBias) add(p + 'attn_output.bias', [h]);
    add(p + 'ffn_norm.weight', [h]);
    if (layernorm) add(p + 'ffn_norm.bias', [h]);
    if (spec.experts > 1) {
      add(p + 'ffn_gate_inp.weight', [h, spec.experts], 'F32');
      add(p + 'ffn_gate_exps.weight', [h, spec.ffn, spec.experts]);
      add(p + 'ffn_down_exps.weight', [spec.ffn, h, spec.experts]);
      add(p + 'ffn_up_exps.weight', [h, spec.ffn, spec.experts]);
      continue;
    }
    if (spec.gated && fam === 'phi3') add(p + 'ffn_up.weight', [h, 2 * spec.ffn]);
    else {
      if (spec.gated) add(p + 'ffn_gate.weight', [h, spec.ffn]);
      add(p + 'ffn_up.weight', [h, spec.ffn]);
      if (spec.denseBias) add(p + 'ffn_up.bias', [spec.ffn]);
    }
    add(p + 'ffn_down.weight', [spec.ffn, h]);
    if (spec.denseBias) add(p + 'ffn_down.bias', [h]);
  }
  add('output_norm.weight', [h]);
  if (layernorm) add('output_norm.bias', [h]);
  if (!spec.tied) add('output.weight', [h, spec.vocab]);
  return out;
}

const GGUF_ARCH: Record<string, string> = { gpt_neox: 'gptneox', mistral: 'llama', mixtral: 'llama' };

/** A transformer as llama.cpp would load it from its F16 conversion: its hyperparameters and F16 / F32 tensors. */
export function ggufModelOf(spec: TransformerSpec): GgufModel {
  return {
    arch: GGUF_ARCH[spec.family] ?? spec.family,
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
    nCtxTrain: spec.maxSeqLen ?? spec.positions ?? 4096,
    tensors: ggufTensorsOf(spec),
  };
}

/** A transformer as llama.cpp would load it from a GGUF of `fileTypeName` made by llama-quantize from its F16 conversion. */
export function synthesizeGguf(spec: TransformerSpec, fileTypeName: string, options: QuantizeOptions = {}): GgufModel {
  const model = ggufModelOf(spec);
  const ft = fileType(fileTypeName);
  if (!ft) throw new Error(`unknown GGUF file type ${fileTypeName}`);
  return { ...model, tensors: quantizeTypes(model, ft, options), fileType: ft };
}

/** Total bytes of a model's tensors (what llama-quantize prints as the model size; GiB = bytes / 2^30). */
export function modelBytes(model: GgufModel): number {
  return model.tensors.reduce((a, t) => a + t.bytes, 0);
}
