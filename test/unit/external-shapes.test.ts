import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import * as path from 'path';
import {
  addDims,
  divDims,
  divPoly,
  evalDim,
  mulDims,
  productOf,
  subDims,
  symbol,
  symbolsIn,
  type Dim,
} from '../../src/engine/graph/dims';
import type { ModelGraph } from '../../src/engine/graph/model-graph';
import { openModel } from '../../src/engine/formats/registry';
import { FileByteSource } from '../../src/node/file-source';
import { inspectFile } from '../../src/node/inspect-file';
import { EXTERNAL_MODELS } from '../helpers';

/**
 * Shapes and FLOPs on real exports made outside this repository (test/fixtures/external, SOURCES.md),
 * against onnxruntime: each model runs with every node output exposed as a graph output (a copy
 * written with onnx-proto), and each shape we infer — evaluated with the run's sizes bound to the
 * model's symbolic dims — must equal the shape onnxruntime produced. The FLOPs of every MatMul,
 * Gemm, Conv, ConvTranspose and GRU / LSTM are then recounted from onnxruntime's shapes and the
 * weights' shapes (onnx-proto), with the FLOP convention of src/engine/graph/shapes.ts.
 * The Silero VAD models are left out: their work sits in If branches (handled apart).
 */

interface Case {
  /** Sizes for the model's symbolic input dims, used both to run it and to evaluate our shapes. */
  bindings: Record<string, number>;
  /** Tensors we may leave unsized, with the reason. */
  unsized?: Record<string, string>;
}

const CASES: Record<string, Case> = {
  'dtln_model_1.onnx': { bindings: {} },
  'dtln_model_2.onnx': { bindings: {} },
  'gtcrn.onnx': { bindings: {} },
  'ort_TFBertForQuestionAnswering.onnx': { bindings: { batch_size: 2 } },
  'ort_bert_toy_optimized.onnx': {
    bindings: { batch: 2, max_seq_len_in_batch: 5 },
    // Position ids sliced to Min(sequence, 512): a minimum of a symbol and a number has no symbolic form here.
    unsized: { from_slice_01: 'Min of a symbolic length and a constant' },
  },
  'ort_gpt2_past.onnx': { bindings: { batch_size: 2, seq_len: 3 } },
  // The WinML model's batch dim is named "None": a dim of no name (run with 1, our unknown dims count as 1).
  'ort_squeezenet_tensor_input.onnx': { bindings: { None: 1 } },
  'paddle_ppocrv2_cls.onnx': { bindings: {} },
  'paddle_ppocrv2_det.onnx': { bindings: {} },
  'paddle_picodet_xs_416_lcnet.onnx': { bindings: {} },
};

