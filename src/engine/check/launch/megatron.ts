/**
 * Megatron-LM launch scripts (or their argument lists) as plans, checked as Megatron-LM core_v0.19.0's
 * argument parser and validate_args() would check them. Citations are to that tag
 * (commit 5be9626709af2722333bf54797c954c09edeada3): megatron/training/arguments.py (validate_args),
 * megatron/core/transformer/transformer_config.py, megatron/core/transformer/transformer_block.py,
 * megatron/core/transformer/pipeline_parallel_layer_layout.py, megatron/core/num_microbatches_calculator.py,
 * megatron/core/tokenizers/utils/build_tokenizer.py.
 */
import type { ArchSpec, Plan } from '../../plan/plan';
import { rangeText } from '../../cost/estimate';
import {
  DEFAULT_GPU,
  OffsetIssues,
  exactDiv,
  readHeader,
  splitWorld,
  type LaunchContext,
  type LaunchHeader,
  type LaunchImport,
  type Origin,
} from './common';
import { MEGATRON_VERSION, frameworkOptions } from './options.generated';
import { megatronDefault, suggest } from './options';
import { runShell, type ShellCommand, type ShellWord, type Span } from './shell';

/** One parsed argument: its value and where the flag and the value were written. */
export interface MegatronArg {
  flag: string;
  dest: string;
  value: unknown;
  flagSpan: Span;
  valueSpan: Span;
  /** The value (or part of it) is only known when the script runs ($1, $(…)). */
  unknown: boolean;
}

export interface MegatronLaunch {
  args: Map<string, MegatronArg>;
  /** torchrun's (or the deepspeed launcher's) process counts, where the script gives them. */
  nprocPerNode?: { n: number; span: Span };
  nnodes?: { n: number; span: Span };
  /** The training script word (pretrain_gpt.py) or the first argument. */
  anchor: Span;
  launcher: 'torchrun' | 'deepspeed' | 'python' | 'arguments';
  /** Variables the script exports (CUDA_DEVICE_MAX_CONNECTIONS, …). */
  env: Map<string, string>;
}

/** The span of a word where it was written: its characters when they are contiguous in the file, else the use site. */
export function wordSpan(w: ShellWord): Span {
  const known = w.at.filter((a) => a >= 0);
  if (known.length && known.length === w.text.length) {
    const lo = Math.min(...known);
    const hi = Math.max(...known) + 1;
    if (hi - lo <= w.text.length * 2 + 2) return { start: lo, end: hi };
  }
  return w.span;
}

const PY_INT = /^\s*[-+]?\d+(_\d+)*\s*$/;
const PY_FLOAT = /^\s*[-+]?((\d+(_\d+)*)?\.?\d+(_\d+)*([eE][-+]?\d+)?|\d+\.|inf(inity)?|nan)\s*$/i;
/** argparse treats a word that looks like a negative number as a value when no option looks like one. */
const NEGATIVE = /^-\d+$|^-\d*\.\d+$/;

function convert(kind: string, raw: string): { ok: true; value: unknown } | { ok: false } {
  if (kind === 'int') return PY_INT.test(raw) ? { ok: true, value: Number(raw.replace(/_/g, '')) } : { ok: false };
  if (kind === 'float') return PY_FLOAT.test(raw) ? { ok: true, value: Number(raw.replace(/_/g, '')) } : { ok: false };
  return { ok: true, value: raw };
}

/** Parses Megatron's argument list as argparse would (allow_abbrev=False: every flag spelled in full). */
export function parseMegatronArgs(words: ShellWord[], c: OffsetIssues): Map<string, MegatronArg> {
  const args = new Map<string, MegatronArg>();
  const isOption = (w: ShellWord | undefined) =>
    !!w && w.text.startsWith('-') && w.text.length > 1 && !NEGATIVE.test(w.text);
  /** The last flag that took exactly one value (an extra word after it is the usual mistake). */
  let lastSingle: string | undefined;
  for (let i = 0; i < words.length;) {
    const w = words[i];
    if (w.unknown && w.text === '') {
      i++;
      continue;
    }
    if (!isOption(w)) {
      c.error(
        wordSpan(w),
        `unrecognized argument '${w.text}': ${MEGATRON_VERSION} takes no positional arguments${lastSingle ? ` (${lastSingle} takes one value: quote a value with spaces so it stays one argument)` : ''}`,
      );
      i++;
      continue;
    }
    lastSingle = undefined;
    const eq = w.text.startsWith('--') ? w.text.indexOf('=') : -1;
    const flag = eq > 0 ? w.text.slice(0, eq) : w.text;
    const flagSpan = wordSpan(w);
    const spec = frameworkOptions().MEGATRON_FLAGS[flag];
    i++;
    if (!spec) {
      const hint = suggest(flag, Object.keys(frameworkOptions().MEGATRON_FLAGS));
      c.error(
        flagSpan,
        `unrecognized argument ${flag}: ${MEGATRON_VERSION} has no such flag${hint ? ` (did you mean ${hint}?)` : ''}`,
      );
      while (i < words.length && !isOption(words[i])) i++;
      continue;
    }
    const [kind, choices, nargs, dest] = spec;
    if (kind === 'flag') {
      if (eq > 0) c.error(flagSpan, `${flag} takes no value (argparse: ignored explicit argument)`);
      const old = args.get(dest);
      if (old && old.flag === flag) c.info(flagSpan, `${flag} is given twice`);
      args.set(dest, { flag, dest, value: spec[4], flagSpan, valueSpan: flagSpan, unknown: false });
      continue;
    }
    // Values: inline (--x=v), or the following words.
    let values: ShellWord[];
    if (eq > 0) {
      const text = w.text.slice(eq + 1);
      values = [{ text, at: w.at.slice(eq + 1), span: w.span, unknown: w.unknown }];
    } else {
      const want = nargs === null || nargs === '?' ? 1 : /^\d+$/.test(nargs) ? Number(nargs) : Infinity;
      values = [];
      while (i < words.length && values.length < want && !isOption(words[i])) values.push(words[i++]);
      const min = nargs === null || nargs === '+' ? 1 : nargs === '*' || nargs === '?' ? 0 : Number(nargs);
      if (values.length < min) {
        c.error(
          flagSpan,
          `${flag} expects ${min === 1 ? 'a value' : `${min} values`}${kind !== 'str' ? ` (${kind})` : ''}`,
        );
        continue;
      }
    }
    const unknown = values.some((v) => v.unknown);
    const converted: unknown[] = [];
    for (const v of values) {
      if (v.unknown) {
        converted.push(undefined);
        continue;
      }
      const r = convert(kind, v.text);
      if (!r.ok) {
        c.error(wordSpan(v), `${flag}: invalid ${kind} value: '${v.text}'`);
        converted.push(undefined);
        continue;
      }
      if (choices && !choices.map(String).includes(String(r.value))) {
        c.error(
          wordSpan(v),
          `${flag}: invalid choice: '${v.text}' (choose from ${choices.map((x) => `'${x}'`).join(', ')})`,
        );
      }
      converted.push(r.value);
    }
    const valueSpan = values.length
      ? { start: wordSpan(values[0]).start, end: wordSpan(values[values.length - 1]).end }
      : flagSpan;
    const single = nargs === null || nargs === '?';
    if (single && eq < 0) lastSingle = flag;
    const old = args.get(dest);
    if (old && old.flag === flag) c.info(flagSpan, `${flag} is given twice; the last value counts`);
    args.set(dest, { flag, dest, value: single ? converted[0] : converted, flagSpan, valueSpan, unknown });
  }
  return args;
}

/** torchrun's options that take a value (torch/distributed/run.py), spelled with - or _. */
const TORCHRUN_VALUES = new Set(
  [
    'nnodes',
    'nproc_per_node',
    'rdzv_backend',
    'rdzv_endpoint',
    'rdzv_id',
    'rdzv_conf',
    'max_restarts',
    'monitor_interval',
    'start_method',
    'role',
    'log_dir',
    'redirects',
    'tee',
    'local_ranks_filter',
    'node_rank',
    'master_addr',
    'master_port',
    'local_addr',
    'logs_specs',
    'event_log_handler',
    'numa_binding',
    'signals_to_handle',
  ].flatMap((n) => [`--${n}`, `--${n.replace(/_/g, '-')}`]),
);
const TORCHRUN_SHORT_VALUES = new Set(['-r', '-t']);

