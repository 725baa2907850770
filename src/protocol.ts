import type { PackedWeight } from './engine/quant/pack';
import type { VerifyReport } from './engine/quant/verify';
import type { WorkloadSource } from './engine/cost/workload';
import type { Plan } from './engine/plan/plan';
import type { PlanEdit } from './engine/plan/edits';
import type { CostReport } from './engine/cost/estimate';
import type { Objective, SearchProgress, SearchResult } from './engine/search/optimize';

/** The plan beside a model, as the planner shows it. */
export interface PlanState {
  /** Workspace-relative path of the plan file. */
  file: string;
  exists: boolean;
  plan?: Plan;
  /** Diagnostics of the plan file (what the Problems panel shows), as text. */
  issues: { severity: string; message: string }[];
  /** The workload, when the model or its bindings changed (the worker keeps the last one). */
  source?: WorkloadSource;
  catalog: { id: string; name: string; memoryGB: number }[];
  formats: { name: string; bitsPerWeight: number }[];
  /**
   * The last planner edit (its `seq`) the file had taken when this state was read: the planner lays its
   * later edits, still on their way, over this state instead of showing the file roll back.
   */
  editSeq: number;
}

/** Per-layer quantization error of the plan's precision assignment, measured on the real weights. */
export interface LayerErrors {
  budgetDb?: number;
  /** Why there are no figures yet (measuring, or the model is too large to measure here). */
  note?: string;
  /** The predicted output SQNR (calibrated when `errorModel` says so) and the first-order figure. */
  outputSqnrDb: number | null;
  firstOrderSqnrDb?: number | null;
  errorModel?: 'first-order' | 'calibrated';
  /**
   * Per layer: its format, its weights' SQNR, its sensitivity (output noise per unit of relative weight
   * noise; 1 when first-order) and the output SQNR its noise alone gives.
   */
  layers: { name: string; format: string; sqnrDb: number | null; sensitivity?: number; outputSqnrDb?: number | null }[];
}

/** What *Export Quantized Model* measured, for the planner: the file and measured against predicted. */
export interface QuantExportShown {
  file: string;
  measuredSqnrDb: number | null;
  predictedSqnrDb: number | null;
  firstOrderSqnrDb: number | null;
  errorModel: 'first-order' | 'calibrated';
  klDivergence: number | null;
  top1Agreement: number | null;
  generatedInputs: boolean;
  batches: number;
  /** Formats written as dequantized floats, with the reason. */
  simulated: { format: string; reason: string }[];
  bytes: number;
  originalBytes: number;
}

/**
 * Every message between the extension host and the model-graph webview, typed in one place:
 * one union per direction, each message tagged by `type`.
 */

/** A layer as the collapsed graph shows it. */
export interface LayerBox {
  index: number;
  name: string;
  nodes: number;
  parameters: number;
  flops: number;
  /** The most common ops inside, for the box's subtitle. */
  ops: string;
}

export interface NodeBox {
  index: number;
  name: string;
  opType: string;
  /** Output shape as text (symbolic dims kept). */
  shape: string;
  flops: number;
  known: boolean;
}

export interface Edge {
  from: number;
  to: number;
  label?: string;
}

export interface ModelSummary {
  file: string;
  format: string;
  producer: string;
  nodes: number;
  parameters: number;
  bytes: number;
  layers: LayerBox[];
  /** Edges between layers (a tensor produced in one and consumed in another). */
  edges: Edge[];
  /** What the FLOPs and bytes shown miss (graph/warnings.ts): unbound symbolic dims, failed shape rules, no config. */
  warnings: string[];
}

export interface NodeDetails {
  index: number;
  name: string;
  opType: string;
  domain: string;
  layer: string;
  attributes: [string, string][];
  inputs: { name: string; shape: string; dtype: string; weight: boolean }[];
  outputs: { name: string; shape: string; dtype: string; weight: boolean }[];
  flops: number;
  parameters: number;
  /** Why this node's shape rule failed (its FLOPs are not counted), when it did. */
  shapeError?: string;
}

