import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { MemoryByteSource } from '../../src/engine/bytes';
import { readOnnxModel } from '../../src/engine/formats/onnx';
import { loadTensorBytes } from '../../src/engine/formats/onnx-data';
import { onnxToGraph } from '../../src/engine/formats/onnx-graph';
import { opsetUpgradeProblem, upgradeOpset } from '../../src/engine/formats/onnx-opset';
import { DataType } from '../../src/engine/formats/onnx-schema.generated';
import { encodeOnnxModel } from '../../src/engine/formats/onnx-write';
import { openModel } from '../../src/engine/formats/registry';
import { klTop1 } from '../../src/engine/quant/end-to-end';
import { quantizeDequantize } from '../../src/engine/quant/quantize';
import { loadWeightFloat32, transpose2d, weightLayout } from '../../src/engine/quant/weights';
import { FileByteSource, FolderResolver } from '../../src/node/file-source';
import { ExportCancelled, compareOutputs, exportQuantizedFile } from '../../src/node/quant-export';
import { sampleFeeds } from '../../src/node/samples';
import { OUR_MODELS, REPO } from '../helpers';
import { spawnSync } from 'child_process';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-export-test-'));

async function readModel(file: string) {
  const source = await FileByteSource.open(file);
  const siblings = new FolderResolver(file);
  const model = await readOnnxModel(source);
  return { source, siblings, model, close: async () => (await source.close(), await siblings.close()) };
}

/** Runs two models (files or bytes) on the same generated inputs; returns their first output's values. */
async function runPair(a: string | Uint8Array, b: string | Uint8Array, reference: string, batches = 2) {
  const { source, model, close } = await readModel(reference);
  const graph = await onnxToGraph(model, source, { bindings: { batch: 1, sequence: 8 } });
  await close();
  const inits = new Set(model.graph.initializers.map((t) => t.name));
  const inputs = model.graph.inputs.map((i) => i.name).filter((n) => !inits.has(n));
  const opts = { graphOptimizationLevel: 'disabled' as const };
  const sa =
    typeof a === 'string' ? await ort.InferenceSession.create(a, opts) : await ort.InferenceSession.create(a, opts);
  const sb =
    typeof b === 'string' ? await ort.InferenceSession.create(b, opts) : await ort.InferenceSession.create(b, opts);
  const out: { x: Float32Array; y: Float32Array }[] = [];
  for (let k = 0; k < batches; k++) {
    const feeds = sampleFeeds(ort, graph, inputs, undefined, { batch: 1, sequence: 8 }, k);
    const o = sa.outputNames[0];
    out.push({ x: (await sa.run(feeds))[o].data as Float32Array, y: (await sb.run(feeds))[o].data as Float32Array });
  }
  await sa.release();
  await sb.release();
  return out;
}

function maxRelDiff(pairs: { x: Float32Array; y: Float32Array }[]): number {
  let diff = 0;
  let scale = 0;
  for (const { x, y } of pairs) {
    assert.strictEqual(x.length, y.length);
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(x[i]));
    }
  }
  return diff / scale;
}

