import { OUTPUT_ERROR } from '../check/precision';
import { estimate, rangeText, trainingLayerFigures, type CostReport } from '../cost/estimate';
import { allGatherSeconds, reduceScatterSeconds } from '../cost/comm';
import { resolveSetup } from '../cost/resolve';
import { runSettings } from '../cost/profiles';
import { peakInFlight } from '../cost/schedule';
import type { Workload } from '../cost/workload';
import { InputError } from '../errors';
import { findGpu, type Link } from '../hardware/catalog';
import { setPlanPaths, type PlanEdit } from '../plan/edits';
import { formatFor, parseLayerRange, type Plan } from '../plan/plan';
import { parseFormat } from '../quant/formats';
import { paretoAssignments, typicalSqnrDb, type KnapsackLayer } from './precision';
import {
  configEdits,
  divisors,
  frameworkOf,
  inferenceConfigs,
  isLocked,
  trainingConfigs,
  type Config,
  type ModelShape,
  type RuleCounts,
} from './space';
import { splitStages, type StageSplit } from './stages';
import { describeEdits } from './describe';

export { describeEdits };

/**
 * The auto-planner. Enumerates the layouts a framework can run (space.ts), bounds each from below with cheap
 * probes of the cost engine, and runs the full estimate only where a layout could still make the top K:
 * best-first branch and bound. The cost engine is a black box here; the bounds rest on two facts about any
 * pipeline, checked on every plan the search estimates (`boundViolations`):
 *  - time: a stage runs each micro-batch's forward and backward, and cannot start micro-batch 0 before the
 *    stages before it have run it forward, nor finish before they have run it backward, so
 *    step ≥ max over stages s of (Σ_{j<s} (F_j + B_j) / chunks + m × (F_s + B_s));
 *  - memory: a stage holds its weights, gradients and optimizer states (sharded as ZeRO says) and the
 *    activations of every micro-batch in flight (how many: the schedule's op order).
 * Per-layer forward/backward times, states and activations come from one estimate with one layer per stage
 * (the Alpa profiling pass); a stage's are the sums over its layers.
 */

export type Objective = 'time' | 'gpus' | 'cost';

export interface OptimizeOptions {
  objective?: Objective;
  /** Step time the gpus objective must meet, seconds. */
  targetSeconds?: number;
  /** How many candidates (default 10). */
  top?: number;
  /** JSON paths the search leaves as the plan has them ('parallel.tensor', 'training.microBatch', 'precision'). */
  locks?: readonly string[];
  /** Fraction of each GPU's memory kept free (default 0). */
  headroom?: number;
  /** Formats the per-layer precision may take (default: by mode and GPU, plus those the plan names). */
  formats?: readonly string[];
  /**
   * Per layer and format, the SQNR its noise alone gives at the model's output (dB; null: exact), from the
   * model's real weights: calibrated on the model's sensitivities where they were measured, the weights' own
   * SQNR otherwise (node/optimize-file.ts). OUTPUT_ERROR adds them.
   */
  layerSqnr?: Record<string, Record<string, number | null>>;
  /** Called every few estimates. */
  onProgress?: (p: SearchProgress) => void;
  /** Asked every few estimates; true stops the search with what it has (`complete: false`). */
  shouldStop?: () => boolean;
  /** Milliseconds clock (Date.now by default). */
  now?: () => number;
  /** The plan's file, for error messages. */
  file?: string;
  /**
   * Estimate every configuration of the space in full, bounds unused (the brute force the tests compare the
   * search with; a model file's stages are still the inter-op pass's split, without its memory limit).
   */
  exhaustive?: boolean;
}

export interface SearchProgress {
  /** Configurations enumerated and bounded so far. */
  searched: number;
  evaluated: number;
  /** Layouts left to consider, at most (those whose bound beats the current K-th best are fewer). */
  queued: number;
  bestSeconds?: number;
}

export interface Candidate {
  /** The complete plan. */
  plan: Plan;
  /** What changes in the current plan to make it this one (JSON paths; value undefined removes). */
  edits: PlanEdit[];
  iterationSeconds: number;
  mfu: number;
  peakMemoryBytes: number;
  capacityBytes: number;
  /** Predicted SQNR at the model's output (OUTPUT_ERROR over the layers' weight SQNR), null when unknown. */
  outputSqnrDb: number | null;
  gpus: number;
  bubbleFraction: number;
  /** US$ per million tokens (the cost objective), when a price is known. */
  costPerMillionTokens?: number;
  /** Why it ranks where it does, against the current plan. */
  why: string;
  /** What limits it: 'memory', 'bubble', 'communication', 'error budget', 'target time'. */
  binds: string[];
}

export interface SearchResult {
  objective: Objective;
  /** Configurations in the space (after the frameworks' divisibility rules). */
  searched: number;
  /** Full estimates run. */
  evaluated: number;
  /** Configurations never estimated: their bound could not beat the K-th best, or their memory could not fit. */
  pruned: number;
  seconds: number;
  candidates: Candidate[];
  /** Indices into candidates: those no other candidate beats on step time, memory and output error at once. */
  pareto: number[];
  /** What the search could not do, or chose not to (engine capabilities, precision). */
  notes: string[];
  /** The current plan's figures, when it can be estimated. */
  current?: { iterationSeconds: number; peakMemoryBytes: number; fits: boolean; outputSqnrDb: number | null };
  /** Estimated plans whose figures fell under the search's bounds (0 unless the cost engine broke an assumption). */
  boundViolations: number;
  /** Configurations left out by rule, with counts. */
  rejected: RuleCounts;
  complete: boolean;
}

/** The figures the search reads per probe stage. */
type Field = 'time' | 'forward' | 'weights' | 'gradients' | 'optimizer' | 'activations';
const FIELDS: readonly Field[] = ['time', 'forward', 'weights', 'gradients', 'optimizer', 'activations'];

/**
 * Per probe unit (one block, or a group of consecutive layers of a model file): the engine's figures, with the
 * layers before the first block (embedding) and after the last (final norm, output layer) apart in `first` and
 * `last` — the engine puts them on the first and the last stage whatever the split of the blocks.
 */
interface Probe extends Record<Field, Float64Array> {
  /** Layer boundaries of the probe's units: every layer its own unit, or groups of consecutive layers. */
  cuts: number[];
  first: Record<Field, number>;
  last: Record<Field, number>;
}

