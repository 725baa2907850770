/**
 * DeepSpeed configs (ds_config.json) as plans, checked as DeepSpeed v0.19.5 checks them (commit
 * cf44300453eb0af79ed84ed8f1cb49d57478bd76): deepspeed/runtime/config.py (_set_batch_related_parameters
 * L929-975, _batch_assertion L912-927, _do_error_check L1004-1028), the pydantic sections
 * (runtime/zero/config.py, zero/offload_config.py, precision_config.py, tensor_parallel/config.py; extra="forbid"),
 * runtime/pipe/engine.py L76-111, and the launcher (launcher/runner.py).
 */
import { findNodeAtLocation, type Node as JsonNode } from 'jsonc-parser';
import { IssueCollector, parseJsonWithTree, type Issue, type Plan } from '../../plan/plan';
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
import { DEEPSPEED_VERSION, frameworkOptions } from './options.generated';
import { suggest, type DeepSpeedField } from './options';
import { runShell, type Span } from './shell';
import { wordSpan } from './megatron';

const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** The span of a JSON path's property (or value), as IssueCollector locates it. */
function jsonSpan(root: JsonNode | undefined, path: (string | number)[]): Span | undefined {
  const node = root && findNodeAtLocation(root, path);
  if (!node) return undefined;
  const target = node.parent?.type === 'property' ? node.parent : node;
  return { start: target.offset, end: target.offset + target.length };
}

/** A value against a key's kind (pydantic lax mode: an int may be written 5e8; "auto" is dropped before validation). */
function checkValue(c: IssueCollector, path: (string | number)[], v: unknown, f: DeepSpeedField): void {
  const name = path.join('.');
  if (v === 'auto' || v === null) return;
  switch (f.k) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) {
        return c.error(path, `${name}: ${JSON.stringify(v)} is not an integer`);
      }
      break;
    case 'number':
      if (typeof v !== 'number') return c.error(path, `${name}: ${JSON.stringify(v)} is not a number`);
      break;
    case 'bool':
      if (typeof v !== 'boolean') return c.error(path, `${name}: ${JSON.stringify(v)} is not true or false`);
      break;
    case 'enum':
      if (!f.c!.some((x) => x === v || String(x) === String(v).toLowerCase())) {
        return c.error(
          path,
          `${name}: ${JSON.stringify(v)} is not one of ${f.c!.map((x) => JSON.stringify(x)).join(', ')}`,
        );
      }
      break;
    case 'str':
      if (typeof v !== 'string') return c.error(path, `${name}: ${JSON.stringify(v)} is not a string`);
      break;
    case 'object':
      if (typeof v !== 'object' && typeof v !== 'boolean') {
        return c.error(path, `${name}: ${JSON.stringify(v)} is not an object`);
      }
      break;
  }
  if (typeof v === 'number') {
    if (f.ge !== undefined && v < f.ge) c.error(path, `${name}: ${v} is less than ${f.ge}`);
    if (f.le !== undefined && v > f.le) c.error(path, `${name}: ${v} is more than ${f.le}`);
  }
  if (f.deprecated) {
    c.warn(
      path,
      `${name} is deprecated in ${DEEPSPEED_VERSION}${typeof f.deprecated === 'string' ? `; use ${f.deprecated}` : ''}`,
    );
  }
}

/** Keys of a section against DeepSpeed's own model of it. */
function checkSection(
  c: IssueCollector,
  path: string[],
  obj: Record<string, unknown>,
  fields: Record<string, DeepSpeedField>,
  strict: boolean,
): void {
  for (const [k, v] of Object.entries(obj)) {
    const f = fields[k];
    if (!f) {
      const hint = suggest(k, Object.keys(fields));
      const where = path.join('.');
      if (strict) {
        c.error(
          [...path, k],
          `${where}.${k}: not a field of ${where} in ${DEEPSPEED_VERSION} (pydantic extra="forbid" rejects it)${hint ? `; did you mean ${hint}?` : ''}`,
        );
      } else {
        c.warn(
          [...path, k],
          `${where}.${k}: ${DEEPSPEED_VERSION} does not read this key${hint ? ` (did you mean ${hint}?)` : ''}`,
        );
      }
      continue;
    }
    checkValue(c, [...path, k], v, f);
    if (f.fields && v && typeof v === 'object' && !Array.isArray(v)) {
      checkSection(c, [...path, k], v as Record<string, unknown>, f.fields, strict);
    }
  }
}

