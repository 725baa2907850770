import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MemoryByteSource } from '../../src/engine/bytes';
import { InputError } from '../../src/engine/errors';
import type { CheckpointTensorRef } from '../../src/engine/formats/checkpoint';
import { openModel } from '../../src/engine/formats/registry';
import { inspectFile } from '../../src/node/inspect-file';
import { checkFile, estimatePlanFile } from '../../src/node/plan-file';
import { REPO, SHARED_FIXTURES, rng } from '../helpers';

const CONFIGS = path.join(REPO, 'test', 'fixtures', 'hf-configs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-ckpt-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Writes a .safetensors file: 8-byte header length, JSON header, then the tensors' bytes. */
function writeSafetensors(
  file: string,
  tensors: { name: string; dtype: string; shape: number[]; bytesPer: number }[],
  header?: string,
): void {
  const entries: Record<string, unknown> = {};
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * t.bytesPer;
    entries[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  const json = Buffer.from(header ?? JSON.stringify({ __metadata__: { format: 'pt' }, ...entries }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.alloc(off);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
}

async function refused(file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(inspectFile(file), (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.ok(e.message.includes(path.basename(file)), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('Hugging Face config.json', () => {
  const expected = JSON.parse(fs.readFileSync(path.join(CONFIGS, 'expected.json'), 'utf8')).parameters as Record<
    string,
    number
  >;
  for (const [name, params] of Object.entries(expected)) {
    it(`${name}: exactly the ${params} parameters of the published checkpoint`, async () => {
      const r = await inspectFile(path.join(CONFIGS, name, 'config.json'));
      assert.strictEqual(r.format, 'hf-config');
      // The synthesized transformer has every tensor the checkpoint stores: the count is exact, not close.
      assert.strictEqual(r.parameters, params);
    });
  }
  it('counts all experts as weights and only the active ones as FLOPs (Mixtral)', async () => {
    const r = await inspectFile(path.join(CONFIGS, 'mixtral-8x7b', 'config.json'), { batch: 1, sequence: 1 });
    const flops = r.layers.reduce((s, l) => s + l.flops, 0);
    const active = 12.88e9; // Mixtral's published active parameter count per token
    assert.ok(Math.abs(flops / (2 * active) - 1) < 0.03, `${flops} FLOPs per token vs 2 × ${active}`);
  });
  it('refuses a config with a broken field, naming the file and the field', async () => {
    fs.writeFileSync(
      path.join(tmp, 'config.json'),
      JSON.stringify({
        model_type: 'llama',
        hidden_size: 'big',
        num_attention_heads: 8,
        num_hidden_layers: 2,
        vocab_size: 10,
        intermediate_size: 8,
      }),
    );
    await refused(path.join(tmp, 'config.json'), /hidden_size: "big" is not a positive integer/);
  });
});

describe('safetensors', () => {
  it('reads the shared fixtures (F32, F16, I8, and F64 + F32 + I32)', async () => {
    const want: Record<string, Record<string, number>> = {
      'test-model-float32': { float: 59056 },
      'test-model-float16': { float16: 59056 },
      'test-model-int8': { int8: 59056 },
      'test-model-vocab-quantized': { double: 29524, float: 8192, int32: 29524 },
    };
    for (const [dir, dtypes] of Object.entries(want)) {
      const r = await inspectFile(path.join(SHARED_FIXTURES, 'safetensors', dir, 'model.safetensors'));
      assert.strictEqual(r.format, 'safetensors');
      assert.deepStrictEqual(r.parametersByDtype, dtypes, dir);
    }
  });

  const tiny = {
    model_type: 'llama',
    hidden_size: 16,
    intermediate_size: 32,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 2,
    vocab_size: 64,
    tie_word_embeddings: false,
  };
  const tinyTensors = () => {
    const t: { name: string; dtype: string; shape: number[]; bytesPer: number }[] = [
      { name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [64, 16], bytesPer: 2 },
    ];
    for (let i = 0; i < 2; i++) {
      const p = `model.layers.${i}`;
      t.push(
        { name: `${p}.input_layernorm.weight`, dtype: 'BF16', shape: [16], bytesPer: 2 },
        { name: `${p}.self_attn.q_proj.weight`, dtype: 'BF16', shape: [16, 16], bytesPer: 2 },
        { name: `${p}.self_attn.k_proj.weight`, dtype: 'BF16', shape: [8, 16], bytesPer: 2 },
        { name: `${p}.self_attn.v_proj.weight`, dtype: 'BF16', shape: [8, 16], bytesPer: 2 },
        { name: `${p}.self_attn.o_proj.weight`, dtype: 'BF16', shape: [16, 16], bytesPer: 2 },
        { name: `${p}.post_attention_layernorm.weight`, dtype: 'BF16', shape: [16], bytesPer: 2 },
        { name: `${p}.mlp.gate_proj.weight`, dtype: 'BF16', shape: [32, 16], bytesPer: 2 },
        { name: `${p}.mlp.up_proj.weight`, dtype: 'BF16', shape: [32, 16], bytesPer: 2 },
        { name: `${p}.mlp.down_proj.weight`, dtype: 'BF16', shape: [16, 32], bytesPer: 2 },
      );
    }
    t.push(
      { name: 'model.norm.weight', dtype: 'BF16', shape: [16], bytesPer: 2 },
      { name: 'lm_head.weight', dtype: 'BF16', shape: [64, 16], bytesPer: 2 },
    );
    return t;
  };
  const fileParams = tinyTensors().reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const tinyPlan = {
    cluster: { gpu: 'a100-80gb', gpusPerNode: 1, nodes: 1 },
    training: { globalBatch: 8, microBatch: 2, seqLen: 32 },
    parallel: { data: 1, tensor: 1, pipeline: 1 },
  };

  it('joins a checkpoint with its config: the synthesized layers own the real tensors', async () => {
    const dir = path.join(tmp, 'tiny-llama');
    writeSafetensors(path.join(dir, 'model.safetensors'), tinyTensors());
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(tiny));
    const file = path.join(dir, 'model.safetensors');
    const r = await inspectFile(file);
    assert.strictEqual(r.parameters, fileParams);
    assert.deepStrictEqual(r.dtypes, { bfloat16: tinyTensors().length });
    assert.ok(r.nodes > 20, 'the config gave the graph its structure');
    assert.ok(r.layers.find((l) => l.name === 'model.layers.1')!.flops > 0);
    const { FileByteSource, FolderResolver } = await import('../../src/node/file-source.js');
    const src = await FileByteSource.open(file);
    const siblings = new FolderResolver(file);
    const g = await openModel(src, { siblings });
    await src.close();
    await siblings.close();
    const q = g.tensors.get('model.layers.0.self_attn.q_proj.weight')!;
    assert.strictEqual((q.ref as CheckpointTensorRef).format, 'safetensors');
    assert.ok(g.layers[q.layer!].name === 'model.layers.0');
    assert.ok(q.consumers.length > 0, 'the real weight feeds the synthesized projection');
  });

  it('reads a sharded checkpoint through model.safetensors.index.json', async () => {
    const dir = path.join(tmp, 'sharded');
    const all = tinyTensors();
    const half = Math.floor(all.length / 2);
    writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), all.slice(0, half));
    writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), all.slice(half));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(tiny));
    const weightMap = Object.fromEntries(
      all.map((t, i) => [t.name, i < half ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']),
    );
    fs.writeFileSync(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
    );
    const r = await inspectFile(path.join(dir, 'model.safetensors.index.json'));
    assert.strictEqual(r.format, 'safetensors');
    assert.strictEqual(r.parameters, fileParams);
    assert.strictEqual(r.tensors, all.length);
  });

  it('opens weights without a config, grouped by their names, and says that their FLOPs are not counted', async () => {
    const file = path.join(tmp, 'noconfig', 'model.safetensors');
    writeSafetensors(file, tinyTensors());
    const r = await inspectFile(file);
    assert.strictEqual(r.nodes, 0);
    assert.ok(['model.layers.0', 'model.layers.1', 'lm_head'].every((n) => r.layers.some((l) => l.name === n)));
    assert.deepStrictEqual(r.warnings, [
      `${file}: no config.json beside it: its layers have no structure, so no FLOPs are counted and estimates have no compute time; put the model's config.json in its folder`,
    ]);
    // The estimate and the plan's diagnostics repeat it (the estimate's compute time is missing, not zero).
    const plan = path.join(tmp, 'noconfig', 'm.plan.json');
    fs.writeFileSync(plan, JSON.stringify({ ...tinyPlan, model: 'model.safetensors' }));
    const e = await estimatePlanFile(plan);
    assert.strictEqual(e.modelFlops, 0);
    assert.deepStrictEqual(e.warnings, r.warnings);
    const checked = await checkFile(plan);
    assert.deepStrictEqual(
      checked.diagnostics.map((d) => [d.severity, d.message]),
      [['warning', `model: ${r.warnings[0]}`]],
    );
  });

  it('says so when the config.json beside the weights is not a Hugging Face config', async () => {
    const dir = path.join(tmp, 'foreign-config');
    writeSafetensors(path.join(dir, 'model.safetensors'), tinyTensors());
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ learning_rate: 0.1 }));
    const r = await inspectFile(path.join(dir, 'model.safetensors'));
    assert.deepStrictEqual(r.warnings, [
      `${path.join(dir, 'config.json')}: not a Hugging Face config (no model_type or architectures): its layers have no structure, so no FLOPs are counted and estimates have no compute time`,
    ]);
  });

  it('refuses a config.json it cannot read, naming it: a symlink out of the folder, a dangling symlink, broken JSON', async () => {
    const outside = path.join(tmp, 'outside-config.json');
    fs.writeFileSync(outside, JSON.stringify(tiny));
    const cases: [string, (cfg: string) => void, RegExp][] = [
      ['escape', (cfg) => fs.symlinkSync(outside, cfg), /file 'config\.json' resolves outside the model's folder/],
      [
        'dangling',
        (cfg) => fs.symlinkSync(path.join(tmp, 'nothing-here.json'), cfg),
        /file 'config\.json' is a symlink to a file that does not exist/,
      ],
      ['broken', (cfg) => fs.writeFileSync(cfg, '{"model_type": '), /config\.json: not valid JSON/],
    ];
    for (const [name, make, pattern] of cases) {
      const dir = path.join(tmp, `unreadable-${name}`);
      writeSafetensors(path.join(dir, 'model.safetensors'), tinyTensors());
      make(path.join(dir, 'config.json'));
      await assert.rejects(inspectFile(path.join(dir, 'model.safetensors')), (e: unknown) => {
        assert.ok(e instanceof InputError, String(e));
        assert.ok(e.message.startsWith(dir + path.sep), e.message);
        assert.match(e.message, pattern);
        return true;
      });
    }
  });

  it('opens a checkpoint in the Hugging Face hub cache (snapshots/<rev>/* → ../../blobs/*) exactly as its flat copy', async () => {
    // The flat copy: the files themselves in one folder.
    const flat = path.join(tmp, 'flat-llama');
    writeSafetensors(path.join(flat, 'model.safetensors'), tinyTensors());
    fs.writeFileSync(path.join(flat, 'config.json'), JSON.stringify(tiny));
    // The hub cache (huggingface_hub's layout): blobs named by hash, a snapshot of links to them, refs/main.
    const repo = path.join(tmp, 'hub', 'models--test--tiny-llama');
    const rev = '0123456789abcdef0123456789abcdef01234567';
    const snapshot = path.join(repo, 'snapshots', rev);
    fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    fs.mkdirSync(path.join(repo, 'refs'), { recursive: true });
    fs.mkdirSync(snapshot, { recursive: true });
    fs.writeFileSync(path.join(repo, 'refs', 'main'), rev);
    for (const [name, blob] of [
      ['model.safetensors', 'a1b2c3'],
      ['config.json', 'd4e5f6'],
    ]) {
      fs.copyFileSync(path.join(flat, name), path.join(repo, 'blobs', blob));
      fs.symlinkSync(path.join('..', '..', 'blobs', blob), path.join(snapshot, name));
    }
    const cached = await inspectFile(path.join(snapshot, 'model.safetensors'));
    const copy = await inspectFile(path.join(flat, 'model.safetensors'));
    assert.deepStrictEqual(cached, copy);
    assert.deepStrictEqual(cached.warnings, []);
    assert.ok(cached.nodes > 20, 'the config gave the graph its structure');
    // The estimate: the same report, with the FLOPs of the tiny llama by hand (Megatron's count: 2 per
    // multiply-add of every projection and the output layer, the two attention matmuls, ×3 for training).
    fs.writeFileSync(path.join(flat, 'm.plan.json'), JSON.stringify({ ...tinyPlan, model: 'model.safetensors' }));
    const elsewhere = path.join(tmp, 'plans');
    fs.mkdirSync(elsewhere, { recursive: true });
    fs.writeFileSync(
      path.join(elsewhere, 'cached.plan.json'),
      JSON.stringify({ ...tinyPlan, model: path.join(snapshot, 'model.safetensors') }),
    );
    const fromCache = await estimatePlanFile(path.join(elsewhere, 'cached.plan.json'));
    const fromCopy = await estimatePlanFile(path.join(flat, 'm.plan.json'));
    assert.deepStrictEqual(fromCache, fromCopy);
    const [h, q, kv, f, layers, vocab] = [16, 16, 8, 32, 2, 64];
    const s = tinyPlan.training.seqLen;
    const perToken = 2 * (layers * (h * q + 2 * h * kv + q * h + 3 * h * f) + vocab * h) + layers * 2 * 2 * s * q;
    assert.strictEqual(fromCache.modelFlops, 3 * perToken * s * tinyPlan.training.globalBatch);
    assert.strictEqual(fromCache.parameters, fileParams);
    assert.deepStrictEqual(fromCache.warnings, []);
  });

  it('reads a sharded checkpoint in the hub cache: index, shards and config all links into blobs/', async () => {
    const repo = path.join(tmp, 'hub', 'models--test--sharded');
    const snapshot = path.join(repo, 'snapshots', 'main-rev');
    fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    fs.mkdirSync(snapshot, { recursive: true });
    const all = tinyTensors();
    const half = Math.floor(all.length / 2);
    const files: [string, (f: string) => void][] = [
      ['model-00001-of-00002.safetensors', (f) => writeSafetensors(f, all.slice(0, half))],
      ['model-00002-of-00002.safetensors', (f) => writeSafetensors(f, all.slice(half))],
      ['config.json', (f) => fs.writeFileSync(f, JSON.stringify(tiny))],
      [
        'model.safetensors.index.json',
        (f) =>
          fs.writeFileSync(
            f,
            JSON.stringify({
              weight_map: Object.fromEntries(
                all.map((t, i) => [
                  t.name,
                  i < half ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors',
                ]),
              ),
            }),
          ),
      ],
    ];
    files.forEach(([name, write], i) => {
      write(path.join(repo, 'blobs', `blob${i}`));
      fs.symlinkSync(`../../blobs/blob${i}`, path.join(snapshot, name));
    });
    const r = await inspectFile(path.join(snapshot, 'model.safetensors.index.json'));
    assert.strictEqual(r.parameters, fileParams);
    assert.ok(r.nodes > 20);
    assert.deepStrictEqual(r.warnings, []);
  });

  it('keeps ONNX external data strict in the hub cache: a link into blobs/ is refused', async () => {
    const repo = path.join(tmp, 'hub', 'models--test--onnx');
    const snapshot = path.join(repo, 'snapshots', 'rev');
    fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    fs.mkdirSync(snapshot, { recursive: true });
    const models = path.join(REPO, 'test', 'fixtures', 'models');
    fs.copyFileSync(path.join(models, 'gpt2-tiny-external.onnx'), path.join(snapshot, 'model.onnx'));
    fs.copyFileSync(path.join(models, 'gpt2-tiny-external.onnx.data'), path.join(repo, 'blobs', 'data'));
    fs.symlinkSync('../../blobs/data', path.join(snapshot, 'gpt2-tiny-external.onnx.data'));
    await refused(
      path.join(snapshot, 'model.onnx'),
      /external data location 'gpt2-tiny-external\.onnx\.data' resolves outside the model's folder/,
    );
  });

  const bad: [string, () => void, RegExp][] = [
    [
      'a header longer than the file',
      () => fs.writeFileSync(path.join(tmp, 'b1.safetensors'), Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0, 0x7b])),
      /header declares 65535 bytes/,
    ],
    [
      'an oversized header',
      () => fs.writeFileSync(path.join(tmp, 'b2.safetensors'), Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0x7b])),
      /more than the/,
    ],
    [
      'a header that is not JSON',
      () => writeSafetensors(path.join(tmp, 'b3.safetensors'), [], '{"a": '),
      /not valid UTF-8 JSON/,
    ],
    [
      'overlapping tensors',
      () =>
        writeSafetensors(
          path.join(tmp, 'b4.safetensors'),
          [],
          JSON.stringify({
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          }) + ' '.repeat(0),
        ),
      /overlap|past the end/,
    ],
    [
      'offsets past the end',
      () =>
        writeSafetensors(
          path.join(tmp, 'b5.safetensors'),
          [],
          JSON.stringify({ a: { dtype: 'F32', shape: [1000], data_offsets: [0, 4000] } }),
        ),
      /past the end of the data/,
    ],
    [
      'a shape that disagrees with its bytes',
      () =>
        writeSafetensors(
          path.join(tmp, 'b6.safetensors'),
          [{ name: 'x', dtype: 'F32', shape: [4], bytesPer: 4 }],
          JSON.stringify({ x: { dtype: 'F32', shape: [1000000000000], data_offsets: [0, 16] } }),
        ),
      /needs 4000000000000 bytes/,
    ],
    [
      'an unknown dtype',
      () =>
        writeSafetensors(
          path.join(tmp, 'b7.safetensors'),
          [],
          JSON.stringify({ x: { dtype: 'F128', shape: [1], data_offsets: [0, 0] } }),
        ),
      /unknown dtype "F128"/,
    ],
  ];
  bad.forEach(([what, make, pattern], i) => {
    it(`refuses ${what}`, async () => {
      make();
      await refused(path.join(tmp, `b${i + 1}.safetensors`), pattern);
    });
  });
});

