import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { workloadFrom } from '../../src/engine/cost/workload';
import { exportPlan } from '../../src/engine/export';
import { hfConfigToSpec } from '../../src/engine/formats/hf-config';
import type { Plan } from '../../src/engine/plan/plan';
import { REPO } from '../helpers';

const RT = path.join(REPO, 'test', 'fixtures', 'runtimes');
const llamaOpts = JSON.parse(fs.readFileSync(path.join(RT, 'llamacpp-options-b8746.json'), 'utf8'));
const vllmOpts = JSON.parse(fs.readFileSync(path.join(RT, 'vllm-options-v0.19.0.json'), 'utf8'));
const accel = JSON.parse(fs.readFileSync(path.join(RT, 'accelerate-v1.14.0.json'), 'utf8'));

const LLAMA_8B = hfConfigToSpec(
  {
    model_type: 'llama',
    hidden_size: 4096,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    num_hidden_layers: 32,
    intermediate_size: 14336,
    vocab_size: 128256,
    max_position_embeddings: 131072,
  },
  'llama-3.1-8b',
);
const workload = workloadFrom({ kind: 'arch', arch: LLAMA_8B });
const ctx = (modelPath?: string) => ({ planFile: 'p.plan.json', modelPath, workload });

/** Splits a shell command into words (single quotes, as shellWord writes them). */
function words(cmd: string): string[] {
  const out: string[] = [];
  const re = /'((?:[^']|'\\'')*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(cmd))) out.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]);
  return out;
}

interface LlamaOption {
  names: string[];
  negNames?: string[];
  value: string | null;
  kind: string;
  appliesTo: string[];
  choices?: string[];
}

/** Every flag of a llama-server command exists for llama-server at b8746 and its value is one it takes. */
function checkLlamaServer(cmd: string): string[] {
  const w = words(cmd);
  assert.strictEqual(w[0], 'llama-server');
  const seen: string[] = [];
  for (let i = 1; i < w.length; i++) {
    const flag = w[i];
    assert.ok(flag.startsWith('-'), `expected a flag at '${flag}' in: ${cmd}`);
    const opt = (llamaOpts.options as LlamaOption[]).find(
      (o) => o.appliesTo.includes('llama-server') && (o.names.includes(flag) || o.negNames?.includes(flag)),
    );
    assert.ok(opt, `${flag} is not a llama-server option at b8746`);
    seen.push(opt.names[opt.names.length - 1]);
    if (opt.value === null || opt.negNames?.includes(flag)) continue;
    const v = w[++i];
    assert.ok(v !== undefined, `${flag} needs a value`);
    if (opt.choices) assert.ok(opt.choices.includes(v), `${flag} ${v}: not one of ${opt.choices.join(', ')}`);
    if (opt.kind === 'int') assert.match(v, /^-?\d+$/, `${flag} takes an integer`);
    if (flag === '-ngl') assert.match(v, /^(\d+|auto|all)$/);
    if (flag === '-ts') assert.match(v, /^\d+(\.\d+)?(,\d+(\.\d+)?)*$/);
    if (flag === '-ot') {
      const [pattern, buffer] = v.split(/=(?=[^=]*$)/);
      assert.doesNotThrow(() => new RegExp(pattern), `${flag}: a regular expression`);
      assert.match(buffer, /^(CPU|CUDA\d+|MTL\d+|ROCm\d+|Vulkan\d+)$/);
    }
  }
  return seen;
}