interface Run {
  graph: ModelGraph;
  /** Every top-level tensor onnxruntime computed, with its shape. */
  real: Map<string, number[]>;
  proto: onnx.ModelProto;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-external-shapes-'));
const runs = new Map<string, Promise<Run>>();

function run(name: string): Promise<Run> {
  let r = runs.get(name);
  if (!r) {
    r = runOnce(name);
    runs.set(name, r);
  }
  return r;
}

async function runOnce(name: string): Promise<Run> {
  const file = path.join(EXTERNAL_MODELS, name);
  const { bindings } = CASES[name];
  const proto = onnx.ModelProto.decode(fs.readFileSync(file));
  const copy = onnx.ModelProto.decode(fs.readFileSync(file));
  const g = copy.graph as onnx.GraphProto;
  const inits = new Set(g.initializer.map((i) => i.name));
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of g.input) {
    if (inits.has(input.name!)) continue;
    const tt = input.type!.tensorType!;
    const dims = tt.shape!.dim!.map((d) => (d.dimParam ? bindings[d.dimParam] : Number(d.dimValue)));
    assert.ok(
      dims.every((d) => Number.isInteger(d)),
      `${name}: no size for ${input.name} ${JSON.stringify(dims)}`,
    );
    const n = dims.reduce((a, b) => a * b, 1);
    if (tt.elemType === onnx.TensorProto.DataType.FLOAT) {
      feeds[input.name!] = new ort.Tensor(
        'float32',
        Float32Array.from({ length: n }, (_, k) => Math.sin(k) / 2),
        dims,
      );
    } else if (tt.elemType === onnx.TensorProto.DataType.INT64) {
      feeds[input.name!] = new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: n }, (_, k) => BigInt(k % 2)),
        dims,
      );
    } else if (tt.elemType === onnx.TensorProto.DataType.INT32) {
      feeds[input.name!] = new ort.Tensor(
        'int32',
        Int32Array.from({ length: n }, (_, k) => k % 2),
        dims,
      );
    } else throw new Error(`${name}: input type ${tt.elemType}`);
  }
  // Expose every node output (ZipMap's sequence of maps is not a tensor: left out).
  const maps = new Set(g.node.filter((n) => n.opType === 'ZipMap').flatMap((n) => n.output!));
  g.output = g.output.filter((o) => !maps.has(o.name!));
  const have = new Set([...g.output.map((o) => o.name!), ...maps]);
  for (const n of g.node) {
    for (const o of n.output!) {
      if (o && !have.has(o)) {
        g.output.push(onnx.ValueInfoProto.create({ name: o }));
        have.add(o);
      }
    }
  }
  const copyFile = path.join(tmp, name);
  fs.writeFileSync(copyFile, onnx.ModelProto.encode(copy).finish());
  const session = await ort.InferenceSession.create(copyFile, {
    graphOptimizationLevel: 'disabled',
    logSeverityLevel: 3,
  });
  const out = await session.run(feeds);
  const real = new Map(Object.entries(out).map(([k, t]) => [k, t.dims.map(Number)]));
  await session.release();
  const source = await FileByteSource.open(file);
  try {
    const graph = await openModel(source, { bindings });
    return { graph, real, proto };
  } finally {
    await source.close();
  }
}

/** Our shape of `name` with the run's sizes bound; null where a dim is unknown or names an unbound symbol. */
function ours(r: Run, name: string, bindings: Record<string, number>): (number | null)[] | undefined {
  return r.graph.tensors.get(name)?.shape?.map((d) => {
    if (d === null) return null;
    if (typeof d === 'number') return d;
    return evalDim(d, new Proxy(bindings, { get: (b, k: string) => b[k] ?? NaN })) || null;
  });
}

