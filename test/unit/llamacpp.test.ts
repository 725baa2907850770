import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { hfConfigToSpec } from '../../src/engine/formats/hf-config';
import type { GgufModel } from '../../src/engine/formats/gguf-model';
import { BUILDS, kvCells, layerDevices, llamaCppMemory, nglAndSplit, parseBuild } from '../../src/engine/cost/llamacpp';
import { modelBytes, quantizeTypes, synthesizeGguf } from '../../src/engine/quant/gguf-filetypes';
import { REPO } from '../helpers';

const FIX = path.join(REPO, 'test', 'fixtures', 'llamacpp');
const read = (name: string) => JSON.parse(fs.readFileSync(path.join(FIX, name), 'utf8'));
const MiB = 2 ** 20;
const GiB = 2 ** 30;

const LLAMA3_8B = hfConfigToSpec(
  {
    model_type: 'llama',
    hidden_size: 4096,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    num_hidden_layers: 32,
    intermediate_size: 14336,
    vocab_size: 128256,
    tie_word_embeddings: false,
  },
  'llama-3-8b',
);
const LLAMA3_70B = hfConfigToSpec(
  {
    model_type: 'llama',
    hidden_size: 8192,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    num_hidden_layers: 80,
    intermediate_size: 28672,
    vocab_size: 128256,
    tie_word_embeddings: false,
  },
  'llama-3-70b',
);

const pad = (s: string | number, n: number) => String(s).padStart(n);