describe('GGUF', () => {
  it('reads llama-2-tiny-random.gguf (v3): metadata, 12 tensors, the llama structure from its metadata', async () => {
    const r = await inspectFile(path.join(SHARED_FIXTURES, 'gguf', 'llama-2-tiny-random.gguf'));
    assert.strictEqual(r.format, 'gguf');
    assert.strictEqual(r.tensors, 12);
    // token_embd + output (F16, 32000×8) + one block (4 × 8×8 attention, 3 × 8×32 MLP, two norms of 8) + output_norm
    assert.strictEqual(r.parameters, 2 * 32000 * 8 + 4 * 64 + 3 * 256 + 2 * 8 + 8);
    assert.deepStrictEqual(r.parametersByDtype, { float16: 2 * 32000 * 8 + 4 * 64 + 3 * 256, float: 24 });
    assert.ok(r.layers.some((l) => l.name === 'model.layers.0' && l.parameters === 4 * 64 + 3 * 256 + 16));
    assert.ok(r.nodes > 0);
  });
  it('says that a GGUF of an architecture it does not synthesize has no FLOPs (and a llama has no such warning)', async () => {
    const llama = await inspectFile(path.join(SHARED_FIXTURES, 'gguf', 'llama-2-tiny-random.gguf'));
    assert.deepStrictEqual(llama.warnings, []);
    // GGUF v3: magic, version, 0 tensors, 1 metadata pair general.architecture = "gpt2" (type 8, a string).
    const str = (v: string) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(Buffer.byteLength(v)));
      return Buffer.concat([b, Buffer.from(v)]);
    };
    const u32 = (v: number) => Buffer.from(new Uint32Array([v]).buffer);
    const u64 = (v: number) => Buffer.from(new BigUint64Array([BigInt(v)]).buffer);
    const file = path.join(tmp, 'gpt2.gguf');
    fs.writeFileSync(
      file,
      Buffer.concat([Buffer.from('GGUF'), u32(3), u64(0), u64(1), str('general.architecture'), u32(8), str('gpt2')]),
    );
    const r = await inspectFile(file);
    assert.deepStrictEqual(r.warnings, [
      `${file}: GGUF architecture 'gpt2' is not one Layerplan builds a transformer for (llama, mistral, qwen2, gemma, mixtral): its layers have no structure, so no FLOPs are counted and estimates have no compute time`,
    ]);
  });
  it('refuses ggml-vocab-gpt-2.gguf, whose float metadata was mangled into U+FFFD bytes', () =>
    refused(path.join(SHARED_FIXTURES, 'gguf', 'ggml-vocab-gpt-2.gguf'), /a string of \d+ bytes at offset 339/));
  it('refuses a wrong magic, an unsupported version and a truncated file', async () => {
    const good = fs.readFileSync(path.join(SHARED_FIXTURES, 'gguf', 'llama-2-tiny-random.gguf'));
    const v4 = Buffer.from(good);
    v4.writeUInt32LE(4, 4);
    fs.writeFileSync(path.join(tmp, 'v4.gguf'), v4);
    await refused(path.join(tmp, 'v4.gguf'), /GGUF version 4 is not supported/);
    fs.writeFileSync(path.join(tmp, 'short.gguf'), good.subarray(0, 5000));
    await refused(path.join(tmp, 'short.gguf'), /truncated|past the end/);
    fs.writeFileSync(path.join(tmp, 'magic.gguf'), Buffer.concat([Buffer.from('GGML'), good.subarray(4)]));
    await refused(path.join(tmp, 'magic.gguf'), /not a GGUF file/);
  });
});

