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
    assert.deepStrictEqual(searchGraph(graph, '   '), { layers: [], nodes: [] });
  });
});