describe('shapes and FLOPs of external ONNX exports, against onnxruntime', function () {
  this.timeout(120000);
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: every tensor onnxruntime computes has the shape we infer`, async () => {
      const r = await run(name);
      const wrong: string[] = [];
      let same = 0;
      for (const [t, real] of r.real) {
        const u = ours(r, t, c.bindings);
        const batchOnly = name.startsWith('ort_squeezenet') && u?.[0] === null && real[0] === 1;
        const mine = batchOnly ? [1, ...u!.slice(1)] : u;
        if (mine && JSON.stringify(mine) === JSON.stringify(real)) same++;
        else if (!c.unsized?.[t]) {
          const p = r.graph.tensors.get(t)?.producer;
          wrong.push(
            `${t} (${p === undefined ? '?' : r.graph.nodes[p].opType}): onnxruntime ${JSON.stringify(real)}, ours ${JSON.stringify(r.graph.tensors.get(t)?.shape)}`,
          );
        }
      }
      assert.deepStrictEqual(wrong.slice(0, 10), [], `${wrong.length} of ${r.real.size} differ`);
      assert.ok(same >= r.real.size - Object.keys(c.unsized ?? {}).length);
    });
  }

  /** FLOPs of the weighted ops from onnxruntime's shapes (convention of shapes.ts: a multiply-add is 2). */
  function referenceFlops(r: Run, node: onnx.INodeProto): number | undefined {
    const g = r.proto.graph as onnx.GraphProto;
    const weight = (n: string) => g.initializer.find((i) => i.name === n)?.dims?.map(Number);
    const shape = (n: string) => r.real.get(n) ?? weight(n) ?? constantDims(g, n);
    const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
    const [x, w] = [shape(node.input![0]), shape(node.input![1])];
    const y = r.real.get(node.output![0]);
    if (!x || !w || !y) return undefined;
    const attr = (k: string) => node.attribute?.find((a) => a.name === k);
    switch (node.opType) {
      case 'MatMul':
        return 2 * size(y) * x[x.length - 1];
      case 'Gemm':
        return 2 * size(y) * (Number(attr('transA')?.i ?? 0) ? x[0] : x[1]) + (node.input![2] ? size(y) : 0);
      case 'Conv':
        return 2 * size(y) * size(w.slice(1));
      case 'ConvTranspose':
        return 2 * size(x) * size(w.slice(1));
      case 'GRU':
      case 'LSTM': {
        const gates = node.opType === 'LSTM' ? 4 : 3;
        const h = w[1] / gates;
        return 2 * w[0] * gates * h * x[0] * x[1] * (x[2] + h);
      }
    }
    return undefined;
  }

  for (const name of Object.keys(CASES)) {
    it(`${name}: the FLOPs of every MatMul / Gemm / Conv / recurrent node, recounted from onnxruntime's shapes`, async () => {
      const r = await run(name);
      const wrong: string[] = [];
      let checked = 0;
      for (const node of (r.proto.graph as onnx.GraphProto).node) {
        const want = referenceFlops(r, node);
        if (want === undefined) continue;
        const mine = r.graph.nodes.find((n) => n.depth === 0 && n.outputs[0] === node.output![0]);
        checked++;
        if (mine?.flops !== want) wrong.push(`${node.name} (${node.opType}): ${want}, ours ${mine?.flops}`);
      }
      assert.ok(checked > 0);
      assert.deepStrictEqual(wrong.slice(0, 10), [], `${wrong.length} of ${checked} differ`);
    });
  }

  it('GPT-2 with a KV cache (n_embd 4, 2 heads, 12 blocks): the hand count of every block', async () => {
    // Published GPT-2 block: c_attn 4→12, attn c_proj 4→4, mlp c_fc 4→16 (4·n_embd), c_proj 16→4, each a Gemm
    // with bias over the batch's new tokens (1 per sequence here): 2·T·in·out + T·out. Attention reads the cache
    // plus the new token (seq_len + 1 keys): QKᵀ and AV are each 2·batch·heads·1·(seq_len + 1)·head_dim.
    const r = await run('ort_gpt2_past.onnx');
    const [batch, past] = [2, 3];
    const T = batch * 1;
    const gemm = (i: number, o: number) => 2 * T * i * o + T * o;
    const block = gemm(4, 12) + gemm(4, 4) + gemm(4, 16) + gemm(16, 4);
    const attention = 2 * (2 * batch * 2 * 1 * (past + 1) * 2);
    const sum = (op: string) => r.graph.nodes.filter((n) => n.opType === op).reduce((s, n) => s + n.flops, 0);
    assert.strictEqual(sum('Gemm'), 12 * block);
    assert.strictEqual(sum('MatMul'), 12 * attention);
    // The present caches hold seq_len + 1 positions: the output names the inputs' symbols, not its own seq_len_plus_1.
    assert.deepStrictEqual(r.graph.tensors.get('present_0')?.shape, [2, 'batch_size', 2, 'seq_len + 1', 2]);
    const report = await inspectFile(path.join(EXTERNAL_MODELS, 'ort_gpt2_past.onnx'), { batch_size: 1, seq_len: 4 });
    assert.deepStrictEqual(report.unboundDims, []);
    assert.deepStrictEqual(report.warnings, []);
    for (let i = 0; i < 12; i++) {
      const layer = report.layers.find((l) => l.name === `h.${i}`);
      assert.ok(layer && layer.flops >= (12 * block) / 12 / batch, `h.${i}: ${layer?.flops}`);
    }
  });

  it('SqueezeNet 1.1 (WinML, after an ImageScaler): its convolutions, by hand from the published architecture', async () => {
    const r = await run('ort_squeezenet_tensor_input.onnx');
    const flops = (op: string) => r.graph.nodes.filter((n) => n.opType === op).reduce((s, n) => s + n.flops, 0);
    // SqueezeNet v1.1 (forresti/SqueezeNet, SqueezeNet_v1.1/train_val.prototxt) at 227×227: conv1 64 3×3/2 → 113²,
    // pool → 56², fire2–3, pool → 28², fire4–5, pool → 14², fire6–9; a fire module is squeeze s 1×1, expand e 1×1 + e 3×3.
    // This CoreML sample replaces conv10 (1000 classes) by global pooling and a 512→10 inner product.
    const fires: [number, number, number, number][] = [
      [64, 16, 64, 56],
      [128, 16, 64, 56],
      [128, 32, 128, 28],
      [256, 32, 128, 28],
      [256, 48, 192, 14],
      [384, 48, 192, 14],
      [384, 64, 256, 14],
      [512, 64, 256, 14],
    ];
    const macs =
      113 ** 2 * 64 * 3 * 9 + fires.reduce((s, [c, q, e, hw]) => s + hw * hw * (q * c + e * q + e * q * 9), 0);
    assert.strictEqual(flops('Conv'), 2 * macs);
    assert.strictEqual(flops('Gemm'), 2 * 512 * 10 + 10);
    const report = await inspectFile(path.join(EXTERNAL_MODELS, 'ort_squeezenet_tensor_input.onnx'));
    // The input's batch dim is named "None": no symbol a user could bind.
    assert.deepStrictEqual(report.unboundDims, []);
    assert.deepStrictEqual(report.unknownOps, []);
  });

  it("DTLN's second model: the unrolled Keras LSTMs lstm_6 and lstm_7 count their MatMuls, and no dim N is left unbound", async () => {
    // DTLN (Westhausen & Meyer 2020): two LSTM(128) over the 256-filter encoder, one step: x·W [1,in]×[in,512] and
    // h·U [1,128]×[128,512], in = 256 for lstm_6 and 128 for lstm_7.
    const report = await inspectFile(path.join(EXTERNAL_MODELS, 'dtln_model_2.onnx'));
    const r = await run('dtln_model_2.onnx');
    for (const [cell, width] of [
      ['lstm_6', 256],
      ['lstm_7', 128],
    ] as const) {
      const flops = r.graph.nodes
        .filter((n) => n.opType === 'MatMul' && n.name.startsWith(`model_2/${cell}/`))
        .reduce((s, n) => s + n.flops, 0);
      assert.strictEqual(flops, 2 * (width + 128) * 512, cell);
    }
    assert.deepStrictEqual(report.unboundDims, []);
  });
});