/** What a launch script around the config says: the deepspeed launcher's process counts, the header. */
export interface DeepSpeedLauncher {
  nodes?: number;
  gpusPerNode?: number;
  header?: ReturnType<typeof readHeader>;
  /** The --deepspeed_config the script names. */
  config?: string;
}

/** Reads the deepspeed launcher line of a script (launcher/runner.py parse_args) and the config it names. */
export function readDeepSpeedScript(text: string, c?: OffsetIssues): DeepSpeedLauncher {
  const out: DeepSpeedLauncher = { header: readHeader(text) };
  let result;
  try {
    result = runShell(text);
  } catch {
    return out;
  }
  for (const cmd of result.commands) {
    const w = cmd.words;
    if ((w[0]?.text.split('/').pop() ?? '') !== 'deepspeed') continue;
    let k = 1;
    for (; k < w.length && w[k].text.startsWith('-'); k++) {
      const [flag, inline] = w[k].text.split('=', 2);
      const spec = frameworkOptions().DEEPSPEED_LAUNCHER[flag];
      if (!spec) {
        const hint = suggest(flag, Object.keys(frameworkOptions().DEEPSPEED_LAUNCHER));
        c?.error(
          wordSpan(w[k]),
          `unrecognized launcher option ${flag} (${DEEPSPEED_VERSION} launcher/runner.py)${hint ? `; did you mean ${hint}?` : ''}`,
        );
        continue;
      }
      if (spec[0] === 'flag') continue;
      const value = inline ?? w[++k]?.text;
      const n = Number(value);
      if (spec[1] === 'num_nodes' && Number.isInteger(n) && n > 0) out.nodes = n;
      if (spec[1] === 'num_gpus' && Number.isInteger(n) && n > 0) out.gpusPerNode = n;
      if (spec[0] === 'int' && value !== undefined && !Number.isInteger(n) && !w[k]?.unknown) {
        c?.error(wordSpan(w[k]), `${flag}: invalid int value: '${value}'`);
      }
    }
    // The user script's arguments: --deepspeed_config <file> (deepspeed/__init__.py add_config_arguments).
    for (let j = k + 1; j < w.length; j++) {
      const t = w[j].text;
      if (t === '--deepspeed_config' || t === '--deepscale_config') out.config = w[j + 1]?.text;
      else if (t.startsWith('--deepspeed_config=')) out.config = t.slice('--deepspeed_config='.length);
    }
  }
  return out;
}

/** What the sections of importDeepSpeed share: the config, where its keys are, and what is collected. */
interface DeepSpeedImport {
  c: IssueCollector;
  ctx: LaunchContext;
  /** The config's top-level object. */
  j: Record<string, unknown>;
  /** The first key's path: whole-file remarks go there. */
  firstPath: (string | number)[];
  anchor: Span;
  origins: Map<string, Origin>;
  notes: string[];
  out: LaunchImport;
  /** Records that plan field `key` comes from the JSON path `path`. */
  origin(key: string, path: (string | number)[], name?: string): void;
}

/**
 * Parses the config; the context is undefined when it is not a JSON object (the result then holds the syntax
 * errors).
 */
function deepSpeedImport(text: string, ctx: LaunchContext): { out: LaunchImport; cx?: DeepSpeedImport } {
  const { value, root, syntax } = parseJsonWithTree(text);
  const c = new IssueCollector(text, root);
  c.issues.push(...syntax);
  const origins = new Map<string, Origin>();
  const notes: string[] = [];
  const firstKey = root?.children?.[0];
  const anchor: Span = firstKey
    ? { start: firstKey.offset, end: firstKey.offset + firstKey.length }
    : { start: 0, end: 0 };
  const out: LaunchImport = { kind: 'deepspeed', version: DEEPSPEED_VERSION, issues: c.issues, origins, anchor, notes };
  if (syntax.length || !value || typeof value !== 'object' || Array.isArray(value)) return { out };
  const j = value as Record<string, unknown>;
  // Whole-file remarks go on the first key, not on the whole document.
  const firstPath: (string | number)[] = firstKey?.children?.[0] ? [firstKey.children[0].value as string] : [];
  const origin = (key: string, path: (string | number)[], name?: string) => {
    const span = jsonSpan(root, path);
    if (span) origins.set(key, { span, name: name ?? path.join('.') });
  };
  return { out, cx: { c, ctx, j, firstPath, anchor, origins, notes, out, origin } };
}

