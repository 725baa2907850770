import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { checkDeepSpeed, checkHfConfig } from '../../src/engine/plan/check';
import type { Issue } from '../../src/engine/plan/plan';
import { REPO } from '../helpers';

const CLI = path.join(REPO, 'out', 'src', 'cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-check-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The zero-based range of the first occurrence of `needle` in `text`, as VS Code counts. */
function rangeOf(text: string, needle: string) {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, needle);
  const pos = (o: number) => {
    const before = text.slice(0, o).split('\n');
    return { line: before.length - 1, character: before[before.length - 1].length };
  };
  return { start: pos(at), end: pos(at + needle.length) };
}

function only(issues: Issue[], pattern: RegExp): Issue {
  const hits = issues.filter((i) => pattern.test(i.message));
  assert.strictEqual(hits.length, 1, `${pattern} in ${JSON.stringify(issues.map((i) => i.message))}`);
  return hits[0];
}

describe('layerplan check', () => {
  it('DeepSpeed: a batch size no data-parallel size satisfies, at its exact range', () => {
    const text = '{\n  "train_batch_size": 100,\n  "train_micro_batch_size_per_gpu": 4,\n  "gradient_accumulation_steps": 8\n}\n';
    const i = only(checkDeepSpeed(text), /train_batch_size: 100 is not/);
    assert.strictEqual(i.severity, 'error');
    assert.deepStrictEqual(i.range, rangeOf(text, '"train_batch_size": 100'));
  });
  it('DeepSpeed: with a world size the identity is exact; fp16 and bf16 together are refused', () => {
    const text = JSON.stringify({ train_batch_size: 64, train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 2, fp16: { enabled: true }, bf16: { enabled: true } }, null, 2);
    assert.deepStrictEqual(checkDeepSpeed(text, 8).filter((i) => /train_batch_size/.test(i.message)), []);
    only(checkDeepSpeed(text, 4), /64 ≠ .* = 4 × 2 × 4 = 32/);
    only(checkDeepSpeed(text), /bf16 and fp16 are both enabled/);
  });
  it('Hugging Face config: heads that do not divide hidden, key/value heads that do not divide heads', () => {
    const text = JSON.stringify({ model_type: 'llama', hidden_size: 4096, num_attention_heads: 30, num_key_value_heads: 8 }, null, 2);
    const a = only(checkHfConfig(text), /30 heads do not divide hidden_size 4096/);
    assert.deepStrictEqual(a.range, rangeOf(text, '"num_attention_heads": 30'));
    only(checkHfConfig(text), /30 attention heads are not divisible by 8 key\/value heads/);
    assert.deepStrictEqual(checkHfConfig(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'hf-configs', 'mixtral-8x7b', 'config.json'), 'utf8')), []);
  });
  it('plan: a stage over its GPU memory, by how much; the CLI prints the same diagnostics as JSON', () => {
    const plan = {
      model: { arch: 'gpt', layers: 48, hidden: 8192, heads: 64, vocab: 51200, seqLen: 2048 },
      cluster: { gpu: 'a100-40gb', gpusPerNode: 2, nodes: 1 },
      training: { globalBatch: 8, microBatch: 1, seqLen: 2048, recompute: 'full' },
      parallel: { data: 1, tensor: 1, pipeline: 2 },
      stages: [{ layers: '0-23' }, { layers: '24-47' }],
    };
    const text = JSON.stringify(plan, null, 2);
    const file = path.join(tmp, 'big.plan.json');
    fs.writeFileSync(file, text);
    const r = spawnSync(process.execPath, [CLI, 'check', file, '--json'], { encoding: 'utf8' });
    assert.strictEqual(r.status, 1, r.stderr);
    const { diagnostics } = JSON.parse(r.stdout);
    const d = diagnostics.find((x: Issue) => /stage 0 needs .* GiB over the 37\.3 GiB of a100-40gb/.test(x.message));
    assert.ok(d, JSON.stringify(diagnostics));
    const stage0 = text.indexOf('{', text.indexOf('"stages"'));
    assert.strictEqual(d.range.start.line, text.slice(0, stage0).split('\n').length - 1);
    for (const x of diagnostics) assert.deepStrictEqual(Object.keys(x).sort(), ['message', 'range', 'severity']);
  });
  it('plan: errors at the exact field (unknown GPU)', () => {
    const text = '{\n  "model": {"arch": "gpt", "layers": 2, "hidden": 64, "heads": 4, "vocab": 100},\n  "cluster": {"gpu": "b300", "gpusPerNode": 1},\n  "training": {"globalBatch": 1, "microBatch": 1}\n}\n';
    const file = path.join(tmp, 'gpu.plan.json');
    fs.writeFileSync(file, text);
    const r = spawnSync(process.execPath, [CLI, 'check', file, '--json'], { encoding: 'utf8' });
    const { diagnostics } = JSON.parse(r.stdout);
    assert.strictEqual(diagnostics.length, 1);
    assert.match(diagnostics[0].message, /unknown GPU 'b300' \(did you mean 'b200'\?\)/);
    assert.deepStrictEqual(diagnostics[0].range, rangeOf(text, '"gpu": "b300"'));
  });
});

describe('the plan JSON Schema (contributed to VS Code for completion and hover)', () => {
  const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'schemas', 'plan.schema.json'), 'utf8'));
  it('lists exactly the catalog GPUs', async () => {
    const { GPUS } = await import('../../src/engine/hardware/catalog.js');
    assert.deepStrictEqual([...schema.properties.cluster.properties.gpu.enum].sort(), GPUS.map((g) => g.id).sort());
  });
  it('names only formats the engine parses, and describes every example plan field', async () => {
    const { parseFormat } = await import('../../src/engine/quant/formats.js');
    for (const f of schema.properties.precision.properties.default.examples) assert.ok(parseFormat(f), f);
    const { parseJsonWithTree } = await import('../../src/engine/plan/plan.js');
    for (const ex of fs.readdirSync(path.join(REPO, 'examples')).filter((f) => f.endsWith('.plan.json'))) {
      const plan = parseJsonWithTree(fs.readFileSync(path.join(REPO, 'examples', ex), 'utf8')).value as Record<string, Record<string, unknown>>;
      for (const [k, v] of Object.entries(plan)) {
        assert.ok(k in schema.properties, `${ex}: ${k}`);
        if (v && typeof v === 'object' && schema.properties[k].properties) for (const kk of Object.keys(v)) assert.ok(kk in schema.properties[k].properties, `${ex}: ${k}.${kk}`);
      }
    }
  });
});
