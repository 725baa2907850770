import * as fs from 'fs';
import * as path from 'path';
import { fork, type ChildProcess } from 'child_process';
import type { CostReport } from '../engine/cost/estimate';
import type { WorkloadSource } from '../engine/cost/workload';
import type { Issue, Plan } from '../engine/plan/plan';
import { InputError } from '../engine/errors';
import { RequestChannel } from '../protocol';
import { NotCheckedError, tryEstimatePlan } from './plan-file';
import { checkAnyFile } from './launch-file';

/**
 * What the host asks of the check worker (src/node/check-worker.ts): the Problems panel's check of any file
 * Layerplan reads, the status bar's estimate, or the planner's check of a plan (its diagnostics and the
 * workload the check built, so the planner's web worker can estimate without opening the model again).
 */
export type CheckRequest = { id: number; kind: 'check' | 'estimate' | 'planner'; file: string; text: string };

export interface CheckAnswer {
  id: number;
  diagnostics?: Issue[];
  /** 'planner': the workload of the plan's model, when the check built it. */
  source?: WorkloadSource;
  plan?: Plan;
  report?: CostReport;
  /** The estimate could not be made (an invalid plan, a model that does not open): why. */
  estimateError?: string;
  /** Not a file Layerplan understands, or one it cannot read: the InputError's message. */
  inputError?: string;
  /** A JSON file of another tool (NotCheckedError): the editor shows nothing for it. */
  notChecked?: true;
  /** The check itself failed. */
  error?: string;
}

/** The outcome of a bounded check: the answer, or why there is none. */
export type Bounded<T> = { done: T } | { skipped: string } | { superseded: true };

/** A request waiting for, or running in, the check process. */
interface Job {
  key: string;
  request: Omit<CheckRequest, 'id'>;
  resolve: (r: Bounded<CheckAnswer>) => void;
  /** Answered (or superseded): whatever the process says later is dropped. */
  settled: boolean;
}

/**
 * Plan checks and estimates in a child process, one at a time, so the editor never waits on them. A
 * newer request for the same file and kind supersedes the older one at once: a waiting one is dropped,
 * a running one finishes in the background (its answer is dropped; the process keeps its caches, such
 * as the model's measured sensitivity) — a late result never overwrites a newer one. A request that
 * runs past its time budget is stopped (the process is killed and restarted) and reported as skipped,
 * with the reason. A process, not a worker thread: a check may be running onnxruntime (the calibrated
 * error prediction), and terminating a worker thread inside a native module aborts the whole extension
 * host (`terminate called after throwing an instance of 'Napi::Error'`, seen in VS Code 1.100); killing
 * a process cannot. Where the bundled script is missing (unit tests of the host code), the work runs inline.
 */
export class Checker {
  private child?: ChildProcess;
  private channel?: RequestChannel<CheckRequest, CheckAnswer>;
  private readonly queue: Job[] = [];
  private running?: { job: Job; timer: ReturnType<typeof setTimeout> };
  /** The latest request per kind and file. */
  private readonly latest = new Map<string, Job>();

  constructor(
    private readonly script = path.join(__dirname, 'check-worker.js'),
    readonly budgetMs = 10000,
  ) {}

  async run(kind: CheckRequest['kind'], file: string, text: string): Promise<Bounded<CheckAnswer>> {
    const key = `${kind}:${file}`;
    const older = this.latest.get(key);
    if (older) this.settle(older, { superseded: true });
    if (!fs.existsSync(this.script)) return { done: await answer({ id: 0, kind, file, text }) };
    return new Promise((resolve) => {
      const job: Job = { key, request: { kind, file, text }, resolve, settled: false };
      this.latest.set(key, job);
      this.queue.push(job);
      this.pump();
    });
  }

  dispose(): void {
    for (const job of [...this.queue, ...(this.running ? [this.running.job] : [])]) {
      this.settle(job, { superseded: true });
    }
    this.kill('closed');
  }

