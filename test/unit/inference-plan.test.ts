import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { inferAutoDeviceMap, defaultMaxMemory, accelerateModules } from '../../src/engine/cost/accelerate';
import { estimate } from '../../src/engine/cost/estimate';
import { autoFitLayers, bestFileType, FIT_MARGIN_BYTES } from '../../src/engine/cost/inference-fit';
import { llamaOptions, planDevices } from '../../src/engine/cost/inference-devices';
import { layerDevices, llamaCppMemory } from '../../src/engine/cost/llamacpp';
import { ppLayers } from '../../src/engine/cost/vllm';
import { workloadFrom } from '../../src/engine/cost/workload';
import { hfConfigToSpec } from '../../src/engine/formats/hf-config';
import { deviceBytes, resolveDevice } from '../../src/engine/hardware/devices';
import { validatePlan, type Plan } from '../../src/engine/plan/plan';
import { synthesizeGguf } from '../../src/engine/quant/gguf-filetypes';
import { quantFile } from '../../src/node/quant-file';
import { REPO, rng } from '../helpers';

const CLI = path.join(REPO, 'out', 'src', 'cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-inference-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const GiB = 2 ** 30;

const llama = (over: Record<string, unknown> = {}) =>
  hfConfigToSpec(
    {
      model_type: 'llama',
      hidden_size: 4096,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      num_hidden_layers: 32,
      intermediate_size: 14336,
      vocab_size: 128256,
      max_position_embeddings: 131072,
      ...over,
    },
    'llama',
  );
const L8 = llama();
const L70 = llama({ hidden_size: 8192, num_attention_heads: 64, num_hidden_layers: 80, intermediate_size: 28672 });
const arch8 = {
  arch: 'llama',
  layers: 32,
  hidden: 4096,
  heads: 32,
  kvHeads: 8,
  ffn: 14336,
  vocab: 128256,
  seqLen: 8192,
};

function cli(args: string[], plan: unknown) {
  const file = path.join(tmp, `p${Math.random().toString(36).slice(2)}.plan.json`);
  fs.writeFileSync(file, JSON.stringify(plan, null, 2));
  return { ...spawnSync(process.execPath, [CLI, ...args, file], { encoding: 'utf8' }), file };
}

describe('layerplan estimate on an inference plan with devices (DESIGN.md JSON)', () => {
  const plan = {
    model: arch8,
    devices: [{ gpu: 'rtx-4090' }, { gpu: 'rtx-3060' }, { cpu: 'ddr5-6000-2ch', memoryGB: 64 }],
    inference: { batch: 1, promptLen: 512, genLen: 128, contextLen: 32768, gpuLayers: 33, tensorSplit: [2, 1] },
    precision: { default: 'q8_0' },
  };

  it('prints prefillSeconds, decodeTokensPerSecond and devices[{name, memory{weights, kvCache, compute, total}, capacity, layers}]', () => {
    const r = cli(['estimate', '--json'], plan);
    assert.strictEqual(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.ok(doc.prefillSeconds > 0 && doc.decodeTokensPerSecond > 0);
    assert.deepStrictEqual(
      doc.devices.map((d: { name: string }) => d.name),
      ['0:rtx-4090', '1:rtx-3060-12gb', '2:ddr5-6000-2ch'],
    );
    for (const d of doc.devices) {
      for (const k of ['weights', 'kvCache', 'compute', 'total']) assert.strictEqual(typeof d.memory[k], 'number', k);
      assert.ok(Math.abs(d.memory.total - d.memory.weights - d.memory.kvCache - d.memory.compute) < 1);
      assert.strictEqual(typeof d.layers, 'string');
    }
    // -ts 2,1 over 33 slots: layers 0-21 on the 4090, 22-31 and the output on the 3060; the host keeps the embeddings.
    assert.strictEqual(doc.devices[0].layers, '0-21');
    assert.strictEqual(doc.devices[1].layers, '22-31');
    assert.strictEqual(doc.devices[0].capacity, 24 * GiB);
    // KV: 32768 cells × 1024 × 2 (K, V) × 2 B = 128 MiB per layer.
    assert.strictEqual(doc.devices[0].memory.kvCache, 22 * 128 * 2 ** 20);
    assert.strictEqual(doc.devices[1].memory.kvCache, 10 * 128 * 2 ** 20);
    assert.ok(doc.devices[2].memory.weights > 500 * 2 ** 20, 'token_embd Q8_0 stays on the host');
  });

  it('the text report draws each device with its layers and memory', () => {
    const r = cli(['estimate'], plan);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stdout, /inference with llama\.cpp b8746/);
    assert.match(r.stdout, /0:rtx-4090\s+layers 0-21 /);
    assert.match(r.stdout, /1:rtx-3060-12gb\s+layers 22-31 \+out/);
    assert.match(r.stdout, /decode [\d.]+ tokens\/s/);
  });

  it('a device over its memory is an error at the plan path that placed it, with the auto-fit quick fix', () => {
    const over = { ...plan, inference: { ...plan.inference, tensorSplit: [1, 3] }, precision: { default: 'fp16' } };
    const r = cli(['check', '--json'], over);
    const doc = JSON.parse(r.stdout);
    const d = doc.diagnostics.find((x: { message: string }) => /device 1:rtx-3060-12gb needs/.test(x.message));
    assert.ok(d, r.stdout);
    assert.strictEqual(d.severity, 'error');
    assert.match(d.fix.title, /^Auto-fit: -ngl \d+, -ts \d+,\d+/);
    const gl = d.fix.edits.find((e: { path: string[] }) => e.path.join('.') === 'inference.gpuLayers');
    const ts = d.fix.edits.find((e: { path: string[] }) => e.path.join('.') === 'inference.tensorSplit');
    // The fixed plan checks clean.
    const fixed = { ...over, inference: { ...over.inference, gpuLayers: gl.value, tensorSplit: ts.value } };
    const again = JSON.parse(cli(['check', '--json'], fixed).stdout);
    assert.ok(!again.diagnostics.some((x: { severity: string }) => x.severity === 'error'), JSON.stringify(again));
  });

  it('a quantized V cache without flash attention is refused, as llama.cpp refuses it', () => {
    const r = cli(['check', '--json'], {
      ...plan,
      inference: { ...plan.inference, kvCache: 'q4_0', flashAttention: false },
    });
    const doc = JSON.parse(r.stdout);
    assert.ok(
      doc.diagnostics.some((x: { message: string }) =>
        /quantized V cache \(q4_0\) requires flash attention/.test(x.message),
      ),
    );
    const ok = cli(['check', '--json'], {
      ...plan,
      inference: { ...plan.inference, kvCache: 'q4_0', flashAttention: true },
    });
    assert.ok(!JSON.parse(ok.stdout).diagnostics.some((x: { message: string }) => /flash attention/.test(x.message)));
  });

  it('unknown devices get a suggestion', () => {
    const { issues } = validatePlan(JSON.stringify({ ...plan, devices: [{ gpu: 'rtx-4900' }] }));
    const i = issues.find((x) => /devices\[0\]\.gpu: unknown GPU 'rtx-4900'/.test(x.message));
    assert.ok(i && i.fix, JSON.stringify(issues));
    assert.ok(
      validatePlan(JSON.stringify({ ...plan, devices: [{ cpu: 'ddr9-2ch' }] })).issues.some((x) =>
        /DRAM id/.test(x.message),
      ),
    );
  });
});

describe('auto-fit: the most layers that fit, split across unequal GPUs (llama.cpp order, --fit margin)', () => {
  const plan = {
    model: arch8,
    devices: [{ gpu: 'rtx-4090' }, { gpu: 'rtx-3090' }],
    inference: { batch: 1, promptLen: 512, genLen: 128, contextLen: 8192, flashAttention: true },
  } as unknown as Plan;
  const o = llamaOptions(plan, 8746);
  const fitOn = (ids: string[], model: ReturnType<typeof synthesizeGguf>) => {
    const gpus = ids.map((id, index) => ({ index, capacity: deviceBytes(resolveDevice({ gpu: id })!) }));
    return { gpus, fit: autoFitLayers(model, gpus, o) };
  };

  it('Llama-3-70B Q4_K_M on a 4090 + a 3090 at 32768 tokens: each GPU within its memory less the margin, and one more layer would not fit', () => {
    const model = synthesizeGguf(L70, 'q4_k_m');
    const o32 = { ...o, nCtx: 32768 };
    const gpus = ['rtx-4090', 'rtx-3090'].map((id, index) => ({
      index,
      capacity: deviceBytes(resolveDevice({ gpu: id })!),
    }));
    const fit = autoFitLayers(model, gpus, o32);
    assert.ok(!fit.allOnGpu, 'the 10 GiB cache leaves some layers on the CPU');
    const mem = llamaCppMemory(model, fit.layerDevice, 2, o32);
    mem.gpus.forEach((g, k) => assert.ok(g.weights + g.kvCache + g.compute + FIT_MARGIN_BYTES <= gpus[k].capacity));
    assert.deepStrictEqual(layerDevices(80, fit.gpuLayers, fit.tensorSplit, 8746), fit.layerDevice);
    const more = layerDevices(80, fit.gpuLayers + 1, [fit.tensorSplit[0], fit.tensorSplit[1] + 1], 8746);
    const m2 = llamaCppMemory(model, more, 2, o32);
    assert.ok(m2.gpus.some((g, k) => g.weights + g.kvCache + g.compute + FIT_MARGIN_BYTES > gpus[k].capacity));
    console.log(`        70B Q4_K_M, 32768 tokens: -ngl ${fit.gpuLayers} -ts ${fit.tensorSplit.join(',')}`);
    // At 8192 tokens every layer fits.
    assert.ok(autoFitLayers(model, gpus, o).allOnGpu);
  });

  it('unequal GPUs get unequal shares (24 GB and 12 GB: about 2 : 1)', () => {
    const model = synthesizeGguf(L8, 'f16');
    const { fit } = fitOn(['rtx-4090', 'rtx-3060'], model);
    assert.ok(fit.allOnGpu);
    assert.ok(fit.tensorSplit[0] > 1.5 * fit.tensorSplit[1], fit.tensorSplit.join(','));
  });

  it('the faster GPU first: Llama-2-7B Q5_K_M on a 3060 (360 GB/s) + a 3070 (448 GB/s) runs from the 3070, and decodes faster for it', () => {
    const l2 = llama({ num_key_value_heads: 32, intermediate_size: 11008, vocab_size: 32000 });
    const model = synthesizeGguf(l2, 'q5_k_m');
    const ids = ['rtx-3060', 'rtx-3070'];
    const gpus = ids.map((id, index) => {
      const d = resolveDevice({ gpu: id })!;
      return { index, capacity: deviceBytes(d), bandwidthGBps: d.bandwidthGBps };
    });
    const q8 = { ...o, typeK: 'q8_0', typeV: 'q8_0' };
    const fit = autoFitLayers(model, gpus, q8);
    assert.ok(fit.allOnGpu);
    assert.deepStrictEqual(fit.tensorSplit, [0, 33]);
    const inOrder = autoFitLayers(
      model,
      gpus.map(({ index, capacity }) => ({ index, capacity })),
      q8,
    );
    assert.deepStrictEqual(inOrder.tensorSplit, [33, 0]);
    const w = workloadFrom({ kind: 'arch', arch: l2 });
    const base = {
      model: 'x',
      devices: ids.map((gpu) => ({ gpu })),
      inference: { batch: 1, promptLen: 512, genLen: 128, contextLen: 8192, flashAttention: true, kvCache: 'q8_0' },
      precision: { default: 'q5_k_m' },
    } as unknown as Plan;
    const at = (split: number[]) =>
      estimate({ ...base, inference: { ...base.inference!, gpuLayers: 33, tensorSplit: split } } as Plan, w)
        .decodeTokensPerSecond!;
    assert.ok(at([0, 33]) > 1.15 * at([33, 0]), `${at([0, 33])} vs ${at([33, 0])} tokens/s`);
  });

  it('the best file type for an 8 GB GPU at 8192 tokens is the best one that fits (the next better one does not)', () => {
    const gpus = [{ index: 0, capacity: deviceBytes(resolveDevice({ gpu: 'rtx-3070' })!) }];
    const best = bestFileType(L8, gpus, o)!;
    assert.ok(best, 'some file type fits');
    assert.ok(best.fit.allOnGpu);
    assert.ok(best.rejected.length > 0 && best.rejected.every((r) => /layers fit/.test(r.why)));
    console.log(
      `        Llama-3-8B on an RTX 3070 (8 GB), 8192 tokens: ${best.fileType} (${(best.bytes / GiB).toFixed(2)} GiB); passed over: ${best.rejected.map((r) => `${r.fileType} (${r.why})`).join(', ')}`,
    );
    const withBudget = bestFileType(L8, gpus, o, { errorBudgetDb: 30, sqnrDb: { [best.fileType]: 25 } })!;
    assert.notStrictEqual(withBudget.fileType, best.fileType, 'an error budget the type misses rules it out');
  });

  it('estimate without -ngl auto-fits; an Apple chip holds the host buffers in its unified memory', () => {
    const w = workloadFrom({ kind: 'arch', arch: L8 });
    const r = estimate({ ...plan, devices: [{ gpu: 'apple-m2-max', memoryGB: 32 }] } as Plan, w);
    assert.strictEqual(r.runtime!.placement, 'auto-fit');
    assert.strictEqual(r.devices!.length, 1, 'no separate host entry');
    assert.ok(r.devices![0].memory.weights > 14.9 * GiB, 'the F16 embeddings and layers share the 32 GiB');
    assert.strictEqual(planDevices(plan, 'p').length, 2);
  });
});

describe('vLLM rules (v0.19.0)', () => {
  it('pipeline stages: layers // pp each, the remainder to the stages before the last (get_pp_indices)', () => {
    assert.deepStrictEqual(ppLayers(30, 4), [7, 8, 8, 7]);
    assert.deepStrictEqual(ppLayers(32, 4), [8, 8, 8, 8]);
    assert.deepStrictEqual(ppLayers(81, 2), [41, 40]);
  });

  const w = workloadFrom({ kind: 'arch', arch: L8 });
  const base = {
    model: arch8,
    cluster: { gpu: 'h100-sxm', gpusPerNode: 1, nodes: 1 },
    inference: { batch: 1, promptLen: 512, genLen: 128, runtime: 'vllm', contextLen: 131072 },
  } as unknown as Plan;

  it('KV cache = total × utilization − weights − activations − non-torch; blocks of 16 tokens; 128 KiB per token for Llama-3-8B', () => {
    const r = estimate(base, w);
    const d = r.devices![0];
    const budget = Math.ceil(80 * GiB * 0.9);
    assert.ok(Math.abs(d.memory.kvCache + d.memory.weights + d.memory.compute - budget) < 2);
    // Tokens the cache holds: blocks × 16, each block 16 × 128 KiB over the 32 layers.
    const tokens = r.runtime!.contextCells;
    assert.strictEqual(tokens % 16, 0);
    assert.ok(Math.abs((tokens * 128 * 1024) / d.memory.kvCache - 1) < 0.001);
    assert.ok(!r.warnings.length, r.warnings.join('; '));
  });

  it("a max_model_len the cache cannot hold is vLLM's start-up error, with its estimate of the longest length", () => {
    const r = estimate({ ...base, cluster: { gpu: 'l4', gpusPerNode: 1, nodes: 1 } } as Plan, w);
    const msg = r.runtime!.problems.find((p) => /max_model_len 131072/.test(p.message));
    assert.ok(msg, JSON.stringify(r.runtime!.problems));
    assert.match(msg.message, /estimated maximum model length is \d+/);
  });

  it('tensor parallelism past the KV heads replicates them: one head per rank', () => {
    const tp16 = estimate(
      { ...base, cluster: { gpu: 'h100-sxm', gpusPerNode: 16, nodes: 1 }, parallel: { tensor: 16 } } as Plan,
      w,
    );
    const tp8 = estimate(
      { ...base, cluster: { gpu: 'h100-sxm', gpusPerNode: 8, nodes: 1 }, parallel: { tensor: 8 } } as Plan,
      w,
    );
    // Per rank: 8 ranks hold one KV head each, 16 ranks also one (replicated): same bytes per token.
    const perToken = (r: ReturnType<typeof estimate>) => r.devices![0].memory.kvCache / r.runtime!.contextCells;
    assert.ok(Math.abs(perToken(tp16) / perToken(tp8) - 1) < 0.01);
  });
});

describe("accelerate's placement (v1.14.0)", () => {
  it('fills GPU 0, then 1, then the CPU, never splitting a layer; GPU 0 and the CPU keep room for the largest layer', () => {
    const modules = [
      { name: 'embed', bytes: 4 },
      ...Array.from({ length: 6 }, (_, i) => ({ name: `layers.${i}`, bytes: 10, block: i })),
      { name: 'head', bytes: 4 },
    ];
    const map = inferAutoDeviceMap(
      modules,
      new Map<number | 'cpu', number>([
        [0, 35],
        [1, 25],
        ['cpu', 100],
      ]),
    );
    // GPU 0: 35 − 10 reserved = 25 → embed + 2 layers (24); GPU 1: 25 → 2 layers; the rest on the CPU.
    assert.deepStrictEqual(
      modules.map((m) => map[m.name]),
      [0, 0, 0, 1, 1, 'cpu', 'cpu', 'cpu'],
    );
  });

  it('one GPU and no max_memory: 90% of it (get_balanced_memory)', () => {
    const devices = planDevices(
      { devices: [{ gpu: 'rtx-4090' }, { cpu: 'ddr5-6000-2ch', memoryGB: 64 }] } as Plan,
      'p',
    );
    const { maxMemory } = defaultMaxMemory(devices, accelerateModules(L8, 2));
    assert.strictEqual(maxMemory.get(0), Math.floor(24 * GiB * 0.9));
    assert.strictEqual(maxMemory.get('cpu'), 64 * GiB);
  });
});

describe('GGUF file types measured on weights (quant --formats q4_k_m)', () => {
  it('each tensor is measured in the type llama-quantize gives it; the mix lies between its base and Q6_K', async () => {
    // A small llama checkpoint with heavy-tailed random weights (no trained llama fits in the repository).
    const dir = path.join(tmp, 'tiny-llama');
    fs.mkdirSync(dir, { recursive: true });
    const cfg = {
      model_type: 'llama',
      hidden_size: 256,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      num_hidden_layers: 8,
      intermediate_size: 512,
      vocab_size: 512,
      tie_word_embeddings: false,
    };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    const spec = hfConfigToSpec(cfg, 'tiny');
    const r = rng(7);
    const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
    const names: [string, number[]][] = [
      ['model.embed_tokens.weight', [512, 256]],
      ['lm_head.weight', [512, 256]],
      ['model.norm.weight', [256]],
    ];
    for (let i = 0; i < spec.layers; i++) {
      const p = `model.layers.${i}.`;
      names.push(
        [p + 'self_attn.q_proj.weight', [256, 256]],
        [p + 'self_attn.k_proj.weight', [64, 256]],
        [p + 'self_attn.v_proj.weight', [64, 256]],
        [p + 'self_attn.o_proj.weight', [256, 256]],
        [p + 'mlp.gate_proj.weight', [512, 256]],
        [p + 'mlp.up_proj.weight', [512, 256]],
        [p + 'mlp.down_proj.weight', [256, 512]],
        [p + 'input_layernorm.weight', [256]],
        [p + 'post_attention_layernorm.weight', [256]],
      );
    }
    const header: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    let off = 0;
    for (const [n, shape] of names) {
      const count = shape.reduce((a, b) => a * b, 1);
      const b = Buffer.alloc(count * 4);
      // Student-t-like tails: a Gaussian scaled by a random per-weight factor.
      for (let k = 0; k < count; k++) b.writeFloatLE((0.02 * gauss()) / Math.sqrt(0.3 + r()), k * 4);
      header[n] = { dtype: 'F32', shape, data_offsets: [off, off + b.length] };
      chunks.push(b);
      off += b.length;
    }
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, json, ...chunks]));

    const rep = await quantFile(path.join(dir, 'model.safetensors'), { formats: ['q4_k_m', 'q4_k', 'q6_k'] });
    const row = (tensor: string) =>
      rep.tensors.find((t) => t.name === tensor)!.results.find((x) => x.format === 'q4_k_m')!;
    // use_more_bits(i, 8): layers 0, 7 and (i − 1) % 3 == 2 → 3, 6: attn_v and ffn_down in Q6_K there.
    assert.strictEqual(row('model.layers.0.self_attn.v_proj.weight').resolvedFormat, 'q6_k');
    assert.strictEqual(row('model.layers.1.self_attn.v_proj.weight').resolvedFormat, 'q4_k');
    assert.strictEqual(row('model.layers.3.mlp.down_proj.weight').resolvedFormat, 'q6_k');
    assert.strictEqual(row('model.layers.1.mlp.gate_proj.weight').resolvedFormat, 'q4_k');
    assert.strictEqual(row('lm_head.weight').resolvedFormat, 'q6_k');
    const sum = (f: string) => rep.summary.find((s) => s.format === f)!;
    const mix = sum('q4_k_m');
    assert.ok(mix.bitsPerWeight > sum('q4_k').bitsPerWeight && mix.bitsPerWeight < sum('q6_k').bitsPerWeight);
    assert.ok(mix.sqnrDb! > sum('q4_k').sqnrDb! && mix.sqnrDb! < sum('q6_k').sqnrDb!);
    // The mix's bytes are what llama-quantize's rules predict for these shapes (embedding excluded: quant measures matrices it reads).
    console.log(
      `        q4_k ${sum('q4_k').sqnrDb!.toFixed(2)} dB at ${sum('q4_k').bitsPerWeight.toFixed(3)} bits, q4_k_m ${mix.sqnrDb!.toFixed(2)} dB at ${mix.bitsPerWeight.toFixed(3)}, q6_k ${sum('q6_k').sqnrDb!.toFixed(2)} dB at ${sum('q6_k').bitsPerWeight.toFixed(3)}`,
    );
  });
});