export type HostToWebview =
  | { type: 'summary'; summary: ModelSummary }
  | { type: 'layer'; layer: number; nodes: NodeBox[]; edges: Edge[] }
  | { type: 'details'; details: NodeDetails }
  /** Layers holding a node or tensor whose name matches the query (case-insensitive substring). */
  | { type: 'searchResult'; query: string; layers: number[]; nodes: number[] }
  | { type: 'error'; message: string }
  /** Run the packed kernel on navigator.gpu: y = x · Wᵀ for x [batch, cols]; answered by verifyResult with the same id. */
  | { type: 'verifyRun'; id: number; packed: PackedWeight; x: Float32Array; batch: number; repeats: number }
  /** A verification finished (or is under way, with `progress`): show it. */
  | { type: 'verifyReport'; report?: VerifyReport; progress?: string; error?: string }
  | { type: 'plan'; state: PlanState }
  | { type: 'layerErrors'; errors: LayerErrors }
  /** What the search needs from the host (answers searchPrepare): the weights' SQNR per layer and format. */
  | { type: 'searchInputs'; layerSqnr?: Record<string, Record<string, number | null>>; notes: string[] }
  /** *Export Quantized Model* ran (or is running, with `progress`; or failed, with `error`): show measured against predicted. */
  | { type: 'quantExport'; shown?: QuantExportShown; progress?: string; error?: string }
  /** Open the planner (from the "New plan" / "Estimate plan" commands). */
  | { type: 'showPlanner' };

export type WebviewToHost =
  | { type: 'ready' }
  | { type: 'expandLayer'; layer: number }
  | { type: 'select'; node: number }
  | { type: 'search'; query: string }
  /** How many boxes (layers and nodes) the view drew, reported after every render. */
  | { type: 'rendered'; boxes: number; layers: number; nodes: number; textNames: string[] }
  /** The kernel's output, or why no kernel ran (`fallback`: no adapter; `error`: it failed). */
  | {
      type: 'verifyResult';
      id: number;
      y?: Float32Array;
      device?: string;
      seconds?: number;
      fallback?: string;
      error?: string;
    }
  /** The user asked to verify a weight from the details pane. */
  | { type: 'verifyRequest'; tensor?: string; layer?: number }
  /** What the view shows of a verification report (for tests and screen readers alike). */
  | { type: 'verifyShown'; text: string }
  /** The planner opened: send the plan. */
  | { type: 'plannerOpen' }
  /** Set these JSON paths of the plan file (the host edits the file through a WorkspaceEdit). */
  | { type: 'planEdit'; seq: number; edits: PlanEdit[] }
  | { type: 'newPlan' }
  /** The planner's *Export quantized model* button. */
  | { type: 'exportQuantized' }
  /** Ctrl+Z / Ctrl+Shift+Z (Ctrl+Y) in the planner: take back or redo the planner's last edit of the plan file. */
  | { type: 'planUndo'; redo: boolean }
  /** Something failed inside the view (a worker crashed, a layout failed); the view has recovered what it could. */
  | { type: 'viewError'; message: string }
  /** Find best plans was pressed: measure what the search needs (the weights' SQNR), answered by searchInputs. */
  | { type: 'searchPrepare' }
  /** What the planner shows after an estimate (for tests): the summary line, the stage assignment, and how many of its edits the file's state did not hold yet. */
  | {
      type: 'plannerShown';
      summary: string;
      stages: string[];
      ms: number;
      pending: number;
      note?: string;
      /** The Find best plans panel: its state, its status line and its rows as shown (in the table's order). */
      search?: SearchShown;
      /** The Quantized export section as shown. */
      exportText?: string;
    };

/** What the planner's search panel shows (for tests and screen readers). */
export interface SearchShown {
  state: 'idle' | 'preparing' | 'running' | 'done' | 'cancelled' | 'failed';
  status: string;
  rows: { rank: number; iterationSeconds: number; gpus: number; peakMemoryBytes: number; changes: string }[];
  sortedBy: string;
  /** The diffs opened, by rank: the candidate's fields against the current plan. */
  diffs: { rank: number; text: string }[];
}

/* ------------------------------------------------------------------------------------------------
 * Web workers of the webview: the layout worker (dagre) and the estimate worker (the cost engine).
 * Each request carries an id; each answer names the id it answers, and carries `error` when it failed.
 * ---------------------------------------------------------------------------------------------- */

