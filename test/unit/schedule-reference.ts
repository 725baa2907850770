/**
 * The pipeline simulation as it was before simulate() moved to typed arrays (commit 03bb806,
 * src/engine/cost/schedule.ts, unchanged): the reference the faster one must agree with exactly.
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
  /** Each stage's end of its last backward (from the events). */
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
  const ops: Op[] = [];
  if (schedule === 'gpipe') {
    for (let i = 0; i < m; i++) ops.push({ pass: 'forward', microBatch: i, chunk: 0 });
    for (let i = 0; i < m; i++) ops.push({ pass: 'backward', microBatch: i, chunk: 0 });
    return ops;
  }
  if (schedule === '1f1b' || v <= 1) {
    const warmup = Math.min(p - stage - 1, m);
    let f = 0;
    let b = 0;
    for (; f < warmup; f++) ops.push({ pass: 'forward', microBatch: f, chunk: 0 });
    while (f < m) {
      ops.push({ pass: 'forward', microBatch: f++, chunk: 0 });
      ops.push({ pass: 'backward', microBatch: b++, chunk: 0 });
    }
    while (b < m) ops.push({ pass: 'backward', microBatch: b++, chunk: 0 });
    return ops;
  }
  // Megatron-LM interleaved 1F1B (schedules.py): units k = 0 … m·v−1 in groups of p micro-batches per chunk.
  const total = m * v;
  const unit = (k: number, backward: boolean): Op => {
    const group = Math.floor(k / (p * v));
    const inGroup = k % (p * v);
    const chunk = Math.floor(inGroup / p);
    return {
      pass: backward ? 'backward' : 'forward',
      microBatch: group * p + (k % p),
      chunk: backward ? v - 1 - chunk : chunk,
    };
  };
  const warmup = Math.min((p - stage - 1) * 2 + (v - 1) * p, total);
  let f = 0;
  let b = 0;
  for (; f < warmup; f++) ops.push(unit(f, false));
  while (f < total) {
    ops.push(unit(f++, false));
    ops.push(unit(b++, true));
  }
  while (b < total) ops.push(unit(b++, true));
  return ops;
}

export function simulate(schedule: Schedule, stages: StageTimes[], m: number, v = 1): ScheduleResult {
  const p = stages.length;
  const chunks = schedule === 'interleaved' ? v : 1;
  const orders = stages.map((_, i) => stageOrder(schedule, p, m, chunks, i));
  // End time of every (stage, pass, micro-batch, chunk), NaN until it has run.
  const key = (stage: number, pass: 'forward' | 'backward', mb: number, chunk: number) =>
    (((pass === 'forward' ? 0 : 1) * chunks + chunk) * m + mb) * p + stage;
  const ends = new Float64Array(2 * chunks * m * p).fill(NaN);
  const done = {
    get: (k: number): number | undefined => (Number.isNaN(ends[k]) ? undefined : ends[k]),
    set: (k: number, t: number) => void (ends[k] = t),
  };
  const next = new Array(p).fill(0);
  const free = new Array(p).fill(0);
  const busy = new Array(p).fill(0);
  const comm = new Array(p).fill(0);
  const events: TimelineEvent[] = [];
  const inFlight = new Array(p).fill(0);
  const peakInFlight = new Array(p).fill(0);

  /** When the input of an op is available on its stage, or undefined if its producer has not run. */
  const ready = (s: number, op: Op): number | undefined => {
    if (op.pass === 'forward') {
      if (s > 0) {
        const t = done.get(key(s - 1, 'forward', op.microBatch, op.chunk));
        return t === undefined ? undefined : t + stages[s - 1].sendNext;
      }
      if (op.chunk === 0) return 0;
      const t = done.get(key(p - 1, 'forward', op.microBatch, op.chunk - 1));
      return t === undefined ? undefined : t + stages[p - 1].sendNext;
    }
    if (s < p - 1) {
      const t = done.get(key(s + 1, 'backward', op.microBatch, op.chunk));
      return t === undefined ? undefined : t + stages[s + 1].sendPrev;
    }
    if (op.chunk === chunks - 1) return done.get(key(s, 'forward', op.microBatch, op.chunk));
    const t = done.get(key(0, 'backward', op.microBatch, op.chunk + 1));
    return t === undefined ? undefined : t + stages[0].sendPrev;
  };

  let remaining = orders.reduce((a, o) => a + o.length, 0);
  while (remaining > 0) {
    let progressed = false;
    for (let s = 0; s < p; s++) {
      while (next[s] < orders[s].length) {
        const op = orders[s][next[s]];
        const r = ready(s, op);
        if (r === undefined) break;
        const start = Math.max(free[s], r);
        const dur = op.pass === 'forward' ? stages[s].forward : stages[s].backward;
        const end = start + dur;
        free[s] = end;
        busy[s] += dur;
        done.set(key(s, op.pass, op.microBatch, op.chunk), end);
        events.push({ stage: s, microBatch: op.microBatch, chunk: op.chunk, pass: op.pass, start, end });
        if (op.pass === 'forward') {
          inFlight[s]++;
          peakInFlight[s] = Math.max(peakInFlight[s], inFlight[s]);
          if (s < p - 1 || op.chunk < chunks - 1) comm[s] += stages[s].sendNext;
        } else {
          inFlight[s]--;
          if (s > 0 || op.chunk > 0) comm[s] += stages[s].sendPrev;
        }
        next[s]++;
        remaining--;
        progressed = true;
      }
    }
    if (!progressed) throw new Error(`pipeline schedule ${schedule} deadlocked (p=${p}, m=${m}, v=${chunks})`);
  }
  const makespan = Math.max(...free);
  const idle = busy.map((b) => makespan - b);
  const bubbleFraction = makespan > 0 ? idle.reduce((a, b) => a + b, 0) / (p * makespan) : 0;
  const stageEnds = new Array<number>(p).fill(0);
  for (const e of events) if (e.pass === 'backward') stageEnds[e.stage] = Math.max(stageEnds[e.stage], e.end);
  return { makespan, events, busy, idle, comm, peakInFlight, stageEnds, bubbleFraction };
}
