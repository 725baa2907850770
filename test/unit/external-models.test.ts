import * as assert from 'assert';
import * as path from 'path';
import { analyzeGraph } from '../../src/engine/graph/structure';
import { formatInspect } from '../../src/engine/report/inspect-text';
import { modelSummary } from '../../src/host/graph-summary';
import { inspectFile } from '../../src/node/inspect-file';
import { EXTERNAL_MODELS, openGraph as open } from '../helpers';

const external = (name: string) => path.join(EXTERNAL_MODELS, name);

describe('models exported outside this repository: control flow', () => {
  // Silero VAD v5 (spox export): Constant, Equal(sr, 16000), If — the 16 kHz network in the then branch, the 8 kHz
  // one in the else branch. silero_vad_16k_op15.onnx is the same 16 kHz network exported by torch without the If.
  const v5 = external('silero_vad.onnx');
  const op15 = external('silero_vad_16k_op15.onnx');

  it("Silero VAD v5: the layers are its branches' modules, not one If_0 layer holding the whole model", async () => {
    const r = await inspectFile(v5);
    const names = r.layers.map((l) => l.name);
    // Before: (input) and If_0, the latter with 687 of 689 nodes and every parameter.
    for (const branch of ['then', 'else']) {
      for (const m of ['stft', 'encoder.0', 'encoder.1', 'encoder.2', 'encoder.3', 'decoder']) {
        assert.ok(names.includes(`If_0.${branch}.${m}`), `If_0.${branch}.${m} in ${names.join(', ')}`);
      }
    }
    const largest = Math.max(...r.layers.map((l) => l.parameters));
    assert.ok(largest < 0.3 * r.parameters, `largest layer ${largest} of ${r.parameters}`);
    assert.strictEqual(
      r.layers.reduce((a, l) => a + l.parameters, 0),
      r.parameters,
    );
    // The 16 kHz branch's encoder is the network the op15 export holds: the same parameters per block.
    const other = await inspectFile(op15);
    const params = (x: typeof r, n: string) => x.layers.find((l) => l.name === n)?.parameters;
    for (const k of [0, 1, 2, 3]) {
      assert.strictEqual(params(r, `If_0.then.encoder.${k}`), params(other, `model.encoder.${k}`), `encoder.${k}`);
    }
    // The 8 kHz network is another one (its STFT has half the filters).
    assert.ok(params(r, 'If_0.else.stft')! < params(r, 'If_0.then.stft')!);
  });

  it('an If counts the branch that runs: one run of Silero v5 costs what the 16 kHz export costs', async () => {
    const r = await inspectFile(v5);
    const other = await inspectFile(op15);
    // Before: 1.61M, the 16 kHz and the 8 kHz branches added together. (The two exports differ by a few scalar ops.)
    assert.ok(Math.abs(r.flops - other.flops) < 1e-4 * other.flops, `${r.flops} vs ${other.flops}`);
    const sum = r.layers.reduce((a, l) => a + l.flops, 0);
    const branch = (b: string) =>
      r.layers.filter((l) => l.name.startsWith(`If_0.${b}.`)).reduce((a, l) => a + l.flops, 0);
    assert.strictEqual(r.flops, sum - Math.min(branch('then'), branch('else')));
    // The op15 export's decoder runs one of two LSTMs (hidden 128 over 128 inputs, one step: 2·4·128·(128+128)
    // multiply-adds), chosen by an If: its layers show both, one run counts one.
    const lstm = 2 * 4 * 128 * (128 + 128);
    const then = other.layers.find((l) => l.name === 'model.decoder.then.rnn')!;
    const otherwise = other.layers.find((l) => l.name === 'model.decoder.else.rnn_1')!;
    for (const l of [then, otherwise]) assert.ok(l.flops >= lstm && l.flops < lstm * 1.01, `${l.name}: ${l.flops}`);
    assert.strictEqual(
      other.flops,
      other.layers.reduce((a, l) => a + l.flops, 0) - Math.min(then.flops, otherwise.flops),
    );
    assert.match(formatInspect(v5, r), new RegExp(`FLOPs per run ${(r.flops / 1e3).toFixed(0)}k`));
  });

  it("the graph view's top level shows the If holding the branches, with one run's FLOPs and every parameter", async () => {
    const g = await open(v5);
    const s = modelSummary('silero_vad.onnx', g);
    // Layers made of branch nodes only have no box at the top: they show when the user enters the branch.
    assert.deepStrictEqual(
      s.layers.map((l) => l.name),
      ['(input)', 'If_0'],
    );
    const box = s.layers.find((l) => l.name === 'If_0')!;
    assert.strictEqual(box.nodes, 687);
    // Every float weight the branches read (int64 shape constants aside).
    assert.ok(box.parameters > 0.99 * s.parameters && box.parameters <= s.parameters, String(box.parameters));
    assert.strictEqual(box.flops, g.flops! - s.layers[0].flops);
    // Entering the then branch shows its modules, named without spox's `If_0_then_branch__Inline_0__` prefix.
    const then = modelSummary('silero_vad.onnx', g, '2:then_branch');
    for (const m of ['stft', 'encoder.0', 'encoder.3', 'decoder']) {
      assert.ok(
        then.layers.some((l) => l.name === m),
        then.layers.map((l) => l.name).join(', '),
      );
    }
  });
});

