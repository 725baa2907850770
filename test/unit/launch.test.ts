import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runShell } from '../../src/engine/check/launch/shell';
import { importMegatron, parseLayout } from '../../src/engine/check/launch/megatron';
import { importDeepSpeed } from '../../src/engine/check/launch/deepspeed';
import { flavorArch, importTorchtitan, torchtitanStages } from '../../src/engine/check/launch/torchtitan';
import { completeImport, planIssues, type LaunchImport } from '../../src/engine/check/launch';
import { exportPlan } from '../../src/engine/export';
import { archWorkload, workloadFrom } from '../../src/engine/cost/workload';
import { estimate, type CostReport } from '../../src/engine/cost/estimate';
import { validatePlan, type ArchSpec, type Issue, type Plan } from '../../src/engine/plan/plan';
import { planWorkloadSource } from '../../src/node/plan-file';
import { importLaunchFile } from '../../src/node/launch-file';
import { REPO } from '../helpers';

const FIX = path.join(REPO, 'test', 'fixtures', 'frameworks');
const EX = path.join(FIX, 'examples');
const CLI = path.join(REPO, 'out', 'src', 'cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-launch-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const example = (name: string) => fs.readFileSync(path.join(EX, name), 'utf8');

/** The arguments bash passes to `launcher` when it runs `script` (a stub launcher prints them). */
function bashArgv(script: string, launcher = 'torchrun', args: string[] = []): string[] {
  const dir = fs.mkdtempSync(path.join(tmp, 'bash-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.writeFileSync(path.join(dir, 'bin', launcher), '#!/bin/bash\nfor a in "$@"; do printf "%s\\0" "$a"; done\n', {
    mode: 0o755,
  });
  fs.writeFileSync(path.join(dir, 'pretrain_gpt.py'), '');
  fs.writeFileSync(path.join(dir, 'script.sh'), script);
  const r = spawnSync('bash', ['script.sh', ...args], {
    cwd: dir,
    env: { PATH: `${path.join(dir, 'bin')}:/usr/bin:/bin` },
    encoding: 'utf8',
  });
  assert.strictEqual(r.status, 0, r.stderr);
  return r.stdout.split('\0').slice(0, -1);
}

/** Python's argparse / tomllib over the option lists (test/framework_options.py): the independent reference. */
function python(kind: 'megatron' | 'deepspeed-launcher' | 'torchtitan', input: string[] | string) {
  const options = path.join(
    FIX,
    kind === 'torchtitan'
      ? 'torchtitan-config.json'
      : kind === 'megatron'
        ? 'megatron-args.json'
        : 'deepspeed-config.json',
  );
  const file = path.join(tmp, `input-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(file, typeof input === 'string' ? input : JSON.stringify(input));
  const r = spawnSync('python3', [path.join(REPO, 'test', 'framework_options.py'), kind, options, file], {
    encoding: 'utf8',
  });
  assert.strictEqual(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { ok: boolean; error?: string; parsed?: Record<string, unknown> };
}

/** The zero-based range of the `nth` occurrence of `needle` on the line holding `lineNeedle`. */
function rangeOf(text: string, needle: string, lineNeedle = needle) {
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes(lineNeedle));
  assert.ok(line >= 0, lineNeedle);
  const character = lines[line].indexOf(needle, lines[line].indexOf(lineNeedle));
  assert.ok(character >= 0, needle);
  return { start: { line, character }, end: { line, character: character + needle.length } };
}

function only(issues: Issue[], pattern: RegExp): Issue {
  const hits = issues.filter((i) => pattern.test(i.message));
  assert.strictEqual(hits.length, 1, `${pattern} in ${JSON.stringify(issues.map((i) => i.message))}`);
  return hits[0];
}

const errors = (issues: Issue[]) => issues.filter((i) => i.severity === 'error');

describe('launch scripts are read as bash reads them', () => {
  for (const name of ['megatron-gpt3-175b.sh', 'megatron-llama3-8b-fp8.sh', 'megatron-mixtral-8x7b.sh']) {
    it(`${name}: the torchrun arguments equal bash's`, () => {
      const text = example(name);
      const bash = bashArgv(text);
      const cmd = runShell(text).commands.find((c) => c.words[0]?.text === 'torchrun');
      assert.ok(cmd);
      // $1 … are the script's own arguments: unknown to Layerplan, empty when bash runs it without any.
      const mine = cmd.words.slice(1).filter((w) => !(w.unknown && !w.text));
      assert.strictEqual(mine.length, bash.length, `${mine.map((w) => w.text).join(' ')}\n${bash.join(' ')}`);
      mine.forEach((w, i) => {
        if (w.unknown) assert.ok(bash[i].endsWith(w.text), `${i}: ${w.text} vs ${bash[i]}`);
        else assert.strictEqual(w.text, bash[i], `argument ${i}`);
      });
    });
  }
  it('quotes, arrays, defaults, arithmetic, conditions, heredocs and redirections as bash expands them', () => {
    const script = [
      '#!/bin/bash',
      'A=1; B="two words"',
      "C='single $A'",
      'ARR=( --x "$B" --y ${A} )   # a comment',
      'ARR+=("--z 3" \'--w\')',
      'N=$(( (A + 3) * 2 ))',
      'D=${UNSET:-fallback} E=${A:+set}',
      'if [ "$A" -eq 2 ]; then ARR+=(--wrong); elif [[ $B == two* ]]; then ARR+=(--elif); else ARR+=(--else); fi',
      'cat <<EOF > /dev/null',
      'torchrun --not-this',
      'EOF',
      'export CUDA_DEVICE_MAX_CONNECTIONS=1',
      'torchrun pretrain_gpt.py "${ARR[@]}" ${ARR[@]} $B "$C" $N $D $E \\',
      '    --tail 2>/dev/null < /dev/null',
    ].join('\n');
    const bash = bashArgv(script);
    const cmd = runShell(script).commands.filter((c) => c.words[0]?.text === 'torchrun');
    assert.strictEqual(cmd.length, 1, 'the heredoc body is not a command');
    assert.deepStrictEqual(
      cmd[0].words.slice(1).map((w) => w.text),
      bash,
    );
  });
  it('each word knows where it was written', () => {
    const script = 'ARGS=(\n  --fp8-format hybrid\n  "--seq-length 4096"\n)\ntorchrun x.py ${ARGS[@]}\n';
    const cmd = runShell(script).commands[0];
    const at = (w: (typeof cmd.words)[number]) => script.slice(Math.min(...w.at), Math.max(...w.at) + 1);
    assert.deepStrictEqual(cmd.words.slice(2).map(at), ['--fp8-format', 'hybrid', '--seq-length', '4096']);
  });
  it('is bounded: a script that expands without end is refused, not run', () => {
    const text = `A=(x)\n${Array.from({ length: 30 }, () => 'A=("${A[@]}" "${A[@]}")').join('\n')}\ntorchrun pretrain_gpt.py\n`;
    const started = Date.now();
    const imp = importMegatron(text);
    assert.ok(Date.now() - started < 10000);
    only(imp.issues, /cannot read this script: .*too/);
  });
});

