import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import { onnx } from 'onnx-proto';
import * as path from 'path';
import { broadcast, divDims, evalDim, mulDims } from '../../src/engine/graph/dims';
import { openModel } from '../../src/engine/formats/registry';
import { formatInspect } from '../../src/engine/report/inspect-text';
import { FileByteSource } from '../../src/node/file-source';
import { inspectFile } from '../../src/node/inspect-file';
import { checkFile, estimatePlanFile } from '../../src/node/plan-file';
import { OUR_MODELS, SHARED_FIXTURES } from '../helpers';

const REFERENCE = JSON.parse(fs.readFileSync(path.join(OUR_MODELS, 'onnx-shape-inference.json'), 'utf8')) as {
  models: Record<string, Record<string, (number | string | null)[]>>;
};

/**
 * Our shape inference against onnx's own (onnx.shape_inference.infer_shapes, written to
 * test/fixtures/models/onnx-shape-inference.json by scripts/make-shape-reference.py): every value
 * onnx gives a shape is compared with the shape we infer.
 *
 * Symbolic dims: onnx keeps the model's own names (batch, sequence) and invents unk__N where it
 * cannot tell (a Range's length, a ConstantOfShape's dims), where we may know more (that it is
 * `sequence`, or 32). So each of onnx's symbols stands for one dim of ours throughout the model, and
 * the model's own names for distinct symbols of ours: a dim compares equal to the one it stands
 * for, not to any other symbol. Values of ops we keep as unknown (If, Loop) are listed apart.
 */
async function compare(file: string): Promise<{ same: number; differ: string[]; unknownOps: string[] }> {
  const reference = REFERENCE.models[path.basename(file)];
  assert.ok(reference, `no onnx reference for ${file}`);
  const source = await FileByteSource.open(file);
  try {
    const ours = await openModel(source, { ignoreValueInfo: true });
    let same = 0;
    const differ: string[] = [];
    const unknownOps = new Set<string>();
    const standsFor = new Map<string, number | string>();
    const named = new Map<string, string>();
    const sameDim = (theirs: number | string | null, u: number | string | null | undefined): boolean => {
      if (theirs === null) return true;
      if (typeof theirs === 'number') return u === theirs;
      if (u === null || u === undefined) return false;
      if (standsFor.has(theirs)) return standsFor.get(theirs) === u;
      if (!/^unk__\d+$/.test(theirs)) {
        // One of the model's own names: a symbol of ours that no other name of the model took.
        if (typeof u !== 'string' || (named.get(u) ?? theirs) !== theirs) return false;
        named.set(u, theirs);
      }
      standsFor.set(theirs, u);
      return true;
    };
    for (const [name, want] of Object.entries(reference)) {
      const t = ours.tensors.get(name);
      const producer = t?.producer !== undefined ? ours.nodes[t.producer] : undefined;
      if (producer && !producer.known) {
        unknownOps.add(producer.opType);
        continue;
      }
      const u = t?.shape;
      if (u && u.length === want.length && want.every((d, i) => sameDim(d, u[i]))) same++;
      else differ.push(`${name}: onnx ${JSON.stringify(want)}, ours ${JSON.stringify(u)}`);
    }
    return { same, differ, unknownOps: [...unknownOps].sort() };
  } finally {
    await source.close();
  }
}

describe('shape inference', () => {
  const counts: Record<string, number> = {
    'gpt2-tiny.onnx': 160,
    'bert-tiny.onnx': 138,
    'cnn-tiny.onnx': 7,
    'rnn-tiny.onnx': 34,
    'qdq-mlp.onnx': 9,
    'matmulnbits.onnx': 1,
  };
  for (const [name, count] of Object.entries(counts)) {
    it(`reproduces onnx's shape inference on ${name} (${count} values)`, async () => {
      const { same, differ, unknownOps } = await compare(path.join(OUR_MODELS, name));
      assert.deepStrictEqual(differ, []);
      assert.deepStrictEqual(unknownOps, []);
      assert.strictEqual(same, count);
    });
  }
  it('keeps If and Loop as unknown ops, whose outputs onnx infers and we do not', async () => {
    const { same, differ, unknownOps } = await compare(path.join(OUR_MODELS, 'control-flow.onnx'));
    assert.deepStrictEqual([same, differ, unknownOps], [0, [], ['If', 'Loop']]);
  });
  it('reproduces the output shapes of the ONNX conformance models (Conv, MatMul, Gemm, attention, quantization ops)', async () => {
    const { walk } = await import('../helpers.js');
    const failures: string[] = [];
    let checked = 0;
    for (const file of walk(path.join(SHARED_FIXTURES, 'onnx-backend', 'node'), 'model.onnx')) {
      if (/_expanded|deform|causal_conv/.test(file)) continue;
      // The outputs' shapes as the file declares them, read with onnx-proto (not with our reader).
      const proto = onnx.ModelProto.toObject(onnx.ModelProto.decode(fs.readFileSync(file)), { longs: Number }) as {
        graph?: {
          output?: { name: string; type?: { tensorType?: { shape?: { dim?: Record<string, unknown>[] } } } }[];
        };
      };
      const declared = new Map(
        (proto.graph?.output ?? [])
          .filter((o) => o.type?.tensorType?.shape?.dim)
          .map((o) => [
            o.name,
            o.type!.tensorType!.shape!.dim!.map((d) =>
              typeof d.dimValue === 'number' ? d.dimValue : typeof d.dimParam === 'string' ? d.dimParam : null,
            ),
          ]),
      );
      const source = await FileByteSource.open(file);
      const ours = await openModel(source, { ignoreValueInfo: true });
      await source.close();
      for (const [out, want] of declared) {
        const got = ours.tensors.get(out)?.shape;
        if (!ours.nodes.every((n) => n.known)) continue;
        checked++;
        if (JSON.stringify(want) !== JSON.stringify(got)) {
          failures.push(
            `${path.basename(path.dirname(file))} ${out}: ${JSON.stringify(want)} vs ${JSON.stringify(got)}`,
          );
        }
      }
    }
    assert.ok(checked > 100, `checked ${checked}`);
    assert.deepStrictEqual(failures, []);
  });
  it('does symbolic dim algebra', () => {
    assert.strictEqual(mulDims('batch', 'sequence'), 'batch*sequence');
    assert.strictEqual(mulDims(2, 'sequence'), '2*sequence');
    assert.strictEqual(divDims('batch*sequence*768', 'sequence'), '768*batch');
    assert.strictEqual(divDims(mulDims('batch', mulDims('sequence', 768)), mulDims('sequence', 12)), '64*batch');
    assert.strictEqual(evalDim('2*batch*sequence', { batch: 4, sequence: 128 }), 1024);
    assert.deepStrictEqual(broadcast(['batch', 1, 64], [12, 1]), ['batch', 12, 64]);
  });
});