/**
 * Reads a DeepSpeed config as a plan. The config does not name the model, the GPUs or the world size:
 * they come from `ctx` (the command line's --model, --gpu, --world-size …), from the launch script that
 * runs this config (`ctx.companion`), or from Layerplan's header in that script.
 */
export function importDeepSpeed(text: string, ctx: LaunchContext = {}): LaunchImport {
  const { out, cx } = deepSpeedImport(text, ctx);
  if (!cx) return out;
  checkKeys(cx);
  const companion = readCompanion(cx);
  const degrees = readDegrees(cx);
  const world = readWorld(cx, companion);
  const batch = readBatch(cx, degrees, world.world);
  const dtype = readPrecision(cx);
  const zero = readZero(cx, degrees.pp);
  const optimizer = readOptimizer(cx);
  const recompute = readRecompute(cx, degrees);
  writePlan(cx, { header: companion.header, degrees, world, batch, dtype, zero, optimizer, recompute });
  return out;
}

/** Keys and value types against DeepSpeed's own config classes. */
function checkKeys(cx: DeepSpeedImport): void {
  const { c, j } = cx;
  for (const [k, v] of Object.entries(j)) {
    const f = frameworkOptions().DEEPSPEED_TOP[k];
    const section = frameworkOptions().DEEPSPEED_SECTIONS[k];
    if (!f && !section) {
      if (k === 'bfloat16' || k === 'layerplan') continue;
      const hint = suggest(k, Object.keys(frameworkOptions().DEEPSPEED_TOP));
      c.warn(
        [k],
        `${k}: ${DEEPSPEED_VERSION} does not read this key (unknown top-level keys are ignored)${hint ? `; did you mean ${hint}?` : ''}`,
      );
      continue;
    }
    if (f) checkValue(c, [k], v, f);
    if (section && v && typeof v === 'object' && !Array.isArray(v) && !['optimizer', 'scheduler'].includes(k)) {
      checkSection(c, [k], v as Record<string, unknown>, section.fields, section.strict);
    }
  }
}

/** The companion launch script: world size, header. */
function readCompanion(cx: DeepSpeedImport) {
  const { ctx, out } = cx;
  const script = ctx.companion ? readDeepSpeedScript(ctx.companion.text) : undefined;
  const header = script?.header;
  out.header = header;
  return { script, header };
}

/** Parallel degrees DeepSpeed knows from the config. */
function readDegrees(cx: DeepSpeedImport) {
  const { j, origin } = cx;
  const tpSection = (j.tensor_parallel ?? {}) as Record<string, unknown>;
  const tp = posInt(tpSection.autotp_size) ? tpSection.autotp_size : 1;
  const sp = posInt(j.sequence_parallel_size) ? j.sequence_parallel_size : 1;
  const pipe = (j.pipeline ?? {}) as Record<string, unknown>;
  const pp = posInt(pipe.stages) ? pipe.stages : 1;
  origin('parallel.tensor', ['tensor_parallel', 'autotp_size']);
  origin('parallel.context', ['sequence_parallel_size']);
  origin('parallel.pipeline', ['pipeline', 'stages']);
  return { tp, sp, pipe, pp };
}
type Degrees = ReturnType<typeof readDegrees>;