describe("GGUF file types: llama-quantize's output size (published tables, within 1%)", () => {
  const sizes = read('sizes.json');
  // The importance matrix changes a few IQ choices. llama-quantize refuses IQ1/IQ2 without one; the
  // Llama-3.1-8B README table (PR #14905) used one up to IQ3 and none for IQ4_NL / IQ4_XS (its bits per
  // weight, printed to 4 decimals, are only reproduced that way); dranger003's Llama-3-70B quants are
  // all imatrix quants.
  const tables: {
    title: string;
    spec: typeof LLAMA3_8B;
    rows: { quant: string; size_GiB: number; bpw?: number }[];
    imatrix: (q: string) => boolean;
  }[] = [
    {
      title: 'Llama-3.1-8B, tools/quantize/README.md (b6006)',
      spec: LLAMA3_8B,
      rows: sizes.quantize_readme_llama_3_1_8b.rows,
      imatrix: (q) => /^IQ[123]/.test(q),
    },
    {
      title: 'Llama-3-70B, dranger003 (XiongjieDai/GPU-Benchmarks-on-LLM-Inference)',
      spec: LLAMA3_70B,
      rows: sizes.llama_3_70b_all_quants.rows,
      imatrix: () => true,
    },
  ];
  for (const t of tables) {
    it(`${t.title}: ${t.rows.length} file types`, () => {
      const lines = [
        `        ${'type'.padEnd(8)} ${pad('published GiB', 14)} ${pad('predicted', 10)} ${pad('error', 8)}  bpw published / predicted`,
      ];
      let worst = 0;
      for (const r of t.rows) {
        const m = synthesizeGguf(t.spec, r.quant, { imatrix: t.imatrix(r.quant) });
        const bytes = modelBytes(m);
        const elements = m.tensors.reduce((a, x) => a + x.dims.reduce((p, d) => p * d, 1), 0);
        const err = bytes / GiB / r.size_GiB - 1;
        worst = Math.max(worst, Math.abs(err));
        lines.push(
          `        ${r.quant.padEnd(8)} ${pad(r.size_GiB.toFixed(2), 14)} ${pad((bytes / GiB).toFixed(3), 10)} ${pad((err * 100).toFixed(2) + '%', 8)}  ${r.bpw ?? '-'} / ${((bytes * 8) / elements).toFixed(4)}`,
        );
        assert.ok(Math.abs(err) < 0.01, `${r.quant}: ${(err * 100).toFixed(2)}% off`);
        if (r.bpw !== undefined) {
          assert.ok(Math.abs((bytes * 8) / elements - r.bpw) < 5e-4, `${r.quant} bits per weight`);
        }
      }
      console.log(lines.join('\n') + `\n        worst |error| ${(worst * 100).toFixed(2)}%`);
    });
  }

  it("the mix of Q4_K_M on Llama-3-8B: Q6_K output, use_more_bits layers' attn_v and ffn_down in Q6_K (193 q4_K / 33 q6_K on Llama-2-7B)", () => {
    const l2 = synthesizeGguf(
      hfConfigToSpec(
        {
          model_type: 'llama',
          hidden_size: 4096,
          num_attention_heads: 32,
          num_hidden_layers: 32,
          intermediate_size: 11008,
          vocab_size: 32000,
        },
        'llama-2-7b',
      ),
      'q4_k_m',
    );
    const count = (type: string) => l2.tensors.filter((x) => x.type === type).length;
    // TheBloke's Llama-2-7B Q4_K_M as llama.cpp printed it (logs.json, log 20): f32 65, q4_K 193, q6_K 33.
    assert.deepStrictEqual([count('F32'), count('Q4_K'), count('Q6_K')], [65, 193, 33]);
    const m = synthesizeGguf(LLAMA3_8B, 'Q4_K_M');
    const type = (n: string) => m.tensors.find((x) => x.name === n)!.type;
    assert.strictEqual(type('output.weight'), 'Q6_K');
    assert.strictEqual(type('token_embd.weight'), 'Q4_K');
    // use_more_bits(i, 32): i < 4, i >= 28, (i − 4) % 3 == 2.
    assert.deepStrictEqual(
      [0, 3, 4, 5, 6, 9, 26, 28, 31].map((i) => type(`blk.${i}.ffn_down.weight`)),
      ['Q6_K', 'Q6_K', 'Q4_K', 'Q4_K', 'Q6_K', 'Q6_K', 'Q4_K', 'Q6_K', 'Q6_K'],
    );
  });

  it('rows not divisible by 256 fall back (Qwen2-0.5B, n_embd 896: Q4_K → Q5_0, Q6_K → Q8_0); Q2_K → IQ4_NL before b8266, Q4_0 since', () => {
    const qwen05 = hfConfigToSpec(
      {
        model_type: 'qwen2',
        hidden_size: 896,
        num_attention_heads: 14,
        num_key_value_heads: 2,
        num_hidden_layers: 24,
        intermediate_size: 4864,
        vocab_size: 151936,
        tie_word_embeddings: true,
      },
      'qwen2-0.5b',
    );
    const m = synthesizeGguf(qwen05, 'q4_k_m');
    const type = (n: string) => m.tensors.find((t) => t.name === n)!.type;
    assert.strictEqual(type('blk.1.attn_q.weight'), 'Q5_0');
    assert.strictEqual(type('blk.0.attn_v.weight'), 'Q8_0');
    // ffn_down's rows are n_ff = 4864 = 19 × 256 long: no fallback.
    assert.strictEqual(type('blk.4.ffn_down.weight'), 'Q4_K');
    // The tied embedding takes the output rule: Q6_K cannot hold rows of 896, so Q8_0 (137.94 MiB in the 2-GPU log 12).
    assert.strictEqual(type('token_embd.weight'), 'Q8_0');
    const q2 = (build: number) =>
      synthesizeGguf(qwen05, 'q2_k', { build }).tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!.type;
    assert.strictEqual(q2(8265), 'IQ4_NL');
    assert.strictEqual(q2(8266), 'Q4_0');
  });

  it('fused attn_qkv: its own rules before b8266 (Q4_K_M → Q5_K), the attn_v rules since (Q6_K on use_more_bits layers)', () => {
    const pythia = hfConfigToSpec(
      {
        model_type: 'gpt_neox',
        hidden_size: 2560,
        num_attention_heads: 32,
        num_hidden_layers: 32,
        intermediate_size: 10240,
        vocab_size: 50304,
      },
      'pythia-2.8b',
    );
    const qkv = (build: number) =>
      synthesizeGguf(pythia, 'q4_k_m', { build })
        .tensors.filter((t) => t.name.endsWith('attn_qkv.weight'))
        .map((t) => t.type);
    // ggml-ci at b4000 (logs.json, log 3): pythia-2.8B Q4_K_M holds q4_K 81, q5_K 32, q6_K 17 tensors.
    const old = synthesizeGguf(pythia, 'q4_k_m', { build: 4000 }).tensors;
    const n = (type: string) => old.filter((t) => t.type === type).length;
    assert.deepStrictEqual([n('Q4_K'), n('Q5_K'), n('Q6_K')], [81, 32, 17]);
    assert.ok(qkv(8265).every((t) => t === 'Q5_K'));
    assert.deepStrictEqual([...new Set(qkv(8266))].sort(), ['Q4_K', 'Q6_K']);
  });

  it('per-tensor overrides (--tensor-type) win over the mix and still fall back on odd rows', () => {
    const m: GgufModel = { ...synthesizeGguf(LLAMA3_8B, 'f16'), fileType: undefined };
    const typed = quantizeTypes(m, 'q4_k_m', {
      overrides: [{ test: (n) => /attn_v/.test(n), type: 'Q8_0' }],
    });
    assert.ok(typed.filter((t) => t.name.includes('attn_v')).every((t) => t.type === 'Q8_0'));
    assert.strictEqual(typed.find((t) => t.name === 'output.weight')!.type, 'Q6_K');
  });
});