describe('the ONNX writer', function () {
  this.timeout(60000);
  for (const name of [
    'gpt2-tiny.onnx',
    'bert-tiny.onnx',
    'cnn-tiny.onnx',
    'rnn-tiny.onnx',
    'control-flow.onnx',
    'qdq-mlp.onnx',
  ]) {
    it(`re-encodes ${name}: onnx-proto decodes what the reader read, and onnxruntime computes the same outputs`, async () => {
      const file = path.join(OUR_MODELS, name);
      const { source, siblings, model, close } = await readModel(file);
      const bytes = await encodeOnnxModel(model, (t) => loadTensorBytes(t, source, siblings));
      const theirs = onnx.ModelProto.decode(bytes);
      const original = onnx.ModelProto.decode(fs.readFileSync(file));
      // onnx-proto (protobufjs, an independent decoder) sees the same graph: nodes, attributes, initializers and their bytes.
      assert.strictEqual(theirs.graph!.node!.length, original.graph!.node!.length);
      theirs.graph!.node!.forEach((n, i) => {
        const o = original.graph!.node![i];
        assert.deepStrictEqual([n.opType, n.input, n.output, n.name], [o.opType, o.input, o.output, o.name]);
        assert.deepStrictEqual(
          n.attribute!.map((a) => [a.name, a.type, Number(a.i ?? 0), a.f ?? 0, (a.ints ?? []).map(Number)]),
          o.attribute!.map((a) => [a.name, a.type, Number(a.i ?? 0), a.f ?? 0, (a.ints ?? []).map(Number)]),
        );
      });
      assert.deepStrictEqual(
        theirs.graph!.initializer!.map((t) => [t.name, t.dataType, t.dims!.map(Number)]),
        original.graph!.initializer!.map((t) => [t.name, t.dataType, t.dims!.map(Number)]),
      );
      for (const [i, t] of model.graph.initializers.entries()) {
        assert.deepStrictEqual(
          Buffer.from(theirs.graph!.initializer![i].rawData!),
          Buffer.from(await loadTensorBytes(t, source, siblings)),
          t.name,
        );
      }
      assert.deepStrictEqual(
        theirs.opsetImport!.map((o) => [o.domain ?? '', Number(o.version)]),
        original.opsetImport!.map((o) => [o.domain ?? '', Number(o.version)]),
      );
      await close();
      if (name !== 'control-flow.onnx') {
        const pairs = await runPair(file, bytes, file);
        assert.strictEqual(maxRelDiff(pairs), 0, 'bit-identical outputs');
      }
    });
  }
});

describe('raising the opset', function () {
  this.timeout(60000);
  it('rewrites ReduceMean (axes: attribute → input at 18) so gpt2-tiny and bert-tiny run at opset 21 with identical outputs', async () => {
    for (const name of ['gpt2-tiny.onnx', 'bert-tiny.onnx']) {
      const file = path.join(OUR_MODELS, name);
      const { source, siblings, model, close } = await readModel(file);
      const up = upgradeOpset(model, 21);
      assert.deepStrictEqual([up.from, up.to], [14, 21]);
      assert.match(up.rewritten.join(), /ReduceMean \(\d+\)/);
      assert.ok(model.irVersion >= 10);
      const bytes = await encodeOnnxModel(model, (t) => loadTensorBytes(t, source, siblings));
      await close();
      assert.strictEqual(maxRelDiff(await runPair(file, bytes, file)), 0, name);
    }
  });
  it('moves the attributes that became inputs at 12, 13 and 18 (Dropout, Squeeze, Unsqueeze, ReduceSum, Split, ReduceMax)', async () => {
    const vi = (name: string, dims: number[]) => ({
      name,
      type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
    });
    const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v });
    const bytes = onnx.ModelProto.encode({
      irVersion: 6,
      opsetImport: [{ domain: '', version: 11 }],
      graph: {
        name: 'g',
        node: [
          { opType: 'Unsqueeze', input: ['x'], output: ['u'], attribute: [ints('axes', [0])] },
          { opType: 'Dropout', input: ['u'], output: ['d'], attribute: [{ name: 'ratio', type: 1, f: 0.25 }] },
          {
            opType: 'Split',
            input: ['d'],
            output: ['a', 'b'],
            attribute: [{ name: 'axis', type: 2, i: 2 }, ints('split', [1, 3])],
          },
          { opType: 'Split', input: ['b'], output: ['c', 'e', 'f'], attribute: [{ name: 'axis', type: 2, i: 2 }] },
          { opType: 'ReduceSum', input: ['a'], output: ['s'], attribute: [ints('axes', [2])] },
          {
            opType: 'ReduceMax',
            input: ['c'],
            output: ['m'],
            attribute: [ints('axes', [2]), { name: 'keepdims', type: 2, i: 0 }],
          },
          { opType: 'Squeeze', input: ['s'], output: ['q'], attribute: [ints('axes', [2])] },
          { opType: 'Add', input: ['q', 'm'], output: ['y0'] },
          { opType: 'Add', input: ['y0', 'e'], output: ['y1'] },
          { opType: 'Add', input: ['y1', 'f'], output: ['y'] },
        ],
        input: [vi('x', [3, 4])],
        output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
      },
    }).finish();
    const source = new MemoryByteSource('ops.onnx', bytes);
    const model = await readOnnxModel(source);
    const up = upgradeOpset(model, 21);
    assert.deepStrictEqual(up.rewritten.sort(), [
      'Dropout (1)',
      'ReduceMax (1)',
      'ReduceSum (1)',
      'Split (2)',
      'Squeeze (1)',
      'Unsqueeze (1)',
    ]);
    const upgraded = await encodeOnnxModel(model, (t) => loadTensorBytes(t, source));
    const x = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)),
      [3, 4],
    );
    const a = await ort.InferenceSession.create(bytes);
    const b = await ort.InferenceSession.create(upgraded);
    assert.deepStrictEqual(
      Array.from((await b.run({ x })).y.data as Float32Array),
      Array.from((await a.run({ x })).y.data as Float32Array),
    );
  });
  it('refuses what it does not convert: below opset 11, GroupNormalization across 21', async () => {
    const make = (version: number, op: string) =>
      onnx.ModelProto.encode({
        irVersion: 7,
        opsetImport: [{ domain: '', version }],
        graph: { name: 'g', node: [{ opType: op, input: ['x', 's', 'b'], output: ['y'] }], input: [{ name: 'x' }] },
      }).finish();
    const m10 = await readOnnxModel(new MemoryByteSource('a.onnx', make(10, 'Relu')));
    assert.match(opsetUpgradeProblem(m10, 21)!, /opset 10.*only done from opset 11/);
    const gn = await readOnnxModel(new MemoryByteSource('b.onnx', make(18, 'GroupNormalization')));
    assert.match(opsetUpgradeProblem(gn, 21)!, /GroupNormalization changed meaning/);
    assert.strictEqual(opsetUpgradeProblem(gn, 19), undefined);
  });
});