interface Found {
  launcher: MegatronLaunch['launcher'];
  args: ShellWord[];
  options: Map<string, ShellWord | undefined>;
  script?: ShellWord;
}

/** Splits a command into its launcher, the launcher's options and the training script's arguments. */
function splitCommand(cmd: ShellCommand): Found | undefined {
  let w = cmd.words;
  // Wrappers: srun / mpirun / exec / env / nohup / numactl … in front of the launcher.
  for (let guard = 0; guard < 8 && w.length; guard++) {
    const head = w[0].text.split('/').pop() ?? '';
    if (['exec', 'nohup', 'time', 'env', 'srun', 'mpirun', 'numactl', 'stdbuf'].includes(head)) {
      let k = 1;
      while (k < w.length && (w[k].text.startsWith('-') || /^[A-Z_]+=/.test(w[k].text))) k++;
      w = w.slice(k);
    } else break;
  }
  if (!w.length) return undefined;
  const head = w[0].text.split('/').pop() ?? '';
  const options = new Map<string, ShellWord | undefined>();
  let k = 1;
  let launcher: Found['launcher'];
  const takeOptions = (takesValue: (flag: string) => boolean) => {
    while (k < w.length && w[k].text.startsWith('-')) {
      const t = w[k].text;
      const eq = t.indexOf('=');
      if (eq > 0) {
        options.set(t.slice(0, eq).replace(/-/g, '_'), { ...w[k], text: t.slice(eq + 1), at: w[k].at.slice(eq + 1) });
        k++;
      } else if (takesValue(t)) {
        options.set(t.replace(/-/g, '_'), w[k + 1]);
        k += 2;
      } else {
        options.set(t.replace(/-/g, '_'), undefined);
        k++;
      }
    }
  };
  if (head === 'torchrun') {
    launcher = 'torchrun';
    takeOptions((t) => TORCHRUN_VALUES.has(t) || TORCHRUN_SHORT_VALUES.has(t));
  } else if (/^python[0-9.]*$/.test(head)) {
    while (k < w.length && /^-[uOBEsSIX]+$/.test(w[k].text)) k++;
    if (w[k]?.text === '-m' && /^torch\.distributed\.(run|launch)$/.test(w[k + 1]?.text ?? '')) {
      launcher = 'torchrun';
      k += 2;
      takeOptions((t) => TORCHRUN_VALUES.has(t) || TORCHRUN_SHORT_VALUES.has(t));
    } else launcher = 'python';
  } else if (head === 'deepspeed') {
    launcher = 'deepspeed';
    takeOptions((t) => !['--no_python', '--no_local_rank', '--no_ssh', '--no_ssh_check', '--force_multi'].includes(t));
  } else return undefined;
  const script = w[k];
  if (!script || !/\.py$/.test(script.text)) return undefined;
  return { launcher, args: w.slice(k + 1), options, script };
}

/** Finds the Megatron command of a script: the last command that runs a .py with Megatron flags; else an argument list. */
export function readMegatronLaunch(text: string, c: OffsetIssues): MegatronLaunch {
  let result;
  try {
    result = runShell(text);
  } catch (e) {
    c.error({ start: 0, end: Math.min(text.length, 1) }, `cannot read this script: ${(e as Error).message}`);
    return { args: new Map(), anchor: { start: 0, end: 0 }, launcher: 'arguments', env: new Map() };
  }
  for (const n of result.notes) c.add(n.severity, n.span, n.message);
  const env = new Map<string, string>();
  for (const [k, v] of result.vars) env.set(k, v.text);
  let found: Found | undefined;
  let foundCmd: ShellCommand | undefined;
  for (const cmd of result.commands) {
    const f = splitCommand(cmd);
    if (f && f.args.some((a) => frameworkOptions().MEGATRON_FLAGS[a.text.split('=')[0]])) {
      found = f;
      foundCmd = cmd;
    }
  }
  if (!found || !foundCmd) {
    // An argument list: every word of the file, when they read as flags.
    const words = result.commands.flatMap((cmd) => cmd.words);
    const anchor = words[0] ? wordSpan(words[0]) : { start: 0, end: 0 };
    if (!words.length || !words[0].text.startsWith('--')) {
      c.error(
        anchor,
        'no Megatron-LM launch found: expected a command that runs pretrain_gpt.py (torchrun, python -m torch.distributed.run, deepspeed) or a list of --flags',
      );
      return { args: new Map(), anchor, launcher: 'arguments', env };
    }
    return { args: parseMegatronArgs(words, c), anchor, launcher: 'arguments', env };
  }
  for (const [k, v] of Object.entries(foundCmd.env)) env.set(k, v);
  const args = parseMegatronArgs(found.args, c);
  const count = (names: string[]): { n: number; span: Span } | undefined => {
    for (const name of names) {
      if (!found!.options.has(name)) continue;
      const w = found!.options.get(name);
      if (!w || w.unknown) return undefined;
      // nnodes may be MIN:MAX (elastic): the plan takes the maximum.
      const n = Number(w.text.includes(':') ? w.text.split(':')[1] : w.text);
      if (Number.isInteger(n) && n > 0) return { n, span: wordSpan(w) };
      if (!/^(gpu|auto|cpu|xpu)$/.test(w.text)) {
        c.error(wordSpan(w), `${name.replace(/_/g, '-')}: '${w.text}' is not a count`);
      }
      return undefined;
    }
    return undefined;
  };
  const launch: MegatronLaunch = {
    args,
    anchor: found.script ? wordSpan(found.script) : foundCmd.span,
    launcher: found.launcher,
    env,
  };
  if (found.launcher === 'torchrun') {
    launch.nprocPerNode = count(['__nproc_per_node']);
    launch.nnodes = count(['__nnodes']);
    if (found.options.has('__standalone') && !launch.nnodes) launch.nnodes = { n: 1, span: launch.anchor };
  } else if (found.launcher === 'deepspeed') {
    launch.nprocPerNode = count(['__num_gpus', '__num_accelerators']);
    launch.nnodes = count(['__num_nodes']);
  } else if (found.launcher === 'python') {
    launch.nprocPerNode = { n: 1, span: launch.anchor };
    launch.nnodes = { n: 1, span: launch.anchor };
  }
  return launch;
}

// ---------------------------------------------------------------- pipeline layout

/** Megatron's layout string as a list of stages ("E", "t", "L", "m" per layer), as PipelineParallelLayerLayout.parse_str_to_list reads it. */
export function parseLayout(layout: string): string[][] | undefined {
  let s = layout.replace(/,/g, '');
  if (s.length > 10_000) return undefined;
  s = s.replace(/\(([^)]+)\)\*(\d+)/g, (_, g: string, n: string) => (Number(n) <= 10_000 ? g.repeat(Number(n)) : ''));
  s = s.replace(/(.)\*(\d+)/g, (_, g: string, n: string) => (Number(n) <= 10_000 ? g.repeat(Number(n)) : ''));
  if (s.length > 1_000_000) return undefined;
  const stages = s.split('|').map((st) => [...st]);
  return stages.every((st) => st.every((ch) => 'ELtm'.includes(ch))) ? stages : undefined;
}

/** A layout string for stage sizes (transformer layers per stage, in Megatron's stage order): embedding first, loss last. */
export function layoutString(sizes: number[]): string {
  return sizes
    .map((n, i) => {
      const parts: string[] = [];
      if (i === 0) parts.push('E');
      if (n === 1) parts.push('t');
      else if (n > 1) parts.push(`t*${n}`);
      if (i === sizes.length - 1) parts.push('L');
      return parts.join(',');
    })
    .join('|');
}

// ---------------------------------------------------------------- import

