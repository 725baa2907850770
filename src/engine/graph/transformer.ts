import { InputError } from '../errors';
import { groupLayers } from './layers';
import type { AttrValue, GraphNode, GraphTensor, ModelGraph } from './model-graph';
import { inferShapes } from './shapes';

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
  dropout: boolean;
  /** bert: token-type embeddings and a pooler; encoder-only. */
  encoder: boolean;
  tokenTypes: number;
  maxSeqLen?: number;
}

/** Hugging Face tensor names per family: logical role → name (relative to the block prefix). */
interface Naming {
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

function naming(family: string): Naming {
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

/**
 * Synthesizes a ModelGraph for a transformer: the nodes a framework would run per token (norms,
 * projections, attention, MLP, residuals), weights with Hugging Face names and [out, in] shapes
 * (a Transpose feeds each MatMul, as torch exports do), symbolic batch and sequence. Shape
 * inference then gives FLOPs and bytes, so file and synthesized models go through one engine.
 * MoE layers run the top-k experts' MLPs (FLOPs count the active experts) and own all experts' weights.
 */
export function synthesizeTransformer(
  t: TransformerSpec,
  format: string,
  bindings: Record<string, number> = {},
): ModelGraph {
  if (t.layers > 100000 || t.hidden > 1e6 || t.vocab > 1e8) {
    throw new InputError(format, 'architecture sizes are out of range');
  }
  const g: ModelGraph = {
    format,
    producer: t.family,
    producerVersion: '',
    opsets: {},
    nodes: [],
    tensors: new Map(),
    layers: [],
    inputs: ['input_ids'],
    outputs: [t.encoder ? 'last_hidden_state' : 'logits'],
    bindings: { ...bindings },
    metadata: {},
    transformer: t,
  };
  const tensor = (name: string, dtype: string, shape?: (number | string)[], weight = false): GraphTensor => {
    const elements = weight && shape ? shape.reduce<number>((a, b) => a * (b as number), 1) : 0;
    const x: GraphTensor = { name, dtype, shape, isWeight: weight, elements, bytes: elements * 2, consumers: [] };
    g.tensors.set(name, x);
    return x;
  };
  tensor('input_ids', 'int64', ['batch', 'sequence']);
  let counter = 0;
  const node = (
    opType: string,
    name: string,
    inputs: string[],
    outputs: string[],
    attributes: Record<string, AttrValue> = {},
  ) => {
    const n: GraphNode = {
      index: g.nodes.length,
      name,
      opType,
      domain: '',
      inputs,
      outputs,
      attributes,
      parent: -1,
      depth: 0,
      layer: 0,
      known: true,
      flops: 0,
      bytesMoved: 0,
    };
    g.nodes.push(n);
    for (const i of inputs) g.tensors.get(i)?.consumers.push(n.index);
    for (const o of outputs) (g.tensors.get(o) ?? tensor(o, 'float16')).producer = n.index;
    return outputs[0];
  };
  const tmp = (scope: string) => `${scope}/t${counter++}`;
  const weight = (name: string, shape: number[]) =>
    g.tensors.get(name)?.isWeight ? name : tensor(name, 'float16', shape, true).name;
  const nm = naming(t.family);
  const opName = (scope: string, name: string, op: string) => `/${scope}/${name.split('.').slice(-2).join('/')}/${op}`;
  /** y = x·Wᵀ (+ b) for a weight stored [out, in]; gpt2's Conv1D [in, out] needs no transpose. */
  const linear = (scope: string, x: string, name: string, out: number, inp: number, bias: boolean) => {
    let wt = weight(`${name}.weight`, nm.conv1d ? [inp, out] : [out, inp]);
    if (!nm.conv1d) wt = node('Transpose', opName(scope, name, 'Transpose'), [wt], [tmp(scope)], { perm: [1, 0] });
    let y = node('MatMul', opName(scope, name, 'MatMul'), [x, wt], [tmp(scope)]);
    if (bias) y = node('Add', opName(scope, name, 'Add'), [y, weight(`${name}.bias`, [out])], [tmp(scope)]);
    return y;
  };
  const normOp = (scope: string, x: string, name: string) => {
    const w = weight(`${name}.weight`, [t.hidden]);
    if (t.norm === 'rmsnorm') {
      return node('RMSNormalization', opName(scope, name, 'RMSNormalization'), [x, w], [tmp(scope)], { axis: -1 });
    }
    return node(
      'LayerNormalization',
      opName(scope, name, 'LayerNormalization'),
      [x, w, weight(`${name}.bias`, [t.hidden])],
      [tmp(scope)],
      { axis: -1 },
    );
  };
  const gather = (name: string, rows: number, ids: string) =>
    node(
      'Gather',
      `/${name.replace(/\./g, '/')}/Gather`,
      [weight(`${name}.weight`, [rows, t.hidden]), ids],
      [tmp(name)],
    );
  let x = gather(nm.embed, t.vocab, 'input_ids');
  if (nm.positions && t.positions) {
    x = node(
      'Add',
      `/${nm.positions.replace(/\./g, '/')}/Add`,
      [x, gather(nm.positions, t.positions, 'input_ids')],
      [tmp('pos')],
    );
  }
  if (nm.tokenTypes && t.tokenTypes) {
    x = node(
      'Add',
      `/${nm.tokenTypes.replace(/\./g, '/')}/Add`,
      [x, gather(nm.tokenTypes, t.tokenTypes, 'input_ids')],
      [tmp('tt')],
    );
  }
  if (nm.embedNorm) x = normOp(nm.embedNorm.replace(/\./g, '/'), x, nm.embedNorm);
  const q = t.heads * t.headDim;
  const kv = t.kvHeads * t.headDim;
  for (let i = 0; i < t.layers; i++) {
    const p = nm.block(i);
    const scope = p.replace(/\./g, '/');
    const h1 = normOp(scope, x, `${p}.${nm.norm1}`);
    let qs: string, ks: string, vs: string;
    if ('fused' in nm.qkv) {
      const fused = linear(scope, h1, `${p}.${nm.qkv.fused}`, q + 2 * kv, t.hidden, t.qkvBias);
      [qs, ks, vs] = [tmp(scope), tmp(scope), tmp(scope)];
      node('Split', opName(scope, `${p}.${nm.qkv.fused}`, 'Split'), [fused], [qs, ks, vs], {
        axis: -1,
        split: [q, kv, kv],
      });
    } else {
      qs = linear(scope, h1, `${p}.${nm.qkv.q}`, q, t.hidden, t.qkvBias);
      ks = linear(scope, h1, `${p}.${nm.qkv.k}`, kv, t.hidden, t.qkvBias);
      vs = linear(scope, h1, `${p}.${nm.qkv.v}`, kv, t.hidden, t.qkvBias);
    }
    const attn = node('Attention', `/${scope}/attention/Attention`, [qs, ks, vs], [tmp(scope)], {
      q_num_heads: t.heads,
      kv_num_heads: t.kvHeads,
    });
    const o = linear(scope, attn, `${p}.${nm.o}`, t.hidden, q, t.denseBias);
    const r1 = node('Add', `/${scope}/residual_1/Add`, [x, o], [tmp(scope)]);
    const h2 = normOp(scope, r1, `${p}.${nm.norm2}`);
    const mlp = (gateName: string | undefined, upName: string, downName: string, fused?: string) => {
      let act: string;
      if (fused) {
        const gu = linear(scope, h2, `${p}.${fused}`, 2 * t.ffn, t.hidden, false);
        const [gate, up] = [tmp(scope), tmp(scope)];
        node('Split', opName(scope, `${p}.${fused}`, 'Split'), [gu], [gate, up], { axis: -1, split: [t.ffn, t.ffn] });
        act = node(
          'Mul',
          `/${scope}/mlp/Mul`,
          [
            node(
              'Mul',
              `/${scope}/mlp/act/Mul`,
              [gate, node('Sigmoid', `/${scope}/mlp/act/Sigmoid`, [gate], [tmp(scope)])],
              [tmp(scope)],
            ),
            up,
          ],
          [tmp(scope)],
        );
      } else {
        const up = linear(scope, h2, `${p}.${upName}`, t.ffn, t.hidden, t.denseBias);
        if (gateName) {
          const gate = linear(scope, h2, `${p}.${gateName}`, t.ffn, t.hidden, false);
          act = node(
            'Mul',
            `/${scope}/mlp/Mul`,
            [
              node(
                'Mul',
                `/${scope}/mlp/act/Mul`,
                [gate, node('Sigmoid', `/${scope}/mlp/act/Sigmoid`, [gate], [tmp(scope)])],
                [tmp(scope)],
              ),
              up,
            ],
            [tmp(scope)],
          );
        } else act = node('Gelu', `/${scope}/mlp/act/Gelu`, [up], [tmp(scope)]);
      }
      return linear(scope, act, `${p}.${downName}`, t.hidden, t.ffn, t.denseBias);
    };
    let mlpOut: string;
    if (t.experts > 1 && nm.moe) {
      const moe = nm.moe;
      linear(scope, h2, `${p}.${moe.router}`, t.experts, t.hidden, false);
      mlpOut = '';
      for (let e = 0; e < t.topK; e++) {
        const y = mlp(`${moe.expert(e)}.${moe.gate}`, `${moe.expert(e)}.${moe.up}`, `${moe.expert(e)}.${moe.down}`);
        mlpOut = mlpOut ? node('Add', `/${scope}/moe/Add`, [mlpOut, y], [tmp(scope)]) : y;
      }
    } else if (t.gated && nm.gateUp && 'fused' in nm.gateUp) mlpOut = mlp(undefined, '', nm.down, nm.gateUp.fused);
    else mlpOut = mlp(t.gated && nm.gateUp && !('fused' in nm.gateUp) ? nm.gateUp.gate : undefined, nm.up, nm.down);
    // Experts a token does not visit still own their weights.
    for (const w of blockWeights(t, i)) weight(w.name, w.shape);
    x = node('Add', `/${scope}/residual_2/Add`, [r1, mlpOut], [tmp(scope)]);
  }
  if (nm.finalNorm) x = normOp(nm.finalNorm.replace(/\./g, '/'), x, nm.finalNorm);
  if (t.encoder) {
    node('Identity', '/bert/encoder/Identity', [x], ['last_hidden_state']);
    const pooled = linear('bert/pooler', x, nm.head, t.hidden, t.hidden, true);
    node('Tanh', '/bert/pooler/Tanh', [pooled], ['pooler_output']);
  } else {
    const w = t.tied ? `${nm.embed}.weight` : weight(`${nm.head}.weight`, [t.vocab, t.hidden]);
    const wt = node('Transpose', `/${nm.head}/Transpose`, [w], [tmp(nm.head)], { perm: [1, 0] });
    node('MatMul', `/${nm.head}/MatMul`, [x, wt], ['logits']);
  }
  inferShapes(g);
  groupLayers(g);
  return g;
}