describe('Megatron-LM launch scripts as plans (core_v0.19.0 rules, at the flag)', () => {
  it('GPT-3 175B example: the unquoted batch schedule splits into arguments argparse rejects, as Python argparse does', () => {
    const text = example('megatron-gpt3-175b.sh');
    const imp = importMegatron(text, { nodes: 16 });
    const unrecognized = errors(imp.issues).filter((i) => /unrecognized argument/.test(i.message));
    assert.deepStrictEqual(
      unrecognized.map((i) => /'([^']+)'/.exec(i.message)![1]),
      ['2.4B:320', '4.8B:624', '7.2B:928', '9.6B:1232', '12B:1536'],
    );
    assert.deepStrictEqual(unrecognized[0].range, rangeOf(text, '2.4B:320'));
    // The reference: Python's argparse built from the option list, on the arguments bash passes.
    const argv = bashArgv(text, 'torchrun', ['ckpt', 'tb', 'vocab.json', 'merges.txt', 'data']);
    const py = python('megatron', argv.slice(argv.indexOf('pretrain_gpt.py') + 1));
    assert.strictEqual(py.ok, false);
    assert.match(py.error!, /unrecognized arguments: 2\.4B:320 4\.8B:624 7\.2B:928 9\.6B:1232 12B:1536/);
    // validate_args would also refuse the schedule beside --global-batch-size.
    const both = only(imp.issues, /Cannot specify both --step-batch-size-schedule and --global-batch-size/);
    assert.deepStrictEqual(both.range, rangeOf(text, '--step-batch-size-schedule'));
  });
  it('GPT-3 175B example: on its one default node, TP 8 × PP 16 does not fit the world size', () => {
    const text = example('megatron-gpt3-175b.sh');
    const e = only(importMegatron(text).issues, /world size 8 \(1 × 8 GPUs\) is not divisible by .* = 128/);
    assert.deepStrictEqual(e.range, rangeOf(text, '16', '--pipeline-model-parallel-size 16'));
    assert.deepStrictEqual(
      importMegatron(text, { nodes: 16 }).issues.filter((i) => /world size/.test(i.message)),
      [],
    );
  });
  it('Mixtral 8x7B example: expert × pipeline parallel needs 32 GPUs; the plan carries EP 8', () => {
    const text = example('megatron-mixtral-8x7b.sh');
    const e = only(importMegatron(text).issues, /expert tensor × expert × pipeline parallel = 1 × 8 × 4 = 32/);
    assert.deepStrictEqual(e.range, rangeOf(text, '8', '--expert-model-parallel-size 8'));
    const ok = importMegatron(text, { nodes: 4 });
    assert.deepStrictEqual(errors(ok.issues), []);
    const sp = only(ok.issues, /--sequence-parallel has no effect/);
    assert.deepStrictEqual(sp.range, rangeOf(text, '--sequence-parallel'));
    // The overlaps as the script sets them (--overlap-param-gather, no --tp-comm-overlap): the default
    // Megatron-Core profile would otherwise assume both.
    assert.deepStrictEqual(ok.plan!.parallel, {
      data: 8,
      tensor: 1,
      pipeline: 4,
      expert: 8,
      schedule: '1f1b',
      sequenceParallel: false,
      zero: 1,
      distributedOptimizer: true,
      overlapParamGather: true,
      tpCommOverlap: false,
    });
    const m = ok.plan!.model as ArchSpec;
    assert.deepStrictEqual(
      [m.arch, m.layers, m.kvHeads, m.ffn, m.vocab, m.experts, m.expertsPerToken],
      ['llama', 32, 8, 14336, 32000, 8, 2],
    );
  });
  it('Llama 3 8B fp8 example: fp8 with the delayed recipe, the distributed optimizer, 128256 tokens', () => {
    const imp = importMegatron(example('megatron-llama3-8b-fp8.sh'));
    assert.deepStrictEqual(errors(imp.issues), []);
    const t = imp.plan!.training!;
    assert.deepStrictEqual(
      [t.dtype, t.fp8Recipe, t.globalBatch, t.microBatch, t.seqLen, t.overlapGradReduce],
      ['fp8', 'delayed', 128, 1, 8192, true],
    );
    assert.strictEqual((imp.plan!.model as ArchSpec).vocab, 128256);
    only(imp.issues, /cannot evaluate this condition/);
  });
  it('virtual stages as Megatron counts them: layers per virtual stage → chunks per rank', () => {
    const base =
      '--num-layers 32 --hidden-size 1024 --num-attention-heads 16 --seq-length 2048 --max-position-embeddings 2048 --micro-batch-size 1 --global-batch-size 64 --pipeline-model-parallel-size 4';
    const script = (extra: string) => `torchrun --nproc_per_node 8 pretrain_gpt.py ${base} ${extra}\n`;
    const two = importMegatron(script('--num-layers-per-virtual-pipeline-stage 2'));
    assert.deepStrictEqual(errors(two.issues), []);
    assert.strictEqual(two.plan!.parallel!.virtualStages, 4);
    only(two.issues, /reads this as 4 virtual stages per pipeline rank \(8 layers per stage ÷ 2\)/);
    const three = script('--num-layers-per-virtual-pipeline-stage 3');
    const e = only(
      importMegatron(three).issues,
      /--num-layers-per-virtual-pipeline-stage: 3 does not divide the 8 layers per pipeline stage/,
    );
    assert.deepStrictEqual(e.range, rangeOf(three, '3', 'stage 3'));
    assert.strictEqual(
      importMegatron(script('--num-virtual-stages-per-pipeline-rank 2')).plan!.parallel!.virtualStages,
      2,
    );
    only(
      importMegatron(script('--num-virtual-stages-per-pipeline-rank 2 --num-layers-per-virtual-pipeline-stage 2'))
        .issues,
      /No more than one of/,
    );
  });
  it('an unknown flag gets a suggestion, a bad value the parser’s message, at its range', () => {
    const text =
      'torchrun --nproc_per_node 8 pretrain_gpt.py --num-layers 2x --tensor-model-paralel-size 2 --recompute-granularity some --bf16=1\n';
    const imp = importMegatron(text);
    assert.deepStrictEqual(only(imp.issues, /invalid int value: '2x'/).range, rangeOf(text, '2x'));
    const unknown = only(imp.issues, /unrecognized argument --tensor-model-paralel-size/);
    assert.match(unknown.message, /did you mean --tensor-model-parallel-size\?/);
    only(imp.issues, /--recompute-granularity: invalid choice: 'some' \(choose from 'full', 'selective'\)/);
    only(imp.issues, /--bf16 takes no value/);
  });
  it('a pipeline layout: stages as Megatron reads them (parse_str_to_list), pinned in the plan', () => {
    assert.deepStrictEqual(
      parseLayout('Ettt|(tt|)*2,m|L')!.map((s) => s.join('')),
      ['Ettt', 'tt', 'tt', 'm', 'L'],
    );
    const text =
      'torchrun --nproc_per_node 4 pretrain_gpt.py --num-layers 10 --hidden-size 512 --num-attention-heads 8 --seq-length 1024 --max-position-embeddings 1024 --micro-batch-size 1 --global-batch-size 8 --pipeline-model-parallel-size 4 --pipeline-model-parallel-layout "E,t|t*3|t*3|t*3,L"\n';
    const imp = importMegatron(text);
    assert.deepStrictEqual(errors(imp.issues), []);
    completeImport(imp, text, archWorkload(imp.plan!.model as ArchSpec));
    assert.deepStrictEqual(imp.plan!.stages, [
      { layers: '0' },
      { layers: '1-3' },
      { layers: '4-6' },
      { layers: '7-9' },
    ]);
    const wrong = text.replace('t*3,L', 't*2,L');
    only(importMegatron(wrong).issues, /9 transformer layers \(t\), but --num-layers is 10/);
  });
  it("the plan's own checks land on the flag that set the field", () => {
    // 12 heads do not divide by TP 8: the model check, renamed to the flag.
    const text =
      'torchrun --nproc_per_node 8 pretrain_gpt.py --num-layers 4 --hidden-size 768 --num-attention-heads 12 --seq-length 512 --max-position-embeddings 512 --micro-batch-size 1 --global-batch-size 8 --tensor-model-parallel-size 8\n';
    const imp = importMegatron(text, { gpu: 'a100-80gb' });
    const e = only(imp.issues, /does not divide --num-attention-heads 12/);
    assert.deepStrictEqual(e.range, rangeOf(text, '8', '--tensor-model-parallel-size 8'));
    // Memory: a 70B model on one node does not fit, said at the plan's anchor.
    const big = importMegatron(
      'torchrun --nproc_per_node 8 pretrain_gpt.py --num-layers 80 --hidden-size 8192 --num-attention-heads 64 --seq-length 4096 --max-position-embeddings 4096 --micro-batch-size 1 --global-batch-size 8 --bf16\n',
      { gpu: 'a100-80gb' },
    );
    const r = planIssues(big, 'x', archWorkload(big.plan!.model as ArchSpec));
    only(r.memory, /stage 0 needs .* GiB per GPU, .* over the .* of a100-80gb/);
  });
});