interface Scored {
  config: Config;
  /** Explicit stages as [from, to) over probe layers (model files), else undefined. */
  split?: [number, number][];
  lowerSeconds: number;
  lowerKey: number;
  lowerMemory: number;
}

interface Evaluated {
  config: Config;
  plan: Plan;
  edits: PlanEdit[];
  report: CostReport;
  peak: number;
  fits: boolean;
  key: number;
  outputSqnrDb: number | null;
  precisionNote?: string;
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
const GiB = 2 ** 30;
/**
 * The search's own estimates: no timeline, and degrees that need not use the plan's cluster (probes run one
 * layer per stage on one data replica; the current plan may be off its GPU count, the search sets the degrees).
 */
const PROBE = { timeline: false, allowGpuCountMismatch: true } as const;

export function optimize(base: Plan, workload: Workload, options: OptimizeOptions = {}): SearchResult {
  const now = options.now ?? (() => Date.now());
  const t0 = now();
  const file = options.file ?? 'plan';
  const objective = options.objective ?? 'time';
  const K = Math.max(1, options.top ?? 10);
  const exhaustive = options.exhaustive === true;
  const notes: string[] = [];
  // A model file's costs were measured with its shapes bound to the plan's micro-batch (graphLayerData): another
  // micro-batch needs the file read again, so the search keeps the plan's.
  const locks = [...(options.locks ?? []), ...(workload.arch ? [] : ['training.microBatch'])];
  if (!workload.arch && !isLocked(options.locks ?? [], 'training.microBatch')) {
    notes.push(
      "micro-batch: a model file's costs are measured at the plan's micro-batch; kept (set another in the plan to search at it)",
    );
  }
  if (base.devices?.length) {
    throw new InputError(file, 'optimize: plans with "devices" (mixed hardware) are not searched yet');
  }
  const gpu = findGpu(base.cluster.gpu);
  if (!gpu) throw new InputError(file, `cluster.gpu: unknown GPU '${base.cluster.gpu}'`);
  if (objective === 'gpus' && !(options.targetSeconds! > 0)) {
    throw new InputError(file, 'optimize: the gpus objective needs a target step time (--target-seconds)');
  }
  const price = base.cluster.pricePerGpuHour ?? gpu.pricePerGpuHour;
  if (objective === 'cost' && price === undefined) {
    throw new InputError(file, `optimize: no GPU-hour price for ${gpu.id} in the catalog; set cluster.pricePerGpuHour`);
  }
  const training = !!base.training;
  const capacity = (base.cluster.memoryGB ?? gpu.memoryGB) * 1e9 * (1 - (options.headroom ?? 0));
  const graph = !workload.arch;
  const blocks = workload.blockIndices.length;
  const shape: ModelShape = { blocks, arch: workload.arch };
  const tokens = training
    ? base.training!.globalBatch * (base.training!.seqLen ?? 2048)
    : base.inference!.batch * base.inference!.genLen;
  const keyOf = (seconds: number, gpus: number) =>
    objective === 'time'
      ? seconds
      : objective === 'cost'
        ? (price! * gpus * seconds * 1e6) / 3600 / tokens
        : gpus * 1e9 + seconds;

  // What the cost engine models: a degree it ignores is not searched (its plans would be mislabelled copies).
  const models = capabilities(base, workload, file);
  if (!models.context) notes.push('context parallelism: the cost engine does not model it yet; left at 1');
  if (workload.arch && workload.arch.experts > 1 && !models.expert) {
    notes.push('expert parallelism: the cost engine does not model it yet; left at 1');
  }
  if (!models.distributedOptimizer) {
    notes.push(
      'distributed optimizer: the cost engine does not model it yet; ZeRO stages stand in where the framework has them',
    );
  }

  // Per-layer precision under the error budget (a knapsack), before the layout: it changes memory and time.
  const precision = choosePrecision(base, workload, options, locks, training, notes, file);
  const plan = precision ? withPrecision(base, precision.precision) : base;

  // GPU counts: the cluster as given, or whole nodes (and fractions of one) up to maxGpus.
  const gpn = base.cluster.gpusPerNode ?? gpu.gpusPerNode;
  const planGpus = gpn * (base.cluster.nodes ?? 1);
  const maxGpus = base.cluster.maxGpus ?? planGpus;
  const gpuCounts =
    objective === 'time' && base.cluster.maxGpus === undefined
      ? [planGpus]
      : [
          ...divisors(gpn).filter((g) => g < gpn && g <= maxGpus),
          ...Array.from({ length: Math.floor(maxGpus / gpn) }, (_, i) => (i + 1) * gpn),
        ];
  if (objective !== 'time' && base.cluster.maxGpus === undefined) {
    notes.push(`GPU counts up to the plan's ${planGpus} (set cluster.maxGpus to search beyond)`);
  }

  // Probes: one estimate per (tensor, context, expert, micro-batch, recompute, sequence parallel).
  const probes = new Map<string, Probe>();
  const probeOf = (c: Config): Probe => {
    const key = [
      c.tensor,
      c.context,
      c.expert,
      c.expertTensor,
      c.microBatch,
      c.recompute,
      c.sequenceParallel,
      training ? 0 : c.data,
    ].join();
    let p = probes.get(key);
    if (!p) probes.set(key, (p = probe(plan, workload, c, graph, file, stagesLocked)));
    return p;
  };
  const inFlight = new Map<string, number[]>();
  const inFlightOf = (schedule: Config['schedule'], pp: number, m: number, v: number) => {
    const key = `${schedule},${pp},${m},${v}`;
    let f = inFlight.get(key);
    if (!f) inFlight.set(key, (f = peakInFlight(schedule, pp, m, v)));
    return f;
  };

  // Enumerate and bound.
  const rejected: RuleCounts = {};
  const space = training
    ? trainingConfigs(plan, shape, { gpuCounts, gpusPerNode: gpn, locks, models }, rejected)
    : inferenceConfigs(plan, shape, { gpuCounts, gpusPerNode: gpn, locks, models }, rejected);
  const stagesLocked = isLocked(locks, 'stages') && !!base.stages;
  // The engine's even split of an architecture's blocks counts the embedding and the output layer as blocks
  // where the plan's framework does (the framework is not searched).
  const edgesAsBlocks = !!workload.arch && runSettings(base).profile.balanceEdges;
  const setup = resolveSetup(base, file);
  const fsdp: FsdpTraffic | undefined = workload.layers.every((l) => !l.expertParameters)
    ? { intra: setup.intra, inter: setup.inter }
    : undefined;
  let searched = 0;
  const scored: Scored[] = [];
  // Memory grows with the micro-batch: once one does not fit, larger ones of the same layout are skipped unprobed.
  const tooBig = new Map<string, number>();
  let complete = true;
  for (const c of space) {
    searched++;
    if (searched % 4096 === 0) {
      if (options.shouldStop?.()) {
        complete = false;
        notes.push(`stopped after enumerating ${searched} configurations`);
        break;
      }
      options.onProgress?.({ searched, evaluated: 0, queued: scored.length });
    }
    if (stagesLocked && c.pipeline !== base.stages!.length) continue;
    if (!training) {
      scored.push({ config: c, lowerSeconds: 0, lowerKey: keyOf(0, c.gpus), lowerMemory: 0 });
      continue;
    }
    const family = [
      c.gpus,
      c.tensor,
      c.pipeline,
      c.context,
      c.expert,
      c.expertTensor,
      c.schedule,
      c.virtualStages,
      c.recompute,
      c.sequenceParallel,
      c.zero,
      c.distributedOptimizer,
    ].join();
    if (!exhaustive && c.microBatch >= (tooBig.get(family) ?? Infinity)) continue;
    const s = bound(c, probeOf(c), inFlightOf, graph, blocks, capacity, base, stagesLocked, edgesAsBlocks, fsdp);
    if (!s || (!exhaustive && s.lowerMemory > capacity)) {
      tooBig.set(family, Math.min(c.microBatch, tooBig.get(family) ?? Infinity));
      continue;
    }
    if (!exhaustive && objective === 'gpus' && s.lowerSeconds > options.targetSeconds!) continue;
    s.lowerKey = keyOf(s.lowerSeconds, c.gpus);
    scored.push(s);
  }
  scored.sort((a, b) => a.lowerKey - b.lowerKey);

  // Best first: estimate in order of the bound until the bound cannot beat the K-th best.
  const top: Evaluated[] = [];
  const pool: Evaluated[] = [];
  let evaluated = 0;
  let violations = 0;
  const baseline = safeEstimate(base, workload, file);
  for (let i = 0; complete && i < scored.length; i++) {
    const s = scored[i];
    if (!exhaustive && top.length >= K && s.lowerKey >= top[K - 1].key) break;
    if (evaluated % 8 === 0) {
      if (options.shouldStop?.()) {
        complete = false;
        notes.push(`stopped after ${evaluated} estimates`);
        break;
      }
      options.onProgress?.({
        searched,
        evaluated,
        queued: scored.length - i,
        bestSeconds: top[0]?.report.iterationSeconds,
      });
    }
    const e = evaluate(base, plan, workload, s, precision?.precision, file, capacity, keyOf, options, training);
    evaluated++;
    if (e.report.iterationSeconds < s.lowerSeconds * (1 - 1e-9) || e.peak < s.lowerMemory * (1 - 1e-9)) violations++;
    if (!e.fits) continue;
    if (objective === 'gpus' && e.report.iterationSeconds > options.targetSeconds!) continue;
    pool.push(e);
    let at = top.findIndex((t) => e.key < t.key);
    if (at < 0) at = top.length;
    top.splice(at, 0, e);
    if (top.length > K) top.length = K;
  }
  if (violations) {
    notes.push(`${violations} estimated plan(s) fell under the search's bounds: the ranking may miss plans`);
  }
  if (!scored.length) {
    notes.push(
      objective === 'gpus'
        ? `no layout reaches ${options.targetSeconds} s per step with up to ${maxGpus} GPUs`
        : 'no layout fits the GPUs’ memory (or the locks leave none)',
    );
  }

  // Precision alternatives on the best layout: other points of the knapsack's Pareto set (error vs cost).
  if (precision && top[0]) {
    for (const alt of precision.alternatives) {
      const s: Scored = { config: top[0].config, lowerSeconds: 0, lowerKey: 0, lowerMemory: 0 };
      const split = scored.find((x) => x.config === top[0].config)?.split;
      s.split = split;
      const e = evaluate(base, withPrecision(base, alt), workload, s, alt, file, capacity, keyOf, options, training);
      evaluated++;
      if (e.fits) pool.push(e);
    }
  }

  // Candidates: the top K, then members of the Pareto front (time, memory, error) from the rest of the pool.
  const front = paretoOf(pool);
  const chosen = [...top];
  for (const e of front) if (!chosen.includes(e) && chosen.length < 2 * K) chosen.push(e);
  chosen.sort((a, b) => a.key - b.key);
  const currentSqnr = precisionSqnr(base, workload, options, training);
  const current = baseline
    ? {
        iterationSeconds: baseline.iterationSeconds,
        peakMemoryBytes: peakOf(baseline),
        fits: peakOf(baseline) <= capacity,
        outputSqnrDb: currentSqnr,
      }
    : undefined;
  const canUseNone = frameworkOf(base).recompute.includes('none') && !isLocked(locks, 'training.recompute');
  const candidates = chosen.map((e, rank) =>
    candidate(e, rank, current, base, capacity, objective, options, price, tokens, canUseNone),
  );
  const inFront = paretoOf(chosen);
  return {
    objective,
    searched,
    evaluated,
    pruned: Math.max(0, searched - evaluated),
    seconds: (now() - t0) / 1000,
    candidates,
    pareto: chosen.map((e, i) => (inFront.includes(e) ? i : -1)).filter((i) => i >= 0),
    notes,
    current,
    boundViolations: violations,
    rejected,
    complete,
  };
}

function safeEstimate(plan: Plan, workload: Workload, file: string): CostReport | undefined {
  try {
    return estimate(plan, workload, file, PROBE);
  } catch {
    return undefined;
  }
}

const peakOf = (r: CostReport) => Math.max(...r.stages.map((s) => s.memory.total));

/** Whether the cost engine's figures move with a degree: if not, it does not model it. */
function capabilities(
  base: Plan,
  workload: Workload,
  file: string,
): { context: boolean; expert: boolean; distributedOptimizer: boolean } {
  if (!base.training) return { context: false, expert: false, distributedOptimizer: false };
  const probe = (par: Plan['parallel']) => {
    const p = clone(base);
    p.parallel = { data: 2, tensor: 1, pipeline: 1, ...par };
    p.training = { ...base.training!, globalBatch: 2, microBatch: 1 };
    delete p.stages;
    const r = estimate(p, workload, file, PROBE);
    return JSON.stringify([r.iterationSeconds, r.gpus, r.stages.map((s) => s.memory)]);
  };
  const plain = probe({});
  const seq = base.training.seqLen ?? 2048;
  return {
    context: seq % 4 === 0 && probe({ context: 2 }) !== plain,
    expert: (workload.arch?.experts ?? 1) > 1 && probe({ expert: 2 }) !== plain,
    // The framework's default may be either: compare the two explicitly.
    distributedOptimizer:
      probe({ distributedOptimizer: true, zero: 0 }) !== probe({ distributedOptimizer: false, zero: 0 }),
  };
}

/**
 * One estimate with one unit (a block, or a group of a model file's layers) per stage, the embedding and the
 * output layers each on a stage of their own (explicit stages, empty at the ends), and one micro-batch: per-unit
 * times, states and activations — the very sums the engine adds per stage (a stage's forward and backward are
 * the sums of its layers' times, trainingLayerTime; its states and activations the sums of its layers'). The
 * probe runs without data parallelism and without sharding (zero 0, no distributed optimizer): the bound divides
 * the states itself. An architecture whose blocks are alike (same parameters, same format) is probed with three
 * of its blocks and the figures spread over all of them: the same sums at a fraction of the work.
 */
function probe(plan: Plan, workload: Workload, c: Config, graph: boolean, file: string, perLayer = false): Probe {
  const layers = workload.blockIndices.length;
  // A long model file is probed in at most SPLIT_UNITS groups of consecutive layers (its stages are cut between them).
  const cuts = groupCuts(layers, graph && !perLayer ? SPLIT_UNITS : layers);
  const n = cuts.length - 1;
  const compact = graph ? undefined : compactWorkload(plan, workload);
  const w = compact ?? workload;
  if (plan.training) return probeTraining(plan, w, c, cuts, !!compact, file);
  const units = compact
    ? [0, 1, 2].map((i) => `${i}`)
    : Array.from({ length: n }, (_, k) => rangeText(range(cuts[k], cuts[k + 1])));
  const p = clone(plan);
  // The plan's own settings the search does not choose (tensor-parallel overlap, expert tensor, …) stay.
  const own = { ...(plan.parallel ?? {}) };
  delete own.virtualStages;
  p.parallel = {
    ...own,
    data: 1,
    tensor: c.tensor,
    pipeline: units.length + 2,
    context: c.context,
    expert: c.expert,
    expertTensor: c.expertTensor,
    schedule: '1f1b',
    sequenceParallel: c.sequenceParallel,
    zero: 0,
    distributedOptimizer: false,
  };
  if (p.training) {
    p.training = { ...p.training, globalBatch: c.microBatch, microBatch: c.microBatch, recompute: c.recompute };
  } else p.parallel.data = c.data;
  p.stages = [{ layers: '' }, ...units.map((layers) => ({ layers })), { layers: '' }];
  const r = estimate(p, w, file, PROBE);
  type Stage = CostReport['stages'][number];
  const fields: Record<Field, (s: Stage) => number> = {
    time: (s) => (p.training ? s.forwardSeconds + s.backwardSeconds : s.computeSeconds),
    forward: (s) => (p.training ? s.forwardSeconds : 0),
    weights: (s) => s.memory.weights,
    gradients: (s) => s.memory.gradients,
    optimizer: (s) => s.memory.optimizer,
    // Full recomputation adds the one layer being recomputed, not a sum over layers: the bound leaves it out.
    activations: (s) => (c.recompute === 'full' ? 0 : s.memory.activations),
  };
  const out = { cuts, first: {}, last: {} } as Probe;
  for (const name of FIELDS) {
    const get = fields[name];
    const a = new Float64Array(n);
    if (compact) a.fill(get(r.stages[2]));
    else for (let k = 0; k < n; k++) a[k] = get(r.stages[k + 1]);
    out[name] = a;
    out.first[name] = get(r.stages[0]);
    out.last[name] = get(r.stages[r.stages.length - 1]);
  }
  return out;
}

/**
 * A training probe from the engine's per-layer phase (trainingLayerFigures): the layers' figures summed into
 * the probe's units, and the layers the engine puts on the first stage (before the first block) and on the last
 * (every other layer that is not a block) apart. The plan runs without data parallelism or sharding; its
 * unsearched settings stay.
 */
function probeTraining(plan: Plan, w: Workload, c: Config, cuts: number[], compact: boolean, file: string): Probe {
  const own = { ...(plan.parallel ?? {}) };
  delete own.virtualStages;
  const p: Plan = {
    ...plan,
    parallel: {
      ...own,
      data: 1,
      tensor: c.tensor,
      pipeline: 1,
      context: c.context,
      expert: c.expert,
      expertTensor: c.expertTensor,
      schedule: '1f1b',
      sequenceParallel: c.sequenceParallel,
      zero: 0,
      distributedOptimizer: false,
    },
    training: { ...plan.training!, globalBatch: c.microBatch, microBatch: c.microBatch, recompute: c.recompute },
  };
  delete p.stages;
  const fig = trainingLayerFigures(p, w, file);
  const value: Record<Field, (i: number) => number> = {
    time: (i) => fig.forward[i] + fig.backward[i],
    forward: (i) => fig.forward[i],
    weights: (i) => fig.weights[i],
    gradients: (i) => fig.gradients[i],
    optimizer: (i) => fig.optimizer[i],
    activations: (i) => fig.activations[i],
  };
  const n = cuts.length - 1;
  const blocks = w.blockIndices;
  const inBlocks = new Set(blocks);
  const firstBlock = blocks.length ? blocks[0] : w.layers.length;
  const out = { cuts, first: {}, last: {} } as Probe;
  for (const f of FIELDS) {
    const get = value[f];
    const a = new Float64Array(n);
    if (compact) a.fill(get(blocks[1]));
    else for (let k = 0; k < n; k++) for (let u = cuts[k]; u < cuts[k + 1]; u++) a[k] += get(blocks[u]);
    out[f] = a;
    let first = 0;
    let last = 0;
    for (let i = 0; i < w.layers.length; i++) {
      if (inBlocks.has(i)) continue;
      if (i < firstBlock) first += get(i);
      else last += get(i);
    }
    out.first[f] = first;
    out.last[f] = last;
  }
  return out;
}

/** Three blocks of an architecture whose blocks are alike, with its embedding and output layers; else undefined. */
function compactWorkload(plan: Plan, w: Workload): Workload | undefined {
  const blocks = w.blockIndices.map((i) => w.layers[i]);
  if (!w.arch || blocks.length <= 3) return undefined;
  const format = (name: string) => formatFor(plan.precision, name, name);
  const alike = blocks.every(
    (b) =>
      b.kind === blocks[0].kind &&
      b.parameters === blocks[0].parameters &&
      b.shardedParameters === blocks[0].shardedParameters &&
      format(b.name) === format(blocks[0].name),
  );
  const first = w.blockIndices[0];
  const last = w.blockIndices[w.blockIndices.length - 1];
  const contiguous = last - first === blocks.length - 1;
  if (!alike || !contiguous) return undefined;
  const layers = [...w.layers.slice(0, first), ...blocks.slice(0, 3), ...w.layers.slice(last + 1)];
  return { layers, arch: w.arch, blockIndices: [first, first + 1, first + 2] };
}

/** Sums over unit ranges from prefix sums: the probe's figures for a stage in O(ranges). */
type Sums = Record<Field, number[]>;

const sumsOf = new WeakMap<Probe, Sums>();
function sums(pr: Probe): Sums {
  let s = sumsOf.get(pr);
  if (!s) {
    s = {} as Sums;
    for (const f of FIELDS) s[f] = prefix(pr[f]);
    sumsOf.set(pr, s);
  }
  return s;
}

/**
 * The [from, to) block ranges of each stage of an architecture as the engine assigns them (assignLayers): the
 * blocks split evenly into pipeline × chunks parts, part k on stage k mod p — with the embedding and the output
 * layer counted as a block each where the framework does (Megatron-Core's account-for-embedding/loss split).
 */
const archRanges = new Map<string, [number, number][][]>();
function archStageRanges(blocks: number, pp: number, v: number, edgesAsBlocks: boolean): [number, number][][] {
  const key = `${blocks},${pp},${v},${edgesAsBlocks}`;
  let out = archRanges.get(key);
  if (!out) {
    out = Array.from({ length: pp }, () => [] as [number, number][]);
    const parts = pp * v;
    const edge = edgesAsBlocks && parts > 1 ? 1 : 0;
    const units = blocks + 2 * edge;
    for (let k = 0; k < parts; k++) {
      const from = Math.max(0, Math.floor((k * units) / parts) - edge);
      const to = Math.min(blocks, Math.floor(((k + 1) * units) / parts) - edge);
      if (to > from) out[k % pp].push([from, to]);
    }
    archRanges.set(key, out);
  }
  return out;
}

/**
 * What the FSDP term of the time bound needs: the links (the data-parallel group's are built as the engine
 * builds them, context.ts), given only where no layer has experts (their weights gather over another group).
 */
interface FsdpTraffic {
  intra: Link;
  inter: Link;
}

/**
 * Lower bounds of a configuration's step time and peak memory per GPU, from the probe's per-unit figures. Why
 * each is a lower bound of what estimate() returns (estimate.ts):
 *  - time: the simulated schedule runs stage s's forward and backward of each micro-batch chunk as F_s / v and
 *    B_s / v, where F_s + B_s is the sum of its layers' times (the probe's units) plus FSDP's exposed gathers
 *    (≥ 0). Stage s cannot start before micro-batch 0 has gone forward through chunk 0 of the stages before
 *    it, and after its last backward (chunk 0) the stages before it still run theirs, so the schedule's end is
 *    ≥ Σ_{j<s} (F_j + B_j) / v + m (F_s + B_s); sends only add. The step adds to that end the exposed gradient
 *    reduction, the tied-embedding sync, the optimizer and the exposed parameter gather — all ≥ 0, left out.
 *    Tensor-parallel overlap, the context-parallel ring exchange, all-to-alls and the attention kernels are in
 *    the layers' own times (the probe runs the plan's settings), so the bound holds whatever they cost.
 *  - memory: each stage holds its layers' weights, gradients and optimizer states, sharded as the plan's ZeRO
 *    stage and distributed optimizer say, and (flight / v) micro-batches of its layers' activations; FSDP's
 *    gathered blocks and full recomputation's one rebuilt layer only add.
 */
function bound(
  c: Config,
  pr: Probe,
  inFlightOf: (s: Config['schedule'], pp: number, m: number, v: number) => number[],
  graph: boolean,
  blocks: number,
  capacity: number,
  base: Plan,
  stagesLocked: boolean,
  edgesAsBlocks: boolean,
  fsdp: FsdpTraffic | undefined,
): Scored | undefined {
  const m = c.microBatches;
  const v = c.virtualStages;
  const pp = c.pipeline;
  const flight = inFlightOf(c.schedule, pp, m, v);
  // ZeRO shards over the data-parallel ranks (and the context ones, which hold the same weights).
  const ranks = c.data * c.context;
  const s3 = c.zero >= 3 ? ranks : 1;
  const s2 = c.zero >= 2 ? ranks : 1;
  const s1 = c.distributedOptimizer || c.zero >= 1 ? ranks : 1;
  const P = sums(pr);
  const span = (a: number[], from: number, to: number) => a[to] - a[from];
  const states = (from: number, to: number) =>
    span(P.weights, from, to) / s3 + span(P.gradients, from, to) / s2 + span(P.optimizer, from, to) / s1;
  const edge = (stage: number, f: Field) => (stage === 0 ? pr.first[f] : 0) + (stage === pp - 1 ? pr.last[f] : 0);
  const edgeStates = (stage: number) =>
    edge(stage, 'weights') / s3 + edge(stage, 'gradients') / s2 + edge(stage, 'optimizer') / s1;
  let ranges: [number, number][][];
  let split: [number, number][] | undefined;
  // A plan's own stages stay where the engine reads them: one chunk per stage, as many stages as it lists
  // (evaluate() keeps them then; a model file's are the split's unless they are locked).
  if (base.stages && pp === base.stages.length && v === 1 && (stagesLocked || !graph)) {
    ranges = base.stages.map((st) =>
      (parseLayerRange(st.layers) ?? []).filter((i) => i < blocks).map((i) => [i, i + 1] as [number, number]),
    );
  } else if (graph) {
    // Alpa's inter-op pass: the split minimizing the slowest stage, each stage within its memory bound, over the
    // probe's units (layers, or groups of them past SPLIT_UNITS: the DP is quadratic in its units). Its stages
    // are contiguous and not empty: the first holds unit 0 and the embedding, the last the output layers.
    // Layouts that differ only where the split does not look (data degree without ZeRO, …) share it.
    const key = [pp, s1, s2, s3, capacity, flight.join()].join();
    let memo = splits.get(pr);
    if (!memo) splits.set(pr, (memo = new Map()));
    let found = memo.get(key);
    if (found === undefined) {
      const time = Array.from(pr.time);
      time[0] += pr.first.time;
      time[time.length - 1] += pr.last.time;
      found =
        splitStages(
          time,
          pp,
          (stage, from, to) =>
            states(from, to) +
              edgeStates(stage) +
              flight[stage] * (span(P.activations, from, to) + edge(stage, 'activations')) <=
            capacity,
        ) ?? null;
      memo.set(key, found);
    }
    if (!found) return undefined;
    ranges = found.bounds.map((r) => [r]);
    split = found.bounds.map(([a, b]) => [pr.cuts[a], pr.cuts[b]]);
  } else ranges = archStageRanges(blocks, pp, v, edgesAsBlocks);
  // FSDP / ZeRO-3 gathers the stage's weights for each micro-batch's forward and again for its backward (and
  // reduce-scatters its gradients): the engine adds max(gather / layers, gather − compute) to each pass, so a
  // pass takes at least max(its compute, its traffic) (estimate.ts pipelinePasses).
  const dataGroup =
    fsdp && c.zero >= 3 && ranks > 1
      ? {
          size: ranks,
          perNode: Math.max(1, Math.min(ranks, Math.floor(c.gpusPerNode / c.tensor))),
          intra: fsdp.intra,
          inter: fsdp.inter,
        }
      : undefined;
  let lower = 0;
  let ramp = 0;
  let memory = 0;
  for (let s = 0; s < pp; s++) {
    let t = edge(s, 'time');
    let f = edge(s, 'forward');
    let w = edge(s, 'weights');
    let g = edge(s, 'gradients');
    let st = edgeStates(s);
    let act = edge(s, 'activations');
    for (const [from, to] of ranges[s]) {
      t += span(P.time, from, to);
      f += span(P.forward, from, to);
      w += span(P.weights, from, to);
      g += span(P.gradients, from, to);
      st += states(from, to);
      act += span(P.activations, from, to);
    }
    if (dataGroup) {
      const gather = allGatherSeconds(w, dataGroup);
      const reduce = reduceScatterSeconds(g, dataGroup);
      t = Math.max(f, gather) + Math.max(t - f, gather + reduce);
    }
    lower = Math.max(lower, ramp + m * t);
    ramp += t / v;
    memory = Math.max(memory, st + (flight[s] / v) * act);
  }
  return { config: c, split, lowerSeconds: lower, lowerKey: 0, lowerMemory: memory };
}

const splits = new WeakMap<Probe, Map<string, StageSplit | null>>();

/** The stage split works on at most this many units (layers, or groups of consecutive layers past it). */
export const SPLIT_UNITS = 128;

/** Boundaries of `units` near-equal groups of n consecutive layers (every layer its own group when n ≤ units). */
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

function groupCuts(n: number, units: number): number[] {
  const g = Math.min(n, units);
  return Array.from({ length: g + 1 }, (_, i) => Math.round((i * n) / g));
}

function prefix(x: ArrayLike<number>): number[] {
  const out = [0];
  for (let i = 0; i < x.length; i++) out.push(out[i] + x[i]);
  return out;
}

/** The plan a configuration makes, estimated in full. */
function evaluate(
  base: Plan,
  plan: Plan,
  workload: Workload,
  s: Scored,
  precision: Plan['precision'] | undefined,
  file: string,
  capacity: number,
  keyOf: (seconds: number, gpus: number) => number,
  options: OptimizeOptions,
  training: boolean,
): Evaluated {
  const edits = configEdits(base, s.config);
  if (s.split) {
    edits.push({
      path: ['stages'],
      value: s.split.map(([a, b]) => ({ layers: rangeText(Array.from({ length: b - a }, (_, i) => a + i)) })),
    });
  } else if (base.stages && !(s.config.pipeline === base.stages.length && plan === base)) {
    // An architecture's stages are the engine's even split; a plan's own split would not match the new pipeline.
    if (s.config.pipeline !== base.stages.length || s.config.virtualStages > 1) {
      edits.push({ path: ['stages'], value: undefined });
    }
  }
  if (precision && JSON.stringify(precision.rules) !== JSON.stringify(base.precision?.rules)) {
    edits.push({ path: ['precision', 'rules'], value: precision.rules });
  }
  const full = clone(base);
  setPlanPaths(full, edits);
  const report = estimate(full, workload, file, PROBE);
  const peak = peakOf(report);
  return {
    config: s.config,
    plan: full,
    edits,
    report,
    peak,
    fits: peak <= capacity,
    key: keyOf(report.iterationSeconds, report.gpus),
    outputSqnrDb: precisionSqnr(full, workload, options, training),
  };
}

/** The layers whose format the precision search chooses: an architecture's blocks, a model file's measured layers. */
function searchableLayers(workload: Workload, options: OptimizeOptions): string[] {
  if (workload.arch) return workload.blockIndices.map((i) => workload.layers[i].name);
  const measured = options.layerSqnr ?? {};
  return workload.layers.map((l) => l.name).filter((n) => measured[n] !== undefined);
}

/** A layer's weight SQNR in a format: measured on the weights, else the format's typical figure (architectures). */
function sqnrOf(
  layer: string,
  format: string,
  reference: string,
  options: OptimizeOptions,
  arch: boolean,
): number | null | undefined {
  const name = parseFormat(format)?.name ?? format;
  const measured = options.layerSqnr?.[layer];
  if (measured && name in measured) return measured[name];
  if (!arch) return undefined;
  // An architecture has no weights: its compute dtype is the reference (exact), other formats their typical error.
  return name === reference ? null : typicalSqnrDb(name);
}

function referenceFormat(plan: Plan): string {
  return plan.training?.dtype ?? plan.inference?.dtype ?? 'bf16';
}

/** The output SQNR a plan's precision predicts (OUTPUT_ERROR over every layer it can price), or null. */
const sqnrCache = new WeakMap<Workload, Map<string, number | null>>();
function precisionSqnr(plan: Plan, workload: Workload, options: OptimizeOptions, training: boolean): number | null {
  void training;
  // The layout search keeps one precision: compute its error once per workload and precision.
  const key = JSON.stringify([
    plan.precision,
    referenceFormat(plan),
    options.layerSqnr ? Object.keys(options.layerSqnr).length : 0,
  ]);
  let cache = sqnrCache.get(workload);
  if (!cache) sqnrCache.set(workload, (cache = new Map()));
  if (!options.layerSqnr && cache.has(key)) return cache.get(key)!;
  const value = precisionSqnrOf(plan, workload, options);
  if (!options.layerSqnr) cache.set(key, value);
  return value;
}

function precisionSqnrOf(plan: Plan, workload: Workload, options: OptimizeOptions): number | null {
  const arch = !!workload.arch;
  const reference = referenceFormat(plan);
  const names = arch ? searchableLayers(workload, options) : Object.keys(options.layerSqnr ?? {});
  if (!names.length) return null;
  // An architecture's weights are in the compute dtype unless the plan says otherwise (a measured model file's
  // default is bf16, as layerplan quant --plan takes it).
  const precision = arch ? { ...plan.precision, default: plan.precision?.default ?? reference } : plan.precision;
  const noises: number[] = [];
  for (const name of names) {
    const sq = sqnrOf(name, formatFor(precision, name, name), reference, options, arch);
    if (sq === undefined) return null;
    noises.push(OUTPUT_ERROR.layerNoise(name, sq));
  }
  return OUTPUT_ERROR.outputSqnrDb(noises);
}

function withPrecision(plan: Plan, precision: Plan['precision']): Plan {
  const p = clone(plan);
  p.precision = precision;
  return p;
}

/**
 * The per-layer formats: the multiple-choice knapsack over the searchable layers, costs from a probe per
 * format (step time, or bytes for the gpus objective), errors from the measured (or typical) SQNR.
 */
function choosePrecision(
  base: Plan,
  workload: Workload,
  options: OptimizeOptions,
  locks: readonly string[],
  training: boolean,
  notes: string[],
  file: string,
): { precision: Plan['precision']; alternatives: Plan['precision'][] } | undefined {
  const budget = base.precision?.errorBudgetDb;
  if (budget === undefined) return undefined;
  if (isLocked(locks, 'precision') || isLocked(locks, 'precision.rules')) return undefined;
  const layers = searchableLayers(workload, options);
  if (!layers.length) {
    notes.push('precision: no measured weights (run from a model file, or give an architecture) — left as it is');
    return undefined;
  }
  const reference = referenceFormat(base);
  const formats = candidateFormats(base, options.formats);
  const unknown = formats.filter((f) => !parseFormat(f));
  if (unknown.length) throw new InputError(file, `optimize: unknown format(s) ${unknown.join(', ')}`);
  // Per-layer cost of each format: one probe with every searchable layer in it, at the plan's own layout.
  const par = base.parallel ?? {};
  const layout: Config = {
    gpus: 1,
    gpusPerNode: 1,
    nodes: 1,
    data: par.data ?? 1,
    tensor: par.tensor ?? 1,
    pipeline: 1,
    context: 1,
    expert: 1,
    expertTensor: par.expertTensor ?? par.tensor ?? 1,
    schedule: '1f1b',
    virtualStages: 1,
    sequenceParallel: par.sequenceParallel ?? false,
    zero: 0,
    distributedOptimizer: false,
    microBatch: base.training?.microBatch ?? 1,
    microBatches: 1,
    recompute: base.training?.recompute ?? 'none',
  };
  const index = new Map(workload.blockIndices.map((li, k) => [workload.layers[li].name, k]));
  const byMemory = options.objective === 'gpus';
  const costs = new Map<string, Probe>();
  for (const f of formats) {
    const rules = workload.arch
      ? [{ match: 'layers.*', format: f }]
      : layers.map((name) => ({ match: name, format: f }));
    const p = clone(base);
    p.precision = { ...(base.precision ?? {}), rules: [...(base.precision?.rules ?? []), ...rules] };
    costs.set(f, probe(p, workload, layout, !workload.arch, file, true));
  }
  const problem: KnapsackLayer[] = [];
  let fixedNoise = 0;
  for (const name of layers) {
    const k = index.get(name);
    if (k === undefined) continue;
    const choices = formats
      .map((format) => {
        const sq = sqnrOf(name, format, reference, options, !!workload.arch);
        const pr = costs.get(format)!;
        // Ties in the primary cost (formats that do not change the step) go to fewer bytes, and back.
        const cost = byMemory ? pr.weights[k] + pr.time[k] * 1e-3 : pr.time[k] + pr.weights[k] * 1e-15;
        return sq === undefined ? undefined : { format, cost, noise: OUTPUT_ERROR.layerNoise(name, sq) };
      })
      .filter((c): c is NonNullable<typeof c> => !!c);
    if (choices.length) problem.push({ name, choices });
  }
  // Layers the search does not choose for keep their format and its error.
  if (!workload.arch) {
    for (const name of Object.keys(options.layerSqnr ?? {})) {
      if (problem.some((l) => l.name === name)) continue;
      const sq = sqnrOf(name, formatFor(base.precision, name, name), reference, options, false);
      if (sq !== undefined) fixedNoise += OUTPUT_ERROR.layerNoise(name, sq);
    }
  }
  const allowed = OUTPUT_ERROR.noiseBudget(budget) - fixedNoise;
  const { points, truncated } = paretoAssignments(problem, allowed);
  if (truncated) notes.push('precision: the knapsack kept its 200,000 best partial assignments (exact up to that)');
  if (!points.length) {
    notes.push(`precision: no assignment of ${formats.join(', ')} meets the ${budget} dB budget — left as it is`);
    return undefined;
  }
  const toPrecision = (picks: number[]): Plan['precision'] => {
    const rules = [...(base.precision?.rules ?? [])];
    const chosen = problem.map((l, i) => l.choices[picks[i]].format);
    const uniform = chosen.every((f) => f === chosen[0]);
    if (workload.arch && uniform && chosen.length === blocksOf(workload)) {
      if (formatFor(base.precision, 'layers.0', 'layers.0') !== chosen[0]) {
        rules.push({ match: 'layers.*', format: chosen[0] });
      }
    } else {
      problem.forEach((l, i) => {
        if (formatFor({ ...base.precision, rules }, l.name, l.name) !== chosen[i]) {
          rules.push({ match: l.name, format: chosen[i] });
        }
      });
    }
    return { ...(base.precision ?? {}), rules };
  };
  const best = points[0];
  const quietest = points[points.length - 1];
  const middle = points[Math.floor((points.length - 1) / 2)];
  const alternatives = [...new Set([middle, quietest])].filter((p) => p !== best).map((p) => toPrecision(p.picks));
  notes.push(
    `precision: ${problem.length} layers × ${formats.length} formats (${formats.join(', ')}), ${points.length} Pareto-optimal assignments within the ${budget} dB budget`,
  );
  return { precision: toPrecision(best.picks), alternatives };
}

const blocksOf = (w: Workload) => w.blockIndices.length;

/**
 * The formats per-layer precision chooses among: `formats` when given, else the plan's compute dtype, fp8 where
 * the GPU computes in it (training), the common weight formats (inference), and every format the plan names.
 */
export function candidateFormats(plan: Plan, formats?: readonly string[]): string[] {
  const gpu = findGpu(plan.cluster.gpu);
  const reference = referenceFormat(plan);
  const named = [plan.precision?.default, ...(plan.precision?.rules ?? []).map((r) => r.format)].filter(
    (f): f is string => !!f && !!parseFormat(f),
  );
  const defaults = plan.training
    ? [reference, ...(gpu?.tflops.fp8 ? ['fp8-e4m3'] : [])]
    : [reference, 'fp8-e4m3', 'int8-channel', 'int4-g128', 'int4-g32'];
  return [...new Set((formats ?? [...defaults, ...named]).map((f) => parseFormat(f)?.name ?? f))];
}

/** Those no other beats on step time, peak memory and output error (higher SQNR is better) at once. */
function paretoOf(list: Evaluated[]): Evaluated[] {
  const err = (e: Evaluated) => (e.outputSqnrDb === null ? Infinity : e.outputSqnrDb);
  return list.filter(
    (a) =>
      !list.some(
        (b) =>
          b !== a &&
          b.report.iterationSeconds <= a.report.iterationSeconds &&
          b.peak <= a.peak &&
          err(b) >= err(a) &&
          (b.report.iterationSeconds < a.report.iterationSeconds || b.peak < a.peak || err(b) > err(a)),
      ),
  );
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const secs = (x: number) => (x >= 1 ? `${x.toFixed(2)} s` : `${(x * 1e3).toFixed(1)} ms`);

/** A candidate with its reasons: what changed against the current plan, what it gains, what limits it. */
function candidate(
  e: Evaluated,
  rank: number,
  current: SearchResult['current'],
  base: Plan,
  capacity: number,
  objective: Objective,
  options: OptimizeOptions,
  price: number | undefined,
  tokens: number,
  canUseNone: boolean,
): Candidate {
  const r = e.report;
  const changes = describeEdits(base, e.edits).join(', ');
  const parts: string[] = [];
  if (current) {
    const gain = 1 - r.iterationSeconds / current.iterationSeconds;
    parts.push(
      Math.abs(gain) < 0.0005
        ? `as fast as the current plan (${secs(r.iterationSeconds)} per step)`
        : `${pct(Math.abs(gain))} ${gain > 0 ? 'faster' : 'slower'} than the current plan (${secs(r.iterationSeconds)} vs ${secs(current.iterationSeconds)} per step)`,
    );
    if (!current.fits) parts.push('the current plan does not fit in memory');
  } else parts.push(`${secs(r.iterationSeconds)} per step`);
  parts.push(
    `bubble ${pct(r.bubbleFraction)}, MFU ${pct(r.mfu)}, ${(e.peak / GiB).toFixed(1)} of ${(capacity / GiB).toFixed(1)} GiB`,
  );
  const why = `${rank === 0 ? `best for ${objective}` : `#${rank + 1}`}: ${parts.join('; ')}${changes ? ` — ${changes}` : ' — no change'}`;
  const binds: string[] = [];
  const comm = r.communication.data.seconds + r.communication.tensor.seconds + r.communication.pipeline.seconds;
  if (e.peak >= 0.85 * capacity || (canUseNone && e.config.recompute !== 'none')) binds.push('memory');
  if (r.bubbleFraction >= 0.05) binds.push('bubble');
  if (comm >= 0.1 * r.iterationSeconds) binds.push('communication');
  const budget = base.precision?.errorBudgetDb;
  if (budget !== undefined && e.outputSqnrDb !== null && e.outputSqnrDb < budget + 1) binds.push('error budget');
  if (objective === 'gpus' && r.iterationSeconds >= 0.95 * options.targetSeconds!) binds.push('target time');
  return {
    plan: e.plan,
    edits: e.edits,
    iterationSeconds: r.iterationSeconds,
    mfu: r.mfu,
    peakMemoryBytes: e.peak,
    capacityBytes: capacity,
    outputSqnrDb: e.outputSqnrDb,
    gpus: r.gpus,
    bubbleFraction: r.bubbleFraction,
    ...(price !== undefined
      ? { costPerMillionTokens: (price * r.gpus * r.iterationSeconds * 1e6) / 3600 / tokens }
      : {}),
    why,
    binds,
  };
}
