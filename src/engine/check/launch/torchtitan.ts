/**
 * torchtitan TOML job configs as plans, checked as torchtitan v0.2.2 checks them (commit
 * 73a0e6979dd10b6b1904098eb3c8f62c18ab87ce, its last release with TOML configs): torchtitan/config/manager.py
 * (unknown keys are a ValueError), distributed/parallel_dims.py (_validate L35-59, seq_len_divisor L365),
 * train.py (batch and gradient accumulation L98-215), distributed/pipeline_parallel.py (stages, micro-batches),
 * distributed/activation_checkpoint.py, distributed/utils.py maybe_enable_amp (L243-263),
 * models/llama3/infra/parallelize.py (DDP, sequence length), models/llama3/__init__.py (the llama3 flavors).
 * The TOML is read by toml-eslint-parser, which keeps every key's position.
 */
import { getStaticTOMLValue, parseTOML } from 'toml-eslint-parser';
import type { ArchSpec, Plan } from '../../plan/plan';
import {
  DEFAULT_GPU,
  OffsetIssues,
  readHeader,
  splitWorld,
  type LaunchContext,
  type LaunchHeader,
  type LaunchImport,
  type Origin,
} from './common';
import { TORCHTITAN_VERSION, frameworkOptions } from './options.generated';
import { suggest, type TorchtitanField } from './options';
import type { Span } from './shell';

/** One key of the TOML: its value and where its key and value are. */
interface Entry {
  value: unknown;
  keySpan: Span;
  valueSpan: Span;
}

/** The TOML as tables of entries ("parallelism" → "tensor_parallel_degree" → entry), with each table's header span. */
export interface TomlDoc {
  tables: Map<string, { span: Span; entries: Map<string, Entry> }>;
}

/** Parses a TOML file with positions; a syntax error becomes an issue. */
export function readToml(text: string, c: OffsetIssues): TomlDoc | undefined {
  let ast;
  try {
    ast = parseTOML(text);
  } catch (e) {
    const err = e as { index?: number; message?: string };
    const at = typeof err.index === 'number' ? err.index : 0;
    c.error({ start: at, end: at + 1 }, `TOML syntax: ${err.message ?? String(e)}`);
    return undefined;
  }
  const doc: TomlDoc = { tables: new Map() };
  const table = (name: string, span: Span) => {
    let t = doc.tables.get(name);
    if (!t) doc.tables.set(name, (t = { span, entries: new Map() }));
    return t;
  };
  const top = ast.body[0];
  for (const node of top.body) {
    if (node.type === 'TOMLKeyValue') {
      addEntry(table('', { start: node.range[0], end: node.range[1] }), [], node);
    } else if (node.type === 'TOMLTable') {
      const name = node.resolvedKey.map(String).join('.');
      const t = table(name, { start: node.key.range[0], end: node.key.range[1] });
      for (const kv of node.body) addEntry(t, [], kv);
    }
  }
  // Dotted keys (a.b = 1) land in nested tables.
  function addEntry(t: { entries: Map<string, Entry> }, prefix: string[], kv: (typeof top.body)[number]) {
    if (kv.type !== 'TOMLKeyValue') return;
    const keys = kv.key.keys.map((k) => ('name' in k ? k.name : String(k.value)));
    const value = getStaticTOMLValue(kv.value);
    const entry: Entry = {
      value: typeof value === 'bigint' ? Number(value) : value,
      keySpan: { start: kv.key.range[0], end: kv.key.range[1] },
      valueSpan: { start: kv.value.range[0], end: kv.value.range[1] },
    };
    if (keys.length === 1) t.entries.set(keys[0], entry);
    else {
      const base = [...tableName(t), ...prefix, ...keys.slice(0, -1)].join('.');
      table(base, entry.keySpan).entries.set(keys[keys.length - 1], entry);
    }
  }
  function tableName(t: { entries: Map<string, Entry> }): string[] {
    for (const [name, v] of doc.tables) if (v === t) return name ? name.split('.') : [];
    return [];
  }
  return doc;
}

/** torchtitan's llama3 flavors (torchtitan/models/llama3/__init__.py at v0.2.2): TransformerModelArgs as written there. */
export const LLAMA3_FLAVORS: Record<
  string,
  {
    dim: number;
    n_layers: number;
    n_heads: number;
    n_kv_heads?: number;
    vocab_size?: number;
    ffn_dim_multiplier?: number;
    multiple_of?: number;
  }
> = {
  debugmodel: { dim: 256, n_layers: 6, n_heads: 16, vocab_size: 2048 },
  debugmodel_flex_attn: { dim: 256, n_layers: 6, n_heads: 16, vocab_size: 2048 },
  debugmodel_varlen_attn: { dim: 256, n_layers: 6, n_heads: 16, vocab_size: 2048 },
  '8B': { dim: 4096, n_layers: 32, n_heads: 32, n_kv_heads: 8, ffn_dim_multiplier: 1.3, multiple_of: 1024 },
  '8B_flex': { dim: 4096, n_layers: 32, n_heads: 32, n_kv_heads: 8, ffn_dim_multiplier: 1.3, multiple_of: 1024 },
  '8B_varlen': { dim: 4096, n_layers: 32, n_heads: 32, n_kv_heads: 8, ffn_dim_multiplier: 1.3, multiple_of: 1024 },
  '70B': { dim: 8192, n_layers: 80, n_heads: 64, n_kv_heads: 8, ffn_dim_multiplier: 1.3, multiple_of: 4096 },
  '405B': { dim: 16384, n_layers: 126, n_heads: 128, n_kv_heads: 8, ffn_dim_multiplier: 1.2, multiple_of: 4096 },
};