describe('DeepSpeed configs as plans (v0.19.5 rules, at the key)', () => {
  const gpt: ArchSpec = { arch: 'gpt', layers: 12, hidden: 768, heads: 12, vocab: 50257, seqLen: 1024 };
  it('the examples: batch sizes derived as DeepSpeed derives them over the world size', () => {
    const z3 = importDeepSpeed(example('deepspeed-zero3-bf16.json'), { worldSize: 8, model: gpt });
    assert.deepStrictEqual(errors(z3.issues), []);
    assert.deepStrictEqual(
      [
        z3.plan!.training!.globalBatch,
        z3.plan!.training!.dtype,
        z3.plan!.parallel!.zero,
        z3.plan!.training!.overlapGradReduce,
      ],
      [8, 'bf16', 3, true],
    );
    const text = example('deepspeed-megatron-gpt2-zero2-offload.json');
    const z2 = importDeepSpeed(text, { worldSize: 8, model: gpt });
    assert.deepStrictEqual(
      [z2.plan!.training!.microBatch, z2.plan!.training!.recompute, z2.plan!.training!.dtype],
      [1, 'full', 'fp16'],
    );
    only(z2.issues, /zero_optimization.cpu_offload is deprecated/);
    // 8 sequences over 3 GPUs: DeepSpeed's floor division leaves 2 × 1 × 3 = 6.
    const three = importDeepSpeed(text, { worldSize: 3, model: gpt });
    only(three.issues, /derives 2 × 1 × 3 = 6 from it over 3 data-parallel ranks, not train_batch_size 8/);
  });
  it('unknown keys: an error inside a pydantic section, a warning at the top level', () => {
    const text = JSON.stringify(
      { train_batch_size: 8, zero_optimization: { stage: 2, overlap_comms: true }, trian_micro_batch: 1 },
      null,
      2,
    );
    const imp = importDeepSpeed(text);
    const e = only(imp.issues, /zero_optimization.overlap_comms: not a field of zero_optimization/);
    assert.strictEqual(e.severity, 'error');
    assert.match(e.message, /did you mean overlap_comm\?/);
    assert.strictEqual(
      only(imp.issues, /trian_micro_batch: DeepSpeed v0.19.5 does not read this key/).severity,
      'warning',
    );
  });
  it('ZeRO-2 under a pipeline and parameter offload without stage 3 are refused', () => {
    const text = JSON.stringify(
      {
        train_batch_size: 8,
        pipeline: { stages: 2 },
        zero_optimization: { stage: 2, offload_param: { device: 'cpu' } },
      },
      null,
      2,
    );
    const imp = importDeepSpeed(text, { worldSize: 8 });
    only(imp.issues, /ZeRO-2 and ZeRO-3 are incompatible with pipeline parallelism/);
    only(imp.issues, /offload_param needs stage 3/);
  });
  it('a config finds the script that launches it, and its world size and model', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'ds-'));
    fs.writeFileSync(
      path.join(dir, 'ds.json'),
      JSON.stringify({
        train_micro_batch_size_per_gpu: 2,
        gradient_accumulation_steps: 4,
        bf16: { enabled: true },
        zero_optimization: { stage: 1 },
      }),
    );
    fs.writeFileSync(
      path.join(dir, 'run.sh'),
      `# layerplan: ${JSON.stringify({ model: gpt, cluster: { gpu: 'a100-80gb' }, training: { seqLen: 1024 } })}\ndeepspeed --num_nodes 2 --num_gpus 4 train.py --deepspeed --deepspeed_config ds.json\n`,
    );
    const r = await importLaunchFile(path.join(dir, 'ds.json'));
    assert.deepStrictEqual(errors(r.diagnostics), []);
    assert.deepStrictEqual(r.plan!.cluster, { gpu: 'a100-80gb', gpusPerNode: 4, nodes: 2 });
    assert.strictEqual(r.plan!.training!.globalBatch, 2 * 4 * 8);
    assert.strictEqual(r.plan!.training!.seqLen, 1024);
    // The script itself: its launcher flags are checked, the config's diagnostics come with it.
    fs.appendFileSync(path.join(dir, 'run.sh'), '');
    const s = await importLaunchFile(path.join(dir, 'run.sh'));
    assert.strictEqual(s.related[0].file, path.join(dir, 'ds.json'));
    assert.deepStrictEqual(s.plan, r.plan);
  });
});

