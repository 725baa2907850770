import { InputError } from '../errors';
import { groupLayers } from './layers';
import type { AttrValue, GraphNode, GraphTensor, ModelGraph } from './model-graph';
import { inferShapes } from './shapes';
import { blockWeights, naming, type TransformerSpec } from './transformer-spec';

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
  // '/model/layers.3/self_attn/q_proj/MatMul'; where the module's name repeats the end of the scope (the final
  // norm 'model.norm' in 'model/norm', the pooler's 'pooler.dense' in 'bert/pooler'), the repeat is said once.
  const opName = (scope: string, name: string, op: string) => {
    const head = scope.split('/');
    const tail = name.split('.').slice(-2);
    let k = Math.min(head.length, tail.length);
    while (k > 0 && head.slice(head.length - k).join('/') !== tail.slice(0, k).join('/')) k--;
    return `/${[...head, ...tail.slice(k)].join('/')}/${op}`;
  };
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