/** The MLP width torchtitan's llama3 FeedForward builds (model.py L327-336): int(2·4·dim/3), × multiplier, rounded up to multiple_of. */
export function llama3Ffn(dim: number, multipleOf = 256, multiplier?: number): number {
  let h = Math.floor((2 * 4 * dim) / 3);
  if (multiplier !== undefined) h = Math.floor(multiplier * h);
  return multipleOf * Math.ceil(h / multipleOf);
}

/** A llama3 flavor as an architecture object (RMSNorm, SwiGLU, rotary, no biases, untied output: llama3/model/model.py). */
export function flavorArch(flavor: string, seqLen?: number): ArchSpec | undefined {
  const f = LLAMA3_FLAVORS[flavor];
  if (!f) return undefined;
  return {
    arch: 'llama',
    layers: f.n_layers,
    hidden: f.dim,
    heads: f.n_heads,
    ...(f.n_kv_heads !== undefined ? { kvHeads: f.n_kv_heads } : {}),
    ffn: llama3Ffn(f.dim, f.multiple_of, f.ffn_dim_multiplier),
    vocab: f.vocab_size ?? 128256,
    ...(seqLen !== undefined ? { seqLen } : {}),
    tiedEmbeddings: false,
  };
}

/** torchtitan's stage split (pipeline_parallel.py generate_llm_fqn_per_model_part): transformer layers per stage. */
export function torchtitanStages(stages: number, layers: number, inW: number, outW: number): number[] | string {
  if (stages < 1) return 'Number of stages must be at least 1';
  if (stages === 1) return [layers];
  const effective = layers + inW + outW;
  if (stages > effective) return `Number of stages (${stages}) cannot be greater than effective layers (${effective})`;
  const per = Math.floor(effective / stages);
  const extra = effective % stages;
  if (per === 0) return `with ${stages} stages and ${effective} effective layers each stage would be empty`;
  if (inW > per) return `input_weight (${inW}) exceeds minimum layers per stage (${per})`;
  if (outW > per) return `output_weight (${outW}) exceeds minimum layers per stage (${per})`;
  const sizes: number[] = [];
  let current = 0;
  for (let s = 0; s < stages; s++) {
    let n = per + (s < extra ? 1 : 0);
    if (s === 0) n -= inW;
    else if (s === stages - 1) n -= outW;
    const take = Math.max(0, Math.min(n, layers - current));
    sizes.push(take);
    current += take;
  }
  return sizes;
}

/** Schedules whose class is a PipelineScheduleSingle (one stage per rank): torch/distributed/pipelining/schedules.py. */
const SINGLE = new Set(['1f1b', 'gpipe', 'pipelineschedulesingle']);

function typeOk(f: TorchtitanField, v: unknown): boolean {
  switch (f[0]) {
    case 'int':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'bool':
      return typeof v === 'boolean';
    case 'str':
    case 'enum':
      return typeof v === 'string';
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'strings|str':
      return typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'));
    case 'stringLists':
      return Array.isArray(v) && v.every((x) => Array.isArray(x) && x.every((y) => typeof y === 'string'));
    default:
      return true;
  }
}

/** What the sections of importTorchtitan share: the TOML, where its keys are, and what is collected. */
interface TorchtitanImport {
  c: OffsetIssues;
  ctx: LaunchContext;
  header: LaunchHeader | undefined;
  doc: TomlDoc;
  anchor: Span;
  origins: Map<string, Origin>;
  notes: string[];
  out: LaunchImport;
  entry(table: string, key: string): Entry | undefined;
  /** The key's value when it has the field's type, else torchtitan's default. */
  get<T>(table: string, key: string): T;
  /** Where the key's value is written (else `fallback`: the [parallelism] table or the first one). */
  at(table: string, key: string, fallback?: Span): Span;
  /** Records that plan field `path` comes from `table.key`. */
  origin(path: string, table: string, key: string): void;
}