describe('torchtitan TOML configs as plans (v0.2.2 rules, at the key)', () => {
  it("the llama3 flavors' shapes as torchtitan builds them (published Llama 3.1 sizes)", () => {
    const sizes = (f: string) => {
      const a = flavorArch(f)!;
      return [a.layers, a.hidden, a.ffn, a.kvHeads];
    };
    assert.deepStrictEqual(sizes('8B'), [32, 4096, 14336, 8]);
    assert.deepStrictEqual(sizes('70B'), [80, 8192, 28672, 8]);
    assert.deepStrictEqual(sizes('405B'), [126, 16384, 53248, 8]);
  });
  it('the 70B example on its 64 A100s: FSDP 8 × TP 8, full recomputation', () => {
    // Only the node count given: the GPUs per node default to 8 (the preset's 64 GPUs).
    const imp = importTorchtitan(example('torchtitan-llama3_70b.toml'), { nodes: 8, gpu: 'a100-80gb' });
    assert.deepStrictEqual(imp.issues, []);
    assert.deepStrictEqual(imp.plan!.cluster, { gpu: 'a100-80gb', gpusPerNode: 8, nodes: 8 });
    assert.deepStrictEqual(imp.plan!.parallel, {
      data: 8,
      tensor: 8,
      pipeline: 1,
      sequenceParallel: true,
      zero: 3,
      distributedOptimizer: false,
    });
    assert.deepStrictEqual(
      [imp.plan!.training!.recompute, imp.plan!.training!.globalBatch, imp.plan!.training!.seqLen],
      ['full', 64, 8192],
    );
  });
  it('unknown keys, types, degrees that miss the world size, and sequence lengths TP × 2 × CP does not divide', () => {
    const text = [
      '[model]',
      'name = "llama3"',
      'flavor = "8B"',
      '[training]',
      'local_batch_size = 2',
      'seq_len = 8190',
      'dtype = "float16"',
      '[parallelism]',
      'data_parallel_shard_degree = 3',
      'tensor_parallel_degree = 2',
      'tensor_paralel_degree = 2',
      '[activation_checkpoint]',
      'mode = "selective"',
      'selective_ac_option = "layer"',
    ].join('\n');
    const imp = importTorchtitan(text, { nodes: 1, gpusPerNode: 8 });
    assert.deepStrictEqual(
      only(imp.issues, /parallelism.tensor_paralel_degree: not a field/).range,
      rangeOf(text, 'tensor_paralel_degree'),
    );
    assert.deepStrictEqual(
      only(imp.issues, /training.dtype: 'float16' is not one of 'bfloat16', 'float32'/).range,
      rangeOf(text, '"float16"'),
    );
    only(imp.issues, /1 × 3 × 1 × 2 × 1 = 6 is not the world size 8/);
    assert.deepStrictEqual(
      only(imp.issues, /training.seq_len: 8190 must be divisible by tensor × 2 × context = 4/).range,
      rangeOf(text, '8190'),
    );
    only(imp.issues, /Invalid selective AC option: layer/);
  });
  it('TP without FSDP turns mixed precision off: the plan trains in fp32, with the warning at the key', () => {
    const text =
      '[model]\nname = "llama3"\nflavor = "debugmodel"\n[training]\nlocal_batch_size = 2\nmixed_precision_param = "bfloat16"\n[parallelism]\ndata_parallel_shard_degree = 1\ntensor_parallel_degree = 8\n';
    const imp = importTorchtitan(text, { worldSize: 8 });
    const w = only(imp.issues, /Mixed precision training with TP or PP is only supported when FSDP/);
    assert.deepStrictEqual(w.range, rangeOf(text, '"bfloat16"'));
    assert.strictEqual(imp.plan!.training!.dtype, 'fp32');
  });
  it('pipeline stages as generate_llm_fqn_per_model_part splits them', () => {
    // 32 layers, 4 stages, the embedding and the output weighted as one layer each (the defaults).
    assert.deepStrictEqual(torchtitanStages(4, 32, 1, 1), [8, 9, 8, 7]);
    assert.deepStrictEqual(torchtitanStages(4, 10, 0, 0), [3, 3, 2, 2]);
    const text =
      '[model]\nname = "llama3"\nflavor = "8B"\n[training]\nlocal_batch_size = 8\n[parallelism]\ndata_parallel_shard_degree = 2\npipeline_parallel_degree = 4\n';
    const imp = importTorchtitan(text, { worldSize: 8 });
    assert.deepStrictEqual(errors(imp.issues), []);
    completeImport(imp, text, archWorkload(imp.plan!.model as ArchSpec));
    assert.deepStrictEqual(imp.plan!.stages, [
      { layers: '0-7' },
      { layers: '8-16' },
      { layers: '17-24' },
      { layers: '25-31' },
    ]);
  });
});