/** Every format the export writes natively, with what stores it. */
const NATIVE: [string, RegExp][] = [
  ['int8-tensor', /dequantize/],
  ['int8-channel', /dequantize/],
  ['int8-channel-asym', /dequantize/],
  ['int4-channel', /dequantize/],
  ['int4-g32', /matmulnbits|dequantize/],
  ['int4-g128-asym', /matmulnbits|dequantize/],
  ['int2-g64', /matmulnbits|dequantize/],
  ['int4-g16-2l', /dequantize/],
  ['fp8-e4m3', /dequantize/],
  ['fp8-e5m2', /dequantize/],
  ['mxfp8-e4m3', /dequantize/],
  ['mxint8', /dequantize/],
  ['q4_0', /matmulnbits|dequantize/],
  ['q8_0', /matmulnbits|dequantize/],
  ['bf16', /cast/],
  ['fp16', /cast/],
  // The statistical formats (issue 19) and DeepSeek-V3's block fp8.
  ['fp8-e4m3-b128', /dequantize/],
  ['int4-g32-perm', /dequantize/],
  ['int4-g128+o1', /dequantize/],
  ['int4-g32-asym-perm+o1', /dequantize/],
  ['int4-channel+o2', /dequantize/],
  ['kmeans3', /dequantize/],
  ['kmeans4', /dequantize/],
  ['kmeans6', /dequantize/],
];