describe('models exported outside this repository: names', () => {
  it('Hugging Face TF BERT (keras2onnx): one layer per encoder block `layer_._N`, not one per TF op scope', async () => {
    const file = external('ort_TFBertForQuestionAnswering.onnx');
    const r = await inspectFile(file);
    const g = await open(file);
    const blocks = r.layers.filter((l) => /\.encoder\.layer_\._\d+$/.test(l.name));
    // Before: 587 layers (`…layer_._0.attention.self.query.Tensordot`, `….LayerNorm.moments`, …).
    assert.strictEqual(blocks.length, 24, `${r.layers.length} layers: ${r.layers.slice(0, 12).map((l) => l.name)} …`);
    assert.ok(r.layers.length <= 40, `${r.layers.length} layers`);
    // Each block holds one BERT layer's weights (Devlin et al. 2019): Q, K, V and the output projection with biases,
    // two LayerNorms, and the feed-forward pair — h and the feed-forward width i read from the block's kernels
    // (keras2onnx stores each kernel as `…/Tensordot/Reshape_1:0_resize`); scalars (epsilons, GELU's constants) aside.
    const float = (name: string) =>
      g.layers
        .find((l) => l.name === name)!
        .weights.filter((w) => g.tensors.get(w)!.dtype === 'float' && g.tensors.get(w)!.elements > 1)
        .map((w) => g.tensors.get(w)!);
    for (const b of blocks) {
      const ws = float(b.name);
      const query = ws.find((t) => /attention\/self\/query\/Tensordot\/Reshape_1/.test(t.name))!.shape as number[];
      const inter = ws.find((t) => /intermediate\/dense\/Tensordot\/Reshape_1/.test(t.name))!.shape as number[];
      const [h, i] = [query[0], inter[1]];
      const want = 4 * (h * h + h) + 2 * 2 * h + (h * i + i) + (i * h + h);
      assert.strictEqual(
        ws.reduce((a, t) => a + t.elements, 0),
        want,
        b.name,
      );
    }
  });

  it('weighted nodes with neither name nor named weights join the module they feed (GTCRN, torch 1.11)', async () => {
    const r = await inspectFile(external('gtcrn.onnx'));
    const g = await open(external('gtcrn.onnx'));
    const names = r.layers.map((l) => l.name);
    // Before: GRU_153, MatMul_156, GRU_700, … as layers of their own, and encoder.en_convs.2 held only its attention's
    // tail. GTCRN's GTConvBlocks end in temporal recurrent attention (a GRU and a linear layer; Rong et al. 2024).
    assert.ok(!names.some((n) => /^GRU_\d+$/.test(n)), names.join(', '));
    // Each GTConvBlock whole: its BN-folded point and depthwise convolutions (unnamed `Conv_139`, `Conv_147`, …, 9–16
    // ops before the attention) in it, so the three blocks, alike but for their dilation, hold the same convolutions and
    // (to a few shape constants) the same parameters. The first two encoder blocks have no name in the file at all.
    const convs: number[] = [];
    const params: number[] = [];
    for (const k of [2, 3, 4]) {
      const l = g.layers.find((x) => x.name === `encoder.en_convs.${k}`)!;
      assert.ok(
        l.nodes.some((i) => g.nodes[i].opType === 'GRU'),
        `encoder.en_convs.${k}`,
      );
      convs.push(l.nodes.filter((i) => g.nodes[i].opType === 'Conv').length);
      params.push(l.parameters);
    }
    assert.deepStrictEqual(convs, [convs[0], convs[0], convs[0]]);
    assert.ok(convs[0] >= 3, `${convs[0]} convolutions`);
    assert.ok(Math.max(...params) - Math.min(...params) <= 10, params.join(', '));
    assert.deepStrictEqual(
      names.filter((n) => /^Conv_\d+$/.test(n)),
      ['Conv_75', 'Conv_77'],
    );
    assert.strictEqual(
      r.layers.reduce((a, l) => a + l.parameters, 0),
      r.parameters,
    );
  });

  it("a node the file writes out of order joins the block it belongs to (GPT-2's QKV Split after onnxruntime's optimizer)", async () => {
    const g = await open(external('ort_gpt2_past.onnx'));
    const splits = g.nodes.filter((n) => n.opType === 'Split');
    assert.strictEqual(splits.length, 12);
    // Each Split cuts one block's c_attn output into query, key and value: it belongs to that block (before: ln_f).
    for (const s of splits) {
      const from = g.tensors.get(s.inputs[0])!.producer!;
      assert.strictEqual(g.layers[s.layer].name, g.layers[g.nodes[from].layer].name, s.name);
      assert.match(g.layers[s.layer].name, /^h\.\d+$/);
    }
  });

  it('TensorFlow exports: a Keras layer is one layer (tf2onnx / keras2onnx scopes)', async () => {
    const r = await inspectFile(external('dtln_model_2.onnx'));
    const names = r.layers.map((l) => l.name);
    // Before: `conv1d_3` (the Conv, keras2onnx dropped its model scope) beside `model_2.conv1d_3` (its Pad).
    assert.ok(!names.includes('conv1d_3'), names.join(', '));
    const conv = r.layers.find((l) => l.name === 'model_2.conv1d_3')!;
    assert.ok(conv.parameters > 131072, String(conv.parameters));
  });
});