/** Dims of a Constant node's value (for weights Paddle stores as Constant nodes). */
function constantDims(g: onnx.IGraphProto, name: string): number[] | undefined {
  const c = (g.node ?? []).find((n) => n.opType === 'Constant' && n.output![0] === name);
  return c?.attribute?.find((a) => a.name === 'value')?.t?.dims?.map(Number);
}

describe('symbolic dims with sums (a KV cache: seq_len + 1)', () => {
  it('adds, subtracts, multiplies and divides term by term, and evaluates with bindings', () => {
    assert.strictEqual(addDims('seq_len', 1), 'seq_len + 1');
    assert.strictEqual(subDims(addDims('seq_len', 1), 'seq_len'), 1);
    assert.strictEqual(subDims(addDims('seq_len', 1), 1), 'seq_len');
    assert.strictEqual(subDims(64, 'n'), '-1*n + 64');
    assert.strictEqual(mulDims('seq_len + 1', 2), '2*seq_len + 2');
    assert.strictEqual(mulDims('a + 1', 'b'), 'a*b + b');
    assert.strictEqual(divDims('2*seq_len + 2', 2), 'seq_len + 1');
    assert.strictEqual(divDims('seq_len + 1', 2), null);
    assert.strictEqual(addDims('sequence - 192', 'sequence'), '2*sequence - 192');
    assert.strictEqual(evalDim('2*seq_len - 3', { seq_len: 4 }), 5);
    assert.deepStrictEqual(symbolsIn('a*b + c'), ['a', 'b', 'c']);
    // onnxruntime's symbolic shape inference writes sums as dim names; WinML writes "None" for no name.
    assert.strictEqual(symbol('past_seq_len + 1'), 'past_seq_len + 1');
    assert.strictEqual(symbol('1 + past_seq_len'), 'past_seq_len + 1');
    assert.strictEqual(symbol('None'), null);
    assert.strictEqual(symbol('batch'), 'batch');
  });
});

