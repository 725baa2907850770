/**
 * A transformer by its shape (TransformerSpec), its Hugging Face tensor names and parameter counts:
 * what the cost engine, the config readers and the synthesized graph share. No graph types here, so
 * the graph model can name a spec without importing the synthesis (transformer.ts).
 */
/** A decoder/encoder transformer described by its shape: what the cost engine and the synthesized graph need. */
export interface TransformerSpec {
  family: string;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffn: number;
  vocab: number;
  /** Learned absolute positions (gpt2, bert); 0 for rotary. */
  positions: number;
  gated: boolean;
  tied: boolean;
  norm: 'layernorm' | 'rmsnorm';
  qkvBias: boolean;
  /** Biases on the output projection and the MLP (gpt2, neox, bert). */
  denseBias: boolean;
  experts: number;
  topK: number;
  /** MoE: expert capacity as a multiple of the fair share (token dropping); absent = dropless, balanced. */
  capacityFactor?: number;
  dropout: boolean;
  /** bert: token-type embeddings and a pooler; encoder-only. */
  encoder: boolean;
  tokenTypes: number;
  maxSeqLen?: number;
}

/** Hugging Face tensor names per family: logical role → name (relative to the block prefix). */
export interface Naming {
  block: (i: number) => string;
  norm1: string;
  norm2: string;
  /** Separate q/k/v projections, or one fused projection. */
  qkv: { q: string; k: string; v: string } | { fused: string };
  o: string;
  /** Gated MLP: separate gate and up, or one fused gate_up. */
  gateUp?: { gate: string; up: string } | { fused: string };
  up: string;
  down: string;
  /** MoE: router name and expert prefix (gate / up / down names inside an expert). */
  moe?: { router: string; expert: (e: number) => string; gate: string; up: string; down: string };
  /** gpt2's Conv1D stores weights as [in, out]. */
  conv1d?: boolean;
  embed: string;
  positions?: string;
  tokenTypes?: string;
  embedNorm?: string;
  finalNorm?: string;
  head: string;
}