/** Lay out boxes and edges (layout-worker.ts). */
export interface LayoutRequest {
  id: number;
  boxes: { id: string; width: number; height: number }[];
  edges: { from: string; to: string }[];
}

export interface LayoutAnswer {
  id: number;
  positions: { id: string; x: number; y: number }[];
  paths: { from: string; to: string; points: { x: number; y: number }[] }[];
  width: number;
  height: number;
  error?: string;
}

/** Estimate a plan (estimate-worker.ts); the workload is rebuilt only when `source` is sent. */
export interface EstimateRequest {
  id: number;
  plan: Plan;
  source?: WorkloadSource;
}

export interface EstimateAnswer {
  id: number;
  report?: CostReport;
  problems: string[];
  /** The engine could not estimate this plan (shown among the problems); `error` is for a failed request. */
  engineError?: string;
  error?: string;
  ms: number;
  /** Parameters per block (what stages split), for rebalancing. */
  blockParameters: number[];
  layerNames: string[];
}

/** Run the optimizer (search-worker.ts): progress answers carry the request's id, the last one the result. */
export interface SearchRequest {
  id: number;
  plan: Plan;
  source: WorkloadSource;
  objective: Objective;
  top: number;
  layerSqnr?: Record<string, Record<string, number | null>>;
}

export interface SearchAnswer {
  id: number;
  progress?: SearchProgress;
  result?: SearchResult;
  error?: string;
}

/**
 * For exhaustive switches over a message union: `default: return unhandled(m)` stops compiling
 * when a message is added to the union and not handled.
 */
export function unhandled(m: never): never {
  throw new Error(`unhandled message ${JSON.stringify((m as { type?: string }).type ?? m)}`);
}

/** A request that failed: its answer said so, it timed out, or the other side went away. */
export class RequestError extends Error {}

/**
 * Requests and their replies, matched one way everywhere (host ↔ webview kernel runs, webview ↔
 * its workers): `request()` sends a message with a fresh id and resolves with the answer carrying
 * that id, or rejects with a RequestError (the answer's `error`, a timeout, or `failAll` when the
 * other side crashed or closed). Answers to forgotten requests are ignored.
 */
export class RequestChannel<Req extends { id: number }, Ans extends { id: number; error?: string }> {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (a: Ans) => void; reject: (e: Error) => void; timer?: ReturnType<typeof setTimeout> }
  >();

  constructor(
    private readonly send: (m: Req) => void,
    private readonly timeoutMs = 0,
  ) {}

  /** Sends `body` with a fresh id; resolves with the answer, rejects on its error or a timeout. */
  request(body: Omit<Req, 'id'>, what = 'the request'): Promise<Ans> {
    const id = this.nextId++;
    return new Promise<Ans>((resolve, reject) => {
      const timer =
        this.timeoutMs > 0
          ? setTimeout(() => {
              this.waiting.delete(id);
              reject(new RequestError(`${what} got no answer within ${Math.round(this.timeoutMs / 1000)} s`));
            }, this.timeoutMs)
          : undefined;
      this.waiting.set(id, { resolve, reject, timer });
      try {
        this.send({ ...body, id } as Req);
      } catch (e) {
        this.settle(id);
        reject(new RequestError(`${what} could not be sent: ${(e as Error).message}`));
      }
    });
  }

  /** The id the next request will carry (for callers that drop stale answers). */
  get latestId(): number {
    return this.nextId - 1;
  }

  /** Feeds an answer in (from onmessage). */
  answer(a: Ans): void {
    const w = this.settle(a.id);
    if (!w) return;
    if (a.error !== undefined) w.reject(new RequestError(a.error));
    else w.resolve(a);
  }

  /** The other side failed or closed: every open request rejects with `reason`. */
  failAll(reason: string): void {
    for (const id of [...this.waiting.keys()]) this.settle(id)?.reject(new RequestError(reason));
  }

  private settle(id: number) {
    const w = this.waiting.get(id);
    if (!w) return undefined;
    clearTimeout(w.timer);
    this.waiting.delete(id);
    return w;
  }
}