/** Reads the TOML; the context is undefined when it cannot be read (the result then holds the syntax error). */
function torchtitanImport(text: string, ctx: LaunchContext): { out: LaunchImport; cx?: TorchtitanImport } {
  const c = new OffsetIssues(text);
  const origins = new Map<string, Origin>();
  const notes: string[] = [];
  const header = readHeader(text);
  const out: LaunchImport = {
    kind: 'torchtitan',
    version: TORCHTITAN_VERSION,
    issues: c.issues,
    origins,
    anchor: { start: 0, end: 0 },
    notes,
    header,
  };
  const doc = readToml(text, c);
  if (!doc) return { out };
  const first = [...doc.tables.values()][0];
  out.anchor = doc.tables.get('parallelism')?.span ?? first?.span ?? { start: 0, end: 0 };
  const anchor = out.anchor;
  const entry = (table: string, key: string) => doc.tables.get(table)?.entries.get(key);
  const get = <T>(table: string, key: string): T => {
    const e = entry(table, key);
    const f = frameworkOptions().TORCHTITAN_TABLES[table]?.[key];
    return (e && typeOk(f ?? ['any', null, null], e.value) ? e.value : f?.[2]) as T;
  };
  const at = (table: string, key: string, fallback: Span = anchor) => entry(table, key)?.valueSpan ?? fallback;
  const origin = (path: string, table: string, key: string) => {
    const e = entry(table, key);
    if (e) origins.set(path, { span: e.valueSpan, name: `${table}.${key}` });
  };
  return { out, cx: { c, ctx, header, doc, anchor, origins, notes, out, entry, get, at, origin } };
}

/** Reads a torchtitan TOML as a plan, with torchtitan's own checks at the key's range. */
export function importTorchtitan(text: string, ctx: LaunchContext = {}): LaunchImport {
  const { out, cx } = torchtitanImport(text, ctx);
  if (!cx) return out;
  checkKeys(cx);
  const model = readModel(cx);
  const degrees = readDegrees(cx, model.seqLen);
  const batch = readBatch(cx, degrees);
  const pipeline = readPipeline(cx, degrees, batch, model.layers);
  const precision = readPrecision(cx, degrees);
  const recompute = readRecompute(cx);
  const optName = checkOptimizer(cx, degrees);
  writePlan(cx, { model, degrees, batch, pipeline, precision, recompute, optName });
  return out;
}

/** Keys and types against JobConfig (manager.py _dict_to_dataclass). */
function checkKeys(cx: TorchtitanImport): void {
  const { c, doc } = cx;
  const custom = doc.tables.get('job')?.entries.get('custom_config_module');
  const extended = typeof custom?.value === 'string' && custom.value !== '';
  for (const [name, t] of doc.tables) {
    const known = frameworkOptions().TORCHTITAN_TABLES[name];
    if (!known) {
      if (name === '') continue;
      const hint = suggest(name, Object.keys(frameworkOptions().TORCHTITAN_TABLES));
      c.add(
        extended ? 'information' : 'error',
        t.span,
        `[${name}]: not a section of ${TORCHTITAN_VERSION}'s JobConfig (manager.py raises "Invalid field names")${hint ? `; did you mean [${hint}]?` : ''}${extended ? ' — job.custom_config_module may define it' : ''}`,
      );
      continue;
    }
    for (const [key, e] of t.entries) {
      const f = known[key];
      if (!f) {
        const hint = suggest(key, Object.keys(known));
        c.add(
          extended ? 'information' : 'error',
          e.keySpan,
          `${name}.${key}: not a field of [${name}] in ${TORCHTITAN_VERSION} (manager.py raises "Invalid field names")${hint ? `; did you mean ${hint}?` : ''}`,
        );
        continue;
      }
      if (!typeOk(f, e.value)) {
        c.error(
          e.valueSpan,
          `${name}.${key}: ${JSON.stringify(e.value)} is not ${{ int: 'an integer', number: 'a number', bool: 'true or false', str: 'a string', enum: 'a string', strings: 'a list of strings', 'strings|str': 'a string or a list of strings', stringLists: 'a list of lists of strings', table: 'a table', any: 'valid' }[f[0]]}`,
        );
      } else if (f[0] === 'enum' && f[1] && !f[1].includes(e.value as string)) {
        c.error(
          e.valueSpan,
          `${name}.${key}: '${String(e.value)}' is not one of ${f[1].map((x) => `'${x}'`).join(', ')}`,
        );
      }
    }
  }
}

/** Model. */
function readModel(cx: TorchtitanImport) {
  const { c, ctx, header, origins, get, at } = cx;
  const modelName = get<string>('model', 'name');
  const flavor = get<string>('model', 'flavor');
  const seqLen = get<number>('training', 'seq_len');
  let model: string | ArchSpec | undefined = ctx.model ?? header?.model;
  if (model === undefined && modelName === 'llama3') model = flavorArch(flavor, seqLen);
  if (model === undefined && ctx.assetsModel) {
    model = ctx.assetsModel;
    c.info(
      at('model', 'hf_assets_path'),
      `the model's shape is read from ${ctx.assetsModel} (torchtitan builds ${modelName} ${flavor} from its Python flavor table)`,
    );
  }
  if (header?.model !== undefined && ctx.model === undefined) origins.set('model', { span: header.span });
  else origins.set('model', { span: at('model', 'flavor'), name: 'model.flavor' });
  const layers = ctx.modelSpec?.layers ?? (typeof model === 'object' ? model.layers : undefined);
  return { modelName, flavor, seqLen, model, layers };
}

/**
 * The world size: the command line's, else the header's, else what the degrees fix (data_parallel_shard_degree
 * given), else 8 GPUs. `rest` is replicate × context × tensor × pipeline.
 */