  private settle(job: Job, result: Bounded<CheckAnswer>): void {
    if (job.settled) return;
    job.settled = true;
    if (this.latest.get(job.key) === job) this.latest.delete(job.key);
    const i = this.queue.indexOf(job);
    if (i >= 0) this.queue.splice(i, 1);
    job.resolve(result);
  }

  /** Starts the next waiting request when the process is free. */
  private pump(): void {
    if (this.running) return;
    const job = this.queue.shift();
    if (!job) return;
    const timer = setTimeout(() => {
      this.kill('over its time budget');
      this.settle(job, {
        skipped: `stopped after ${Math.round(this.budgetMs / 1000)} s (the plan is too large to check as you type; run layerplan check on it)`,
      });
      this.finished(job);
    }, this.budgetMs);
    this.running = { job, timer };
    this.start()
      .request(job.request, 'the plan check')
      .then(
        (done) => this.settle(job, { done }),
        (e: Error) => this.settle(job, { done: { id: 0, error: e.message } }),
      )
      .finally(() => this.finished(job));
  }

  private finished(job: Job): void {
    if (this.running?.job !== job) return;
    clearTimeout(this.running.timer);
    this.running = undefined;
    this.pump();
  }

  private start(): RequestChannel<CheckRequest, CheckAnswer> {
    if (this.child && this.channel) return this.channel;
    // 'advanced' serialization: the structured clone, as between worker threads (typed arrays, Maps).
    const child = fork(this.script, [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const channel = new RequestChannel<CheckRequest, CheckAnswer>((m) => {
      if (!child.connected) throw new Error('the check process is gone');
      child.send(m);
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-2000)));
    child.on('message', (a: CheckAnswer) => channel.answer(a));
    const gone = (why: string) => {
      channel.failAll(`the plan check process ${why}${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`);
      if (this.child === child) {
        this.child = undefined;
        this.channel = undefined;
      }
    };
    child.on('error', (e) => gone(`failed (${e.message})`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? `code ${code}`})`));
    // Nothing of the check process keeps its parent alive (the CLI's tests, a closing extension host).
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    (child.stderr as { unref?: () => void } | null)?.unref?.();
    this.child = child;
    this.channel = channel;
    return channel;
  }

  private kill(reason: string): void {
    const { child, channel } = this;
    this.child = undefined;
    this.channel = undefined;
    channel?.failAll(`the plan check was ${reason}`);
    child?.kill('SIGKILL');
  }
}

/**
 * The last check, for a second request of the same text right after it: the Problems panel and the
 * planner both check the plan on every change, and the second need not do the work again.
 */
let lastCheck: { file: string; text: string; at: number; result: ReturnType<typeof checkAnyFile> } | undefined;
const SAME_CHECK_MS = 2000;

function checkOnce(file: string, text: string): ReturnType<typeof checkAnyFile> {
  if (lastCheck && lastCheck.file === file && lastCheck.text === text && Date.now() - lastCheck.at < SAME_CHECK_MS) {
    return lastCheck.result;
  }
  const result = checkAnyFile(file, { text });
  lastCheck = { file, text, at: Date.now(), result };
  return result;
}

/** One request's answer; the check process and the inline fallback both run this. */
export async function answer(m: CheckRequest): Promise<CheckAnswer> {
  const { id, kind, file, text } = m;
  try {
    switch (kind) {
      case 'check':
        // Plans, configs and launch configurations (Megatron-LM scripts, DeepSpeed configs, torchtitan TOMLs).
        return { id, diagnostics: (await checkOnce(file, text)).diagnostics };
      case 'planner': {
        const r = await checkOnce(file, text);
        return { id, diagnostics: r.diagnostics, source: r.source };
      }
      case 'estimate': {
        const r = await tryEstimatePlan(file, text);
        return { id, plan: r.plan, report: r.report, estimateError: r.error?.problem };
      }
    }
  } catch (e) {
    if (e instanceof NotCheckedError) return { id, inputError: e.message, notChecked: true };
    if (e instanceof InputError) return { id, inputError: e.message };
    return { id, error: (e as Error).message ?? String(e) };
  }
}
