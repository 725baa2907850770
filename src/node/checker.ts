import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { CostReport } from '../engine/cost/estimate';
import type { WorkloadSource } from '../engine/cost/workload';
import type { Issue, Plan } from '../engine/plan/plan';
import { InputError } from '../engine/errors';
import { RequestChannel, RequestError } from '../protocol';
import { checkFile, NotCheckedError, tryEstimatePlan } from './plan-file';
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

/**
 * Plan checks and estimates on a worker thread, so the editor never waits on them: each file has at
 * most one request in flight; a newer request for the same file cancels the older one (the worker is
 * terminated and restarted — JavaScript cannot interrupt a running computation otherwise), and a
 * request that runs past its time budget is stopped and reported as skipped, with the reason. Where
 * the bundled worker script is missing (unit tests of the host code), the work runs inline.
 */
export class Checker {
  private worker?: Worker;
  private channel?: RequestChannel<CheckRequest, CheckAnswer>;
  /** The request in flight per file, to cancel when a newer one comes. */
  private readonly inFlight = new Map<string, () => void>();

  constructor(
    private readonly script = path.join(__dirname, 'check-worker.js'),
    readonly budgetMs = 10000,
  ) {}

  async run(kind: CheckRequest['kind'], file: string, text: string): Promise<Bounded<CheckAnswer>> {
    const key = `${kind}:${file}`;
    this.inFlight.get(key)?.();
    if (!fs.existsSync(this.script)) return { done: await answer({ id: 0, kind, file, text }) };
    const channel = this.start();
    let superseded = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cancel = () => {
      superseded = true;
      this.restart('superseded by a newer request');
    };
    this.inFlight.set(key, cancel);
    try {
      const answer = await Promise.race([
        channel.request({ kind, file, text }, 'the plan check'),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new BudgetError()), this.budgetMs);
        }),
      ]);
      return { done: answer };
    } catch (e) {
      if (superseded) return { superseded: true };
      if (e instanceof BudgetError) {
        this.restart('over its time budget');
        return {
          skipped: `stopped after ${Math.round(this.budgetMs / 1000)} s (the plan is too large to check as you type; run layerplan check on it)`,
        };
      }
      if (e instanceof RequestError) return { done: { id: 0, error: e.message } };
      throw e;
    } finally {
      clearTimeout(timer);
      if (this.inFlight.get(key) === cancel) this.inFlight.delete(key);
    }
  }

  dispose(): void {
    this.restart('closed');
  }

  private start(): RequestChannel<CheckRequest, CheckAnswer> {
    if (this.worker && this.channel) return this.channel;
    const worker = new Worker(this.script);
    const channel = new RequestChannel<CheckRequest, CheckAnswer>((m) => worker.postMessage(m));
    worker.on('message', (a: CheckAnswer) => channel.answer(a));
    worker.on('error', (e) => {
      channel.failAll(`the plan check worker failed: ${e.message}`);
      if (this.worker === worker) this.worker = undefined;
    });
    worker.unref();
    this.worker = worker;
    this.channel = channel;
    return channel;
  }

  private restart(reason: string): void {
    this.channel?.failAll(`the plan check was ${reason}`);
    void this.worker?.terminate();
    this.worker = undefined;
    this.channel = undefined;
  }
}

class BudgetError extends Error {}

/** One request's answer; the worker and the inline fallback both run this. */
export async function answer(m: CheckRequest): Promise<CheckAnswer> {
  const { id, kind, file, text } = m;
  try {
    switch (kind) {
      case 'check':
        // Plans, configs and launch configurations (Megatron-LM scripts, DeepSpeed configs, torchtitan TOMLs).
        return { id, diagnostics: (await checkAnyFile(file, { text })).diagnostics };
      case 'planner': {
        const r = await checkFile(file, { text });
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