function readWorld(cx: TorchtitanImport, rest: number, shard: number) {
  const { c, ctx, header, at } = cx;
  let gpusPerNode = ctx.gpusPerNode ?? header?.cluster?.gpusPerNode;
  let nodes = ctx.nodes ?? header?.cluster?.nodes;
  if (ctx.worldSize !== undefined && ctx.gpusPerNode === undefined && ctx.nodes === undefined) {
    ({ nodes, gpusPerNode } = splitWorld(ctx.worldSize, gpusPerNode));
  }
  // One of nodes / GPUs per node given: the other from the degrees when they fix the world size, else the default.
  if ((nodes === undefined) !== (gpusPerNode === undefined)) {
    const fixed = shard >= 1 ? rest * shard : undefined;
    if (nodes !== undefined) gpusPerNode = fixed && fixed % nodes === 0 ? fixed / nodes : 8;
    else nodes = fixed && gpusPerNode && fixed % gpusPerNode === 0 ? fixed / gpusPerNode : 1;
  }
  let world = gpusPerNode !== undefined && nodes !== undefined ? gpusPerNode * nodes : undefined;
  if (world === undefined && shard >= 1) {
    world = rest * shard;
    ({ nodes, gpusPerNode } = splitWorld(world));
  }
  if (world === undefined) {
    world = 8;
    ({ nodes, gpusPerNode } = splitWorld(world));
    c.warn(
      at('parallelism', 'data_parallel_shard_degree'),
      'the world size is not in a torchtitan config (NGPU / torchrun --nproc_per_node × --nnodes) and data_parallel_shard_degree is -1; Layerplan assumes 8 GPUs (pass --nodes / --gpus-per-node)',
    );
  }
  return { gpusPerNode, nodes, world };
}

/** Parallel degrees (parallel_dims.py _validate). */
function readDegrees(cx: TorchtitanImport, seqLen: number) {
  const { c, get, at, origin } = cx;
  const rep = get<number>('parallelism', 'data_parallel_replicate_degree');
  let shard = get<number>('parallelism', 'data_parallel_shard_degree');
  const cp = get<number>('parallelism', 'context_parallel_degree');
  const tp = get<number>('parallelism', 'tensor_parallel_degree');
  const pp = get<number>('parallelism', 'pipeline_parallel_degree');
  const ep = get<number>('parallelism', 'expert_parallel_degree');
  const etp = get<number>('parallelism', 'expert_tensor_parallel_degree');
  for (const [key, v] of [
    ['data_parallel_replicate_degree', rep],
    ['context_parallel_degree', cp],
    ['tensor_parallel_degree', tp],
    ['pipeline_parallel_degree', pp],
    ['expert_parallel_degree', ep],
    ['expert_tensor_parallel_degree', etp],
  ] as const) {
    if (!(v >= 1)) c.error(at('parallelism', key), `parallelism.${key}: ${v} must be at least 1 (parallel_dims.py)`);
  }
  if (!(shard === -1 || shard >= 1)) {
    c.error(
      at('parallelism', 'data_parallel_shard_degree'),
      `parallelism.data_parallel_shard_degree: ${shard} must be -1 (the rest) or at least 1 (parallel_dims.py)`,
    );
  }
  const rest = rep * cp * tp * pp;
  const { gpusPerNode, nodes, world } = readWorld(cx, rest, shard);
  if (shard === -1) shard = Math.floor(world / rest);
  if (shard < 1 || rep * shard * cp * tp * pp !== world) {
    c.error(
      at('parallelism', 'data_parallel_shard_degree'),
      `data_parallel_replicate × shard × context × tensor × pipeline = ${rep} × ${shard} × ${cp} × ${tp} × ${pp} = ${rep * shard * cp * tp * pp} is not the world size ${world} (parallel_dims.py)`,
    );
  }
  if (ep > 1) {
    if (etp !== tp && etp !== 1) {
      c.error(
        at('parallelism', 'expert_tensor_parallel_degree'),
        `parallelism.expert_tensor_parallel_degree: ${etp}; torchtitan supports ETP = TP (${tp}) or 1 with expert parallelism (parallel_dims.py)`,
      );
    }
    if ((shard * cp * tp) % (etp * ep) !== 0) {
      c.error(
        at('parallelism', 'expert_parallel_degree'),
        `data_parallel_shard × context × tensor = ${shard * cp * tp} is not divisible by expert_tensor × expert = ${etp * ep} (parallel_dims.py build_mesh)`,
      );
    }
  }
  const fsdp = shard > 1 || cp > 1;
  if (rep > 1 && !fsdp && world !== rep) {
    c.error(
      at('parallelism', 'data_parallel_replicate_degree'),
      'DDP has not supported > 1D parallelism (llama3/infra/parallelize.py): with tensor, pipeline or context parallelism, shard the data-parallel degree (data_parallel_shard_degree)',
    );
  }
  if (seqLen % (tp * 2 * cp) !== 0) {
    c.error(
      at('training', 'seq_len'),
      `training.seq_len: ${seqLen} must be divisible by tensor × 2 × context = ${tp * 2 * cp} (parallel_dims.py seq_len_divisor)`,
    );
  }
  if (get<string | null>('parallelism', 'context_parallel_load_balancer') === '') {
    c.error(
      at('parallelism', 'context_parallel_load_balancer'),
      'parallelism.context_parallel_load_balancer: "" is rejected; leave it unset to disable (job_config.py)',
    );
  }
  for (const [path, key] of [
    ['parallel.tensor', 'tensor_parallel_degree'],
    ['parallel.pipeline', 'pipeline_parallel_degree'],
    ['parallel.context', 'context_parallel_degree'],
    ['parallel.expert', 'expert_parallel_degree'],
    ['parallel.data', 'data_parallel_shard_degree'],
    ['parallel', 'data_parallel_shard_degree'],
  ]) {
    origin(path, 'parallelism', key);
  }
  return { rep, shard, cp, tp, pp, ep, etp, gpusPerNode, nodes, world, fsdp };
}
type Degrees = ReturnType<typeof readDegrees>;