/** World size: options, then the script that runs this config, then Layerplan's header. */
function readWorld(cx: DeepSpeedImport, { script, header }: ReturnType<typeof readCompanion>) {
  const { ctx } = cx;
  let gpusPerNode = ctx.gpusPerNode ?? script?.gpusPerNode ?? header?.cluster?.gpusPerNode;
  let nodes = ctx.nodes ?? script?.nodes ?? header?.cluster?.nodes;
  if (ctx.worldSize !== undefined && ctx.gpusPerNode === undefined && ctx.nodes === undefined) {
    ({ nodes, gpusPerNode } = splitWorld(ctx.worldSize, gpusPerNode));
  }
  // One of nodes / GPUs per node given: the other defaults (8 GPUs per node, one node).
  if ((nodes === undefined) !== (gpusPerNode === undefined)) {
    gpusPerNode ??= 8;
    nodes ??= 1;
  }
  const world = gpusPerNode !== undefined && nodes !== undefined ? gpusPerNode * nodes : ctx.worldSize;
  return { gpusPerNode, nodes, world };
}

/**
 * Batch identity (config.py _set_batch_related_parameters, _batch_assertion). DeepSpeed's world size
 * is the data-parallel one: world / pipeline stages (PipelineModule's topology), / sequence_parallel_size
 * (Ulysses); with AutoTP the config is built before the TP groups exist, so the whole world counts.
 */
function readBatch(cx: DeepSpeedImport, { pp, sp }: Degrees, world: number | undefined) {
  const { c, j, firstPath, origin } = cx;
  const dsWorld = world !== undefined ? world / pp / sp : undefined;
  let tbs = j.train_batch_size;
  let mbs = j.train_micro_batch_size_per_gpu;
  let gas = j.gradient_accumulation_steps;
  for (const k of ['train_batch_size', 'train_micro_batch_size_per_gpu', 'gradient_accumulation_steps']) {
    if (j[k] !== undefined && j[k] !== 'auto' && !posInt(j[k])) {
      c.error([k], `${k}: ${JSON.stringify(j[k])} is not a positive integer`);
    }
  }
  if (tbs === 'auto') tbs = undefined;
  if (mbs === 'auto') mbs = undefined;
  if (gas === 'auto') gas = undefined;
  const elastic = (j.elasticity as Record<string, unknown> | undefined)?.enabled === true;
  if (posInt(tbs) && posInt(mbs) && posInt(gas)) {
    const per = mbs * gas;
    if (dsWorld !== undefined && Number.isInteger(dsWorld)) {
      if (tbs !== per * dsWorld) {
        c.error(
          ['train_batch_size'],
          `train_batch_size: ${tbs} ≠ train_micro_batch_size_per_gpu × gradient_accumulation_steps × data-parallel size = ${mbs} × ${gas} × ${dsWorld} = ${per * dsWorld}`,
          {
            title: `Set train_batch_size to ${per * dsWorld}`,
            edits: [{ path: ['train_batch_size'], value: per * dsWorld }],
          },
        );
      }
    } else if (tbs % per !== 0) {
      const use = Math.max(per, Math.round(tbs / per) * per);
      c.error(
        ['train_batch_size'],
        `train_batch_size: ${tbs} is not train_micro_batch_size_per_gpu × gradient_accumulation_steps × data-parallel size for any data-parallel size (${mbs} × ${gas} = ${per} does not divide ${tbs}); use ${use}`,
        { title: `Set train_batch_size to ${use}`, edits: [{ path: ['train_batch_size'], value: use }] },
      );
    }
  } else if (dsWorld !== undefined && Number.isInteger(dsWorld) && !elastic) {
    // Two of three: DeepSpeed derives the third by floor division, then asserts the identity.
    const W = dsWorld;
    if (posInt(tbs) && posInt(mbs)) gas = Math.floor(Math.floor(tbs / mbs) / W);
    else if (posInt(tbs) && posInt(gas)) mbs = Math.floor(Math.floor(tbs / W) / gas);
    else if (posInt(mbs) && posInt(gas)) tbs = mbs * gas * W;
    else if (posInt(tbs)) {
      gas = 1;
      mbs = Math.floor(tbs / W);
    } else if (posInt(mbs)) {
      gas = 1;
      tbs = mbs * W;
    } else if (j.train_batch_size === undefined && j.train_micro_batch_size_per_gpu === undefined) {
      c.error(firstPath, 'Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided (config.py)');
    }
    if (
      posInt(tbs) &&
      typeof mbs === 'number' &&
      typeof gas === 'number' &&
      (mbs <= 0 || gas <= 0 || tbs !== mbs * gas * W)
    ) {
      const key = j.train_batch_size !== undefined ? 'train_batch_size' : 'train_micro_batch_size_per_gpu';
      c.error(
        [key],
        `${key}: DeepSpeed derives ${mbs} × ${gas} × ${W} = ${mbs * gas * W} from it over ${W} data-parallel ranks, not train_batch_size ${tbs} (config.py _batch_assertion)`,
      );
    }
  }
  if (
    elastic &&
    ['train_batch_size', 'train_micro_batch_size_per_gpu', 'gradient_accumulation_steps'].some(
      (k) => j[k] !== undefined,
    )
  ) {
    const ignore = (j.elasticity as Record<string, unknown>).ignore_non_elastic_batch_info === true;
    if (!ignore) {
      c.error(
        ['elasticity'],
        'elasticity computes the batch sizes: remove train_batch_size / micro batch / gradient_accumulation_steps, or set elasticity.ignore_non_elastic_batch_info (config.py)',
      );
    }
  }
  origin('training.globalBatch', ['train_batch_size']);
  origin('training.microBatch', ['train_micro_batch_size_per_gpu']);
  return { mbs, gas };
}