describe('llama.cpp layer placement (-ngl, --tensor-split)', () => {
  it('-ngl N: since b7467 the output layer and N − 1 repeating layers on the GPU; before, N repeating layers and the output on the CPU', () => {
    const now = layerDevices(32, 10, [1], BUILDS.outputFirst);
    const before = layerDevices(32, 10, [1], BUILDS.outputFirst - 1);
    assert.strictEqual(now[32], 0);
    assert.strictEqual(now.slice(0, 32).filter((d) => d === 0).length, 9);
    assert.strictEqual(before[32], -1);
    assert.strictEqual(before.slice(0, 32).filter((d) => d === 0).length, 10);
    // The GPU takes the last layers either way.
    assert.deepStrictEqual(now.slice(23, 32), Array(9).fill(0));
  });

  it('an equal 4-way split of 33 slots is 9/8/8/7 repeating layers, the output in the last slot (4×ROCm Mistral-7B log)', () => {
    const d = layerDevices(32, 33, [1, 1, 1, 1], 2400);
    const count = (g: number) => d.slice(0, 32).filter((x) => x === g).length;
    assert.deepStrictEqual([0, 1, 2, 3].map(count), [9, 8, 8, 7]);
    assert.strictEqual(d[32], 3);
    // -ngl 99 / 999 clamp to all layers.
    assert.deepStrictEqual(layerDevices(32, 999, [1, 1, 1, 1], 2400), d);
  });

  it('nglAndSplit gives back -ngl / -ts that reproduce an assignment, for both output-layer rules', () => {
    for (const build of [7000, 8000]) {
      const want = layerDevices(40, 30, [5, 3], build);
      const got = nglAndSplit(want, 2, build)!;
      assert.ok(got, `build ${build}`);
      assert.deepStrictEqual(layerDevices(40, got.ngl, got.tensorSplit, build), want);
    }
    // GPU 1 before GPU 0 cannot be said with -ngl / -ts.
    assert.strictEqual(nglAndSplit([1, 1, 0, 0, 0], 2, 8000), undefined);
  });

  it('KV cells: padding 32 → flash-attention 256 / 32 → none (b6868) → 256 always (b6975)', () => {
    assert.strictEqual(kvCells(1000, { flashAttention: false, build: 2400 }), 1000);
    assert.strictEqual(kvCells(1000, { flashAttention: false, build: 2600 }), 1024);
    assert.strictEqual(kvCells(1000, { flashAttention: true, build: 5000 }), 1024);
    assert.strictEqual(kvCells(1001, { flashAttention: false, build: 5000 }), 1024);
    assert.strictEqual(kvCells(1001, { flashAttention: true, build: 5000 }), 1024);
    assert.strictEqual(kvCells(1000, { flashAttention: true, build: 6900 }), 1000);
    assert.strictEqual(kvCells(1000, { flashAttention: false, build: 7000 }), 1024);
    assert.strictEqual(kvCells(4100, { flashAttention: false, build: 7000 }), 4352);
  });

  it('parses builds from runtimeVersion', () => {
    assert.strictEqual(parseBuild('b7400'), 7400);
    assert.strictEqual(parseBuild('7400'), 7400);
    assert.strictEqual(parseBuild('b8746-0893f50f'), 8746);
    assert.strictEqual(parseBuild('latest'), undefined);
  });
});