/** Tokenizers whose vocabulary Layerplan knows without reading the tokenizer (GPT-2 BPE: 50,257; Llama 2 SentencePiece: 32,000). */
const TOKENIZER_VOCAB: Record<string, number> = { GPT2BPETokenizer: 50257, Llama2Tokenizer: 32000 };

/** What the sections of importMegatron share: the flags as parsed, where they were written, and what is collected. */
interface MegatronImport {
  c: OffsetIssues;
  ctx: LaunchContext;
  launch: MegatronLaunch;
  header: LaunchHeader | undefined;
  a: Map<string, MegatronArg>;
  anchor: Span;
  origins: Map<string, Origin>;
  notes: string[];
  out: LaunchImport;
  /** The flag's value, else Megatron's default for it. */
  get<T>(dest: string): T | undefined;
  /** Where the flag's value was written (else `fallback`: the launch command). */
  at(dest: string, fallback?: Span): Span;
  /** Where the flag itself was written (else `fallback`: the launch command). */
  flagAt(dest: string, fallback?: Span): Span;
  has(dest: string): boolean;
  /** Records that plan field `key` comes from flag `dest`. */
  origin(key: string, dest: string, name?: string): void;
}

function megatronImport(text: string, ctx: LaunchContext): MegatronImport {
  const c = new OffsetIssues(text);
  const launch = readMegatronLaunch(text, c);
  const header = readHeader(text);
  const origins = new Map<string, Origin>();
  const notes: string[] = [];
  const a = launch.args;
  const anchor = launch.anchor;
  const out: LaunchImport = {
    kind: 'megatron',
    version: MEGATRON_VERSION,
    issues: c.issues,
    origins,
    anchor,
    notes,
    header,
  };
  const get = <T>(dest: string): T | undefined => {
    const v = a.get(dest);
    return (v ? v.value : megatronDefault(dest)) as T | undefined;
  };
  const at = (dest: string, fallback: Span = anchor): Span => a.get(dest)?.valueSpan ?? fallback;
  const flagAt = (dest: string, fallback: Span = anchor): Span => a.get(dest)?.flagSpan ?? fallback;
  const has = (dest: string) => a.has(dest);
  const origin = (key: string, dest: string, name?: string) => {
    const arg = a.get(dest);
    if (arg) origins.set(key, { span: arg.valueSpan, name: name ?? arg.flag });
  };
  return { c, ctx, launch, header, a, anchor, origins, notes, out, get, at, flagAt, has, origin };
}

/** Reads a Megatron-LM launch script (or argument list) as a plan, with Megatron's own checks. */
export function importMegatron(text: string, ctx: LaunchContext = {}): LaunchImport {
  const cx = megatronImport(text, ctx);
  if (!cx.a.size) return cx.out;
  checkDeprecatedFlags(cx);
  const degrees = readDegrees(cx);
  const shape = readModelShape(cx, degrees);
  const batch = readBatch(cx, degrees);
  const pipeline = readPipeline(cx, degrees, shape.layers);
  const dataParallel = readDataParallel(cx, degrees);
  const recompute = readRecompute(cx, degrees, shape.layers, dataParallel.sp);
  const precision = readPrecision(cx);
  const experts = checkExperts(cx, degrees);
  const vocabulary = readVocabulary(cx, degrees.tp);
  const model = readModel(cx, shape, vocabulary, experts);
  if (model === undefined) return cx.out;
  writePlan(cx, model, { degrees, shape, batch, pipeline, dataParallel, recompute, precision, experts });
  return cx.out;
}

function checkDeprecatedFlags(cx: MegatronImport): void {
  const { a, c, get, flagAt, has } = cx;
  // Deprecated flags that validate_args asserts are unset (arguments.py L583-590, L603-617).
  for (const [dest, use] of [
    ['batch_size', '--micro-batch-size'],
    ['warmup', '--lr-warmup-fraction or --lr-warmup-iters'],
    ['model_parallel_size', '--tensor-model-parallel-size'],
  ]) {
    if (has(dest)) {
      c.error(
        flagAt(dest),
        `${a.get(dest)!.flag} is no longer supported (validate_args asserts it is unset); use ${use}`,
      );
    }
  }
  if (get<boolean>('checkpoint_activations')) {
    c.error(
      flagAt('checkpoint_activations'),
      '--checkpoint-activations is no longer valid (Megatron exits); use --recompute-granularity full --recompute-method uniform --recompute-num-layers 1',
    );
  }
  if (get<boolean>('recompute_activations')) {
    c.info(
      flagAt('recompute_activations'),
      '--recompute-activations is deprecated; Megatron reads it as --recompute-granularity selective',
    );
  }
}

/** World, degrees (arguments.py L411-446). */
function readDegrees(cx: MegatronImport) {
  const { a, c, ctx, launch, header, anchor, origins, get, at, has, origin } = cx;
  const tp = get<number>('tensor_model_parallel_size') ?? 1;
  const pp = get<number>('pipeline_model_parallel_size') ?? 1;
  const cp = get<number>('context_parallel_size') ?? 1;
  const ep = get<number>('expert_model_parallel_size') ?? 1;
  const etp = get<number>('expert_tensor_parallel_size') ?? tp;
  for (const [dest, v] of [
    ['tensor_model_parallel_size', tp],
    ['pipeline_model_parallel_size', pp],
    ['context_parallel_size', cp],
    ['expert_model_parallel_size', ep],
  ] as const) {
    if (!(Number.isInteger(v) && v >= 1)) c.error(at(dest), `${a.get(dest)?.flag ?? dest}: must be at least 1`);
  }
  const headerCluster = header?.cluster;
  let gpusPerNode = ctx.gpusPerNode ?? launch.nprocPerNode?.n ?? headerCluster?.gpusPerNode;
  let nodes = ctx.nodes ?? launch.nnodes?.n ?? headerCluster?.nodes;
  if (ctx.worldSize && !ctx.gpusPerNode && !ctx.nodes) {
    ({ nodes, gpusPerNode } = splitWorld(ctx.worldSize, gpusPerNode));
  }
  const launcherSpan = launch.nprocPerNode?.span ?? anchor;
  if (
    (gpusPerNode === undefined) !== (nodes === undefined) &&
    (ctx.nodes !== undefined || ctx.gpusPerNode !== undefined)
  ) {
    // One of them given on the command line: the other defaults.
    gpusPerNode ??= 8;
    nodes ??= 1;
  }
  if (gpusPerNode === undefined || nodes === undefined) {
    const known = gpusPerNode ?? nodes;
    gpusPerNode ??= 8;
    nodes ??= 1;
    c.warn(
      launcherSpan,
      `the world size is not given here (torchrun --nproc_per_node × --nnodes)${known ? '' : ''}; Layerplan assumes ${nodes} × ${gpusPerNode} GPUs (pass --nodes / --gpus-per-node)`,
    );
  }
  const world = gpusPerNode * nodes;
  if (launch.nprocPerNode) {
    origins.set('cluster.gpusPerNode', { span: launch.nprocPerNode.span, name: '--nproc_per_node' });
  }
  if (launch.nnodes) origins.set('cluster.nodes', { span: launch.nnodes.span, name: '--nnodes' });
  const modelSize = tp * pp * cp;
  const dp = exactDiv(world, modelSize);
  if (dp === undefined) {
    // At the degree that does not divide the world size, else at the largest one given.
    const degrees = (
      [
        ['tensor_model_parallel_size', tp],
        ['pipeline_model_parallel_size', pp],
        ['context_parallel_size', cp],
      ] as const
    ).filter(([d]) => has(d));
    const where =
      degrees.find(([, v]) => world % v !== 0)?.[0] ??
      [...degrees].sort((x, y) => y[1] - x[1])[0]?.[0] ??
      'tensor_model_parallel_size';
    c.error(
      at(where),
      `world size ${world} (${nodes} × ${gpusPerNode} GPUs) is not divisible by tensor × pipeline × context = ${tp} × ${pp} × ${cp} = ${modelSize} (arguments.py validate_args)`,
    );
  }
  origin('parallel.tensor', 'tensor_model_parallel_size');
  origin('parallel.pipeline', 'pipeline_model_parallel_size');
  origin('parallel.context', 'context_parallel_size');
  origin('parallel.expert', 'expert_model_parallel_size');
  origins.set('parallel', { span: a.get('tensor_model_parallel_size')?.valueSpan ?? launcherSpan });
  origins.set('parallel.data', { span: launcherSpan });
  return { tp, pp, cp, ep, etp, headerCluster, gpusPerNode, nodes, world, modelSize, dp, launcherSpan };
}
type Degrees = ReturnType<typeof readDegrees>;