describe('exporting a plan as a quantized ONNX model', function () {
  this.timeout(300000);
  const dir = tmp();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const model of ['gpt2-tiny.onnx', 'cnn-tiny.onnx']) {
    it(`${model}: every native format runs in onnxruntime with the outputs of our simulation (dequantized weights), to float rounding`, async () => {
      const file = path.join(OUR_MODELS, model);
      const rows: string[] = [];
      for (const [format, encoding] of NATIVE) {
        for (const blocked of ['matmulnbits', 'dequantize'] as const) {
          if (blocked === 'dequantize' && !/matmulnbits/.test(encoding.source)) continue;
          const precision = { default: format };
          const out = path.join(dir, `${model}.${format}.${blocked}.onnx`);
          const sim = path.join(dir, `${model}.${format}.sim.onnx`);
          const e = await exportQuantizedFile(file, out, { precision, blocked });
          await exportQuantizedFile(file, sim, { precision, simulateAll: true });
          const encodings = [...new Set(e.weights.map((w) => w.encoding))];
          assert.ok(
            encodings.every((x) => encoding.test(x)),
            `${format}: ${encodings.join()}`,
          );
          assert.ok(!encodings.includes('simulated'), `${format} is not simulated`);
          const d = maxRelDiff(await runPair(sim, out, file));
          rows.push(
            `${format.padEnd(22)} ${(/matmulnbits/.test(encoding.source) ? blocked : '').padEnd(12)} ${encodings.join('+').padEnd(24)} ${d.toExponential(1)}`,
          );
          assert.ok(d < 2e-5, `${format} (${blocked}): outputs differ by ${d} of their range`);
          // Our reader decodes the stored bits to the values the quantizer produced.
          const src = await FileByteSource.open(out);
          const graph = await openModel(src);
          const orig = await FileByteSource.open(file);
          const og = await openModel(orig);
          let decodedWeights = 0;
          for (const w of e.weights.filter((x) => x.encoding === 'dequantize' || x.encoding === 'matmulnbits')) {
            const stored = graph.tensors.get(`${w.name}_quantized`)!;
            const ot = og.tensors.get(w.name)!;
            const layout = weightLayout(og, ot);
            let x = await loadWeightFloat32(ot, orig, undefined, og);
            if (layout.transpose) x = transpose2d(x, layout.cols, layout.rows);
            let y = quantizeDequantize(x, layout.rows, layout.cols, format);
            const consumer = graph.nodes.find((n) => n.inputs.includes(stored.name))!;
            if (consumer.opType === 'DequantizeLinear') {
              // Our reader decodes a DequantizeLinear of stored codes and scales (not chains of ops after it).
              if (consumer.outputs[0] !== w.name || !graph.tensors.get(consumer.inputs[1])!.isWeight) continue;
              if (layout.transpose) y = transpose2d(y, layout.rows, layout.cols);
            } else if (consumer.opType !== 'MatMulNBits') continue; // a codebook's Cast → GatherElements
            const decoded = await loadWeightFloat32(stored, src, undefined, graph);
            assert.strictEqual(decoded.length, y.length);
            for (let k = 0; k < y.length; k++) {
              if (decoded[k] !== y[k]) {
                assert.fail(`${format} ${w.name}[${k}]: stored bits decode to ${decoded[k]}, quantizer gave ${y[k]}`);
              }
            }
            decodedWeights++;
          }
          if (/^(int|fp8-e|q)/.test(format) && !/-2l|perm|\+o|b128/.test(format)) {
            assert.ok(decodedWeights > 0, `${format}: our reader decoded the stored weights`);
          }
          await src.close();
          await orig.close();
        }
      }
      console.log(
        `      ${model}: format, blocked as, stored as, max |exported − simulated| / max |output|\n      ` +
          rows.join('\n      '),
      );
    });
  }

  it('stores weights in their packed bits: int4 codes in INT4 / MatMulNBits bytes, scales beside them, no float copy', async () => {
    const file = path.join(OUR_MODELS, 'gpt2-tiny.onnx');
    const out = path.join(dir, 'packed.onnx');
    const e = await exportQuantizedFile(file, out, { precision: { default: 'int4-channel' } });
    const src = await FileByteSource.open(out);
    const m = await readOnnxModel(src);
    await src.close();
    for (const w of e.weights) {
      assert.ok(!m.graph.initializers.some((t) => t.name === w.name), `${w.name} is no longer stored as floats`);
      const q = m.graph.initializers.find((t) => t.name === `${w.name}_quantized`)!;
      assert.strictEqual(q.dataType, DataType.INT4);
      assert.ok(w.bytes < w.originalBytes / 7, `${w.name}: ${w.bytes} bytes from ${w.originalBytes}`);
    }
    assert.strictEqual(e.opset.to, 21);
    assert.ok(fs.statSync(out).size < fs.statSync(file).size / 4);
  });

  it('simulates what onnxruntime cannot decode (nf4, nvfp4, q4_k) and says which, with the reason', async () => {
    const file = path.join(OUR_MODELS, 'gpt2-tiny.onnx');
    const out = path.join(dir, 'mixed.onnx');
    const e = await exportQuantizedFile(file, out, {
      precision: {
        default: 'int8-channel',
        rules: [
          { match: 'h.0', format: 'nf4-g64' },
          { match: 'h.1', format: 'nvfp4' },
          { match: 'lm_head', format: 'q4_k' },
        ],
      },
    });
    const sim = Object.fromEntries(e.simulated.map((s) => [s.format, s.reason]));
    assert.deepStrictEqual(Object.keys(sim).sort(), ['nf4-g64', 'nvfp4', 'q4_k']);
    assert.match(sim['nf4-g64'], /lookup table/);
    assert.match(sim.q4_k, /minimums/);
    assert.ok(e.weights.some((w) => w.format === 'int8-channel' && w.encoding === 'dequantize'));
    const simulatedAll = path.join(dir, 'mixed.sim.onnx');
    await exportQuantizedFile(file, simulatedAll, {
      precision: {
        default: 'int8-channel',
        rules: [
          { match: 'h.0', format: 'nf4-g64' },
          { match: 'h.1', format: 'nvfp4' },
          { match: 'lm_head', format: 'q4_k' },
        ],
      },
      simulateAll: true,
    });
    assert.ok(maxRelDiff(await runPair(simulatedAll, out, file)) < 2e-5);
  });

  it('writes external data for a model that had it (and on request), which onnxruntime and our reader load', async () => {
    const file = path.join(OUR_MODELS, 'gpt2-tiny-external.onnx');
    const out = path.join(dir, 'ext.onnx');
    const e = await exportQuantizedFile(file, out, { precision: { default: 'int8-channel' } });
    assert.strictEqual(e.dataFile, path.join(dir, 'ext.onnx.data'));
    assert.ok(fs.existsSync(e.dataFile!));
    const { source, siblings, model, close } = await readModel(out);
    const external = model.graph.initializers.filter((t) => t.data.kind === 'external');
    assert.ok(external.length > 10);
    for (const t of external) await loadTensorBytes(t, source, siblings);
    await close();
    const inline = path.join(dir, 'inline.onnx');
    await exportQuantizedFile(path.join(OUR_MODELS, 'gpt2-tiny.onnx'), inline, {
      precision: { default: 'int8-channel' },
    });
    assert.strictEqual(maxRelDiff(await runPair(inline, out, file)), 0, 'same values, wherever they are stored');
  });

  it('stops when cancelled and leaves no partial file', async () => {
    const out = path.join(dir, 'cancelled.onnx');
    let calls = 0;
    await assert.rejects(
      exportQuantizedFile(path.join(OUR_MODELS, 'gpt2-tiny.onnx'), out, {
        precision: { default: 'int4-g32' },
        cancelled: () => ++calls > 3,
      }),
      ExportCancelled,
    );
    assert.ok(!fs.existsSync(out) && !fs.existsSync(`${out}.partial`));
  });

  it('refuses to overwrite the model it reads, a name without .onnx and a folder that does not exist', async () => {
    const file = path.join(OUR_MODELS, 'gpt2-tiny.onnx');
    await assert.rejects(exportQuantizedFile(file, file, { precision: { default: 'int8' } }), /would overwrite/);
    await assert.rejects(exportQuantizedFile(file, path.join(dir, 'x.bin'), { precision: {} }), /needs an \.onnx name/);
    await assert.rejects(
      exportQuantizedFile(file, path.join(dir, 'no', 'x.onnx'), { precision: {} }),
      /folder does not exist/,
    );
  });

  it('layerplan quant --plan --export --measure prints predicted and endToEnd as DESIGN.md shapes them; bad combinations exit 2', () => {
    const cli = path.join(REPO, 'out', 'src', 'cli.js');
    const plan = path.join(dir, 'cli.plan.json');
    fs.writeFileSync(
      plan,
      JSON.stringify({
        model: path.join(OUR_MODELS, 'gpt2-tiny.onnx'),
        cluster: { gpu: 'l4', gpusPerNode: 1, nodes: 1 },
        inference: { batch: 1, promptLen: 16, genLen: 1 },
        precision: { default: 'int8-channel', rules: [{ match: 'h.*', format: 'int4-g32' }] },
      }),
    );
    const out = path.join(dir, 'cli.onnx');
    const model = path.join(OUR_MODELS, 'gpt2-tiny.onnx');
    const r = spawnSync(
      process.execPath,
      [cli, 'quant', model, '--plan', plan, '--export', out, '--measure', '--json'],
      {
        encoding: 'utf8',
      },
    );
    assert.strictEqual(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepStrictEqual(Object.keys(j.endToEnd).sort(), [
      'batches',
      'generatedInputs',
      'klDivergence',
      'logits',
      'outputSqnrDb',
      'outputs',
      'top1Agreement',
    ]);
    assert.deepStrictEqual(
      j.endToEnd.outputs.map((o: { name: string }) => o.name),
      ['logits'],
    );
    assert.strictEqual(j.endToEnd.outputSqnrDb, j.endToEnd.outputs[0].sqnrDb);
    assert.ok(typeof j.predicted.outputSqnrDb === 'number' && typeof j.predicted.firstOrderSqnrDb === 'number');
    assert.strictEqual(j.predicted.errorModel, 'calibrated');
    assert.ok(Math.abs(j.predicted.outputSqnrDb - j.endToEnd.outputSqnrDb) < 2);
    assert.strictEqual(j.export.file, out);
    assert.ok(fs.existsSync(out));
    for (const args of [
      ['--export', out],
      ['--plan', plan, '--blocked', 'sideways'],
    ]) {
      const bad = spawnSync(process.execPath, [cli, 'quant', model, ...args], { encoding: 'utf8' });
      assert.strictEqual(bad.status, 2, bad.stderr);
    }
    const notOnnx = spawnSync(
      process.execPath,
      [cli, 'quant', model, '--plan', plan, '--export', path.join(dir, 'out.txt'), '--json'],
      { encoding: 'utf8' },
    );
    assert.strictEqual(notOnnx.status, 2);
    assert.match(notOnnx.stderr, /out\.txt: the exported model needs an \.onnx name/);
  });
});

