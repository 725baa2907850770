import * as assert from 'assert';
import * as path from 'path';
import { openModel } from '../../src/engine/formats/registry';
import { layerNodes, modelSummary, nodeDetails, searchGraph } from '../../src/host/graph-summary';
import { FileByteSource } from '../../src/node/file-source';
import { OUR_MODELS } from '../helpers';

describe('graph view model (host side)', () => {
  let graph: Awaited<ReturnType<typeof openModel>>;
  before(async () => {
    const source = await FileByteSource.open(path.join(OUR_MODELS, 'gpt2-tiny.onnx'));
    graph = await openModel(source);
    await source.close();
  });
  it('summarizes the collapsed graph: one box per layer, edges between layers', () => {
    const s = modelSummary('gpt2-tiny.onnx', graph);
    assert.strictEqual(s.layers.length, graph.layers.length);
    assert.strictEqual(
      s.layers.reduce((a, l) => a + l.nodes, 0),
      s.nodes,
    );
    const idx = (n: string) => s.layers.find((l) => l.name === n)!.index;
    assert.ok(
      s.edges.some((e) => e.from === idx('h.0') && e.to === idx('h.1')),
      'h.0 feeds h.1',
    );
    assert.ok(s.edges.every((e) => e.from !== e.to));
    // Opened without bindings: the FLOPs the view shows count batch and sequence as 1, and it says so.
    assert.deepStrictEqual(s.warnings, ['symbolic dims not bound, counted as 1 in FLOPs and bytes: batch, sequence']);
  });
  it("gives a layer's nodes with shapes, and a node's details", () => {
    const h0 = graph.layers.find((l) => l.name === 'h.0')!;
    const { nodes, edges } = layerNodes(graph, h0.index);
    assert.strictEqual(nodes.length, h0.nodes.length);
    assert.ok(edges.length > 0);
    const mm = nodes.find((n) => n.opType === 'MatMul')!;
    assert.match(mm.shape, /^\[batch, sequence, \d+\]$/);
    const d = nodeDetails(graph, mm.index)!;
    assert.ok(d.inputs.some((i) => i.weight) && d.parameters > 0 && d.flops > 0);
  });
  it('finds layers by the names of tensors inside them (search)', () => {
    const tensor = graph.layers.find((l) => l.name === 'h.1')!.weights.find((w) => w.startsWith('onnx::MatMul'))!;
    const r = searchGraph(graph, tensor.toUpperCase());
    assert.deepStrictEqual(
      r.layers.map((i) => graph.layers[i].name),
      ['h.1'],
    );
    assert.ok(r.nodes.length >= 1);
    // The node that reads the weight is the hit.
    assert.ok(r.hits.every((h) => graph.nodes[h.node].inputs.includes(tensor)));
    assert.strictEqual(searchGraph(graph, '   ').total, 0);
  });

  it('search finds the nodes of an op, not the nodes that read their outputs; with a count and graph order', () => {
    // "MatMul" used to light up Div, Add and Transpose too (their input tensors are named …/MatMul_output_0).
    const r = searchGraph(graph, 'MatMul');
    const matmuls = graph.nodes.filter((n) => n.opType === 'MatMul').length;
    assert.strictEqual(r.total, matmuls);
    assert.ok(
      r.hits.every((h) => h.opType === 'MatMul'),
      JSON.stringify(r.hits.map((h) => h.opType)),
    );
    assert.deepStrictEqual(
      r.hits.map((h) => h.node),
      [...r.hits.map((h) => h.node)].sort((a, b) => a - b),
    );
    for (const h of r.hits) {
      assert.strictEqual(graph.layers[h.layer].name, graph.layers[graph.nodes[h.node].layer].name);
    }
  });

  it("hides constant nodes unless asked, and says how many; a node's details link its producer and consumers", () => {
    const h0 = graph.layers.find((l) => l.name === 'h.0')!;
    const all = layerNodes(graph, h0.index, '', true);
    const shown = layerNodes(graph, h0.index, '', false);
    assert.ok(all.nodes.some((n) => n.opType === 'Constant'));
    assert.ok(!shown.nodes.some((n) => n.opType === 'Constant' || n.constant));
    assert.strictEqual(shown.hidden, all.nodes.length - shown.nodes.length);
    const mm = shown.nodes.find((n) => n.opType === 'MatMul')!;
    const d = nodeDetails(graph, mm.index)!;
    const fromAct = d.inputs.find((i) => !i.weight)!;
    assert.strictEqual(graph.tensors.get(fromAct.name)!.producer, fromAct.producer!.node);
    for (const o of d.outputs) {
      assert.deepStrictEqual(
        o.consumers.map((c) => c.node),
        graph.tensors.get(o.name)!.consumers,
      );
    }
    const s = modelSummary('gpt2-tiny.onnx', graph);
    assert.deepStrictEqual(
      s.inputs.map((i) => [i.name, i.shape]),
      [['input_ids', '[batch, sequence]']],
    );
    assert.strictEqual(s.outputs[0].node!.name, graph.nodes[graph.tensors.get('logits')!.producer!].name);
  });

  it('shows an If branch or a Loop body as a level of its own, with breadcrumbs', async () => {
    const source = await FileByteSource.open(path.join(OUR_MODELS, 'vad-tiny.onnx'));
    const vad = await openModel(source);
    await source.close();
    const top = modelSummary('vad-tiny.onnx', vad);
    assert.deepStrictEqual(top.level.crumbs, [{ id: '', label: 'vad-tiny.onnx' }]);
    const ifNode = vad.nodes.find((n) => n.opType === 'If')!;
    const d = nodeDetails(vad, ifNode.index)!;
    assert.deepStrictEqual(d.subgraphs.map((x) => x.label).sort(), ['else_branch', 'then_branch']);
    const then = modelSummary('vad-tiny.onnx', vad, `${ifNode.index}:then_branch`);
    assert.deepStrictEqual(
      then.level.crumbs.map((c) => c.label),
      ['vad-tiny.onnx', 'If_1 · then_branch'],
    );
    assert.ok(then.layers.some((l) => l.name === '_model.decoder.rnn'));
    // Every node of the branch (and of the Loop inside it) is in exactly one of its layers.
    const branch = `${ifNode.index}:then_branch`;
    const under = vad.nodes.filter((n) => {
      for (let x = n; ; x = vad.nodes[x.parent]) {
        if (x.subgraph === branch) return true;
        if (x.parent < 0) return false;
      }
    }).length;
    assert.strictEqual(
      then.layers.reduce((a, l) => a + l.nodes, 0),
      under,
    );
    const loop = vad.nodes.find((n) => n.opType === 'Loop' && n.subgraph === `${ifNode.index}:then_branch`)!;
    const body = modelSummary('vad-tiny.onnx', vad, `${loop.index}:body`);
    assert.strictEqual(body.level.crumbs.length, 3);
    const lstm = vad.nodes.find((n) => n.opType === 'LSTM' && n.subgraph === `${loop.index}:body`)!;
    // Its W, R and B reach it through Unsqueeze / Concat of the outer weights: 4·16·16 + 4·16·16 + 2·4·16 parameters.
    assert.strictEqual(nodeDetails(vad, lstm.index)!.parameters, 64 * 16 + 64 * 16 + 128);
    assert.ok(searchGraph(vad, 'LSTM').hits.some((h) => h.level === `${loop.index}:body`));
  });
});