/** Model shape (arguments.py L1262-1319, transformer_config.py L1323-1345). */
function readModelShape(cx: MegatronImport, { tp, cp }: Degrees) {
  const { a, c, anchor, get, at, has } = cx;
  for (const dest of ['num_layers', 'hidden_size', 'num_attention_heads', 'max_position_embeddings']) {
    if (get(dest) === undefined && !a.get(dest)?.unknown) {
      c.error(anchor, `--${dest.replace(/_/g, '-')} is required (validate_args: _check_arg_is_not_none)`);
    }
  }
  const layers = get<number>('num_layers');
  const hidden = get<number>('hidden_size');
  const heads = get<number>('num_attention_heads');
  const seq = get<number>('seq_length');
  const maxPos = get<number>('max_position_embeddings');
  const swiglu = !!get<boolean>('swiglu');
  const gqa = !!get<boolean>('group_query_attention');
  const groups = gqa ? (get<number>('num_query_groups') ?? 1) : heads;
  let kvChannels = get<number>('kv_channels');
  if (heads && hidden && kvChannels === undefined) {
    if (hidden % heads !== 0) {
      c.error(
        at('num_attention_heads'),
        `--num-attention-heads: ${heads} does not divide --hidden-size ${hidden} (arguments.py: kv_channels defaults to hidden / heads)`,
      );
    }
    kvChannels = hidden / heads;
  }
  if (heads && tp > 1 && heads % tp !== 0) {
    c.error(
      at('tensor_model_parallel_size'),
      `--tensor-model-parallel-size: ${tp} does not divide --num-attention-heads ${heads} (transformer_config.py)`,
    );
  }
  if (groups && tp > 1 && groups % tp !== 0 && tp % groups !== 0) {
    c.error(
      at('num_query_groups', at('tensor_model_parallel_size')),
      `--num-query-groups: ${groups} is neither a multiple nor a divisor of --tensor-model-parallel-size ${tp} (transformer_config.py)`,
    );
  }
  if (seq !== undefined && maxPos !== undefined && maxPos < seq) {
    c.error(
      at('max_position_embeddings'),
      `--max-position-embeddings: ${maxPos} is less than --seq-length ${seq} (arguments.py asserts max_position_embeddings >= seq_length)`,
    );
  }
  if (seq === undefined && !a.get('seq_length')?.unknown && !has('encoder_seq_length')) {
    c.error(anchor, '--seq-length is required (arguments.py: seq_length or encoder_seq_length)');
  }
  if (seq !== undefined && cp > 1 && seq % (2 * cp) !== 0) {
    c.error(
      at('seq_length'),
      `--seq-length: ${seq} is not divisible by 2 × --context-parallel-size = ${2 * cp} (arguments.py)`,
    );
  }
  return { layers, hidden, heads, seq, maxPos, swiglu, gqa, groups, kvChannels };
}
type ModelShape = ReturnType<typeof readModelShape>;

/** Batch (arguments.py L675-692, num_microbatches_calculator.py). */
function readBatch(cx: MegatronImport, { dp }: Degrees) {
  const { a, c, anchor, get, at, flagAt, has, origin } = cx;
  const mbs = get<number>('micro_batch_size');
  if (mbs === undefined && !a.get('micro_batch_size')?.unknown) {
    c.error(anchor, '--micro-batch-size is required (arguments.py asserts micro_batch_size is not None)');
  }
  if (has('step_batch_size_schedule') && has('global_batch_size')) {
    c.error(
      flagAt('step_batch_size_schedule'),
      'Cannot specify both --step-batch-size-schedule and --global-batch-size (arguments.py raises ValueError)',
    );
  }
  if (has('rampup_batch_size')) {
    c.info(
      flagAt('rampup_batch_size'),
      '--rampup-batch-size is deprecated and ignored by the micro-batch calculator in this version',
    );
  }
  const gbs = get<number>('global_batch_size') ?? (mbs && dp ? mbs * dp : undefined);
  if (gbs !== undefined && mbs && dp && gbs % (mbs * dp) !== 0 && !get<boolean>('decrease_batch_size_if_needed')) {
    c.error(
      at('global_batch_size'),
      `--global-batch-size: ${gbs} is not divisible by --micro-batch-size × data-parallel size = ${mbs} × ${dp} = ${mbs * dp} (num_microbatches_calculator.py)`,
    );
  }
  origin('training.globalBatch', 'global_batch_size');
  origin('training.microBatch', 'micro_batch_size');
  origin('training.seqLen', 'seq_length');
  return { mbs, gbs };
}

/** Virtual pipeline and stages (arguments.py L893-983, transformer_block.py get_num_layers_to_build). */
function readPipeline(cx: MegatronImport, { pp }: Degrees, layers: number | undefined) {
  const flags = readPipelineFlags(cx);
  const { vpp, stageSizes, chunkSizes } = readVirtualStages(cx, flags, pp, layers);
  return {
    ...flags,
    vpp,
    stageSizes:
      flags.layoutArg === undefined && layers !== undefined ? readStageSizes(cx, flags, pp, layers, vpp) : stageSizes,
    chunkSizes,
  };
}

function readPipelineFlags(cx: MegatronImport) {
  const { get } = cx;
  const nlpv = get<number>('num_layers_per_virtual_pipeline_stage');
  const nvs = get<number>('num_virtual_stages_per_pipeline_rank');
  const layoutArg = get<string>('pipeline_model_parallel_layout');
  const first = get<number>('decoder_first_pipeline_num_layers');
  const last = get<number>('decoder_last_pipeline_num_layers');
  const accEmb = !!get<boolean>('account_for_embedding_in_pipeline_split');
  const accLoss = !!get<boolean>('account_for_loss_in_pipeline_split');
  return { nlpv, nvs, layoutArg, first, last, accEmb, accLoss };
}
type PipelineFlags = ReturnType<typeof readPipelineFlags>;

/** The virtual stages per pipeline rank (and the stage sizes a layout gives). */
function readVirtualStages(cx: MegatronImport, flags: PipelineFlags, pp: number, layers: number | undefined) {
  const { c, flagAt, origin } = cx;
  const { nlpv, nvs, layoutArg } = flags;
  const set = [nlpv, nvs, layoutArg].filter((x) => x !== undefined).length;
  let vpp = 1;
  let stageSizes: number[] | undefined;
  let chunkSizes: number[] | undefined;
  if (set > 1) {
    c.error(
      flagAt(nvs !== undefined ? 'num_virtual_stages_per_pipeline_rank' : 'num_layers_per_virtual_pipeline_stage'),
      'No more than one of --num-layers-per-virtual-pipeline-stage, --num-virtual-stages-per-pipeline-rank and --pipeline-model-parallel-layout can be set (arguments.py)',
    );
  } else if (layoutArg !== undefined) {
    ({ vpp, stageSizes, chunkSizes } = readLayout(cx, flags, layoutArg, pp, layers));
  } else if (nlpv !== undefined || nvs !== undefined) {
    if (nvs === undefined && nlpv !== undefined) {
      vpp = virtualStagesFromLayers(cx, flags, nlpv, pp, layers);
    } else if (nvs !== undefined) {
      vpp = nvs;
      origin('parallel.virtualStages', 'num_virtual_stages_per_pipeline_rank');
    }
  }
  if (vpp > 1) checkInterleaved(cx, flags, pp);
  return { vpp, stageSizes, chunkSizes };
}