describe('end-to-end figures', () => {
  it("KL divergence and top-1 agreement as llama.cpp's --kl-divergence defines them", () => {
    // p = softmax(0, 0) = (1/2, 1/2), q = softmax(ln 3, 0) = (3/4, 1/4): KL = ½ ln(2/3) + ½ ln 2.
    const r = klTop1([0, 0], [Math.log(3), 0], 0, 2);
    assert.ok(Math.abs(r.kl - (0.5 * Math.log(2 / 3) + 0.5 * Math.log(2))) < 1e-12, String(r.kl));
    assert.strictEqual(r.same, true);
    assert.strictEqual(klTop1([1, 5, 2], [1, 5, 2], 0, 3).kl, 0);
    assert.strictEqual(klTop1([1, 5, 2, 0, 9, 1], [1, 5, 2, 0, 1, 9], 3, 3).same, false);
  });
  it('compares every output of the original and the exported model on generated inputs, and says they were generated', async function () {
    this.timeout(60000);
    const dir = tmp();
    const file = path.join(OUR_MODELS, 'gpt2-tiny.onnx');
    const out = path.join(dir, 'q.onnx');
    await exportQuantizedFile(file, out, { precision: { default: 'int8-channel' } });
    const m = await compareOutputs(file, out);
    assert.strictEqual(m.generatedInputs, true);
    assert.strictEqual(m.logits, 'logits');
    assert.ok(m.outputSqnrDb! > 35 && m.outputSqnrDb! < 50, String(m.outputSqnrDb));
    assert.ok(m.klDivergence! > 0 && m.klDivergence! < 1e-3);
    assert.ok(m.top1Agreement! > 0.9 && m.top1Agreement! <= 1);
    const same = await compareOutputs(file, file);
    assert.deepStrictEqual([same.outputSqnrDb, same.klDivergence, same.top1Agreement], [null, 0, 1]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