/** Precision (precision_config.py; config.py _initialize_params). */
function readPrecision(cx: DeepSpeedImport): NonNullable<Plan['training']>['dtype'] {
  const { c, j, origin } = cx;
  const enabled = (k: string) => {
    const v = j[k] as Record<string, unknown> | undefined;
    return !!v && typeof v === 'object' && (v.enabled === true || v.enabled === 'auto');
  };
  const bf16 = enabled('bf16') || enabled('bfloat16');
  const fp16 = enabled('fp16');
  if (fp16 && bf16) {
    c.error(['bf16', 'enabled'], 'bf16 and fp16 are both enabled; DeepSpeed accepts one mixed-precision mode', {
      title: 'Disable fp16 (keep bf16)',
      edits: [{ path: ['fp16', 'enabled'], value: false }],
    });
  }
  if (enabled('amp') && (fp16 || bf16)) c.error(['amp'], 'amp (Apex) cannot be combined with fp16 or bf16 (engine.py)');
  const autocast = j.torch_autocast as Record<string, unknown> | undefined;
  const autocastDtype = autocast?.enabled === true ? String(autocast.dtype ?? 'bf16') : undefined;
  const dtype: NonNullable<Plan['training']>['dtype'] = bf16
    ? 'bf16'
    : fp16
      ? 'fp16'
      : autocastDtype && /16/.test(autocastDtype)
        ? autocastDtype.includes('bf') || autocastDtype.includes('bfloat')
          ? 'bf16'
          : 'fp16'
        : 'fp32';
  origin('training.dtype', [bf16 ? 'bf16' : 'fp16']);
  return dtype;
}

/** ZeRO (zero/config.py, _do_error_check, pipe/engine.py). */
function readZero(cx: DeepSpeedImport, pp: number) {
  const { c, j, notes, origin } = cx;
  const zeroSection = j.zero_optimization;
  const zeroObj = (zeroSection && typeof zeroSection === 'object' ? zeroSection : {}) as Record<string, unknown>;
  let zero =
    typeof zeroSection === 'boolean' ? (zeroSection ? 1 : 0) : typeof zeroObj.stage === 'number' ? zeroObj.stage : 0;
  if (typeof zeroSection === 'boolean') {
    c.warn(['zero_optimization'], 'zero_optimization as true / false is deprecated (true means stage 1)');
  }
  if (![0, 1, 2, 3].includes(zero)) zero = 0;
  for (const [k, msg] of [
    ['offload_param', 'parameters'],
    ['offload_optimizer', 'optimizer states'],
  ] as const) {
    const off = zeroObj[k] as Record<string, unknown> | undefined;
    if (!off || typeof off !== 'object' || !off.device || off.device === 'none') continue;
    if (k === 'offload_param' && zero !== 3) c.error(['zero_optimization', k], `zero_optimization.${k} needs stage 3`);
    if (k === 'offload_optimizer' && typeof off.ratio === 'number' && off.ratio < 1 && zero !== 3) {
      c.error(['zero_optimization', k, 'ratio'], 'Partial offloading only supported for ZeRO Stage 3 (zero/config.py)');
    }
    c.at(
      ['zero_optimization', k],
      'information',
      `${msg} are offloaded to ${String(off.device)}: Layerplan's estimate keeps them on the GPU (its memory figure is an upper bound, its step time does not include the transfers)`,
    );
    notes.push(`zero_optimization.${k} (${String(off.device)}): the estimate keeps the ${msg} on the GPU`);
  }
  if (zeroObj.cpu_offload === true) {
    notes.push('zero_optimization.cpu_offload (deprecated): the estimate keeps the optimizer states on the GPU');
  }
  if (pp > 1 && zero >= 2) {
    c.error(
      ['zero_optimization', 'stage'],
      'ZeRO-2 and ZeRO-3 are incompatible with pipeline parallelism (runtime/pipe/engine.py)',
    );
  }
  const overlap = typeof zeroObj.overlap_comm === 'boolean' ? zeroObj.overlap_comm : zero === 3;
  origin('parallel.zero', ['zero_optimization', 'stage']);
  origin('training.overlapGradReduce', ['zero_optimization', 'overlap_comm']);
  return { zero, overlap };
}