/** --pipeline-model-parallel-layout: the virtual stages per rank and the layers per stage (or per chunk) it gives. */
function readLayout(
  cx: MegatronImport,
  { first, last, accEmb, accLoss }: PipelineFlags,
  layoutArg: string,
  pp: number,
  layers: number | undefined,
): { vpp: number; stageSizes?: number[]; chunkSizes?: number[] } {
  const { c, at, origin } = cx;
  let vpp = 1;
  let stageSizes: number[] | undefined;
  let chunkSizes: number[] | undefined;
  const stages = parseLayout(layoutArg);
  if (!stages) {
    c.error(
      at('pipeline_model_parallel_layout'),
      `--pipeline-model-parallel-layout: '${layoutArg}' is not a layout (letters E, L, t, m; | between stages; x*n and (…)*n repeat)`,
    );
  } else if (stages.length % pp !== 0) {
    c.error(
      at('pipeline_model_parallel_layout'),
      `--pipeline-model-parallel-layout: ${stages.length} stages are not divisible by --pipeline-model-parallel-size ${pp}`,
    );
  } else {
    vpp = stages.length / pp;
    const flat = stages.flat();
    const count = flat.filter((x) => x === 't').length;
    if (
      flat[0] !== 'E' ||
      flat[flat.length - 1] !== 'L' ||
      flat.filter((x) => x === 'E').length !== 1 ||
      flat.filter((x) => x === 'L').length !== 1
    ) {
      c.error(
        at('pipeline_model_parallel_layout'),
        '--pipeline-model-parallel-layout: the embedding (E) must come first and the loss (L) last, each exactly once (pipeline_parallel_layer_layout.py)',
      );
    } else if (layers !== undefined && count !== layers) {
      c.error(
        at('pipeline_model_parallel_layout'),
        `--pipeline-model-parallel-layout: ${count} transformer layers (t), but --num-layers is ${layers}`,
      );
    } else if (first !== undefined || last !== undefined || accEmb || accLoss) {
      c.error(
        at('pipeline_model_parallel_layout'),
        'a pipeline layout cannot be combined with --decoder-first/last-pipeline-num-layers or --account-for-* (transformer_config.py)',
      );
    } else {
      const sizes = stages.map((st) => st.filter((x) => x === 't').length);
      if (vpp === 1) stageSizes = sizes;
      else chunkSizes = sizes;
    }
  }
  origin('stages', 'pipeline_model_parallel_layout');
  origin('parallel.virtualStages', 'pipeline_model_parallel_layout');
  return { vpp, stageSizes, chunkSizes };
}

/** --num-layers-per-virtual-pipeline-stage: the virtual stages per rank Megatron derives (1 where it refuses it). */
function virtualStagesFromLayers(
  cx: MegatronImport,
  { first, last, accEmb, accLoss }: PipelineFlags,
  nlpv: number,
  pp: number,
  layers: number | undefined,
): number {
  const { c, at, flagAt, origin } = cx;
  let vpp = 1;
  if (first !== undefined || last !== undefined) {
    c.error(
      flagAt('num_layers_per_virtual_pipeline_stage'),
      'please use --num-virtual-stages-per-pipeline-rank to specify virtual pipeline parallel degree when enable uneven pipeline parallelism (arguments.py)',
    );
  } else if (layers !== undefined) {
    const L = layers + (accEmb ? 1 : 0) + (accLoss ? 1 : 0);
    const perStage = exactDiv(L, pp);
    if (perStage === undefined) {
      c.error(
        at('pipeline_model_parallel_size'),
        `number of layers (${L}) of the model must be divisible by --pipeline-model-parallel-size ${pp} (arguments.py)`,
      );
    } else if (perStage % nlpv !== 0) {
      c.error(
        at('num_layers_per_virtual_pipeline_stage'),
        `--num-layers-per-virtual-pipeline-stage: ${nlpv} does not divide the ${perStage} layers per pipeline stage (arguments.py); Megatron derives the virtual stages per rank as layers per stage ÷ this`,
      );
    } else {
      vpp = perStage / nlpv;
      c.info(
        at('num_layers_per_virtual_pipeline_stage'),
        `Megatron reads this as ${vpp} virtual stages per pipeline rank (${perStage} layers per stage ÷ ${nlpv})`,
      );
    }
  }
  origin('parallel.virtualStages', 'num_layers_per_virtual_pipeline_stage');
  return vpp;
}

/** The interleaved schedule's condition on the pipeline degree (with more than one virtual stage per rank). */
function checkInterleaved(cx: MegatronImport, { nlpv, nvs }: PipelineFlags, pp: number): void {
  const { c, get, flagAt } = cx;
  const p2p = get<boolean>('overlap_p2p_comm') !== false;
  if (p2p ? pp <= 1 : pp <= 2) {
    c.error(
      flagAt(
        nvs !== undefined
          ? 'num_virtual_stages_per_pipeline_rank'
          : nlpv !== undefined
            ? 'num_layers_per_virtual_pipeline_stage'
            : 'pipeline_model_parallel_layout',
      ),
      `the interleaved schedule needs --pipeline-model-parallel-size greater than ${p2p ? 1 : 2}${p2p ? '' : ' when p2p communication overlap is disabled'} (arguments.py)`,
    );
  }
}

/** The stage sizes without a layout: uneven first/last stages, or the embedding and loss counted as layers. */
function readStageSizes(
  cx: MegatronImport,
  { first, last, accEmb, accLoss }: PipelineFlags,
  pp: number,
  layers: number,
  vpp: number,
): number[] | undefined {
  const { c, anchor, at, flagAt, origin } = cx;
  let stageSizes: number[] | undefined;
  if (first !== undefined || last !== undefined) {
    if (accEmb || accLoss) {
      c.error(
        flagAt('decoder_first_pipeline_num_layers', flagAt('decoder_last_pipeline_num_layers')),
        'uneven first/last stages cannot be combined with --account-for-embedding/loss-in-pipeline-split (transformer_config.py)',
      );
    }
    let rest = layers;
    let stagesLeft = pp;
    if (first !== undefined) {
      rest -= first;
      stagesLeft--;
    }
    if (last !== undefined) {
      rest -= last;
      stagesLeft--;
    }
    const middle = stagesLeft > 0 ? exactDiv(rest, stagesLeft) : rest === 0 ? 0 : undefined;
    if (middle === undefined || rest < 0) {
      c.error(
        flagAt('decoder_first_pipeline_num_layers', flagAt('decoder_last_pipeline_num_layers')),
        `with uneven pipelining the ${rest} left-over layers must be divisible by the ${stagesLeft} left-over stages (transformer_config.py)`,
      );
    } else {
      stageSizes = Array.from({ length: pp }, (_, i) =>
        i === 0 && first !== undefined ? first : i === pp - 1 && last !== undefined ? last : middle,
      );
      if (vpp > 1 && stageSizes.some((n) => n % vpp !== 0)) {
        c.error(
          flagAt('decoder_first_pipeline_num_layers', flagAt('decoder_last_pipeline_num_layers')),
          `each stage's layers must be divisible by the ${vpp} virtual stages (transformer_config.py)`,
        );
      }
    }
    origin('stages', first !== undefined ? 'decoder_first_pipeline_num_layers' : 'decoder_last_pipeline_num_layers');
  } else {
    const L = layers + (accEmb ? 1 : 0) + (accLoss ? 1 : 0);
    if (L % pp !== 0) {
      c.error(
        at('pipeline_model_parallel_size'),
        `Number of layers (${L}${accEmb || accLoss ? `, counting the ${[accEmb && 'embedding', accLoss && 'loss'].filter(Boolean).join(' and ')}` : ''}) should be divisible by the pipeline-model-parallel size ${pp} (arguments.py)`,
      );
    } else if (vpp > 1 && (L / pp) % vpp !== 0) {
      c.error(
        flagAt('num_virtual_stages_per_pipeline_rank', anchor),
        `the ${L / pp} layers per pipeline rank are not divisible by ${vpp} virtual stages (transformer_block.py get_num_layers_to_build)`,
      );
    } else if (accEmb || accLoss) {
      const per = L / pp;
      stageSizes = Array.from(
        { length: pp },
        (_, i) => per - (i === 0 && accEmb ? 1 : 0) - (i === pp - 1 && accLoss ? 1 : 0),
      );
      origin('stages', accEmb ? 'account_for_embedding_in_pipeline_split' : 'account_for_loss_in_pipeline_split');
    }
  }
  return stageSizes;
}

