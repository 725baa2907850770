/**
 * Event simulation of a pipeline schedule. Each stage runs its own op list in order (GPipe, 1F1B
 * or Megatron's interleaved 1F1B); an op starts when its stage is free and its input has arrived
 * (the producing op's end plus the point-to-point send time). Uneven stages therefore show their
 * idle time; with uniform stages and free sends, 1F1B gives the bubble (p−1)/(m+p−1) exactly.
 */
export type Schedule = 'gpipe' | '1f1b' | 'interleaved';

export interface StageTimes {
  /** Forward / backward seconds of one micro-batch through one model chunk of this stage. */
  forward: number;
  backward: number;
  /** Seconds to send one micro-batch's activations (or gradients) to the next / previous stage. */
  sendNext: number;
  sendPrev: number;
}

export interface TimelineEvent {
  stage: number;
  microBatch: number;
  chunk: number;
  pass: 'forward' | 'backward';
  start: number;
  end: number;
}

export interface ScheduleResult {
  makespan: number;
  events: TimelineEvent[];
  busy: number[];
  idle: number[];
  comm: number[];
  /** Most micro-batch chunks whose forward ran and whose backward had not finished, per stage. */
  peakInFlight: number[];
  /** When each stage ends its last op (a backward in every schedule), with or without the timeline. */
  stageEnds: number[];
  bubbleFraction: number;
}

interface Op {
  pass: 'forward' | 'backward';
  microBatch: number;
  chunk: number;
}

/** The op order each stage runs. */
export function stageOrder(schedule: Schedule, p: number, m: number, v: number, stage: number): Op[] {
  return Array.from(encodedOrder(schedule, p, m, v, stage), (op) => ({
    pass: op & 1 ? 'backward' : 'forward',
    microBatch: Math.floor(op / OP_MB),
    chunk: (op >> 1) & CHUNK_MASK,
  }));
}

/** An op packed in one number: bit 0 the pass (1 = backward), bits 1–10 the chunk, the rest the micro-batch. */
const CHUNK_MASK = 1023;
const OP_MB = 2048;
const encode = (backward: boolean, microBatch: number, chunk: number) =>
  (backward ? 1 : 0) + chunk * 2 + microBatch * OP_MB;

function encodedOrder(schedule: Schedule, p: number, m: number, v: number, stage: number): Float64Array {
  const interleaved = schedule === 'interleaved' && v > 1;
  const ops = new Float64Array(2 * m * (interleaved ? v : 1));
  let n = 0;
  if (schedule === 'gpipe') {
    for (let i = 0; i < m; i++) ops[n++] = encode(false, i, 0);
    for (let i = 0; i < m; i++) ops[n++] = encode(true, i, 0);
    return ops;
  }
  if (!interleaved) {
    const warmup = Math.min(p - stage - 1, m);
    let f = 0;
    let b = 0;
    for (; f < warmup; f++) ops[n++] = encode(false, f, 0);
    while (f < m) {
      ops[n++] = encode(false, f++, 0);
      ops[n++] = encode(true, b++, 0);
    }
    while (b < m) ops[n++] = encode(true, b++, 0);
    return ops;
  }
  // Megatron-LM interleaved 1F1B (schedules.py): units k = 0 … m·v−1 in groups of p micro-batches per chunk.
  const total = m * v;
  const unit = (k: number, backward: boolean) => {
    const group = Math.floor(k / (p * v));
    const chunk = Math.floor((k % (p * v)) / p);
    return encode(backward, group * p + (k % p), backward ? v - 1 - chunk : chunk);
  };
  const warmup = Math.min((p - stage - 1) * 2 + (v - 1) * p, total);
  let f = 0;
  let b = 0;
  for (; f < warmup; f++) ops[n++] = unit(f, false);
  while (f < total) {
    ops[n++] = unit(f++, false);
    ops[n++] = unit(b++, true);
  }
  while (b < total) ops[n++] = unit(b++, true);
  return ops;
}

/**
 * Runs the schedule. `events: false` leaves the timeline out (the optimizer estimates thousands of plans
 * and reads only their totals; building one object per op was most of the time on large pipelines).
 */
