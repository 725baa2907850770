import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { inspectFile } from '../../src/node/inspect-file';
import { OUR_MODELS, SHARED_FIXTURES, walk } from '../helpers';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** Counts by DESIGN.md's definitions, from onnx-proto's decode: nodes and parameters include subgraphs. */
function protoCounts(g: any, acc = { nodes: 0, parameters: 0, ops: {} as Record<string, number> }) {
  const prod = (dims: any[]) => (dims ?? []).reduce((p: number, d: any) => p * Number(d), 1);
  for (const t of g.initializer ?? []) acc.parameters += prod(t.dims);
  for (const s of g.sparseInitializer ?? []) acc.parameters += prod(s.dims);
  for (const n of g.node ?? []) {
    acc.nodes++;
    acc.ops[n.opType] = (acc.ops[n.opType] ?? 0) + 1;
    for (const a of n.attribute ?? []) {
      if (n.opType === 'Constant') {
        if (a.name === 'value') acc.parameters += prod(a.t.dims);
        else if (a.name === 'sparse_value') acc.parameters += prod(a.sparseTensor.dims);
        else if (a.name === 'value_float' || a.name === 'value_int' || a.name === 'value_string') acc.parameters += 1;
        else if (a.name === 'value_floats') acc.parameters += a.floats.length;
        else if (a.name === 'value_ints') acc.parameters += a.ints.length;
        else if (a.name === 'value_strings') acc.parameters += a.strings.length;
      }
      for (const sub of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) protoCounts(sub, acc);
    }
  }
  return acc;
}

describe('layerplan inspect', () => {
  describe('counts agree with onnx-proto on every shared fixture', () => {
    for (const file of walk(path.join(SHARED_FIXTURES, 'onnx-backend'), '.onnx')) {
      it(path.basename(path.dirname(file)) + '/' + path.basename(file), async () => {
        const proto: any = onnx.ModelProto.toObject(onnx.ModelProto.decode(fs.readFileSync(file)), {
          longs: Number,
          arrays: true,
        });
        const expected = protoCounts(proto.graph);
        const r = await inspectFile(file);
        assert.strictEqual(r.format, 'onnx');
        assert.strictEqual(r.nodes, expected.nodes);
        assert.strictEqual(r.parameters, expected.parameters);
        assert.deepStrictEqual(r.ops, expected.ops);
        assert.strictEqual(r.producer, proto.producerName ?? '');
        assert.strictEqual(
          r.layers.reduce((s, l) => s + l.nodes, 0),
          r.nodes,
          'every node belongs to exactly one layer',
        );
        assert.strictEqual(
          r.layers.reduce((s, l) => s + l.parameters, 0),
          r.parameters,
          'every parameter belongs to one layer',
        );
      });
    }
  });

  describe('matches the onnx python package on exported models', () => {
    const expected = JSON.parse(fs.readFileSync(path.join(OUR_MODELS, 'expected.json'), 'utf8'));
    for (const [name, e] of Object.entries<any>(expected)) {
      it(name, async () => {
        const r = await inspectFile(path.join(OUR_MODELS, name));
        assert.strictEqual(r.nodes, e.nodes);
        assert.strictEqual(r.parameters, e.parameters);
        assert.deepStrictEqual(r.ops, e.ops);
        assert.strictEqual(r.producer, e.producer);
        assert.deepStrictEqual(r.opsets, e.opsets);
      });
    }
  });

  it('groups a GPT-2 export into its blocks, with unnamed torch weights joining the block that uses them', async () => {
    const r = await inspectFile(path.join(OUR_MODELS, 'gpt2-tiny.onnx'));
    const names = r.layers.map((l) => l.name);
    for (const n of ['h.0', 'h.1', 'wte', 'wpe', 'ln_f', 'lm_head']) {
      assert.ok(names.includes(n), `missing layer ${n} in ${names}`);
    }
    const block = r.layers.find((l) => l.name === 'h.0')!;
    // d=64: c_attn 64·192+192, c_proj 64·64+64, mlp 64·256+256 + 256·64+64, two LayerNorms 4·64.
    const weights = 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64 + 4 * 64;
    // Plus the scalar Constant nodes torch emits inside the block (sqrt(head_dim), split sizes, …).
    assert.ok(
      block.parameters >= weights && block.parameters < weights + 64,
      `h.0 holds ${block.parameters} parameters, expected ${weights} + a few constants`,
    );
    assert.strictEqual(r.layers.find((l) => l.name === 'lm_head')!.parameters, 64 * 256);
  });

  it('counts MatMul FLOPs as 2·M·N·K and scales with the sequence binding', async () => {
    const at = (seq: number) => inspectFile(path.join(OUR_MODELS, 'gpt2-tiny.onnx'), { batch: 1, sequence: seq });
    const [a, b] = [await at(16), await at(32)];
    const head = (r: Awaited<ReturnType<typeof at>>) => r.layers.find((l) => l.name === 'lm_head')!.flops;
    assert.strictEqual(head(a), 2 * 16 * 64 * 256);
    assert.strictEqual(head(b), 2 * head(a));
  });

  it('keeps unknown ops and marks them', async () => {
    const r = await inspectFile(path.join(OUR_MODELS, 'control-flow.onnx'));
    assert.strictEqual(r.nodes, 6, 'If, Loop and the four nodes of their subgraphs');
    assert.deepStrictEqual(r.unknownOps, ['If', 'Loop']);
  });
});