export function naming(family: string): Naming {
  const llama: Naming = {
    block: (i) => `model.layers.${i}`,
    norm1: 'input_layernorm',
    norm2: 'post_attention_layernorm',
    qkv: { q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj' },
    o: 'self_attn.o_proj',
    gateUp: { gate: 'mlp.gate_proj', up: 'mlp.up_proj' },
    up: 'mlp.up_proj',
    down: 'mlp.down_proj',
    embed: 'model.embed_tokens',
    finalNorm: 'model.norm',
    head: 'lm_head',
  };
  switch (family) {
    case 'mixtral':
      return {
        ...llama,
        moe: {
          router: 'block_sparse_moe.gate',
          expert: (e) => `block_sparse_moe.experts.${e}`,
          gate: 'w1',
          up: 'w3',
          down: 'w2',
        },
      };
    case 'phi3':
      return { ...llama, qkv: { fused: 'self_attn.qkv_proj' }, gateUp: { fused: 'mlp.gate_up_proj' } };
    case 'gpt2':
      return {
        block: (i) => `transformer.h.${i}`,
        norm1: 'ln_1',
        norm2: 'ln_2',
        qkv: { fused: 'attn.c_attn' },
        o: 'attn.c_proj',
        up: 'mlp.c_fc',
        down: 'mlp.c_proj',
        conv1d: true,
        embed: 'transformer.wte',
        positions: 'transformer.wpe',
        finalNorm: 'transformer.ln_f',
        head: 'lm_head',
      };
    case 'gpt_neox':
      return {
        block: (i) => `gpt_neox.layers.${i}`,
        norm1: 'input_layernorm',
        norm2: 'post_attention_layernorm',
        qkv: { fused: 'attention.query_key_value' },
        o: 'attention.dense',
        up: 'mlp.dense_h_to_4h',
        down: 'mlp.dense_4h_to_h',
        embed: 'gpt_neox.embed_in',
        finalNorm: 'gpt_neox.final_layer_norm',
        head: 'embed_out',
      };
    case 'bert':
      return {
        block: (i) => `bert.encoder.layer.${i}`,
        norm1: 'attention.output.LayerNorm',
        norm2: 'output.LayerNorm',
        qkv: { q: 'attention.self.query', k: 'attention.self.key', v: 'attention.self.value' },
        o: 'attention.output.dense',
        up: 'intermediate.dense',
        down: 'output.dense',
        embed: 'bert.embeddings.word_embeddings',
        positions: 'bert.embeddings.position_embeddings',
        tokenTypes: 'bert.embeddings.token_type_embeddings',
        embedNorm: 'bert.embeddings.LayerNorm',
        head: 'bert.pooler.dense',
      };
    default:
      return llama;
  }
}

/** Weight tensors of one block with Hugging Face's names and shapes ([out, in]; [in, out] for gpt2's Conv1D). */
export function blockWeights(t: TransformerSpec, i: number): { name: string; shape: number[]; role: string }[] {
  const n = naming(t.family);
  const p = n.block(i);
  const h = t.hidden;
  const q = t.heads * t.headDim;
  const kv = t.kvHeads * t.headDim;
  const w: { name: string; shape: number[]; role: string }[] = [];
  const norm = (name: string, role: string) => {
    w.push({ name: `${p}.${name}.weight`, shape: [h], role });
    if (t.norm === 'layernorm') w.push({ name: `${p}.${name}.bias`, shape: [h], role: role + '.bias' });
  };
  const lin = (name: string, out: number, inp: number, bias: boolean, role: string) => {
    w.push({ name: `${p}.${name}.weight`, shape: n.conv1d ? [inp, out] : [out, inp], role });
    if (bias) w.push({ name: `${p}.${name}.bias`, shape: [out], role: role + '.bias' });
  };
  norm(n.norm1, 'norm1');
  if ('fused' in n.qkv) lin(n.qkv.fused, q + 2 * kv, h, t.qkvBias, 'qkv');
  else {
    lin(n.qkv.q, q, h, t.qkvBias, 'q');
    lin(n.qkv.k, kv, h, t.qkvBias, 'k');
    lin(n.qkv.v, kv, h, t.qkvBias, 'v');
  }
  lin(n.o, h, q, t.denseBias, 'o');
  norm(n.norm2, 'norm2');
  if (t.experts > 1 && n.moe) {
    w.push({ name: `${p}.${n.moe.router}.weight`, shape: [t.experts, h], role: 'router' });
    for (let e = 0; e < t.experts; e++) {
      lin(`${n.moe.expert(e)}.${n.moe.gate}`, t.ffn, h, false, `gate${e}`);
      lin(`${n.moe.expert(e)}.${n.moe.up}`, t.ffn, h, false, `up${e}`);
      lin(`${n.moe.expert(e)}.${n.moe.down}`, h, t.ffn, false, `down${e}`);
    }
    return w;
  }
  if (t.gated && n.gateUp && 'fused' in n.gateUp) lin(n.gateUp.fused, 2 * t.ffn, h, false, 'gateup');
  else {
    if (t.gated && n.gateUp && 'gate' in n.gateUp) lin(n.gateUp.gate, t.ffn, h, false, 'gate0');
    lin(n.up, t.ffn, h, t.denseBias, 'up0');
  }
  lin(n.down, h, t.ffn, t.denseBias, 'down0');
  return w;
}

/**
 * The cost model's layers of a transformer (`layers.<i>`, `final_norm`) as precision rules see them: their
 * matrix weights and the ops mixed precision keeps in fp32 (the norms by their Hugging Face names, attention's softmax).
 */
export function transformerPrecisionLayers(
  t: TransformerSpec,
): { name: string; matrices: string[]; fp32Ops: { op: string; node: string; tensors: string[] }[] }[] {
  const n = naming(t.family);
  const op = t.norm === 'rmsnorm' ? 'RMSNormalization' : 'LayerNormalization';
  const norm = (prefix: string) => ({
    op,
    node: prefix,
    tensors: [`${prefix}.weight`, ...(t.norm === 'layernorm' ? [`${prefix}.bias`] : [])],
  });
  const out = Array.from({ length: t.layers }, (_, i) => ({
    name: `layers.${i}`,
    matrices: blockWeights(t, i)
      .filter((w) => w.shape.length >= 2)
      .map((w) => w.name),
    fp32Ops: [
      norm(`${n.block(i)}.${n.norm1}`),
      { op: 'Softmax', node: `${n.block(i)}.attention.softmax`, tensors: [] },
      norm(`${n.block(i)}.${n.norm2}`),
    ],
  }));
  if (n.finalNorm) out.push({ name: 'final_norm', matrices: [], fp32Ops: [norm(n.finalNorm)] });
  return out;
}

/** Parameters of the whole model (all experts). */
export function transformerParameters(t: TransformerSpec): number {
  const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
  let n = 0;
  for (let i = 0; i < t.layers; i++) for (const w of blockWeights(t, i)) n += prod(w.shape);
  n += t.vocab * t.hidden + t.positions * t.hidden + t.tokenTypes * t.hidden;
  const nm = naming(t.family);
  const normParams = t.norm === 'layernorm' ? 2 * t.hidden : t.hidden;
  if (nm.finalNorm) n += normParams;
  if (nm.embedNorm) n += normParams;
  if (!t.tied && !t.encoder) n += t.vocab * t.hidden;
  if (t.encoder) n += t.hidden * t.hidden + t.hidden;
  return n;
}