/** Batch (train.py L98-215). */
function readBatch(cx: TorchtitanImport, { rep, shard, pp }: Degrees) {
  const { c, get, at, origin } = cx;
  const local = get<number>('training', 'local_batch_size');
  const gbsRaw = get<number>('training', 'global_batch_size');
  const batchDegree = rep * shard;
  const gbs = gbsRaw < 0 ? local * batchDegree : gbsRaw;
  let accum = 1;
  if (!(local >= 1)) c.error(at('training', 'local_batch_size'), 'training.local_batch_size must be at least 1');
  else if (gbs % (local * batchDegree) !== 0) {
    c.error(
      at('training', 'global_batch_size'),
      `training.global_batch_size: ${gbs} is not divisible by local_batch_size × data-parallel degree = ${local} × ${batchDegree} = ${local * batchDegree} (train.py)`,
    );
  } else accum = gbs / (local * batchDegree);
  origin('training.globalBatch', 'training', gbsRaw < 0 ? 'local_batch_size' : 'global_batch_size');
  origin('training.microBatch', 'training', pp > 1 ? 'local_batch_size' : 'local_batch_size');
  origin('training.seqLen', 'training', 'seq_len');
  return { local, accum };
}
type Batch = ReturnType<typeof readBatch>;

/** Pipeline (pipeline_parallel.py). */
function readPipeline(cx: TorchtitanImport, { pp }: Degrees, batch: Batch, layers: number | undefined) {
  const { c, get, at } = cx;
  const scheduleName = get<string>('parallelism', 'pipeline_parallel_schedule');
  const scheduleKey = scheduleName.toLowerCase();
  if (!frameworkOptions().TORCHTITAN_SCHEDULES.some((s) => s.toLowerCase() === scheduleKey)) {
    const hint = suggest(scheduleName, frameworkOptions().TORCHTITAN_SCHEDULES);
    c.error(
      at('parallelism', 'pipeline_parallel_schedule'),
      `parallelism.pipeline_parallel_schedule: '${scheduleName}' is not a schedule torch.distributed.pipelining knows${hint ? ` (did you mean '${hint}'?)` : ''}`,
    );
  }
  const single = SINGLE.has(scheduleKey);
  const ppMicro = get<number>('parallelism', 'pipeline_parallel_microbatch_size');
  const stages =
    pp > 1
      ? readPipelineStages(cx, { pp, single, scheduleName, scheduleKey, ppMicro }, batch, layers)
      : { microBatch: batch.local, v: 1, stageSizes: undefined };
  return { scheduleKey, ppMicro, ...stages };
}

/** The pipeline schedule as the config names it, and its micro-batch size. */
interface PipelineSchedule {
  pp: number;
  single: boolean;
  scheduleName: string;
  scheduleKey: string;
  ppMicro: number;
}

/** With pipeline parallelism: the micro-batch, the stages per rank and the layers per stage. */
function readPipelineStages(
  cx: TorchtitanImport,
  schedule: PipelineSchedule,
  { local, accum }: Batch,
  layers: number | undefined,
): { microBatch: number; v: number; stageSizes: number[] | undefined } {
  const { c, notes, get, at, origin } = cx;
  const { single, scheduleName, scheduleKey, ppMicro } = schedule;
  if (local % ppMicro !== 0) {
    c.error(
      at('parallelism', 'pipeline_parallel_microbatch_size'),
      `Batch size ${local} must be divisible by microbatch_size ${ppMicro} (pipeline_parallel.py build_pipeline_schedule)`,
    );
  }
  const microBatch = ppMicro;
  origin('training.microBatch', 'parallelism', 'pipeline_parallel_microbatch_size');
  const inW = get<number>('parallelism', 'pipeline_parallel_first_stage_less_layers');
  const outW = get<number>('parallelism', 'pipeline_parallel_last_stage_less_layers');
  const perRank = countStagesPerRank(cx, schedule, layers, inW, outW);
  const { v, stageSizes } = readStageSplit(cx, schedule, single ? 1 : perRank, layers, inW, outW);
  if (!['1f1b', 'gpipe', 'interleaved1f1b'].includes(scheduleKey)) {
    c.info(
      at('parallelism', 'pipeline_parallel_schedule'),
      `Layerplan simulates ${scheduleName} as interleaved 1F1B with ${v} stages per rank`,
    );
    notes.push(`the ${scheduleName} schedule is estimated as interleaved 1F1B`);
  }
  const perSchedule = local / ppMicro;
  if (accum > 1) {
    notes.push(
      `torchtitan runs ${accum} pipeline schedules of ${perSchedule} micro-batches per step (gradient accumulation); Layerplan simulates one schedule of ${accum * perSchedule}, with less idle time`,
    );
  }
  origin('parallel.schedule', 'parallelism', 'pipeline_parallel_schedule');
  origin('parallel.virtualStages', 'parallelism', 'pipeline_parallel_layers_per_stage');
  return { microBatch, v, stageSizes };
}