describe('models exported outside this repository: tied weights', () => {
  it("BERT's masked-LM head, tied to the word embeddings, is the head's work, not the embedding's (onnxruntime's bert_toy)", async () => {
    const g = await open(external('ort_bert_toy_optimized.onnx'));
    const emb = 'bert.embeddings.word_embeddings.weight';
    const users = g.nodes.filter(
      (n) => !n.subgraph && n.inputs.some((i) => i === emb || analyzeGraph(g).sourcesOf(i).includes(emb)),
    );
    // Two users: the embedding's Gather and the head's MatMul by its transpose (Devlin et al. 2019 tie them).
    const head = users.find((n) => n.opType === 'MatMul')!;
    assert.ok(head, users.map((n) => n.opType).join(', '));
    const layer = g.layers[head.layer];
    assert.strictEqual(layer.name, 'cls.predictions');
    // Its FLOPs: 2 · tokens · hidden · vocab, counted in the head (before: in word_embeddings, which gathers only).
    assert.ok(layer.flops >= head.flops && head.flops > 0, `${layer.flops} vs ${head.flops}`);
    assert.strictEqual(g.layers.find((l) => l.name === 'bert.embeddings.word_embeddings')!.flops, 0);
    // The weight itself is stored once, in the embedding layer.
    assert.strictEqual(g.layers[g.tensors.get(emb)!.layer!].name, 'bert.embeddings.word_embeddings');
  });
});