describe('ops whose shape rule fails, and dims counted as 1', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-shapes-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  /** x [dim, 8] → MatMul w [8, 4] → y; s (a scalar) → `op` → p: a pooling op cannot take a scalar. */
  function write(name: string, op: string, dim = 'batch'): string {
    const bytes = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'g',
        node: [
          { opType: 'MatMul', input: ['x', 'w'], output: ['y'], name: 'mm' },
          {
            opType: op,
            input: ['s'],
            output: ['p'],
            name: 'pool',
            attribute: [{ name: 'kernel_shape', type: 7, ints: [2, 2] }],
          },
        ],
        initializer: [{ name: 'w', dims: [8, 4], dataType: 1, floatData: new Array(32).fill(0.5) }],
        input: [
          { name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: dim }, { dimValue: 8 }] } } } },
          { name: 's', type: { tensorType: { elemType: 1, shape: { dim: [] } } } },
        ],
        output: [
          { name: 'y', type: { tensorType: { elemType: 1 } } },
          { name: 'p', type: { tensorType: { elemType: 1 } } },
        ],
      },
    }).finish();
    const file = path.join(tmp, name);
    fs.writeFileSync(file, bytes);
    return file;
  }

  for (const op of ['MaxPool', 'GlobalAveragePool']) {
    it(`${op} on a scalar: listed with the unknown ops, with the reason, and no FLOPs (not "known" with 0)`, async () => {
      const r = await inspectFile(write(`${op}.onnx`, op), { batch: 3 });
      assert.deepStrictEqual(r.unknownOps, [op]);
      assert.strictEqual(r.warnings.length, 1, r.warnings.join('\n'));
      assert.match(
        r.warnings[0],
        new RegExp(
          `^shape inference failed at 1 node \\(first: 'pool' \\(${op}\\): inputs \\[\\]: .+\\): their outputs have no shapes and no FLOPs are counted for them$`,
        ),
      );
      // The MatMul still counts: 2 × batch 3 × 8 × 4.
      assert.strictEqual(
        r.layers.reduce((s, l) => s + l.flops, 0),
        2 * 3 * 8 * 4,
      );
      assert.deepStrictEqual(r.unboundDims, []);
    });
  }

  it('names the symbolic dims left unbound (counted as 1) in inspect, its JSON and the estimate', async () => {
    const file = path.join(OUR_MODELS, 'gpt2-tiny.onnx');
    const r = await inspectFile(file, { sequence: 64 });
    assert.deepStrictEqual(r.unboundDims, ['batch']);
    assert.match(
      formatInspect(file, r),
      /^ {2}FLOPs per run 17\.6M \(symbolic dims sequence=64; batch not bound, counted as 1: set with --dim name=value\)$/m,
    );
    const all = await inspectFile(file, { sequence: 64, batch: 2 });
    assert.deepStrictEqual(all.unboundDims, []);
    assert.match(formatInspect(file, all), /^ {2}FLOPs per run 35\.2M \(symbolic dims sequence=64, batch=2\)$/m);
    // A model whose input names a dim the plan does not bind (only batch and sequence): the estimate and the plan say so.
    write('mm.onnx', 'Relu', 'tokens');
    const plan = path.join(tmp, 'mm.plan.json');
    fs.writeFileSync(
      plan,
      JSON.stringify({
        model: 'mm.onnx',
        cluster: { gpu: 'a100-80gb', gpusPerNode: 1 },
        training: { globalBatch: 4, microBatch: 4, seqLen: 16 },
      }),
    );
    const warning = 'symbolic dims not bound, counted as 1 in FLOPs and bytes: tokens';
    assert.deepStrictEqual((await estimatePlanFile(plan)).warnings, [warning]);
    const checked = await checkFile(plan);
    assert.deepStrictEqual(
      checked.diagnostics.map((d) => [d.severity, d.message]),
      [['warning', `model: ${warning}`]],
    );
    // Named batch, the plan binds it: no warning.
    write('mm.onnx', 'Relu', 'batch');
    assert.deepStrictEqual((await estimatePlanFile(plan)).warnings, []);
  });
});