/** The stages per rank: two for a multi-stage schedule, else what pipeline_parallel_layers_per_stage gives. */
function countStagesPerRank(
  cx: TorchtitanImport,
  { pp, single, scheduleName, scheduleKey }: PipelineSchedule,
  layers: number | undefined,
  inW: number,
  outW: number,
): number {
  const { c, get, at } = cx;
  const lps = get<number | null>('parallelism', 'pipeline_parallel_layers_per_stage');
  let stagesPerRank = single ? 1 : 2;
  if (typeof lps === 'number' && layers !== undefined) {
    const nvs = Math.ceil((layers + inW + outW) / lps);
    if (nvs % pp !== 0) {
      c.error(
        at('parallelism', 'pipeline_parallel_layers_per_stage'),
        `Number of virtual stages (${nvs}) must be divisible by pipeline parallel size (${pp}) (pipeline_parallel.py)`,
      );
    } else {
      stagesPerRank = nvs / pp;
      if (single && stagesPerRank !== 1) {
        c.error(
          at('parallelism', 'pipeline_parallel_layers_per_stage'),
          `Single stage schedule requires exactly 1 stage per rank, but got ${stagesPerRank} (pipeline_parallel.py)`,
        );
      }
      if (!single && stagesPerRank < 2) {
        c.error(
          at('parallelism', 'pipeline_parallel_layers_per_stage'),
          `Multi-stage schedule requires at least 2 stages per rank, but got ${stagesPerRank} (pipeline_parallel.py)`,
        );
      }
    }
  }
  if (['zbvzerobubble', 'dualpipev'].includes(scheduleKey) && stagesPerRank !== 2) {
    c.error(
      at('parallelism', 'pipeline_parallel_schedule'),
      `${scheduleName} places two stages per rank in a V; it got ${stagesPerRank} (pipeline_parallel.py)`,
    );
  }
  return stagesPerRank;
}

/**
 * The layers per stage: module_fqns_per_model_part, else torchtitan's own split (and the stages per rank the parts
 * give).
 */
function readStageSplit(
  cx: TorchtitanImport,
  { pp, single }: PipelineSchedule,
  perRank: number,
  layers: number | undefined,
  inW: number,
  outW: number,
): { v: number; stageSizes: number[] | undefined } {
  const { c, entry, get, at, origin } = cx;
  let v = perRank;
  let stageSizes: number[] | undefined;
  const fqns = get<string[][] | null>('parallelism', 'module_fqns_per_model_part');
  if (Array.isArray(fqns)) {
    if (fqns.length % pp !== 0) {
      c.error(
        at('parallelism', 'module_fqns_per_model_part'),
        `module_fqns_per_model_part: ${fqns.length} parts are not divisible by the ${pp} pipeline ranks (pipeline_parallel.py)`,
      );
    } else {
      v = single ? 1 : fqns.length / pp;
      const ix = fqns.map((part) =>
        part
          .map((m) => /^layers\.(\d+)$/.exec(m))
          .filter((m) => m)
          .map((m) => Number(m![1])),
      );
      const flat = ix.flat();
      if (layers !== undefined && (flat.length !== layers || flat.some((l, i) => l !== i))) {
        c.warn(
          at('parallelism', 'module_fqns_per_model_part'),
          `module_fqns_per_model_part: the parts should hold layers.0 … layers.${layers - 1} once each, in order`,
        );
      } else stageSizes = ix.map((p) => p.length);
    }
    origin('stages', 'parallelism', 'module_fqns_per_model_part');
  } else if (layers !== undefined) {
    const sizes = torchtitanStages(pp * v, layers, inW, outW);
    if (typeof sizes === 'string') {
      c.error(
        at('parallelism', 'pipeline_parallel_degree'),
        `${sizes} (pipeline_parallel.py generate_llm_fqn_per_model_part)`,
      );
    } else stageSizes = sizes;
    origin(
      'stages',
      'parallelism',
      entry('parallelism', 'pipeline_parallel_first_stage_less_layers')
        ? 'pipeline_parallel_first_stage_less_layers'
        : 'pipeline_parallel_degree',
    );
  }
  return { v, stageSizes };
}