/** Sequence parallel, overlaps, optimizer (arguments.py L990-1040, L1370-1402). */
function readDataParallel(cx: MegatronImport, { tp, cp, pp, ep }: Degrees) {
  const { c, launch, get, at, flagAt, origin } = cx;
  let sp = !!get<boolean>('sequence_parallel');
  if (sp && tp === 1) {
    c.warn(
      flagAt('sequence_parallel'),
      '--sequence-parallel has no effect with --tensor-model-parallel-size 1: Megatron disables it ("Disabling sequence parallelism because tensor model parallelism is disabled")',
    );
    sp = false;
  }
  if (get<boolean>('tp_comm_overlap') && !sp) {
    c.error(flagAt('tp_comm_overlap'), '--tp-comm-overlap needs --sequence-parallel (arguments.py)');
  }
  origin('parallel.sequenceParallel', 'sequence_parallel');
  const fsdp = !!get<boolean>('use_megatron_fsdp');
  const torchFsdp = !!get<boolean>('use_torch_fsdp2');
  let distOpt = !!get<boolean>('use_distributed_optimizer') || fsdp;
  const optimizer = get<string>('optimizer') ?? 'adam';
  if (get<boolean>('overlap_param_gather')) {
    if (!distOpt && optimizer !== 'dist_muon') {
      c.error(
        flagAt('overlap_param_gather'),
        '--overlap-param-gather needs --use-distributed-optimizer (or --use-megatron-fsdp) (arguments.py)',
      );
    }
    if (!get<boolean>('overlap_grad_reduce')) {
      c.error(flagAt('overlap_param_gather'), '--overlap-param-gather needs --overlap-grad-reduce (arguments.py)');
    }
  }
  if (fsdp) {
    if (launch.env.get('CUDA_DEVICE_MAX_CONNECTIONS') === '1') {
      c.error(
        flagAt('use_megatron_fsdp'),
        'Megatron-FSDP requires CUDA_DEVICE_MAX_CONNECTIONS > 1 or unset; this script exports 1 (arguments.py)',
      );
    }
    if (get<string>('ckpt_format') !== 'fsdp_dtensor') {
      c.error(flagAt('use_megatron_fsdp'), 'Megatron-FSDP requires --ckpt-format fsdp_dtensor (arguments.py)');
    }
    if (!['sgd', 'adam'].includes(optimizer)) {
      c.error(flagAt('use_megatron_fsdp'), `Megatron-FSDP does not support the ${optimizer} optimizer (arguments.py)`);
    }
  }
  if (torchFsdp) {
    if (pp > 1) {
      c.error(flagAt('use_torch_fsdp2'), '--use-torch-fsdp2 is not supported with pipeline parallelism (arguments.py)');
    }
    if (ep > 1) {
      c.error(flagAt('use_torch_fsdp2'), '--use-torch-fsdp2 is not supported with expert parallelism (arguments.py)');
    }
    if (get<boolean>('use_distributed_optimizer')) {
      c.error(
        flagAt('use_torch_fsdp2'),
        '--use-torch-fsdp2 is not supported with the distributed optimizer (arguments.py)',
      );
    }
  }
  if (
    (tp > 1 || cp > 1) &&
    !fsdp &&
    !torchFsdp &&
    launch.launcher !== 'arguments' &&
    launch.env.get('CUDA_DEVICE_MAX_CONNECTIONS') !== '1'
  ) {
    c.warn(
      at('tensor_model_parallel_size', at('context_parallel_size')),
      'Megatron asserts CUDA_DEVICE_MAX_CONNECTIONS=1 with tensor or context parallelism on GPUs before Blackwell (arguments.py); this script does not export it',
    );
  }
  // ZeRO: the distributed optimizer shards optimizer states; Megatron-FSDP / torch FSDP2 also gradients and parameters.
  let zero: number | undefined;
  if (fsdp) {
    const strategy = get<string>('data_parallel_sharding_strategy') ?? 'optim_grads_params';
    zero = { no_shard: 0, optim: 1, optim_grads: 2, optim_grads_params: 3 }[strategy] ?? 3;
    if (zero !== 1) distOpt = false;
    origin('parallel.zero', 'data_parallel_sharding_strategy');
  } else if (torchFsdp) {
    zero = 3;
    origin('parallel.zero', 'use_torch_fsdp2');
  }
  origin('parallel.distributedOptimizer', 'use_distributed_optimizer');
  origin('parallel.overlapParamGather', 'overlap_param_gather');
  origin('parallel.tpCommOverlap', 'tp_comm_overlap');
  return { sp, distOpt, zero, optimizer };
}

/** Recomputation (arguments.py L1370-1388, transformer_config.py L1719-1760). */
function readRecompute(
  cx: MegatronImport,
  { tp, pp }: Degrees,
  layers: number | undefined,
  sp: boolean,
): 'none' | 'selective' | 'full' {
  const { c, notes, get, at, flagAt, origin } = cx;
  let granularity = get<string>('recompute_granularity');
  if (get<boolean>('recompute_activations')) granularity = 'selective';
  const method = get<string>('recompute_method');
  const recomputeLayers = get<number>('recompute_num_layers');
  let recompute: 'none' | 'selective' | 'full' = 'none';
  if (granularity === 'selective') {
    recompute = 'selective';
    if (method !== undefined) {
      c.error(
        flagAt('recompute_method'),
        '--recompute-method is not supported with selective recomputation (arguments.py)',
      );
    }
    if (recomputeLayers !== undefined) {
      c.error(
        flagAt('recompute_num_layers'),
        '--recompute-num-layers must be unset with selective recomputation (transformer_config.py)',
      );
    }
    const modules = get<string[]>('recompute_modules');
    if (modules && modules.some((m) => m !== 'core_attn')) {
      notes.push(
        `--recompute-modules ${modules.join(' ')}: Layerplan estimates selective recomputation as the attention core's (core_attn, Korthikanti et al. 2022)`,
      );
      c.info(
        at('recompute_modules'),
        'Layerplan estimates selective recomputation of the attention core only (core_attn)',
      );
    }
  } else if (granularity === 'full') {
    recompute = 'full';
    if (method === undefined) {
      c.error(
        flagAt('recompute_granularity'),
        'full recomputation needs --recompute-method (uniform or block) (transformer_config.py)',
      );
    }
    if (recomputeLayers === undefined) {
      c.error(
        flagAt('recompute_granularity'),
        'full recomputation needs --recompute-num-layers (between 1 and the layers per pipeline rank) (transformer_config.py)',
      );
    }
    const perRank = layers ? Math.floor(layers / pp) : undefined;
    if (recomputeLayers !== undefined && perRank !== undefined && (recomputeLayers < 1 || recomputeLayers > perRank)) {
      c.error(
        at('recompute_num_layers'),
        `--recompute-num-layers: ${recomputeLayers} is not between 1 and the ${perRank} layers per pipeline rank (transformer_config.py)`,
      );
    } else if (
      method === 'block' &&
      recomputeLayers !== undefined &&
      perRank !== undefined &&
      recomputeLayers < perRank
    ) {
      c.info(
        at('recompute_num_layers'),
        `block recomputation of ${recomputeLayers} of ${perRank} layers per rank: Layerplan estimates full recomputation of every layer (more compute, less memory than this)`,
      );
      notes.push(
        `--recompute-method block --recompute-num-layers ${recomputeLayers}: estimated as full recomputation of every layer`,
      );
    } else if (method === 'uniform' && recomputeLayers !== undefined && recomputeLayers > 1) {
      c.info(
        at('recompute_num_layers'),
        `uniform recomputation in units of ${recomputeLayers} layers keeps fewer checkpoints than Layerplan's per-layer full recomputation (its memory is an upper bound)`,
      );
    }
  }
  if (get<boolean>('distribute_saved_activations')) {
    const f = flagAt('distribute_saved_activations');
    if (tp <= 1) c.error(f, '--distribute-saved-activations needs tensor parallelism (arguments.py)');
    if (granularity !== 'full') {
      c.error(f, '--distribute-saved-activations applies to full recomputation only (arguments.py)');
    }
    if (sp) c.error(f, '--distribute-saved-activations must be off with sequence parallelism (transformer_config.py)');
  }
  origin('training.recompute', 'recompute_granularity');
  return recompute;
}