// ---------------------------------------------------------------- export: option lists and round trips

interface Case {
  name: string;
  plan: Plan;
  /** Targets that cannot express the plan (the export refuses or notes it): target → note pattern. */
  differs?: Partial<Record<'megatron' | 'deepspeed' | 'torchtitan', RegExp>>;
  refuses?: ('megatron' | 'deepspeed' | 'torchtitan')[];
}

const gpt3: ArchSpec = { arch: 'gpt', layers: 96, hidden: 12288, heads: 96, vocab: 51200, seqLen: 2048 };
const llama8b: ArchSpec = { arch: 'llama', layers: 32, hidden: 4096, heads: 32, kvHeads: 8, ffn: 14336, vocab: 128256 };
const cluster = (gpu: string, nodes: number, gpusPerNode = 8) => ({ gpu, gpusPerNode, nodes });
const CASES: Case[] = [
  {
    name: 'GPT-3 175B, TP 8 × PP 8, selective recomputation, sequence parallel',
    plan: {
      model: gpt3,
      cluster: cluster('a100-80gb', 8),
      training: { globalBatch: 64, microBatch: 1, seqLen: 2048, dtype: 'bf16', recompute: 'selective' },
      parallel: { data: 1, tensor: 8, pipeline: 8, schedule: '1f1b', sequenceParallel: true, zero: 0 },
    },
    differs: { torchtitan: /torchtitan's llama3 has no dropout/ },
    refuses: ['deepspeed'],
  },
  {
    name: 'Llama 3 8B shape, TP 2 × PP 2 × FSDP 4, full recomputation',
    plan: {
      model: llama8b,
      cluster: cluster('h100-sxm', 2),
      training: {
        globalBatch: 64,
        microBatch: 1,
        seqLen: 4096,
        dtype: 'bf16',
        recompute: 'full',
        overlapGradReduce: true,
      },
      parallel: { data: 4, tensor: 2, pipeline: 2, schedule: '1f1b', sequenceParallel: true, zero: 3 },
    },
    refuses: ['deepspeed'],
  },
  {
    name: 'interleaved: 48 layers in 4 stages × 3 chunks',
    plan: {
      model: { ...llama8b, layers: 48 },
      cluster: cluster('h100-sxm', 2),
      training: { globalBatch: 32, microBatch: 1, seqLen: 2048, dtype: 'bf16', recompute: 'none' },
      // TP 4: 128256 rows are not a multiple of 128 × 4, so Megatron's default would pad them.
      parallel: {
        data: 1,
        tensor: 4,
        pipeline: 4,
        schedule: 'interleaved',
        virtualStages: 3,
        sequenceParallel: true,
        zero: 3,
      },
    },
    refuses: ['deepspeed'],
  },
  {
    name: 'uneven: 30 layers in 4 stages, then explicit stages',
    plan: {
      model: { ...llama8b, layers: 30 },
      cluster: cluster('h100-sxm', 1),
      training: { globalBatch: 16, microBatch: 1, seqLen: 2048, dtype: 'bf16', recompute: 'none' },
      parallel: { data: 2, tensor: 1, pipeline: 4, schedule: '1f1b', zero: 1 },
      stages: [{ layers: '0-5' }, { layers: '6-13' }, { layers: '14-21' }, { layers: '22-29' }],
    },
    differs: {
      deepspeed: /uneven stages \(6, 8, 8, 8 layers\) are not a DeepSpeed option/,
      torchtitan: /the plan's ZeRO-1 is written as FSDP/,
    },
  },
  {
    name: 'pipeline 4 × FSDP 2 (torchtitan would weigh the embedding and the output as layers)',
    plan: {
      model: llama8b,
      cluster: cluster('h100-sxm', 1),
      training: { globalBatch: 32, microBatch: 1, seqLen: 4096, dtype: 'bf16', recompute: 'selective' },
      parallel: { data: 2, tensor: 1, pipeline: 4, schedule: '1f1b', zero: 3 },
    },
    refuses: ['deepspeed'],
  },
  {
    name: 'data parallel ZeRO-1 with fp16 and Adam',
    plan: {
      model: { arch: 'gpt', layers: 24, hidden: 2048, heads: 16, vocab: 50304, seqLen: 2048 },
      cluster: cluster('a100-40gb', 1),
      training: { globalBatch: 64, microBatch: 4, seqLen: 2048, dtype: 'fp16', optimizer: 'adam', recompute: 'none' },
      parallel: { data: 8, tensor: 1, pipeline: 1, zero: 1 },
    },
    differs: { torchtitan: /torchtitan trains in bfloat16 or float32, not float16/ },
  },
  {
    name: 'fp8 with current scaling, context parallel 2',
    plan: {
      model: llama8b,
      cluster: cluster('h100-sxm', 1),
      training: {
        globalBatch: 16,
        microBatch: 1,
        seqLen: 8192,
        dtype: 'fp8',
        fp8Recipe: 'current',
        recompute: 'selective',
      },
      parallel: { data: 4, tensor: 1, pipeline: 1, context: 2, zero: 3 },
    },
    differs: { deepspeed: /fp8 is not a DeepSpeed config option/ },
  },
  {
    name: 'fp8 with delayed scaling (Megatron only)',
    plan: {
      model: llama8b,
      cluster: cluster('h100-sxm', 1),
      training: { globalBatch: 16, microBatch: 1, seqLen: 4096, dtype: 'fp8', fp8Recipe: 'delayed', recompute: 'none' },
      parallel: { data: 8, tensor: 1, pipeline: 1, zero: 1, distributedOptimizer: true },
    },
    differs: { deepspeed: /fp8 is not a DeepSpeed config option/, torchtitan: /ZeRO-1 is written as FSDP/ },
  },
  {
    name: 'GPipe with per-layer precision rules',
    plan: {
      model: { ...llama8b, layers: 16 },
      cluster: cluster('h100-sxm', 1),
      training: { globalBatch: 16, microBatch: 1, seqLen: 2048, dtype: 'bf16', recompute: 'none' },
      parallel: { data: 2, tensor: 1, pipeline: 4, schedule: 'gpipe', zero: 1 },
      precision: { default: 'bf16', rules: [{ match: '*.mlp.*', format: 'int4-g128' }] },
    },
    differs: {
      megatron: /Megatron-LM has no GPipe schedule/,
      deepspeed: /per-layer precision rules \(\*\.mlp\.\* → int4-g128\) are not training options of DeepSpeed/,
      torchtitan: /per-layer precision rules .* are not training options of torchtitan/,
    },
  },
];

type Target = 'megatron' | 'deepspeed' | 'torchtitan';
const byName = (start: string): Case => CASES.find((c) => c.name.startsWith(start))!;
const TARGETS: Target[] = ['megatron', 'deepspeed', 'torchtitan'];

/** What the round trip must keep: the estimate's figures. */
function figures(r: CostReport) {
  return {
    iterationSeconds: r.iterationSeconds,
    bubbleFraction: r.bubbleFraction,
    gpus: r.gpus,
    stages: r.stages.map((s) => [s.layers, s.memory.total, s.computeSeconds]),
    communication: [r.communication.data.bytes, r.communication.tensor.bytes, r.communication.pipeline.bytes],
  };
}

/** A target's files imported back into a plan, as importLaunchFile would (here without the file system). */
function reimport(to: Target, files: Record<string, string>, stripHeader = false): LaunchImport {
  const strip = (t: string) => (stripHeader ? t.replace(/^# layerplan: .*$/m, '') : t);
  const names = Object.keys(files);
  if (to === 'megatron') return importMegatron(strip(files[names[0]]));
  if (to === 'torchtitan') return importTorchtitan(strip(files[names[0]]));
  const config = names.find((n) => n.endsWith('.json'))!;
  const script = names.find((n) => n.endsWith('.sh'))!;
  return importDeepSpeed(files[config], { companion: { file: script, text: files[script] } });
}

function exported(plan: Plan, to: Target) {
  return exportPlan(plan, to, { planFile: 'case.plan.json', workload: archWorkload(plan.model as ArchSpec) });
}

describe('export: every flag and key is one the framework takes, with a value of its type', () => {
  for (const c of CASES) {
    for (const to of TARGETS) {
      if (c.refuses?.includes(to)) continue;
      it(`${to}: ${c.name}`, () => {
        const r = exported(c.plan, to);
        const files = Object.entries(r.files);
        if (to === 'megatron') {
          const argv = bashArgv(files[0][1]);
          const py = python('megatron', argv.slice(argv.indexOf('pretrain_gpt.py') + 1));
          assert.ok(py.ok, py.error);
          // The single-line command is the same argument list.
          const cmd = bashArgv(`${r.command}\n`);
          assert.deepStrictEqual(
            cmd.slice(cmd.indexOf('pretrain_gpt.py')),
            argv.slice(argv.indexOf('pretrain_gpt.py')),
          );
        } else if (to === 'torchtitan') {
          const py = python('torchtitan', files[0][1]);
          assert.ok(py.ok, py.error);
        } else {
          const config = JSON.parse(files.find(([n]) => n.endsWith('.json'))![1]);
          checkDeepSpeedKeys(config);
          const launcher = bashArgv(`${r.command}\n`, 'deepspeed');
          const py = python('deepspeed-launcher', launcher);
          assert.ok(py.ok, py.error);
          assert.strictEqual(py.parsed!.user_script, 'train.py');
        }
      });
    }
  }
});

/** Every key against deepspeed-config.json: a top-level key or a section field, of the field's type. */
function checkDeepSpeedKeys(config: Record<string, unknown>): void {
  const ds = JSON.parse(fs.readFileSync(path.join(FIX, 'deepspeed-config.json'), 'utf8'));
  const top = new Map<string, { type: string }>(
    ds.top_level_keys.map((k: { key: string; type: string }) => [k.key, k]),
  );
  const typeOk = (type: string, v: unknown) =>
    type.startsWith('enum')
      ? type
          .split(': ')[1]
          .split('|')
          .map((x) => x.replace(/'/g, ''))
          .includes(String(v))
      : /^(Optional\[)?int/.test(type) || type.startsWith('int |')
        ? Number.isInteger(v)
        : /bool/.test(type)
          ? typeof v === 'boolean'
          : /float/.test(type)
            ? typeof v === 'number'
            : /^object|^str|^type|Config|Dict/.test(type) || true;
  for (const [k, v] of Object.entries(config)) {
    const key = top.get(k);
    assert.ok(key, `${k} is a DeepSpeed top-level key`);
    const section = ds.sections[k];
    if (section && v && typeof v === 'object' && k !== 'optimizer') {
      for (const [f, fv] of Object.entries(v as Record<string, unknown>)) {
        const field = section.fields.find((x: { key: string }) => x.key === f);
        assert.ok(field, `${k}.${f} is a field of ${k}`);
        assert.ok(typeOk(field.type, fv), `${k}.${f}: ${JSON.stringify(fv)} is a ${field.type}`);
      }
    } else if (k === 'optimizer') {
      assert.ok(['Adam', 'AdamW', 'SGD'].includes((v as { type: string }).type));
    } else assert.ok(typeOk(key.type, v), `${k}: ${JSON.stringify(v)} is a ${key.type}`);
  }
}

describe('round trip: plan → export → import → plan, the same estimate', () => {
  for (const c of CASES) {
    for (const to of TARGETS) {
      if (c.refuses?.includes(to)) {
        it(`${to} refuses what it cannot run: ${c.name}`, () => {
          assert.throws(() => exported(c.plan, to), /deepspeed:|torchtitan:|megatron:/);
        });
        continue;
      }
      it(`${to}: ${c.name}`, () => {
        // The plan in the framework's profile, with what profiles default stated (torchtitan's FSDP2 and DDP
        // always overlap the gradient reduction), so the round trip does not depend on a profile's defaults.
        const profile = to === 'megatron' ? 'megatron-core' : to;
        const plan: Plan = {
          ...c.plan,
          training: {
            ...c.plan.training!,
            framework: profile,
            overlapGradReduce: c.plan.training!.overlapGradReduce ?? to === 'torchtitan',
          },
          parallel: {
            ...c.plan.parallel,
            zero: c.plan.parallel?.zero ?? 0,
            distributedOptimizer: c.plan.parallel?.distributedOptimizer ?? false,
          },
        };
        const r = exported(plan, to);
        const imp = reimport(to, r.files);
        assert.deepStrictEqual(errors(imp.issues), [], `${to} import of its own export`);
        const workload = archWorkload(imp.plan!.model as ArchSpec);
        completeImport(imp, '', workload);
        const v = validatePlan(JSON.stringify(imp.plan));
        assert.deepStrictEqual(errors(v.issues), []);
        const before = figures(estimate(plan, archWorkload(plan.model as ArchSpec)));
        const after = figures(estimate(imp.plan!, workload));
        const differs = c.differs?.[to];
        if (differs) {
          assert.ok(
            r.notes.some((n) => differs.test(n)),
            `the notes say why: ${JSON.stringify(r.notes)}`,
          );
          assert.notDeepStrictEqual(after, before, 'what the framework cannot express changes the estimate');
        } else assert.deepStrictEqual(after, before);
      });
    }
  }
  it('megatron: head size, expert tensor degree and the overlaps as flags, and back (header removed)', () => {
    const moe: Plan = {
      model: {
        arch: 'llama',
        layers: 8,
        hidden: 2048,
        heads: 16,
        kvHeads: 4,
        headDim: 192,
        ffn: 5632,
        vocab: 32000,
        experts: 8,
        expertsPerToken: 2,
      },
      cluster: cluster('h100-sxm', 1),
      training: { globalBatch: 32, microBatch: 1, seqLen: 2048, dtype: 'bf16', framework: 'megatron-core' },
      parallel: { data: 2, tensor: 2, pipeline: 2, expert: 2, expertTensor: 1, sequenceParallel: true },
    };
    for (const [tpCommOverlap, overlapParamGather] of [
      [true, false],
      [false, true],
    ]) {
      const plan: Plan = { ...moe, parallel: { ...moe.parallel, tpCommOverlap, overlapParamGather } };
      const r = exported(plan, 'megatron');
      const argv = bashArgv(r.files[Object.keys(r.files)[0]]);
      const py = python('megatron', argv.slice(argv.indexOf('pretrain_gpt.py') + 1));
      assert.ok(py.ok, py.error);
      const flag = (f: string) => argv.includes(f);
      assert.strictEqual(argv[argv.indexOf('--kv-channels') + 1], '192');
      assert.strictEqual(argv[argv.indexOf('--expert-tensor-parallel-size') + 1], '1');
      assert.deepStrictEqual(
        [flag('--tp-comm-overlap'), flag('--overlap-param-gather')],
        [tpCommOverlap, overlapParamGather],
      );
      const imp = reimport('megatron', r.files, true);
      assert.deepStrictEqual(errors(imp.issues), []);
      const m = imp.plan!.model as ArchSpec;
      assert.deepStrictEqual([m.headDim, m.experts], [192, 8]);
      const par = imp.plan!.parallel!;
      assert.deepStrictEqual(
        [par.expertTensor, par.tpCommOverlap, par.overlapParamGather],
        [1, tpCommOverlap, overlapParamGather],
      );
      const workload = archWorkload(m);
      completeImport(imp, '', workload);
      assert.deepStrictEqual(
        figures(estimate(imp.plan!, workload)),
        figures(estimate(plan, archWorkload(plan.model as ArchSpec))),
      );
    }
  });

  it('megatron and torchtitan carry an architecture in their own words (the header removed)', () => {
    for (const to of ['megatron', 'torchtitan'] as const) {
      const plan: Plan = {
        ...byName('Llama 3 8B shape').plan,
        training: { ...byName('Llama 3 8B shape').plan.training!, framework: to === 'megatron' ? 'megatron-core' : to },
      };
      const imp = reimport(to, exported(plan, to).files, true);
      assert.deepStrictEqual(errors(imp.issues), []);
      const w = archWorkload(imp.plan!.model as ArchSpec);
      completeImport(imp, '', w);
      assert.deepStrictEqual(
        figures(estimate(imp.plan!, w)),
        figures(estimate(plan, archWorkload(plan.model as ArchSpec))),
      );
    }
  });
  it('an estimate of a launch file that does not fit its GPUs still prints, and check says by how much', () => {
    const file = path.join(EX, 'megatron-llama3-8b-fp8.sh');
    const est = spawnSync('node', [CLI, 'estimate', file, '--gpu', 'a100-40gb', '--json'], { encoding: 'utf8' });
    assert.strictEqual(est.status, 0, est.stderr);
    assert.strictEqual(JSON.parse(est.stdout).gpus, 8);
    const check = spawnSync('node', [CLI, 'check', file, '--gpu', 'a100-40gb', '--json'], { encoding: 'utf8' });
    assert.strictEqual(check.status, 1);
    const d = (JSON.parse(check.stdout).diagnostics as Issue[]).filter((x) => /needs .* GiB per GPU/.test(x.message));
    assert.strictEqual(d.length, 1);
  });
  it('a plan on a model file (Llama-2-7B config.json) through the files and the command line', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'file-'));
    fs.mkdirSync(path.join(dir, 'llama'));
    fs.copyFileSync(
      path.join(REPO, 'test', 'fixtures', 'hf-configs', 'llama-2-7b', 'config.json'),
      path.join(dir, 'llama', 'config.json'),
    );
    for (const to of TARGETS) {
      const framework = to === 'megatron' ? 'megatron-core' : to;
      const plan: Plan = {
        model: 'llama/config.json',
        cluster: cluster('h100-sxm', 1),
        training: {
          globalBatch: 64,
          microBatch: 2,
          seqLen: 4096,
          dtype: 'bf16',
          recompute: 'full',
          framework,
          overlapGradReduce: true,
        },
        parallel: { data: 8, tensor: 1, pipeline: 1, zero: to === 'torchtitan' ? 3 : 1 },
      };
      const planFile = path.join(dir, `${to}.plan.json`);
      fs.writeFileSync(planFile, JSON.stringify(plan));
      const out = path.join(dir, `out-${to}`);
      const ex = spawnSync('node', [CLI, 'export', planFile, '--to', to, '--out', out, '--json'], { encoding: 'utf8' });
      assert.strictEqual(ex.status, 0, ex.stderr);
      const main = Object.keys(JSON.parse(ex.stdout).files).find((n) => !n.endsWith('.ds_config.json'))!;
      const est = (args: string[]) => {
        const r = spawnSync('node', [CLI, 'estimate', ...args, '--json'], { encoding: 'utf8' });
        assert.strictEqual(r.status, 0, r.stderr);
        return JSON.parse(r.stdout);
      };
      const a = est([planFile]);
      const b = est([path.join(out, main)]);
      assert.strictEqual(b.iterationSeconds, a.iterationSeconds, to);
      assert.deepStrictEqual(
        b.stages.map((s: { memory: unknown }) => s.memory),
        a.stages.map((s: { memory: unknown }) => s.memory),
      );
      assert.strictEqual(b.imported.plan.model, '../llama/config.json');
      // The plan file an import writes names the model relative to itself.
      const written = path.join(dir, `back-${to}.plan.json`);
      const im = spawnSync('node', [CLI, 'import', path.join(out, main), '--out', written], { encoding: 'utf8' });
      assert.strictEqual(im.status, 0, im.stderr);
      assert.strictEqual(est([written]).iterationSeconds, a.iterationSeconds);
    }
  });
});

describe('what each framework cannot express is said in the notes', () => {
  it('precision rules, uneven stages, GPipe, fp8 and selective recomputation per framework', () => {
    const c = byName('GPipe').plan; // GPipe + int4 rules
    const notes = (to: Target, p: Plan) => exported(p, to).notes.join('\n');
    for (const to of ['megatron', 'deepspeed'] as const) assert.match(notes(to, c), /per-layer precision rules/);
    const uneven = byName('uneven').plan;
    assert.match(notes('deepspeed', uneven), /uneven stages/);
    // 29 layers in 4 stages: neither Megatron's plain split nor its account-for-embedding/loss split (which is the
    // default Megatron-Core profile's own for 30 layers) holds them, so the export writes a layout.
    const odd: Plan = { ...uneven, model: { ...llama8b, layers: 29 }, stages: undefined };
    assert.match(notes('megatron', odd), /the layout gives each stage the layers/);
    assert.match(notes('deepspeed', byName('fp8 with current').plan), /fp8 is not a DeepSpeed config option/);
    const fp16 = byName('data parallel ZeRO-1').plan;
    const selective: Plan = { ...fp16, training: { ...fp16.training!, recompute: 'selective' } };
    assert.match(notes('deepspeed', selective), /selective recomputation .* not a DeepSpeed option/);
    assert.match(notes('torchtitan', fp16), /not float16/);
    assert.match(
      notes('megatron', byName('interleaved').plan),
      /virtual stages as Megatron counts them: --num-virtual-stages-per-pipeline-rank 3/,
    );
    assert.match(
      notes('megatron', byName('interleaved').plan),
      /--make-vocab-size-divisible-by 64 keeps the vocabulary at the plan's 128256 rows/,
    );
  });
  it('a graph model without a transformer shape: megatron and torchtitan say why; deepspeed exports it', async () => {
    const planFile = path.join(REPO, 'examples', 'gpt2-tiny.plan.json');
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8').replace(/^\s*\/\/.*$/gm, '')) as Plan;
    const source = await planWorkloadSource(plan, planFile);
    const ctx = { planFile, workload: workloadFrom(source) };
    assert.throws(() => exportPlan(plan, 'megatron', ctx), /megatron: Megatron-LM builds its model from shape flags/);
    assert.throws(() => exportPlan(plan, 'torchtitan', ctx), /torchtitan: torchtitan builds its model/);
    const ds = exportPlan(plan, 'deepspeed', ctx);
    assert.match(ds.notes.join('\n'), /per-layer precision rules \(h\.\* → int4-g128\)/);
  });
});
