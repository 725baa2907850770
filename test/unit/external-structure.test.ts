import * as assert from 'assert';
import * as path from 'path';
import { groupLevel } from '../../src/engine/graph/layers';
import type { Layer, ModelGraph } from '../../src/engine/graph/model-graph';
import { EXTERNAL_MODELS, SHARED_FIXTURES, openGraph as open, stageSizes } from '../helpers';

/**
 * Layers found from the structure of real exports made outside this repository (test/fixtures/external/SOURCES.md),
 * checked against the published architectures. These graphs carry no name scopes (Paddle2ONNX's `Conv_12`, CoreML's
 * `convolution4`), so every layer below comes from src/engine/graph/structure.ts.
 */
const external = (name: string) => path.join(EXTERNAL_MODELS, name);

/** How many of a layer's nodes have each op type (a depthwise convolution, group > 1, counts as DwConv). */
function ops(g: ModelGraph, l: Layer): Record<string, number> {
  const count: Record<string, number> = {};
  for (const i of l.nodes) {
    const n = g.nodes[i];
    const op = n.opType === 'Conv' && Number(n.attributes.group ?? 1) > 1 ? 'DwConv' : n.opType;
    count[op] = (count[op] ?? 0) + 1;
  }
  return count;
}

/** The nodes fed, directly or not, by any node of `from`. */
function downstream(g: ModelGraph, from: number[]): Set<number> {
  const seen = new Set<number>();
  const stack = [...from];
  while (stack.length) {
    for (const o of g.nodes[stack.pop()!].outputs) {
      for (const c of g.tensors.get(o)?.consumers ?? []) {
        if (seen.has(c)) continue;
        seen.add(c);
        stack.push(c);
      }
    }
  }
  return seen;
}

/** Checks every model here must pass: layers add up to the model, and no layer holds most of it. */
function wellFormed(g: ModelGraph, maxShare: number): void {
  const total = [...g.tensors.values()].filter((t) => t.isWeight).reduce((a, t) => a + t.elements, 0);
  assert.strictEqual(
    g.layers.reduce((a, l) => a + l.parameters, 0),
    total,
  );
  assert.strictEqual(
    g.layers.reduce((a, l) => a + l.nodes.length, 0),
    g.nodes.length,
  );
  const largest = g.layers.reduce((a, l) => (l.parameters > a.parameters ? l : a));
  assert.ok(
    largest.parameters <= maxShare * total,
    `${largest.name} holds ${((100 * largest.parameters) / total).toFixed(1)} % of the parameters`,
  );
}

const backboneOf = (g: ModelGraph) => g.layers.filter((l) => l.name.startsWith('backbone.'));
const convs = (g: ModelGraph, layers: Layer[]) =>
  layers.reduce((a, l) => a + (ops(g, l).Conv ?? 0) + (ops(g, l).DwConv ?? 0), 0);