export function simulate(
  schedule: Schedule,
  stages: StageTimes[],
  m: number,
  v = 1,
  options: { events?: boolean } = {},
): ScheduleResult {
  const p = stages.length;
  const chunks = schedule === 'interleaved' ? v : 1;
  if (chunks > CHUNK_MASK) throw new Error(`pipeline schedule: ${chunks} chunks per stage is past ${CHUNK_MASK}`);
  const orders = stages.map((_, i) => encodedOrder(schedule, p, m, chunks, i));
  // End time of every (stage, pass, micro-batch, chunk), NaN until it has run.
  const key = (stage: number, backward: number, mb: number, chunk: number) =>
    ((backward * chunks + chunk) * m + mb) * p + stage;
  const ends = new Float64Array(2 * chunks * m * p).fill(NaN);
  const next = new Int32Array(p);
  const free = new Float64Array(p);
  const busy = new Float64Array(p);
  const comm = new Float64Array(p);
  const inFlight = new Int32Array(p);
  const peakInFlight = new Int32Array(p);
  let remaining = orders.reduce((a, o) => a + o.length, 0);
  const record = options.events !== false;
  const trace = record ? new Float64Array(4 * remaining) : undefined;
  let traced = 0;

  while (remaining > 0) {
    let progressed = false;
    for (let s = 0; s < p; s++) {
      const order = orders[s];
      const st = stages[s];
      while (next[s] < order.length) {
        const op = order[next[s]];
        const backward = op & 1;
        const chunk = (op >> 1) & CHUNK_MASK;
        const mb = Math.floor(op / OP_MB);
        // When the op's input is available on this stage (NaN while its producer has not run).
        let ready: number;
        if (!backward) {
          if (s > 0) ready = ends[key(s - 1, 0, mb, chunk)] + stages[s - 1].sendNext;
          else if (chunk === 0) ready = 0;
          else ready = ends[key(p - 1, 0, mb, chunk - 1)] + stages[p - 1].sendNext;
        } else if (s < p - 1) ready = ends[key(s + 1, 1, mb, chunk)] + stages[s + 1].sendPrev;
        else if (chunk === chunks - 1) ready = ends[key(s, 0, mb, chunk)];
        else ready = ends[key(0, 1, mb, chunk + 1)] + stages[0].sendPrev;
        if (Number.isNaN(ready)) break;
        const start = Math.max(free[s], ready);
        const dur = backward ? st.backward : st.forward;
        const end = start + dur;
        free[s] = end;
        busy[s] += dur;
        ends[key(s, backward, mb, chunk)] = end;
        if (trace) {
          trace[traced++] = s;
          trace[traced++] = op;
          trace[traced++] = start;
          trace[traced++] = end;
        }
        if (!backward) {
          inFlight[s]++;
          if (inFlight[s] > peakInFlight[s]) peakInFlight[s] = inFlight[s];
          if (s < p - 1 || chunk < chunks - 1) comm[s] += st.sendNext;
        } else {
          inFlight[s]--;
          if (s > 0 || chunk > 0) comm[s] += st.sendPrev;
        }
        next[s]++;
        remaining--;
        progressed = true;
      }
    }
    if (!progressed) throw new Error(`pipeline schedule ${schedule} deadlocked (p=${p}, m=${m}, v=${chunks})`);
  }
  const events: TimelineEvent[] = [];
  for (let i = 0; i < traced; i += 4) {
    const op = trace![i + 1];
    events.push({
      stage: trace![i],
      microBatch: Math.floor(op / OP_MB),
      chunk: (op >> 1) & CHUNK_MASK,
      pass: op & 1 ? 'backward' : 'forward',
      start: trace![i + 2],
      end: trace![i + 3],
    });
  }
  const makespan = Math.max(...free);
  const idle = Array.from(busy, (b) => makespan - b);
  const bubbleFraction = makespan > 0 ? idle.reduce((a, b) => a + b, 0) / (p * makespan) : 0;
  return {
    makespan,
    events,
    busy: Array.from(busy),
    idle,
    comm: Array.from(comm),
    peakInFlight: Array.from(peakInFlight),
    stageEnds: Array.from(free),
    bubbleFraction,
  };
}

/** Most ops simulate() runs: past this the schedule is extrapolated (a stated approximation). */
export const SIMULATION_CAP = 1 << 18;