describe('export --to llama.cpp: every flag is a llama-server option of b8746 with a value it takes', () => {
  const plan: Plan = {
    model: 'config.json',
    devices: [{ gpu: 'rtx-4090' }, { gpu: 'rtx-3090' }, { cpu: 'ddr5-6000-2ch', memoryGB: 64 }],
    inference: {
      batch: 4,
      promptLen: 1024,
      genLen: 256,
      contextLen: 32768,
      kvCache: 'q8_0',
      flashAttention: true,
      gpuLayers: 33,
      tensorSplit: [3, 2],
    },
    precision: { default: 'q4_k_m' },
  } as Plan;

  it('-ngl / -ts, -c, -np, the cache types and -fa on', () => {
    const r = exportPlan(plan, 'llama.cpp', ctx('/models/llama/config.json'));
    assert.strictEqual(r.version, 'b8746');
    const seen = checkLlamaServer(r.command);
    assert.deepStrictEqual(
      seen.sort(),
      [
        '--cache-type-k',
        '--cache-type-v',
        '--ctx-size',
        '--flash-attn',
        '--model',
        '--n-gpu-layers',
        '--parallel',
        '--tensor-split',
      ].sort(),
    );
    assert.match(r.command, /-ngl 33 -ts 3,2/);
    assert.match(r.command, /-fa on/);
    // The GGUF it runs is built by convert.sh from the checkpoint.
    assert.match(r.files['convert.sh'], /convert_hf_to_gguf\.py \/models\/llama --outtype f16/);
    assert.match(
      r.files['convert.sh'],
      /llama-quantize \/models\/llama\/llama-F16\.gguf \/models\/llama\/llama-Q4_K_M\.gguf Q4_K_M/,
    );
  });

  it('stage devices out of llama.cpp order: every layer pinned with --override-tensor', () => {
    const r = exportPlan(
      {
        ...plan,
        stages: [
          { layers: '0-9', device: 1 },
          { layers: '10-31', device: 0 },
        ],
        inference: { ...plan.inference!, gpuLayers: undefined, tensorSplit: undefined },
      } as Plan,
      'llama.cpp',
      ctx('/models/llama/config.json'),
    );
    checkLlamaServer(r.command);
    const ot = words(r.command).filter((_, i, w) => w[i - 1] === '-ot');
    assert.deepStrictEqual(ot, [
      'blk\\.(0|1|2|3|4|5|6|7|8|9)\\.=CUDA1',
      'blk\\.(10|11|12|13|14|15|16|17|18|19|20|21|22|23|24|25|26|27|28|29|30|31)\\.=CUDA0',
    ]);
    assert.ok(r.notes.some((n) => /override/.test(n)));
  });

  it('before b6325 flash attention is the bare -fa (its history in the option list says so)', () => {
    const fa = (llamaOpts.options as (LlamaOption & { history?: string })[]).find((o) => o.names.includes('-fa'))!;
    assert.match(fa.history!, /Before b6325: bare flag/);
    const old = exportPlan(
      { ...plan, inference: { ...plan.inference!, runtimeVersion: 'b5000' } } as Plan,
      'llama.cpp',
      ctx('/m/x.gguf'),
    );
    assert.match(old.command, / -fa$| -fa /);
    assert.doesNotMatch(old.command, /-fa on/);
    assert.ok(old.notes.some((n) => /b5000/.test(n) && /bare/.test(n)));
  });
});

describe('export --to vllm: every flag is a `vllm serve` option of v0.19.0 with a value it takes', () => {
  it('tensor and pipeline parallel sizes, utilization, max-model-len, KV and weight dtypes, sequences', () => {
    const plan = {
      model: 'config.json',
      devices: [{ gpu: 'l40s' }, { gpu: 'l40s' }, { gpu: 'l40s' }, { gpu: 'l40s' }],
      parallel: { tensor: 2, pipeline: 2 },
      inference: {
        batch: 16,
        promptLen: 2048,
        genLen: 512,
        contextLen: 16384,
        kvCache: 'fp8',
        gpuMemoryUtilization: 0.85,
        runtime: 'vllm',
      },
      precision: { default: 'bf16' },
    } as Plan;
    const r = exportPlan(plan, 'vllm', ctx('/models/llama/config.json'));
    assert.strictEqual(r.version, 'v0.19.0');
    const w = words(r.command);
    assert.deepStrictEqual(w.slice(0, 3), ['vllm', 'serve', '/models/llama']);
    const flags: string[] = [];
    for (let i = 3; i < w.length; i += 2) {
      const o = (
        vllmOpts.options as { flag: string; aliases: string[]; type: string; choices: string[] | null }[]
      ).find((x) => x.flag === w[i] || x.aliases.includes(w[i]));
      assert.ok(o, `${w[i]} is not a vllm serve option at v0.19.0`);
      flags.push(o.flag);
      const v = w[i + 1];
      if (o.choices) assert.ok(o.choices.includes(v), `${w[i]} ${v}: not one of ${o.choices.join(', ')}`);
      if (o.type === 'int') assert.match(v, /^\d+$/);
      if (o.type === 'float') assert.ok(Number.isFinite(Number(v)));
    }
    assert.deepStrictEqual(flags, [
      '--tensor-parallel-size',
      '--pipeline-parallel-size',
      '--gpu-memory-utilization',
      '--max-model-len',
      '--kv-cache-dtype',
      '--dtype',
      '--max-num-seqs',
    ]);
    assert.match(r.command, /--kv-cache-dtype fp8 /);
  });
});