describe('detectors and recognizers exported outside this repository: backbone, neck and head', () => {
  it('PicoDet-XS (PP-LCNet backbone, CSP-PAN neck, 4-level head): 13 depthwise separable blocks, a neck, a head per level', async () => {
    const g = await open(external('paddle_picodet_xs_416_lcnet.onnx'));
    const names = g.layers.map((l) => l.name);
    // Before: backbone.stage4.block0 held 99.1 % of the parameters and 414 of 469 nodes (the rest of the backbone,
    // the neck and the head), after 6 of the 13 blocks.
    wellFormed(g, 0.4);
    // PP-LCNet (Cui et al. 2021, Table 1; PaddleClas NET_CONFIG blocks2–blocks6): a 3×3 stride-2 convolution, then
    // 1, 2, 2, 6 and 2 DepthSepConv blocks, each a depthwise and a pointwise convolution, the last two with SE.
    assert.strictEqual(names[0], 'backbone.stem');
    assert.deepStrictEqual(stageSizes(g.layers.map((l) => l.name)), [1, 2, 2, 6, 2], names.join(', '));
    const blocks = backboneOf(g).slice(1);
    for (const l of blocks) assert.strictEqual(ops(g, l).DwConv, 1, `${l.name}: ${JSON.stringify(ops(g, l))}`);
    assert.deepStrictEqual(
      blocks.map((l) => ops(g, l).GlobalAveragePool ?? 0),
      [...new Array<number>(11).fill(0), 1, 1],
    );
    // The backbone's convolutions and no others: 1 + 13 × 2 + 2 SE × 2 (the necks' lateral 1×1 convolutions are not in it).
    assert.strictEqual(convs(g, backboneOf(g)), 1 + 13 * 2 + 2 * 2);
    // Nothing after the first upsampling of the neck is backbone.
    const resize = g.nodes.find((n) => n.opType === 'Resize')!.index;
    const after = downstream(g, [resize]);
    for (const l of backboneOf(g)) assert.ok(!l.nodes.some((i) => after.has(i)), l.name);
    // A neck of several units (the lateral, top-down, bottom-up and extra-level steps of the PAN) and one head branch
    // per level (PicoDet's strides 8, 16, 32, 64), each making that level's two outputs (scores and boxes).
    const neck = g.layers.filter((l) => l.name.startsWith('neck.'));
    assert.ok(neck.length >= 4, names.join(', '));
    const heads = g.layers.filter((l) => l.name.startsWith('head.'));
    assert.strictEqual(heads.length, 4, names.join(', '));
    for (const h of heads) {
      const made = g.outputs.filter((o) => h.nodes.includes(g.tensors.get(o)!.producer!));
      assert.strictEqual(made.length, 2, `${h.name}: ${made.join(', ')}`);
    }
  });

  it('PP-OCRv2 text detector (MobileNetV3-large ×0.5, DB-FPN, DB head): 15 bottlenecks, the FPN and a 3-layer head', async () => {
    const g = await open(external('paddle_ppocrv2_det.onnx'));
    const names = g.layers.map((l) => l.name);
    // Before: neck.conv0 held 95 % of the parameters (MobileNetV3 from its 4th bottleneck on, and the whole FPN).
    wellFormed(g, 0.4);
    // MobileNetV3-Large (Howard et al. 2019, Table 1): a stride-2 3×3 convolution, 15 bnecks of which 1 / 2 / 3 / 6 /
    // 3 at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input, then a 1×1 convolution (the last stage's fourth unit here).
    // This export has no SE (PaddleOCR's disable_se), so every bneck is expand, depthwise, project.
    assert.ok(!g.nodes.some((n) => n.opType === 'GlobalAveragePool'));
    assert.strictEqual(names[0], 'backbone.stem');
    assert.deepStrictEqual(stageSizes(g.layers.map((l) => l.name)), [1, 2, 3, 6, 3 + 1], names.join(', '));
    const bnecks = backboneOf(g).slice(1, 16);
    for (const l of bnecks) {
      const o = ops(g, l);
      assert.deepStrictEqual([o.Conv, o.DwConv], [2, 1], `${l.name}: ${JSON.stringify(o)}`);
    }
    assert.strictEqual(convs(g, backboneOf(g)), 1 + 15 * 3 + 1);
    const resize = g.nodes.find((n) => n.opType === 'Resize')!.index;
    const after = downstream(g, [resize]);
    for (const l of backboneOf(g)) assert.ok(!l.nodes.some((i) => after.has(i)), l.name);
    // DB head (Liao et al. 2020; PaddleOCR db_head.py): a 3×3 convolution and two stride-2 transposed convolutions.
    const heads = g.layers.filter((l) => l.name.startsWith('head.'));
    assert.deepStrictEqual(
      heads.map((h) => (ops(g, h).Conv ?? 0) + (ops(g, h).ConvTranspose ?? 0) * 10),
      [1, 10, 10],
      names.join(', '),
    );
    // The FPN's four lateral 1×1 and four 3×3 convolutions are in the neck.
    const neck = g.layers.filter((l) => l.name.startsWith('neck.'));
    assert.strictEqual(convs(g, neck), 8);
  });

  it("PP-OCRv2 direction classifier (MobileNetV3-small ×0.35): 11 bnecks, SE where the paper's table has it", async () => {
    const g = await open(external('paddle_ppocrv2_cls.onnx'));
    wellFormed(g, 0.4);
    const names = g.layers.map((l) => l.name);
    // MobileNetV3-Small (Howard et al. 2019, Table 2): a 3×3 convolution, 11 bnecks (SE in the 1st and the 4th to
    // 11th), a 1×1 convolution. Before: the stride-2 bnecks with SE were split, their expansion left in the unit before.
    assert.strictEqual(names[0], 'backbone.stem');
    const units = backboneOf(g).slice(1);
    assert.strictEqual(units.length, 11 + 1, names.join(', '));
    for (const l of units.slice(0, 11)) assert.strictEqual(ops(g, l).DwConv, 1, l.name);
    assert.deepStrictEqual(
      units.slice(0, 11).map((l) => ops(g, l).GlobalAveragePool ?? 0),
      [1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
    );
    // Each bneck: its expansion, depthwise and projection convolutions, and the SE's two.
    assert.deepStrictEqual(
      units.slice(0, 11).map((l) => ops(g, l).Conv),
      [4, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4],
    );
    assert.strictEqual(names[names.length - 1], 'head.fc0');
  });
});

describe('CNNs whose exports break the pattern of their blocks', () => {
  it("DenseNet-121's transition layers are whole units (BN, ReLU, 1×1 convolution, average pool)", async () => {
    const g = await open(path.join(SHARED_FIXTURES, 'onnx-backend', 'light', 'light_densenet121.onnx'));
    // Huang et al. 2017, Table 1: 6 / 12 / 24 / 16 dense layers (BN-ReLU-Conv 1×1, BN-ReLU-Conv 3×3 in DenseNet-B),
    // a transition (BN, 1×1 convolution, 2×2 average pool) after each of the first three blocks. Before: the
    // transition's BN and ReLU sat in the last dense layer before it.
    assert.deepStrictEqual(stageSizes(g.layers.map((l) => l.name)), [6 + 1, 12 + 1, 24 + 1, 16]);
    for (const l of backboneOf(g).slice(1)) {
      const o = ops(g, l);
      const transition = (o.AveragePool ?? 0) > 0;
      const last = l === backboneOf(g)[backboneOf(g).length - 1];
      // The last dense layer also holds the final BN of the features before the global pool.
      assert.deepStrictEqual(
        [o.BatchNormalization, o.Conv],
        transition ? [1, 1] : [last ? 3 : 2, 2],
        `${l.name}: ${JSON.stringify(o)}`,
      );
    }
  });

  it('SqueezeNet 1.1 from CoreML (WinMLTools): fire2–fire9 whole, 2 / 2 / 4 between the max pools, without shapes', async () => {
    const g = await open(external('ort_squeezenet_tensor_input.onnx'));
    wellFormed(g, 0.4);
    const names = g.layers.map((l) => l.name);
    // Iandola et al. 2016 (SqueezeNet v1.1 in the authors' repository): conv1, max pool, fire2–3, max pool, fire4–5,
    // max pool, fire6–9, then the classifier. Before: conv0 … conv13 (no shapes after ImageScaler), fire2–5 and 9 split
    // into their squeeze and expand halves.
    assert.strictEqual(names[0], 'backbone.stem');
    assert.deepStrictEqual(stageSizes(g.layers.map((l) => l.name)), [2, 2, 4], names.join(', '));
    // Each fire module: a 1×1 squeeze and the 1×1 and 3×3 expand convolutions, concatenated.
    for (const l of backboneOf(g).slice(1)) {
      assert.deepStrictEqual([ops(g, l).Conv, ops(g, l).Concat], [3, 1], `${l.name}: ${JSON.stringify(ops(g, l))}`);
    }
    assert.strictEqual(names[names.length - 1], 'head.fc0');
  });

  it('without shapes (an op shape inference does not know comes first) the layers are the same', async () => {
    // Stages then follow the strided convolutions and pools on each unit's output path. Before: no shapes, no
    // feature maps, so conv0, conv1, … with no backbone, stages or head.
    const light = (name: string) => path.join(SHARED_FIXTURES, 'onnx-backend', 'light', `light_${name}.onnx`);
    const files = [
      external('paddle_picodet_xs_416_lcnet.onnx'),
      external('paddle_ppocrv2_det.onnx'),
      external('paddle_ppocrv2_cls.onnx'),
      ...['resnet50', 'shufflenet', 'inception_v2', 'densenet121', 'squeezenet', 'zfnet512', 'vgg19'].map(light),
    ];
    for (const file of files) {
      const g = await open(file);
      const top = g.nodes.filter((n) => n.parent < 0).map((n) => n.index);
      const withShapes = groupLevel(g, top, g.outputs).map((x) => x.name);
      for (const t of g.tensors.values()) if (!t.isWeight) t.shape = undefined;
      const without = groupLevel(g, top, g.outputs).map((x) => x.name);
      assert.deepStrictEqual(without, withShapes, path.basename(file));
    }
  });
});