/** Precision (train.py, distributed/utils.py maybe_enable_amp, components/quantization). */
function readPrecision(cx: TorchtitanImport, { fsdp, tp, pp }: Degrees) {
  const { c, get, at, origin } = cx;
  const trainingDtype = get<string>('training', 'dtype');
  const mpParam = get<string>('training', 'mixed_precision_param');
  let dtype: NonNullable<Plan['training']>['dtype'];
  if (trainingDtype === 'bfloat16') dtype = 'bf16';
  else if (fsdp || (tp === 1 && pp === 1)) dtype = mpParam === 'bfloat16' ? 'bf16' : 'fp32';
  else {
    dtype = 'fp32';
    if (mpParam === 'bfloat16') {
      c.warn(
        at('training', 'mixed_precision_param', at('parallelism', 'tensor_parallel_degree')),
        'Mixed precision training with TP or PP is only supported when FSDP/HSDP/CP is enabled: torchtitan disables it and trains in float32 (distributed/utils.py maybe_enable_amp); shard the data-parallel degree or set training.dtype = "bfloat16"',
      );
    }
  }
  origin('training.dtype', 'training', trainingDtype === 'bfloat16' ? 'dtype' : 'mixed_precision_param');
  const converters = get<string[]>('model', 'converters') ?? [];
  let fp8Recipe: NonNullable<Plan['training']>['fp8Recipe'];
  for (const conv of converters) {
    if (!frameworkOptions().TORCHTITAN_CONVERTERS.includes(conv)) {
      const hint = suggest(conv, frameworkOptions().TORCHTITAN_CONVERTERS);
      c.error(
        at('model', 'converters'),
        `model.converters: '${conv}' is not a registered converter (protocols/model_converter.py)${hint ? `; did you mean '${hint}'?` : ''}`,
      );
    }
  }
  const quantizers = converters.filter((x) => x.includes('quantize'));
  if (new Set(quantizers.map((x) => x.split('.').pop())).size > 1) {
    c.error(
      at('model', 'converters'),
      'model.converters: quantize converters must all be float8 or all mx (components/quantization/__init__.py)',
    );
  }
  if (converters.includes('quantize.linear.float8')) {
    dtype = 'fp8';
    const recipe = get<string | null>('quantize.linear.float8', 'recipe_name');
    fp8Recipe = recipe === 'rowwise' || recipe === 'rowwise_with_gw_hp' ? 'blockwise' : 'current';
    if (recipe?.startsWith('rowwise')) {
      c.info(
        at('quantize.linear.float8', 'recipe_name'),
        `the ${recipe} recipe (a scale per row) is estimated as blockwise scaling`,
      );
    }
    if (recipe && get<boolean>('quantize.linear.float8', 'enable_fsdp_float8_all_gather')) {
      c.error(
        at('quantize.linear.float8', 'enable_fsdp_float8_all_gather'),
        'enable_fsdp_float8_all_gather must be false with a recipe_name (quantization/float8.py)',
      );
    }
    origin('training.dtype', 'model', 'converters');
  } else if (converters.includes('quantize.linear.mx')) {
    dtype = 'fp8';
    fp8Recipe = 'blockwise';
    c.info(
      at('model', 'converters'),
      'MXFP8 (a shared scale per 32 elements) is estimated as fp8 with blockwise scaling',
    );
  }
  return { dtype, fp8Recipe };
}

/** Activation checkpointing (activation_checkpoint.py). */
function readRecompute(cx: TorchtitanImport) {
  const { c, notes, get, at, origin } = cx;
  const mode = get<string>('activation_checkpoint', 'mode');
  const option = get<string>('activation_checkpoint', 'selective_ac_option');
  let recompute: 'none' | 'selective' | 'full' = mode === 'full' ? 'full' : mode === 'none' ? 'none' : 'selective';
  const compile = get<boolean>('compile', 'enable') && (get<string[]>('compile', 'components') ?? []).includes('model');
  if (mode === 'selective') {
    if (option === 'op') recompute = 'selective';
    else if (/^\d+$/.test(option)) {
      const n = Number(option);
      recompute = 'full';
      if (n > 1) {
        c.info(
          at('activation_checkpoint', 'selective_ac_option'),
          `checkpointing every ${n}th layer: Layerplan estimates full recomputation of every layer (more compute, less memory than this)`,
        );
        notes.push(`selective_ac_option "${option}" (every ${n}th layer) is estimated as full recomputation`);
      }
    } else {
      c.error(
        at('activation_checkpoint', 'selective_ac_option'),
        `Invalid selective AC option: ${option} ('op' or a number) (activation_checkpoint.py)`,
      );
    }
  } else if (mode === 'memory_budget') {
    if (!compile) {
      c.error(
        at('activation_checkpoint', 'mode'),
        'memory_budget activation checkpointing needs compile.enable with "model" in compile.components (activation_checkpoint.py)',
      );
    }
    c.info(
      at('activation_checkpoint', 'mode'),
      'the compiler chooses what to recompute under a memory budget: estimated as selective recomputation',
    );
  }
  origin('training.recompute', 'activation_checkpoint', 'mode');
  if (get<boolean>('parallelism', 'enable_async_tensor_parallel') && !compile) {
    c.error(
      at('parallelism', 'enable_async_tensor_parallel'),
      'async tensor parallel needs compile.enable with "model" in compile.components (tensor_parallel.py maybe_enable_async_tp)',
    );
  }
  return { recompute, compile };
}