describe('productOf', () => {
  it('is the product mulDims gives factor by factor (its fast path for numbers and monomials included)', () => {
    const pool: Dim[] = [
      1,
      2,
      0,
      -1,
      1024,
      'batch',
      'sequence',
      '2*sequence',
      'a*b',
      '3*a',
      'seq_len + 1',
      'n - 2',
      '1 + past len',
      null,
    ];
    let seed = 7;
    const pick = () => pool[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % pool.length];
    const shapes: Dim[][] = [[], ['batch'], [0, 'batch'], ['batch', 'batch'], [-1, 'sequence', 64]];
    for (let i = 0; i < 300; i++) shapes.push(Array.from({ length: 1 + (i % 5) }, pick));
    for (const shape of shapes) {
      const byFactor = shape.reduce<Dim>((p, d) => mulDims(p, d), 1);
      assert.strictEqual(productOf(shape), byFactor, JSON.stringify(shape));
    }
    assert.strictEqual(productOf(['sequence', 2, 'batch', 512]), '1024*batch*sequence');
    assert.strictEqual(productOf(['n - 2', 2]), '2*n - 4');
    assert.strictEqual(divDims('1024*batch*sequence', '16*sequence'), '64*batch');
    assert.strictEqual(divDims('2*batch', 'sequence'), null);
    assert.strictEqual(divDims(0, -4), 0);
    // divDims: its fast path (monomials) against the general term-by-term division, on every pair of the pool.
    for (const a of pool) {
      for (const b of pool) {
        assert.strictEqual(divDims(a, b), divPoly(a, b), `${a} / ${b}`);
      }
    }
    // A sum as symbol() leaves it (a name with a space): by 1, still written in format()'s order.
    assert.strictEqual(mulDims(1, '1 + past len'), 'past len + 1');
    assert.strictEqual(productOf(['1 + past len']), 'past len + 1');
  });
});

describe('where shape inference stops, in the warnings', () => {
  it('names the op and the first node, and counts the nodes after it whose FLOPs are unknown', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-stop-'));
    try {
      // x [4, 8] → custom op (unknown to us) → MatMul w [8, 8] → Relu: two nodes after the stop.
      const bytes = onnx.ModelProto.encode({
        irVersion: 8,
        opsetImport: [
          { domain: '', version: 17 },
          { domain: 'com.example', version: 1 },
        ],
        graph: {
          name: 'g',
          node: [
            { name: 'mystery', opType: 'Mystery', domain: 'com.example', input: ['x'], output: ['m'] },
            { name: 'mm', opType: 'MatMul', input: ['m', 'w'], output: ['y'] },
            { name: 'act', opType: 'Relu', input: ['y'], output: ['z'] },
          ],
          initializer: [{ name: 'w', dims: [8, 8], dataType: 1, floatData: new Array(64).fill(0.5) }],
          input: [
            { name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 4 }, { dimValue: 8 }] } } } },
          ],
          output: [{ name: 'z', type: { tensorType: { elemType: 1 } } }],
        },
      }).finish();
      const file = path.join(dir, 'stop.onnx');
      fs.writeFileSync(file, bytes);
      const r = await inspectFile(file);
      assert.deepStrictEqual(r.unknownOps, ['com.example.Mystery']);
      const stop = r.warnings.filter((w) => w.startsWith('shape inference stops'));
      assert.deepStrictEqual(stop, [
        "shape inference stops at 1 node (first: 'mystery' (Mystery): shape inference does not know the op com.example.Mystery): 2 nodes after it have inputs of unknown shape, so their FLOPs are not known (counted as 0, or with the unknown dims as 1)",
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is silent where every shape is known (TF BERT, whose Dense reshapes are computed at run time)', async () => {
    const r = await inspectFile(path.join(EXTERNAL_MODELS, 'ort_TFBertForQuestionAnswering.onnx'), { batch_size: 1 });
    assert.deepStrictEqual(r.warnings, []);
  });
});
