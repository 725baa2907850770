import * as assert from 'assert';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { groupLevel } from '../../src/engine/graph/layers';
import { inspectFile } from '../../src/node/inspect-file';
import { OUR_MODELS, SHARED_FIXTURES, openGraph as open, stageSizes } from '../helpers';

describe('layers from the structure when names carry no scope', () => {
  it("Paddle2ONNX's recognizer: backbone stages, a BiLSTM neck and a CTC head — not one layer per op type", async () => {
    const file = path.join(OUR_MODELS, 'paddle-rec.onnx');
    const r = await inspectFile(file);
    const names = r.layers.map((l) => l.name);
    // Before: p2o.Conv, p2o.BatchNormalization, p2o.HardSwish, … and an "(input)" layer of 149 Constants.
    assert.ok(!names.some((n) => n.startsWith('p2o.') || n === '(input)'), names.join(', '));
    assert.deepStrictEqual(names, [
      'backbone.stem',
      'backbone.stage1.block0',
      'backbone.stage1.block1',
      'backbone.stage2.block0',
      'backbone.stage2.block1',
      'backbone.stage3.block0',
      'backbone.stage3.block1',
      'backbone.stage3.block2',
      'neck.lstm0',
      'neck.lstm1',
      'head.fc0',
    ]);
    // The six MobileNetV3 units the fixture script writes (scripts/make-fixtures.py), two per resolution.
    assert.deepStrictEqual(stageSizes(names), [2, 2, 3]);
    // A bidirectional LSTM of hidden 24 over 48 inputs: 2 × (4·24·48 + 4·24·24 + 8·24) weights (ONNX LSTM's W, R, B),
    // which reach the LSTM through Unsqueeze + Concat.
    const lstm = r.layers.find((l) => l.name === 'neck.lstm0')!;
    const g = await open(file);
    const weights = g.layers
      .find((l) => l.name === 'neck.lstm0')!
      .weights.filter((w) => /^lstm_0\./.test(w) && g.tensors.get(w)!.dtype === 'float')
      .reduce((a, w) => a + g.tensors.get(w)!.elements, 0);
    assert.strictEqual(weights, 2 * (4 * 24 * 48 + 4 * 24 * 24 + 8 * 24));
    assert.ok(lstm.parameters >= weights && lstm.parameters < weights + 16, String(lstm.parameters));
    assert.strictEqual(
      r.layers.reduce((a, l) => a + l.nodes, 0),
      r.nodes,
    );
    assert.strictEqual(
      r.layers.reduce((a, l) => a + l.parameters, 0),
      r.parameters,
    );
    // The fixture is a model onnxruntime runs: [N, 25 time steps, 37 classes].
    const s = await ort.InferenceSession.create(file);
    const out = await s.run({
      x: new ort.Tensor('float32', new Float32Array(3 * 32 * 100).fill(0.5), [1, 3, 32, 100]),
    });
    assert.deepStrictEqual(Object.values(out)[0].dims, [1, 25, 37]);
  });

  const light = (name: string) => path.join(SHARED_FIXTURES, 'onnx-backend', 'light', `light_${name}.onnx`);
  it('CNNs of the ONNX model zoo (caffe2 names, outside this repository) show their stages and blocks', async () => {
    // Published block counts: ResNet-50 3/4/6/3 (He et al. 2016, Table 1), ShuffleNet 4/8/4 (Zhang et al. 2018,
    // Table 1), GoogLeNet's inception modules 2/5/2 after its 2 stem convolutions (Szegedy et al. 2015, Table 1),
    // DenseNet-121's dense layers 6/12/24/16 (Huang et al. 2017, Table 1; each of the first three ends in a transition).
    const want: [string, number[]][] = [
      ['resnet50', [3, 4, 6, 3]],
      ['shufflenet', [4, 8, 4]],
      ['inception_v1', [2, 2, 5, 2]],
      ['densenet121', [6 + 1, 12 + 1, 24 + 1, 16]],
      // SqueezeNet 1.1's fire modules fire2–fire9 between its max pools 2/2/4 (Iandola et al. 2016; the caffe2
      // model names them fire2…fire9). Before: each fire split into its squeeze and expand halves.
      ['squeezenet', [2, 2, 4]],
      // AlexNet's and ZFNet's five convolutions: conv1 at 55×55, conv2 at 27×27, conv3–5 at 13×13.
      ['bvlc_alexnet', [1, 3]],
      ['zfnet512', [1, 3]],
    ];
    for (const [model, sizes] of want) {
      const r = await inspectFile(light(model));
      const names = r.layers.map((l) => l.name);
      assert.deepStrictEqual(stageSizes(names), sizes, `${model}: ${names.join(', ')}`);
      assert.strictEqual(names[0], 'backbone.stem', model);
    }
    // VGG-19 (configuration E): 2, 2, 4, 4, 4 convolutions between its five max pools, no stem (Simonyan &
    // Zisserman 2015, Table 1), then three fully connected layers. Before: the first two stages were one unit each.
    const vgg = (await inspectFile(light('vgg19'))).layers.map((l) => l.name);
    assert.deepStrictEqual(stageSizes(vgg), [2, 2, 4, 4, 4], vgg.join(', '));
    assert.deepStrictEqual(vgg.slice(-3), ['head.fc0', 'head.fc1', 'head.fc2']);
    // Classifiers that are 1×1 convolutions (SqueezeNet's conv10, DenseNet's fc6 after the global pool) are the head.
    for (const model of ['squeezenet', 'densenet121']) {
      const names = (await inspectFile(light(model))).layers.map((l) => l.name);
      assert.strictEqual(names[names.length - 1], 'head.conv0', `${model}: ${names.slice(-3).join(', ')}`);
    }
  });

  it("an unused initializer sits in '(unused weights)', not in a layer named by its scope that other weights join", async () => {
    // caffe2's ZFNet-512 and ResNet-50 carry `gpu_0/imagenet1k_blobs_queue_…`, read by no node. Before: a node-less
    // layer "gpu_0" that then took the 34 other `gpu_0/…` weights whose owner is a real layer.
    for (const model of ['zfnet512', 'resnet50']) {
      const g = await open(light(model));
      const names = g.layers.map((l) => l.name);
      assert.ok(!names.includes('gpu_0'), `${model}: ${names.join(', ')}`);
      const unused = g.layers.find((l) => l.name === '(unused weights)')!;
      assert.deepStrictEqual(
        unused.weights.map((w) => w.replace(/_[0-9a-f-]{36}_0$/, '')),
        ['gpu_0/imagenet1k_blobs_queue'],
      );
      // Every weight a node reads sits in the layer of a node that reads it.
      for (const t of g.tensors.values()) {
        if (!t.isWeight || !t.consumers.length) continue;
        assert.ok(
          t.consumers.some((c) => g.nodes[c].layer === t.layer),
          `${model}: ${t.name} in ${g.layers[t.layer!].name}`,
        );
      }
    }
  });

  it("torch's deduplicated weights behind Identity count in every layer that uses them (no Identity_N layers)", async () => {
    const r = await inspectFile(path.join(OUR_MODELS, 'bert-shared.onnx'));
    const names = r.layers.map((l) => l.name);
    assert.ok(!names.some((n) => /^Identity/.test(n)), names.join(', '));
    const params = (x: typeof r, n: string) => x.layers.find((l) => l.name === n)!.parameters;
    // The reference: the same architecture exported with distinct weights (bert-tiny), whose blocks torch did not
    // deduplicate. Before: layer.1 and layer.2 held 30 parameters, the shared matrices sat in Identity_N layers.
    const distinct = await inspectFile(path.join(OUR_MODELS, 'bert-tiny.onnx'));
    for (const n of ['layer.0', 'layer.1', 'layer.2']) {
      assert.ok(
        [params(distinct, 'layer.0'), params(distinct, 'layer.1')].includes(params(r, n)),
        `${n}: ${params(r, n)}`,
      );
    }
    // GPT-2 as its config creates it (norms all ones): torch shares every norm's weight and bias through Identity
    // nodes; each layer still holds what the same model exported with trained norms holds (ln_f: 130, was 2).
    const fresh = await inspectFile(path.join(OUR_MODELS, 'gpt2-fresh.onnx'));
    const trained = await inspectFile(path.join(OUR_MODELS, 'gpt2-tiny.onnx'));
    assert.deepStrictEqual(
      fresh.layers.map((l) => [l.name, l.parameters]),
      trained.layers.map((l) => [l.name, l.parameters]),
    );
  });

  it('If / Loop bodies are grouped as graphs of their own; an LSTM inside a Loop has its FLOPs, shapes and weights', async () => {
    const g = await open(path.join(OUR_MODELS, 'vad-tiny.onnx'), { batch: 1 });
    const then = g.subgraphs!.get('1:then_branch')!;
    assert.deepStrictEqual(
      groupLevel(g, then.nodes, then.outputs).map((x) => x.name),
      [
        '(input)',
        '_model.stft',
        '_model.encoder.0',
        '_model.encoder.1',
        '_model.encoder.2',
        '_model.encoder.3',
        '_model.decoder.rnn',
        '_model.decoder.decoder.2',
      ],
    );
    const lstm = g.nodes.find((n) => n.opType === 'LSTM' && n.subgraph?.endsWith(':body'))!;
    // One frame (sequence 1, batch 1 here) through an LSTM of hidden 16 over 16 inputs: 4 gates × (16·16 + 16·16)
    // multiply-adds, 2 FLOPs each. Before: 0 FLOPs and unknown shapes (the frame arrives as a loop-carried value).
    assert.strictEqual(lstm.flops, 2 * 4 * 16 * (16 + 16));
    const y = g.tensors.get(lstm.outputs[0])!.shape!;
    assert.deepStrictEqual([y[1], y[3]], [1, 16]);
  });
});

describe('a synthesized transformer names its modules once', () => {
  it("Llama's final norm is the layer model.norm (was model.norm.model.norm), BERT's pooler bert.pooler.dense", async () => {
    const llama = await inspectFile(path.join(OUR_MODELS, '..', 'hf-configs', 'llama-2-7b', 'config.json'));
    assert.deepStrictEqual(
      llama.layers.slice(-2).map((l) => [l.name, l.parameters]),
      [
        ['model.norm', 4096],
        ['lm_head', 32000 * 4096],
      ],
    );
    const bert = await inspectFile(path.join(OUR_MODELS, '..', 'hf-configs', 'bert-base-uncased', 'config.json'));
    assert.ok(bert.layers.some((l) => l.name === 'bert.pooler.dense' && l.parameters === 768 * 768 + 768));
  });
});