/** Optimizer (components/optimizer.py). */
function checkOptimizer(cx: TorchtitanImport, { ep, pp, rep, shard }: Degrees): string {
  const { c, notes, get, at } = cx;
  const optName = get<string>('optimizer', 'name');
  if (!['Adam', 'AdamW'].includes(optName)) {
    c.error(
      at('optimizer', 'name'),
      `optimizer.name: '${optName}' is not implemented (Adam or AdamW; components/optimizer.py)`,
    );
  }
  if (get<boolean>('optimizer', 'early_step_in_backward') && (ep > 1 || pp > 1)) {
    c.error(
      at('optimizer', 'early_step_in_backward'),
      'optimizer.early_step_in_backward is not supported with expert or pipeline parallelism (components/optimizer.py)',
    );
  }
  if (rep > 1 && shard > 1) {
    c.info(
      at('parallelism', 'data_parallel_replicate_degree'),
      `HSDP shards within groups of ${shard} and replicates ${rep} times; Layerplan shards over all ${rep * shard} data ranks (its memory is lower than HSDP's)`,
    );
    notes.push('HSDP is estimated as sharding over every data-parallel rank');
  }
  if (get<boolean>('training', 'enable_cpu_offload')) {
    notes.push('training.enable_cpu_offload: the estimate keeps parameters, gradients and optimizer states on the GPU');
  }
  return optName;
}

/** The plan, when the model is known. */
function writePlan(
  cx: TorchtitanImport,
  parts: {
    model: ReturnType<typeof readModel>;
    degrees: Degrees;
    batch: Batch;
    pipeline: ReturnType<typeof readPipeline>;
    precision: ReturnType<typeof readPrecision>;
    recompute: ReturnType<typeof readRecompute>;
    optName: string;
  },
): void {
  const { c, ctx, header, anchor, out, origins, get, at } = cx;
  const { model, modelName, flavor, seqLen } = parts.model;
  const { rep, shard, cp, tp, pp, ep, etp, gpusPerNode, nodes, fsdp } = parts.degrees;
  const { local, accum } = parts.batch;
  const { scheduleKey, ppMicro, microBatch, v, stageSizes } = parts.pipeline;
  const { dtype, fp8Recipe } = parts.precision;
  const { recompute, compile } = parts.recompute;
  const { optName } = parts;
  if (model === undefined) {
    c.info(
      at('model', 'flavor'),
      `torchtitan builds ${modelName} ${flavor} from its Python flavor table, which Layerplan does not have: give the model (--model, or a config.json in hf_assets_path) for the memory and time checks`,
    );
    return;
  }
  const gpu = ctx.gpu ?? header?.cluster?.gpu;
  if (!gpu) c.info(anchor, `torchtitan does not name the GPU; estimated on ${DEFAULT_GPU} (pass --gpu)`);
  const dp = rep * shard;
  const m = pp > 1 ? (local / ppMicro) * accum : accum;
  const training: NonNullable<Plan['training']> = {
    globalBatch: microBatch * m * dp,
    microBatch,
    seqLen,
    dtype,
    ...(fp8Recipe ? { fp8Recipe } : {}),
    optimizer: optName === 'AdamW' ? 'adamw' : 'adam',
    recompute,
    framework: 'torchtitan',
    overlapGradReduce: true,
    dropout: false,
  };
  const schedule = pp > 1 ? (scheduleKey === 'gpipe' ? 'gpipe' : v > 1 ? 'interleaved' : '1f1b') : undefined;
  out.plan = {
    model,
    cluster: { ...(header?.cluster ?? {}), gpu: gpu ?? DEFAULT_GPU, gpusPerNode: gpusPerNode!, nodes: nodes! },
    training,
    parallel: {
      data: dp,
      tensor: tp,
      pipeline: pp,
      ...(cp > 1 ? { context: cp } : {}),
      ...(ep > 1 ? { expert: ep } : {}),
      // torchtitan's expert tensor degree (default 1) where it is not the tensor degree.
      ...(ep > 1 && etp !== tp ? { expertTensor: etp } : {}),
      ...(schedule ? { schedule } : {}),
      ...(v > 1 ? { virtualStages: v } : {}),
      sequenceParallel: tp > 1,
      zero: fsdp ? 3 : 0,
      distributedOptimizer: false,
      // Async tensor parallel (with torch.compile) overlaps the tensor-parallel collectives with the GEMMs.
      ...(tp > 1 && compile && get<boolean>('parallelism', 'enable_async_tensor_parallel')
        ? { tpCommOverlap: true }
        : {}),
    },
  };
  if (stageSizes && pp > 1) out.split = stageSizes;
  origins.set('cluster', { span: anchor });
  origins.set('cluster.gpu', { span: header?.span ?? anchor });
}