describe('fuzz: mutated safetensors, GGUF and config.json files parse or fail with one clear error', function () {
  this.timeout(120000);
  const bases = [
    path.join(SHARED_FIXTURES, 'safetensors', 'test-model-vocab-quantized', 'model.safetensors'),
    path.join(SHARED_FIXTURES, 'gguf', 'llama-2-tiny-random.gguf'),
    path.join(CONFIGS, 'mixtral-8x7b', 'config.json'),
  ];
  for (const base of bases) {
    it(path.basename(path.dirname(base)) + '/' + path.basename(base), async () => {
      const bytes = new Uint8Array(fs.readFileSync(base));
      const rand = rng(bytes.length);
      const pick = (n: number) => Math.floor(rand() * n);
      let refusedCount = 0;
      for (let i = 0; i < 800; i++) {
        const m = Uint8Array.from(bytes);
        // Mutations concentrate on the header, where the parsers work (data bytes are never interpreted).
        const span = Math.min(m.length, 2048);
        for (let k = 0, n = 1 + pick(6); k < n; k++) m[pick(span)] = pick(256);
        const cut = rand() < 0.2 ? m.subarray(0, pick(m.length)) : m;
        try {
          await openModel(new MemoryByteSource(path.basename(base), cut));
        } catch (e) {
          if (!(e instanceof InputError)) assert.fail(`mutant ${i} threw ${(e as Error).stack}`);
          assert.ok(!e.message.includes('\n'));
          refusedCount++;
        }
      }
      assert.ok(refusedCount > 50, `${refusedCount} refused`);
    });
  }
});