/**
 * The schedule, simulated event by event while that stays under `cap` ops (2 × stages × micro-batches
 * × chunks); past it, bounded: the first micro-batches are simulated (at least one per stage, so the
 * warm-up and the pipeline fill are real) and the rest are added at the steady-state pace, measured
 * as the slope of the makespan between two truncated simulations (a full pipeline adds one period
 * per micro-batch). The timeline then covers the simulated micro-batches only, and `approximation`
 * says so. With more stages than the cap allows even one micro-batch each, the closed form of the
 * synchronous schedules is used with the slowest stage's times: (m·v + p − 1) · (f + b) plus the
 * sends along the pipeline once.
 */
export function simulateBounded(
  schedule: Schedule,
  stages: StageTimes[],
  m: number,
  v = 1,
  cap = SIMULATION_CAP,
  options: { events?: boolean } = {},
): ScheduleResult & { approximation?: string } {
  const p = stages.length;
  const chunks = schedule === 'interleaved' ? v : 1;
  if (2 * p * m * chunks <= cap) return simulate(schedule, stages, m, v, options);
  const slowest = stages.reduce((a, s) => Math.max(a, s.forward + s.backward), 0);
  // Interleaved 1F1B runs micro-batches in groups of p: simulate whole groups.
  const step = schedule === 'interleaved' ? p : 1;
  const simulated = Math.floor(cap / (2 * p * chunks) / step) * step;
  const least = Math.max(step, Math.min(m, p));
  if (simulated >= least) {
    // The steady-state pace, measured: the makespan grows by one period per further micro-batch
    // (sends and uneven stages included), so simulate twice and take the slope.
    const fewer = Math.max(least, Math.floor(simulated / 2 / step) * step);
    const head = simulate(schedule, stages, simulated, v, options);
    const period =
      fewer < simulated
        ? (head.makespan - simulate(schedule, stages, fewer, v, { events: false }).makespan) / (simulated - fewer)
        : chunks * slowest;
    const rest = m - simulated;
    const makespan = head.makespan + rest * period;
    const busy = head.busy.map((b, s) => b + rest * chunks * (stages[s].forward + stages[s].backward));
    const comm = head.comm.map((c) => (c * m) / simulated);
    const idle = busy.map((b) => makespan - b);
    return {
      ...head,
      makespan,
      busy,
      comm,
      idle,
      stageEnds: new Array<number>(p).fill(makespan),
      bubbleFraction: makespan > 0 ? idle.reduce((a, b) => a + b, 0) / (p * makespan) : 0,
      approximation: `schedule simulated for ${simulated} of ${m} micro-batches (${2 * p * m * chunks} ops is past the ${cap} simulated); the rest at the measured steady-state pace`,
    };
  }
  // Too many stages to simulate even one micro-batch each: the closed form.
  const sends = stages.reduce((a, s) => a + s.sendNext + s.sendPrev, 0);
  const makespan = (m * chunks + p - 1) * slowest + sends;
  const busy = stages.map((s) => m * chunks * (s.forward + s.backward));
  const idle = busy.map((b) => makespan - b);
  return {
    makespan,
    events: [],
    busy,
    idle,
    comm: stages.map((s) => m * chunks * (s.sendNext + s.sendPrev)),
    peakInFlight: stages.map((_, s) => (schedule === 'gpipe' ? m : Math.min(m * chunks, (p - s) * chunks))),
    stageEnds: new Array<number>(p).fill(makespan),
    bubbleFraction: makespan > 0 ? idle.reduce((a, b) => a + b, 0) / (p * makespan) : 0,
    approximation: `${p} stages: the closed form (m·v + p − 1)·(f + b) with the slowest stage, no timeline (simulating would take ${2 * p * m * chunks} ops)`,
  };
}

/**
 * Most micro-batch chunks each stage holds at once (forwards run, backwards not yet): a property of the op
 * order alone, so it needs no timing (equal to simulate()'s peakInFlight). GPipe runs every forward first;
 * the 1F1B orders run their warm-up forwards, then one more before each backward.
 */
export function peakInFlight(schedule: Schedule, p: number, m: number, v = 1): number[] {
  const interleaved = schedule === 'interleaved' && v > 1;
  return Array.from({ length: p }, (_, s) => {
    if (schedule === 'gpipe') return m;
    if (!interleaved) return Math.min(p - s, m);
    const total = m * v;
    return Math.min(Math.min((p - s - 1) * 2 + (v - 1) * p, total) + 1, total);
  });
}