describe("llama.cpp memory against llama.cpp's own logs (model and KV within 1%, compute within 15%)", () => {
  const { cases } = read('validation.json');
  const rows: string[] = [];
  const worst = { model: 0, kv: 0, compute: 0 };
  after(() => {
    console.log(
      `        ${'log'.padEnd(6)}${'buffer'.padEnd(9)}${'device'.padEnd(9)}${pad('logged MiB', 11)}${pad('predicted', 11)}${pad('error', 9)}\n` +
        rows.join('\n') +
        `\n        worst |error|: model ${(worst.model * 100).toFixed(2)}%, KV ${(worst.kv * 100).toFixed(2)}%, compute ${(worst.compute * 100).toFixed(2)}% (estimated)`,
    );
  });
  for (const c of cases) {
    it(`log ${c.log}: ${c.label}`, () => {
      const model: GgufModel = c.config
        ? synthesizeGguf(hfConfigToSpec(c.config, `log ${c.log}`), c.fileType, { build: c.build, imatrix: c.imatrix })
        : { ...c.gguf, tensors: [] };
      const split = c.gpus ? (c.tensorSplit ?? Array(c.gpus).fill(1)) : [];
      const placed = layerDevices(model.nLayer, c.ngl, split, c.build);
      const m = llamaCppMemory(model, placed, c.gpus, {
        build: c.build,
        nCtx: c.nCtx,
        nSeq: c.nSeq,
        nUbatch: 512,
        flashAttention: c.flashAttention,
        typeK: c.typeK,
        typeV: c.typeV,
        offloadKqv: true,
      });
      const field = { model: 'weights', kv: 'kvCache', compute: 'compute' } as const;
      for (const kind of ['model', 'kv', 'compute'] as const) {
        for (const [dev, logged] of Object.entries<number>(c.expect[kind] ?? {})) {
          const f = field[kind];
          const bytes =
            dev === 'host'
              ? m.host[f]
              : dev === 'gpuTotal'
                ? m.gpus.reduce((a, g) => a + g[f], 0)
                : m.gpus[Number(dev.slice(3))][f];
          const err = bytes / MiB / logged - 1;
          worst[kind] = Math.max(worst[kind], Math.abs(err));
          rows.push(
            `        ${String(c.log).padEnd(6)}${kind.padEnd(9)}${dev.padEnd(9)}${pad(logged.toFixed(2), 11)}${pad((bytes / MiB).toFixed(2), 11)}${pad((err * 100).toFixed(2) + '%', 9)}`,
          );
          assert.ok(
            Math.abs(err) < (kind === 'compute' ? 0.15 : 0.01),
            `${kind} ${dev}: ${(err * 100).toFixed(2)}% off`,
          );
        }
      }
    });
  }
});