describe('export --to accelerate: from_pretrained with a device_map and max_memory accelerate v1.14.0 accepts', () => {
  const plan = {
    model: 'config.json',
    devices: [{ gpu: 'rtx-4090' }, { gpu: 'rtx-3060' }, { cpu: 'ddr5-6000-2ch', memoryGB: 64 }],
    inference: { batch: 1, promptLen: 512, genLen: 128, runtime: 'accelerate' },
  } as Plan;

  function check(source: string): {
    deviceMap: Record<string, unknown>;
    kwargs: string[];
    maxMemory?: Record<string, string>;
  } {
    const py = spawnSync(
      'python3',
      [
        '-c',
        `import ast, json, sys
tree = ast.parse(sys.stdin.read())
out = {}
for node in ast.walk(tree):
    if isinstance(node, ast.Assign) and node.targets[0].id in ('device_map', 'max_memory'):
        out[node.targets[0].id] = {str(ast.literal_eval(k)): ast.literal_eval(v) for k, v in zip(node.value.keys, node.value.values)}
    if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'from_pretrained':
        out['kwargs'] = [k.arg for k in node.keywords]
print(json.dumps(out))`,
      ],
      { input: source, encoding: 'utf8' },
    );
    assert.strictEqual(py.status, 0, py.stderr);
    const parsed = JSON.parse(py.stdout);
    return { deviceMap: parsed.device_map, kwargs: parsed.kwargs, maxMemory: parsed.max_memory };
  }

  it("accelerate's own placement: device ids, sizes in its units, kwargs of from_pretrained", () => {
    const r = exportPlan(plan, 'accelerate', ctx('/models/llama/config.json'));
    assert.strictEqual(r.version, 'v1.14.0');
    const { deviceMap, kwargs, maxMemory } = check(r.files['load_model.py']);
    for (const k of kwargs) assert.ok(accel.fromPretrainedKwargs.includes(k), `${k} is not a from_pretrained keyword`);
    for (const [k, v] of Object.entries(maxMemory!)) {
      assert.match(k, /^(\d+|cpu|mps|disk)$/);
      assert.match(v, new RegExp(accel.sizePattern));
    }
    for (const v of Object.values(deviceMap)) {
      assert.ok(typeof v === 'number' || ['cpu', 'mps', 'disk'].includes(v as string));
    }
    assert.strictEqual(Object.keys(deviceMap).length, 32 + 3, 'embeddings, 32 layers, norm, head');
    assert.strictEqual(deviceMap['model.embed_tokens'], 0);
  });

  it('stage devices become the device_map (no max_memory: it plays no part then)', () => {
    const r = exportPlan(
      {
        ...plan,
        stages: [
          { layers: '0-20', device: 0 },
          { layers: '21-31', device: 1 },
        ],
      } as Plan,
      'accelerate',
      ctx(),
    );
    const { deviceMap, kwargs, maxMemory } = check(r.files['load_model.py']);
    assert.strictEqual(maxMemory, undefined);
    assert.ok(!kwargs.includes('max_memory'));
    assert.strictEqual(deviceMap['model.layers.20'], 0);
    assert.strictEqual(deviceMap['model.layers.21'], 1);
    assert.strictEqual(deviceMap['lm_head'], 1);
    assert.ok(r.notes.some((n) => /hugging-face-model-id/.test(n)));
  });
});