/** Optimizer (engine.py _configure_basic_optimizer). */
function readOptimizer(cx: DeepSpeedImport): NonNullable<Plan['training']>['optimizer'] {
  const { c, j, origin } = cx;
  const opt = j.optimizer as Record<string, unknown> | undefined;
  const params = opt?.params as Record<string, unknown> | undefined;
  if (params && 'max_grad_norm' in params) {
    c.error(
      ['optimizer', 'params', 'max_grad_norm'],
      "'max_grad_norm' is not supported as an optimizer parameter; use the top-level gradient_clipping (engine.py)",
    );
  }
  if (params && typeof params.lr === 'number' && (params.lr <= 0 || params.lr > 1)) {
    c.warn(['optimizer', 'params', 'lr'], `optimizer.params.lr: ${params.lr} is an unusual learning rate`);
  }
  const optType = typeof opt?.type === 'string' ? opt.type.toLowerCase() : undefined;
  const optimizer: NonNullable<Plan['training']>['optimizer'] =
    optType === 'sgd' ? 'sgd' : optType === 'adamw' ? 'adamw' : 'adam';
  if (optType && !['adam', 'adamw', 'sgd'].includes(optType)) {
    c.at(
      ['optimizer', 'type'],
      'information',
      `the ${String(opt!.type)} optimizer is estimated with Adam's states (two per parameter)`,
    );
  }
  origin('training.optimizer', ['optimizer', 'type']);
  return optimizer;
}

/** Activation checkpointing: DeepSpeed configures it; the model code decides which layers. */
function readRecompute(cx: DeepSpeedImport, { pipe }: Degrees): 'none' | 'full' {
  const { c, j, notes, origin } = cx;
  const ac = j.activation_checkpointing as Record<string, unknown> | undefined;
  const interval = typeof pipe.activation_checkpoint_interval === 'number' ? pipe.activation_checkpoint_interval : 0;
  const recompute: 'none' | 'full' = (ac && typeof ac === 'object') || interval > 0 ? 'full' : 'none';
  if (ac && typeof ac === 'object') {
    c.at(
      ['activation_checkpointing'],
      'information',
      "Layerplan reads this section as full recomputation of every layer (the model's code calls deepspeed.checkpointing.checkpoint where it recomputes)",
    );
    origin('training.recompute', ['activation_checkpointing']);
  } else if (interval > 0) origin('training.recompute', ['pipeline', 'activation_checkpoint_interval']);
  if (interval > 1) {
    notes.push(
      `pipeline.activation_checkpoint_interval ${interval}: checkpoints every ${interval} layers; estimated as full recomputation of every layer`,
    );
  }
  return recompute;
}

