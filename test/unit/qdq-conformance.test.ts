import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { rawToNumbers } from '../../src/engine/graph/dtypes';
import { readOnnxModel, readOnnxTensor, type OnnxTensor } from '../../src/engine/formats/onnx';
import { loadTensorBytes } from '../../src/engine/formats/onnx-data';
import { DataType } from '../../src/engine/formats/onnx-schema.generated';
import { dequantizeLinear, quantizeLinear, type QdqTensor } from '../../src/engine/quant/onnx-qdq';
import { SHARED_FIXTURES, memorySource } from '../helpers';

const NODE = path.join(SHARED_FIXTURES, 'onnx-backend', 'node');

async function tensorFile(file: string): Promise<{ t: OnnxTensor; raw: Uint8Array; q: QdqTensor }> {
  const src = memorySource(file);
  const t = await readOnnxTensor(src);
  const raw = await loadTensorBytes(t, src);
  return { t, raw, q: { values: rawToNumbers(raw, t.dataType, t.elements), dtype: t.dataType, shape: t.dims } };
}

/**
 * The ONNX project's own conformance data for QuantizeLinear / DequantizeLinear: our reference
 * reproduces every expected output bit for bit (per-tensor, per-axis, blocked, int16, int4/uint4,
 * int2/uint2, float8 E4M3FN / E5M2, float4 E2M1).
 */
describe('QuantizeLinear / DequantizeLinear conformance (onnx-backend node tests)', () => {
  const dirs = fs.existsSync(NODE)
    ? fs
        .readdirSync(NODE)
        .filter((d) => /^test_(de)?quantizelinear/.test(d))
        .sort()
    : [];
  it('finds the tests', () => assert.ok(dirs.length >= 25, `${dirs.length}`));
  for (const dir of dirs) {
    it(dir, async () => {
      const model = await readOnnxModel(memorySource(path.join(NODE, dir, 'model.onnx')));
      const node = model.graph.nodes[0];
      const attr = (n: string) => node.attributes.find((a) => a.name === n)?.i;
      const sets = fs.readdirSync(path.join(NODE, dir)).filter((d) => d.startsWith('test_data_set'));
      assert.ok(sets.length > 0);
      for (const set of sets) {
        const base = path.join(NODE, dir, set);
        const inputs = await Promise.all(
          node.inputs.map((_, i) =>
            fs.existsSync(path.join(base, `input_${i}.pb`)) ? tensorFile(path.join(base, `input_${i}.pb`)) : undefined,
          ),
        );
        const expected = await tensorFile(path.join(base, 'output_0.pb'));
        const attrs = {
          axis: attr('axis'),
          blockSize: attr('block_size'),
          saturate: attr('saturate'),
          outputDtype: attr('output_dtype'),
        };
        const run = node.opType === 'QuantizeLinear' ? quantizeLinear : dequantizeLinear;
        const got = run(inputs[0]!.q, inputs[1]!.q, inputs[2]?.q, attrs);
        assert.strictEqual(got.dtype, expected.t.dataType, 'output type');
        assert.deepStrictEqual(
          Buffer.from(got.bytes),
          Buffer.from(expected.raw),
          `${dir}/${set}: ${Array.from(got.bytes)} vs ${Array.from(expected.raw)}`,
        );
      }
    });
  }
  it('rounds half to even, as numpy does (QuantizeLinear of 2.5 and 3.5 with scale 1)', () => {
    const r = quantizeLinear(
      { values: Float64Array.from([2.5, 3.5, -2.5]), dtype: DataType.FLOAT, shape: [3] },
      { values: Float64Array.from([1]), dtype: DataType.FLOAT, shape: [] },
      { values: Float64Array.from([0]), dtype: DataType.INT8, shape: [] },
      {},
    );
    assert.deepStrictEqual(Array.from(new Int8Array(r.bytes.buffer)), [2, 4, -2]);
  });
});