/** Precision (arguments.py L1060-1077, L1171-1193; transformer_config.py L1314-1460). */
function readPrecision(cx: MegatronImport) {
  const { c, notes, get, at, flagAt, origin } = cx;
  const fp16 = !!get<boolean>('fp16');
  const bf16 = !!get<boolean>('bf16');
  const fp8 = get<string>('fp8');
  const fp8Recipe = get<string>('fp8_recipe') ?? 'delayed';
  if (fp16 && bf16) c.error(flagAt('bf16'), '--bf16 and --fp16 cannot both be set (arguments.py)');
  if (get<boolean>('fp8_param_gather') && !fp8) {
    c.error(flagAt('fp8_param_gather'), '--fp8-param-gather needs --fp8-format (transformer_config.py)');
  }
  if (fp8 && get<boolean>('first_last_layers_bf16') && fp8Recipe === 'delayed') {
    c.error(
      flagAt('first_last_layers_bf16'),
      '--first-last-layers-bf16 is not supported with the delayed fp8 recipe (transformer_config.py)',
    );
  }
  if (fp8 && get<string>('fp4')) {
    c.error(flagAt('fp4'), '--fp4-format and --fp8-format cannot both be set (arguments.py)');
  }
  const dtype: NonNullable<Plan['training']>['dtype'] = fp8 ? 'fp8' : bf16 ? 'bf16' : fp16 ? 'fp16' : 'fp32';
  origin('training.dtype', fp8 ? 'fp8' : bf16 ? 'bf16' : 'fp16');
  let planRecipe: NonNullable<Plan['training']>['fp8Recipe'];
  if (fp8) {
    planRecipe =
      fp8Recipe === 'tensorwise'
        ? 'current'
        : fp8Recipe === 'blockwise'
          ? 'blockwise'
          : fp8Recipe === 'delayed'
            ? 'delayed'
            : 'blockwise';
    if (fp8Recipe === 'mxfp8' || fp8Recipe === 'custom') {
      c.info(
        at('fp8_recipe', flagAt('fp8')),
        `the ${fp8Recipe} fp8 recipe is estimated as blockwise scaling (Layerplan's nearest: per-block scales)`,
      );
      notes.push(`--fp8-recipe ${fp8Recipe}: estimated as blockwise`);
    }
    origin('training.fp8Recipe', 'fp8_recipe');
  }
  if (fp8 && get<boolean>('first_last_layers_bf16')) {
    notes.push(
      '--first-last-layers-bf16: the first and last layers run in bf16; Layerplan estimates every layer in fp8',
    );
  }
  return { dtype, planRecipe };
}

/** Experts (arguments.py L1593-1606, parallel_state.py initialize_model_parallel). */
function checkExperts(cx: MegatronImport, { ep, etp, pp, world }: Degrees): number | undefined {
  const { c, get, at, origin } = cx;
  const experts = get<number>('num_experts') || undefined;
  if (ep > 1) {
    if (!experts) {
      c.error(at('expert_model_parallel_size'), '--expert-model-parallel-size needs --num-experts (arguments.py)');
    } else if (experts % ep !== 0) {
      c.error(
        at('expert_model_parallel_size'),
        `Number of experts (${experts}) should be a multiple of expert model parallel size ${ep} (arguments.py)`,
      );
    }
    if (world % (etp * ep * pp) !== 0) {
      c.error(
        at('expert_model_parallel_size'),
        `world size ${world} is not divisible by expert tensor × expert × pipeline parallel = ${etp} × ${ep} × ${pp} = ${etp * ep * pp} (parallel_state.py initialize_model_parallel)`,
      );
    }
  }
  origin('parallel.expertTensor', 'expert_tensor_parallel_size');
  return experts;
}

/** Vocabulary (build_tokenizer.py vocab_size_with_padding). */
function readVocabulary(cx: MegatronImport, tp: number) {
  const { get } = cx;
  const tokenizer = get<string>('tokenizer_type');
  const divisible = get<number>('make_vocab_size_divisible_by') ?? 128;
  const pad = (raw: number) =>
    get<boolean>('pad_vocab_size') === false ? raw : Math.ceil(raw / (divisible * tp)) * (divisible * tp);
  const rawVocab = get<number>('vocab_size') ?? (tokenizer ? TOKENIZER_VOCAB[tokenizer] : undefined);
  const vocab = get<number>('padded_vocab_size') ?? (rawVocab !== undefined ? pad(rawVocab) : undefined);
  return { vocab, pad };
}
type Vocabulary = ReturnType<typeof readVocabulary>;

/** The model: the header's file when it is there, else the architecture the flags describe. */
function readModel(
  cx: MegatronImport,
  shape: ModelShape,
  vocabulary: Vocabulary,
  experts: number | undefined,
): string | ArchSpec | undefined {
  const { a, ctx, header, anchor, origins } = cx;
  const model: string | ArchSpec | undefined = ctx.model ?? header?.model;
  if (ctx.modelSpec) checkModelShape(cx, shape, ctx.modelSpec, model);
  if (model === undefined) {
    const { layers, hidden, heads } = shape;
    if (layers === undefined || hidden === undefined || heads === undefined) return undefined;
    const arch = archFromFlags(cx, { ...shape, layers, hidden, heads }, vocabulary, experts);
    origins.set('model', { span: a.get('num_layers')?.flagSpan ?? anchor, name: '--num-layers' });
    return arch;
  }
  if (header?.model !== undefined && ctx.model === undefined) {
    origins.set('model', { span: header.span });
  }
  return model;
}

function checkModelShape(
  cx: MegatronImport,
  { layers, hidden, heads, gqa, groups }: ModelShape,
  spec: NonNullable<LaunchContext['modelSpec']>,
  model: string | ArchSpec | undefined,
): void {
  const { c, get, at } = cx;
  // The file's shape flags against the model Layerplan read.
  const compare: [string, number | undefined, number][] = [
    ['num_layers', layers, spec.layers],
    ['hidden_size', hidden, spec.hidden],
    ['num_attention_heads', heads, spec.heads],
    ['ffn_hidden_size', get<number>('ffn_hidden_size'), spec.ffn],
  ];
  if (gqa || spec.kvHeads !== spec.heads) compare.push(['num_query_groups', groups, spec.kvHeads]);
  for (const [dest, v, m] of compare) {
    if (v !== undefined && v !== m) {
      c.error(
        at(dest),
        `--${dest.replace(/_/g, '-')}: ${v}, but the model (${typeof model === 'string' ? model : 'its architecture'}) has ${m}`,
      );
    }
  }
}