/** The plan, when the model is known. */
function writePlan(
  cx: DeepSpeedImport,
  parts: {
    header: LaunchHeader | undefined;
    degrees: Degrees;
    world: ReturnType<typeof readWorld>;
    batch: ReturnType<typeof readBatch>;
    dtype: NonNullable<Plan['training']>['dtype'];
    zero: ReturnType<typeof readZero>;
    optimizer: NonNullable<Plan['training']>['optimizer'];
    recompute: 'none' | 'full';
  },
): void {
  const { c, ctx, firstPath, anchor, out, origins, notes } = cx;
  const { header, dtype, optimizer, recompute } = parts;
  const { tp, sp, pp } = parts.degrees;
  const { world } = parts.world;
  let { gpusPerNode, nodes } = parts.world;
  const { mbs, gas } = parts.batch;
  const { zero, overlap } = parts.zero;
  const model = ctx.model ?? header?.model;
  if (model === undefined) {
    c.at(
      firstPath,
      'information',
      'a DeepSpeed config does not name the model or the GPUs: give the model (layerplan --model, or New Plan from Launch Configuration) for the memory and time checks',
    );
    return;
  }
  if (world === undefined || gpusPerNode === undefined || nodes === undefined) {
    gpusPerNode ??= 8;
    nodes ??= 1;
    c.at(
      firstPath,
      'warning',
      `the world size is not in a DeepSpeed config (the launcher's --num_nodes × --num_gpus); Layerplan assumes ${nodes} × ${gpusPerNode} GPUs (pass --world-size, or --nodes and --gpus-per-node)`,
    );
  }
  const worldSize = gpusPerNode * nodes;
  const dp = Math.max(1, Math.floor(worldSize / (tp * pp * sp)));
  if (worldSize % (tp * pp * sp) !== 0) {
    c.error(
      [tp > 1 ? 'tensor_parallel' : sp > 1 ? 'sequence_parallel_size' : 'pipeline'],
      `the world size ${worldSize} is not divisible by tensor × pipeline × sequence parallel = ${tp} × ${pp} × ${sp}`,
    );
  }
  const micro = posInt(mbs) ? mbs : 1;
  const accum = posInt(gas) ? gas : 1;
  const gpu = ctx.gpu ?? header?.cluster?.gpu;
  if (!gpu) c.at(firstPath, 'information', `DeepSpeed does not name the GPU; estimated on ${DEFAULT_GPU} (pass --gpu)`);
  const headerTraining = header?.training;
  const training: NonNullable<Plan['training']> = {
    globalBatch: micro * accum * dp,
    microBatch: micro,
    ...(headerTraining?.seqLen !== undefined ? { seqLen: headerTraining.seqLen } : {}),
    dtype,
    optimizer,
    recompute,
    framework: 'deepspeed',
    overlapGradReduce: overlap,
    ...(headerTraining?.dropout !== undefined ? { dropout: headerTraining.dropout } : {}),
  };
  if (headerTraining?.seqLen === undefined) {
    notes.push('the sequence length is the data loader’s, not DeepSpeed’s: the estimate uses the model’s (or 2048)');
  }
  out.plan = {
    model,
    cluster: { ...(header?.cluster ?? {}), gpu: gpu ?? DEFAULT_GPU, gpusPerNode, nodes },
    training,
    parallel: {
      data: dp,
      tensor: tp,
      pipeline: pp,
      ...(sp > 1 ? { context: sp } : {}),
      ...(pp > 1 ? { schedule: '1f1b' as const } : {}),
      sequenceParallel: false,
      zero,
      distributedOptimizer: false,
    },
  };
  if (sp > 1) {
    notes.push(
      'sequence_parallel_size is DeepSpeed-Ulysses: the sequence is split and attention heads exchanged by all-to-all; Layerplan estimates it as context parallelism',
    );
  }
  if (pp > 1) notes.push('the pipeline schedule is DeepSpeed’s 1F1B (its PipelineEngine)');
  origins.set('parallel', { span: anchor });
  origins.set('cluster', { span: anchor });
}

/** The issues of a DeepSpeed config (what `layerplan check` prints for one). */
export function deepSpeedIssues(text: string, worldSize?: number): Issue[] {
  // The config alone: what it says, without the remark that it names no model.
  return importDeepSpeed(text, { worldSize }).issues.filter((i) => !/does not name the model/.test(i.message));
}
