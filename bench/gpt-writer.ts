import * as fs from 'fs';
import { PbWriter } from '../test/helpers';

/**
 * Writes a GPT-like ONNX model straight to disk: `layers` pre-LN transformer blocks of width
 * `hidden`, float32 weights as raw_data, 41 nodes per block. Payloads stream from one reusable
 * buffer, so writing a 1.3 GB model needs little memory.
 */
export function writeGptModel(
  file: string,
  opts: { layers: number; hidden: number; vocab: number; tiny?: boolean },
): { nodes: number; parameters: number } {
  const { layers, hidden: h, vocab } = opts;
  const inits: { name: string; dims: number[] }[] = [];
  const nodes: Uint8Array[] = [];
  const dim = (d: number) => (opts.tiny ? 1 : d);
  const node = (op: string, name: string, inputs: string[], outputs: string[], attrs: PbWriter[] = []) => {
    const w = new PbWriter();
    for (const i of inputs) w.string(1, i);
    for (const o of outputs) w.string(2, o);
    w.string(3, name).string(4, op);
    for (const a of attrs) w.message(5, a);
    nodes.push(w.finish());
  };
  const intAttr = (name: string, v: number) => new PbWriter().string(1, name).int(20, 2).int(3, v);
  const intsAttr = (name: string, v: number[]) => {
    const w = new PbWriter().string(1, name).int(20, 7);
    for (const x of v) w.int(8, x);
    return w;
  };
  const init = (name: string, dims: number[]) => {
    inits.push({ name, dims: dims.map(dim) });
    return name;
  };
  init('wte.weight', [vocab, h]);
  init('wpe.weight', [2048, h]);
  node('Gather', '/wte/Gather', ['wte.weight', 'input_ids'], ['tok']);
  node('Gather', '/wpe/Gather', ['wpe.weight', 'position_ids'], ['pos']);
  node('Add', '/embed/Add', ['tok', 'pos'], ['x0']);
  const heads = 16;
  let x = 'x0';
  for (let l = 0; l < layers; l++) {
    const p = `h.${l}`;
    const s = `/h.${l}`;
    const t = (n: string) => `${s}/${n}_out`;
    for (const n of ['ln_1', 'ln_2']) {
      init(`${p}.${n}.weight`, [h]);
      init(`${p}.${n}.bias`, [h]);
    }
    for (const n of ['q', 'k', 'v', 'o']) {
      init(`${p}.attn.${n}_proj.weight`, [h, h]);
      init(`${p}.attn.${n}_proj.bias`, [h]);
    }
    init(`${p}.mlp.fc.weight`, [h, 4 * h]);
    init(`${p}.mlp.fc.bias`, [4 * h]);
    init(`${p}.mlp.proj.weight`, [4 * h, h]);
    init(`${p}.mlp.proj.bias`, [h]);
    node(
      'LayerNormalization',
      `${s}/ln_1/LayerNormalization`,
      [x, `${p}.ln_1.weight`, `${p}.ln_1.bias`],
      [t('ln_1')],
      [intAttr('axis', -1)],
    );
    for (const n of ['q', 'k', 'v']) {
      node('MatMul', `${s}/attn/${n}_proj/MatMul`, [t('ln_1'), `${p}.attn.${n}_proj.weight`], [t(`${n}_mm`)]);
      node('Add', `${s}/attn/${n}_proj/Add`, [t(`${n}_mm`), `${p}.attn.${n}_proj.bias`], [t(n)]);
      node('Reshape', `${s}/attn/${n}_Reshape`, [t(n), 'heads_shape'], [t(`${n}_r`)]);
      node(
        'Transpose',
        `${s}/attn/${n}_Transpose`,
        [t(`${n}_r`)],
        [t(`${n}_t`)],
        [intsAttr('perm', n === 'k' ? [0, 2, 3, 1] : [0, 2, 1, 3])],
      );
    }
    node('MatMul', `${s}/attn/qk/MatMul`, [t('q_t'), t('k_t')], [t('scores')]);
    node('Div', `${s}/attn/Div`, [t('scores'), 'sqrt_head_dim'], [t('scaled')]);
    node('Add', `${s}/attn/mask/Add`, [t('scaled'), 'causal_mask'], [t('masked')]);
    node('Softmax', `${s}/attn/Softmax`, [t('masked')], [t('probs')], [intAttr('axis', -1)]);
    node('MatMul', `${s}/attn/av/MatMul`, [t('probs'), t('v_t')], [t('ctx')]);
    node('Transpose', `${s}/attn/ctx/Transpose`, [t('ctx')], [t('ctx_t')], [intsAttr('perm', [0, 2, 1, 3])]);
    node('Reshape', `${s}/attn/ctx/Reshape`, [t('ctx_t'), 'hidden_shape'], [t('ctx_r')]);
    node('MatMul', `${s}/attn/o_proj/MatMul`, [t('ctx_r'), `${p}.attn.o_proj.weight`], [t('o_mm')]);
    node('Add', `${s}/attn/o_proj/Add`, [t('o_mm'), `${p}.attn.o_proj.bias`], [t('o')]);
    node('Add', `${s}/residual_1/Add`, [x, t('o')], [t('res1')]);
    node(
      'LayerNormalization',
      `${s}/ln_2/LayerNormalization`,
      [t('res1'), `${p}.ln_2.weight`, `${p}.ln_2.bias`],
      [t('ln_2')],
      [intAttr('axis', -1)],
    );
    node('MatMul', `${s}/mlp/fc/MatMul`, [t('ln_2'), `${p}.mlp.fc.weight`], [t('fc_mm')]);
    node('Add', `${s}/mlp/fc/Add`, [t('fc_mm'), `${p}.mlp.fc.bias`], [t('fc')]);
    // tanh-approximated GELU spelled out, as torch exports it.
    node('Mul', `${s}/mlp/gelu/Mul`, [t('fc'), t('fc')], [t('g1')]);
    node('Mul', `${s}/mlp/gelu/Mul_1`, [t('g1'), t('fc')], [t('g2')]);
    node('Mul', `${s}/mlp/gelu/Mul_2`, [t('g2'), 'gelu_c'], [t('g3')]);
    node('Add', `${s}/mlp/gelu/Add`, [t('fc'), t('g3')], [t('g4')]);
    node('Mul', `${s}/mlp/gelu/Mul_3`, [t('g4'), 'sqrt_2_over_pi'], [t('g5')]);
    node('Tanh', `${s}/mlp/gelu/Tanh`, [t('g5')], [t('g6')]);
    node('Add', `${s}/mlp/gelu/Add_1`, [t('g6'), 'one'], [t('g7')]);
    node('Mul', `${s}/mlp/gelu/Mul_4`, [t('fc'), t('g7')], [t('g8')]);
    node('Mul', `${s}/mlp/gelu/Mul_5`, [t('g8'), 'half'], [t('gelu')]);
    node('MatMul', `${s}/mlp/proj/MatMul`, [t('gelu'), `${p}.mlp.proj.weight`], [t('proj_mm')]);
    node('Add', `${s}/mlp/proj/Add`, [t('proj_mm'), `${p}.mlp.proj.bias`], [t('proj')]);
    node('Add', `${s}/residual_2/Add`, [t('res1'), t('proj')], [t('out')]);
    x = t('out');
  }
  init('ln_f.weight', [h]);
  init('ln_f.bias', [h]);
  node(
    'LayerNormalization',
    '/ln_f/LayerNormalization',
    [x, 'ln_f.weight', 'ln_f.bias'],
    ['xf'],
    [intAttr('axis', -1)],
  );
  node('Transpose', '/lm_head/Transpose', ['wte.weight'], ['wte_t']);
  node('MatMul', '/lm_head/MatMul', ['xf', 'wte_t'], ['logits']);
  const smallInits: Uint8Array[] = [];
  const small = (name: string, dtype: number, values: number[], dims: number[]) => {
    const raw = dtype === 7 ? Buffer.alloc(values.length * 8) : Buffer.alloc(values.length * 4);
    values.forEach((v, i) => (dtype === 7 ? raw.writeBigInt64LE(BigInt(v), i * 8) : raw.writeFloatLE(v, i * 4)));
    const w = new PbWriter();
    if (dims.length) {
      const packed = new PbWriter();
      for (const d of dims) packed.varint(d);
      w.bytes(1, Array.from(packed.finish()));
    }
    smallInits.push(w.int(2, dtype).string(8, name).bytes(9, Array.from(raw)).finish());
  };
  small('heads_shape', 7, [0, 0, heads, -1], [4]);
  small('hidden_shape', 7, [0, 0, -1], [3]);
  small('sqrt_head_dim', 1, [Math.sqrt(h / heads)], []);
  small('causal_mask', 1, [0], []);
  small('gelu_c', 1, [0.044715], []);
  small('sqrt_2_over_pi', 1, [Math.sqrt(2 / Math.PI)], []);
  small('one', 1, [1], []);
  small('half', 1, [0.5], []);

  // Big initializers: header bytes, then the payload streamed from a reusable buffer.
  const heads_: { head: Uint8Array; payload: number }[] = inits.map(({ name, dims }) => {
    const packed = new PbWriter();
    for (const d of dims) packed.varint(d);
    const payload = dims.reduce((a, b) => a * b, 1) * 4;
    const body = new PbWriter()
      .bytes(1, Array.from(packed.finish()))
      .int(2, 1)
      .string(8, name)
      .tag(9, 2)
      .varint(payload)
      .finish();
    const head = new PbWriter()
      .tag(5, 2)
      .varint(body.length + payload)
      .finish();
    return { head: Buffer.concat([head, body]), payload };
  });
  const valueInfo = (field: number, name: string, elem: number, dims: (number | string)[]) => {
    const shape = new PbWriter();
    for (const d of dims) {
      shape.message(1, typeof d === 'number' ? new PbWriter().int(1, d) : new PbWriter().string(2, d));
    }
    const type = new PbWriter().message(1, new PbWriter().int(1, elem).message(2, shape));
    return new PbWriter().message(field, new PbWriter().string(1, name).message(2, type)).finish();
  };
  const tail = Buffer.concat([
    ...nodes.map((n) => new PbWriter().bytes(1, Array.from(n)).finish()),
    new PbWriter().string(2, 'gpt').finish(),
    ...smallInits.map((b) => new PbWriter().bytes(5, Array.from(b)).finish()),
    valueInfo(11, 'input_ids', 7, ['batch', 'sequence']),
    valueInfo(11, 'position_ids', 7, ['batch', 'sequence']),
    valueInfo(12, 'logits', 1, ['batch', 'sequence', dim(vocab)]),
  ]);
  const graphLen = heads_.reduce((s, t) => s + t.head.length + t.payload, 0) + tail.length;
  const header = Buffer.concat([
    new PbWriter()
      .int(1, 8)
      .string(2, 'layerplan-bench')
      .message(8, new PbWriter().int(2, 17))
      .tag(7, 2)
      .varint(graphLen)
      .finish(),
  ]);
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(4 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeFloatLE(((i * 2654435761) % 2000) / 1000 - 1, i);
  try {
    fs.writeSync(fd, header);
    for (const t of heads_) {
      fs.writeSync(fd, t.head);
      for (let left = t.payload; left > 0;) {
        const n = Math.min(left, chunk.length);
        fs.writeSync(fd, chunk, 0, n);
        left -= n;
      }
    }
    fs.writeSync(fd, tail);
  } finally {
    fs.closeSync(fd);
  }
  return { nodes: nodes.length, parameters: inits.reduce((s, t) => s + t.dims.reduce((a, b) => a * b, 1), 0) };
}