/** The architecture the shape flags describe, when no model file is given. */
function archFromFlags(
  cx: MegatronImport,
  shape: ModelShape & { layers: number; hidden: number; heads: number },
  { pad, vocab: flagsVocab }: Vocabulary,
  experts: number | undefined,
): ArchSpec {
  const { c, notes, anchor, get, at } = cx;
  const { layers, hidden, heads, swiglu, groups, kvChannels, maxPos, seq } = shape;
  let vocab = flagsVocab;
  const norm = get<string>('normalization') ?? 'LayerNorm';
  const llama = norm === 'RMSNorm' || swiglu;
  const positions = get<string>('position_embedding_type') ?? 'learned_absolute';
  const bias = get<boolean>('add_bias_linear') !== false;
  const mixed: string[] = [];
  if (llama && norm !== 'RMSNorm') mixed.push('LayerNorm');
  if (llama && !swiglu) mixed.push('a GELU MLP');
  if (llama && bias) mixed.push('linear biases');
  if (llama && positions === 'learned_absolute') mixed.push('learned positions');
  if (!llama && positions !== 'learned_absolute') mixed.push(`${positions} positions`);
  if (!llama && !bias) mixed.push('no linear biases');
  if (mixed.length) {
    c.info(
      anchor,
      `Layerplan's ${llama ? 'llama' : 'gpt'} architecture does not have ${mixed.join(', ')}; the estimate uses the ${llama ? 'llama' : 'gpt'} one`,
    );
    notes.push(`the model is estimated as a ${llama ? 'llama' : 'gpt'} architecture without ${mixed.join(', ')}`);
  }
  if (vocab === undefined) {
    const assumed = llama ? 32000 : 50257;
    vocab = pad(assumed);
    c.warn(
      at('tokenizer_type'),
      `the vocabulary comes from the tokenizer at run time; Layerplan assumes ${assumed}${vocab !== assumed ? `, padded to ${vocab}` : ''} (set --vocab-size or --padded-vocab-size)`,
    );
  }
  const ffn = get<number>('ffn_hidden_size') ?? (swiglu ? Math.floor((4 * hidden * 2) / 3 / 64) * 64 : 4 * hidden);
  const arch: ArchSpec = {
    arch: llama ? 'llama' : 'gpt',
    layers,
    hidden,
    heads,
    ...(groups !== heads && groups ? { kvHeads: groups } : {}),
    // --kv-channels: the head size when it is not hidden / heads (model.headDim).
    ...(kvChannels !== undefined && kvChannels !== hidden / heads ? { headDim: kvChannels } : {}),
    ffn,
    vocab,
    seqLen: maxPos ?? seq,
    tiedEmbeddings: !get<boolean>('untie_embeddings_and_output_weights'),
  };
  if (experts) {
    arch.experts = experts;
    arch.expertsPerToken = get<number>('moe_router_topk') ?? 2;
    const moeFfn = get<number>('moe_ffn_hidden_size');
    if (moeFfn !== undefined && moeFfn !== ffn) arch.expertFfn = moeFfn;
    const cf = get<number>('moe_expert_capacity_factor');
    if (cf !== undefined) arch.capacityFactor = cf;
  }
  return arch;
}

/** The plan. */
function writePlan(
  cx: MegatronImport,
  model: string | ArchSpec,
  parts: {
    degrees: Degrees;
    shape: ModelShape;
    batch: ReturnType<typeof readBatch>;
    pipeline: ReturnType<typeof readPipeline>;
    dataParallel: ReturnType<typeof readDataParallel>;
    recompute: 'none' | 'selective' | 'full';
    precision: ReturnType<typeof readPrecision>;
    experts: number | undefined;
  },
): void {
  const { c, ctx, header, anchor, out, origins, notes, get, at, origin } = cx;
  const { tp, pp, cp, ep, etp, world, modelSize, dp, gpusPerNode, nodes, launcherSpan, headerCluster } = parts.degrees;
  const { layers, seq } = parts.shape;
  const { gbs, mbs } = parts.batch;
  const { layoutArg, chunkSizes, stageSizes, first, last, vpp, accEmb, accLoss } = parts.pipeline;
  const { sp, zero, distOpt, optimizer } = parts.dataParallel;
  const { dtype, planRecipe } = parts.precision;
  const { recompute, experts } = parts;
  const gpu = ctx.gpu ?? headerCluster?.gpu;
  if (!gpu) {
    c.info(anchor, `Megatron-LM does not name the GPU; estimated on ${DEFAULT_GPU} (pass --gpu)`);
  }
  const dataPar = dp ?? Math.max(1, Math.floor(world / modelSize));
  // The framework's split (completeImport pins plan.stages to it where the estimate would split otherwise).
  if (layers !== undefined && pp > 1) {
    if (layoutArg !== undefined) out.split = chunkSizes ?? stageSizes;
    else if (first !== undefined || last !== undefined) out.split = vpp === 1 ? stageSizes : undefined;
    else out.split = megatronSplit(layers, pp, vpp, accEmb, accLoss);
  }
  const training: NonNullable<Plan['training']> = {
    globalBatch: gbs ?? mbs ?? 1,
    microBatch: mbs ?? 1,
    ...(seq !== undefined ? { seqLen: seq } : {}),
    dtype,
    ...(planRecipe ? { fp8Recipe: planRecipe } : {}),
    optimizer: optimizer === 'sgd' ? 'sgd' : 'adam',
    recompute,
    framework: 'megatron-core',
    overlapGradReduce: !!get<boolean>('overlap_grad_reduce'),
    dropout: (get<number>('attention_dropout') ?? 0.1) > 0 || (get<number>('hidden_dropout') ?? 0.1) > 0,
  };
  if (!['adam', 'sgd'].includes(optimizer)) {
    c.info(at('optimizer'), `the ${optimizer} optimizer is estimated with Adam's states (two per parameter)`);
    notes.push(`--optimizer ${optimizer}: estimated with Adam's optimizer states`);
  }
  origin('training.optimizer', 'optimizer');
  origin('training.overlapGradReduce', 'overlap_grad_reduce');
  const parallel: NonNullable<Plan['parallel']> = {
    data: dataPar,
    tensor: tp,
    pipeline: pp,
    ...(cp > 1 ? { context: cp } : {}),
    ...(ep > 1 ? { expert: ep } : {}),
    ...(experts && etp !== tp ? { expertTensor: etp } : {}),
    ...(pp > 1 ? { schedule: vpp > 1 ? 'interleaved' : '1f1b' } : {}),
    ...(vpp > 1 ? { virtualStages: vpp } : {}),
    sequenceParallel: sp,
    // The distributed optimizer shards optimizer states over data ranks: ZeRO-1 (written both ways).
    zero: zero ?? (distOpt ? 1 : 0),
    distributedOptimizer: distOpt,
    // The overlaps as the script sets them: the megatron-core profile would default them on.
    overlapParamGather: !!get<boolean>('overlap_param_gather'),
    tpCommOverlap: !!get<boolean>('tp_comm_overlap') && sp,
  };
  out.plan = {
    model,
    cluster: { ...(headerCluster ?? {}), gpu: gpu ?? DEFAULT_GPU, gpusPerNode, nodes },
    training,
    parallel,
  };
  origins.set('cluster', { span: launcherSpan });
  origins.set('cluster.gpu', { span: header?.span ?? anchor });
}

/**
 * Megatron's own split without a layout (transformer_block.py get_num_layers_to_build): (layers [+1 embedding]
 * [+1 loss]) / pipeline per rank, / virtual stages per chunk, the embedding's and the loss's places taken from
 * the first and the last chunk. Chunk-major; undefined where Megatron would refuse it.
 */
export function megatronSplit(
  layers: number,
  pp: number,
  v: number,
  emb: boolean,
  loss: boolean,
): number[] | undefined {
  const L = layers + (emb ? 1 : 0) + (loss ? 1 : 0);
  if (L % pp !== 0 || (L / pp) % v !== 0) return undefined;
  const per = L / pp / v;
  const sizes = Array.from({ length: pp * v }, () => per);
  if (emb) sizes[0]--;
  if (loss) sizes[pp * v - 1]--;
  return sizes.every((n) => n >= 0) ? sizes : undefined;
}

/** Layerplan's even split of `layers` into `parts` (stage k: floor(k·L/P) … floor((k+1)·L/P)). */
export function evenSplit(layers: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, k) => Math.floor(((k + 1) * layers) / parts) - Math.floor((k * layers) / parts),
  );
}

/** Stage sizes as a plan's stages ([{layers: "0-11"}, …]). */
export function stagesOf(sizes: number[]): { layers: string }[] {
  let at = 0;
  return sizes.map((n) => {
    const ix = Array.from({ length: n }, (_, i) => at + i);
    at += n;
    return { layers: rangeText(ix) };
  });
}
