import type { PackedWeight } from './engine/quant/pack';
import type { VerifyReport } from './engine/quant/verify';
import type { WorkloadSource } from './engine/cost/workload';
import type { Plan } from './engine/plan/plan';
import type { PlanEdit } from './engine/plan/edits';
import type { CostReport } from './engine/cost/estimate';
import type { Objective, SearchProgress, SearchResult } from './engine/search/optimize';
import type { ExportResult } from './engine/export/target';

/** A launch configuration the planner shows (Export): the targets it may ask for and the result or why not. */
export interface ExportShown {
  to: string;
  targets: { name: string; description: string }[];
  result?: ExportResult;
  error?: string;
  /** The files were written beside the plan (Save): their workspace-relative paths. */
  saved?: string[];
}

/** The plan beside a model, as the planner shows it. */
export interface PlanState {
  /** Workspace-relative path of the plan file. */
  file: string;
  exists: boolean;
  plan?: Plan;
  /** Diagnostics of the plan file (what the Problems panel shows), with their quick fixes. */
  issues: { severity: string; message: string; fixes?: { title: string; edits: PlanEdit[] }[] }[];
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
  /** Nodes inside, subgraphs' nodes included. */
  nodes: number;
  parameters: number;
  flops: number;
  /** The most common ops inside, for the box's subtitle. */
  ops: string;
}

/** A subgraph a node holds (an If's branches, a Loop's or Scan's body): enter it to see its graph. */
export interface SubgraphRef {
  /** The level id to enter: `<node index>:<attribute>`. */
  id: string;
  /** The attribute: then_branch, else_branch, body. */
  label: string;
  nodes: number;
}

export interface NodeBox {
  index: number;
  name: string;
  opType: string;
  /** Output shape as text (symbolic dims kept). */
  shape: string;
  flops: number;
  known: boolean;
  /** A constant-foldable node (Constant, Identity / Transpose / Cast of a weight): hidden unless constants are shown. */
  constant: boolean;
  subgraphs?: SubgraphRef[];
}

export interface Edge {
  from: number;
  to: number;
  label?: string;
}

/** Where a node is, to go there: its level ('' the top, else a subgraph id) and its layer at that level. */
export interface NodeRef {
  node: number;
  name: string;
  opType: string;
  level: string;
  layer: number;
}

/** The level a view shows and how it got there (the model, then the If / Loop / Scan entered). */
export interface LevelInfo {
  id: string;
  crumbs: { id: string; label: string }[];
}

/** A graph input or output (of the level shown), with the node that reads or writes it. */
export interface IoEntry {
  name: string;
  dtype: string;
  shape: string;
  node?: NodeRef;
}

export interface ModelSummary {
  file: string;
  format: string;
  producer: string;
  /** Whole-model counts. */
  nodes: number;
  parameters: number;
  bytes: number;
  /** The layers of the level shown. */
  layers: LayerBox[];
  /** Edges between layers (a tensor produced in one and consumed in another). */
  edges: Edge[];
  level: LevelInfo;
  inputs: IoEntry[];
  outputs: IoEntry[];
  /** What the FLOPs and bytes shown miss (graph/warnings.ts): unbound symbolic dims, failed shape rules, no config. */
  warnings: string[];
}

export interface NodeDetails {
  index: number;
  name: string;
  opType: string;
  domain: string;
  layer: string;
  level: string;
  layerIndex: number;
  attributes: [string, string][];
  /** `sources`: the stored weights behind an input that reaches the node through Identity / Transpose / … chains. */
  inputs: { name: string; shape: string; dtype: string; weight: boolean; producer?: NodeRef; sources?: string[] }[];
  outputs: { name: string; shape: string; dtype: string; weight: boolean; consumers: NodeRef[] }[];
  subgraphs: SubgraphRef[];
  flops: number;
  parameters: number;
  /** Why this node's shape rule failed (its FLOPs are not counted), when it did. */
  shapeError?: string;
}

/** The nodes matching a search, in graph order, and what to highlight in the level shown. */
export interface GraphSearchResult {
  query: string;
  level: string;
  /** Layers of the level holding a hit (at or below it) or whose name matches. */
  layers: number[];
  /** Nodes of the level that are hits or hold one. */
  nodes: number[];
  hits: NodeRef[];
  total: number;
}

/** What the view shows, reported after each render (for tests and screen readers alike). */
export interface ViewReport {
  boxes: number;
  layers: number;
  nodes: number;
  textNames: string[];
  level: string;
  crumbs: string[];
  clusters: string[];
  /** The details pane's heading, and the search counter's text. */
  details: string;
  search: string;
  constants: boolean;
  expanded: string[];
}

export type HostToWebview =
  | { type: 'summary'; summary: ModelSummary }
  | { type: 'layer'; level: string; layer: number; nodes: NodeBox[]; edges: Edge[]; hidden: number }
  | { type: 'details'; details: NodeDetails }
  | { type: 'searchResult'; result: GraphSearchResult }
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
  | { type: 'showPlanner' }
  /** Draw the view as an image and send it back (exportImage with this id): the Export Graph Image command. */
  | { type: 'requestImage'; id: number; format: 'svg' | 'png' }
  /** The plan as a framework's launch configuration (the planner's Export panel). */
  | { type: 'exportResult'; shown: ExportShown };

export type WebviewToHost =
  | { type: 'ready' }
  /** The nodes of a layer of a level; `constants`: with the constant-foldable ones. */
  | { type: 'expandLayer'; level: string; layer: number; constants: boolean }
  /** Show another level: a subgraph (If branch, Loop / Scan body) or, with '', the model's top level. */
  | { type: 'enterLevel'; level: string }
  | { type: 'select'; node: number }
  | { type: 'search'; query: string; level: string }
  /** The graph view's Export button: ask the user for SVG or PNG and a file, then request the image. */
  | { type: 'exportImageRequest' }
  /** The view as an image (SVG text, or a PNG as base64), answering requestImage `id`. */
  | { type: 'exportImage'; format: 'svg' | 'png'; data: string; id?: number; error?: string }
  /** What the view drew, reported after every render and every change of what it shows. */
  | ({ type: 'rendered' } & ViewReport)
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
  /** Export the plan to a target (megatron, deepspeed, torchtitan, …): answered by exportResult. */
  | { type: 'exportRequest'; to: string }
  /** Copy the export's command to the clipboard, or save its files beside the plan. */
  | { type: 'exportAction'; to: string; action: 'copy' | 'save' }
  /** What the planner shows after an estimate (for tests): the summary line, the stage assignment, and how many of its edits the file's state did not hold yet. */
  | {
      type: 'plannerShown';
      summary: string;
      stages: string[];
      ms: number;
      pending: number;
      /** The layer table as shown: name, parameters, stage and precision of each row. */
      rows: { name: string; parameters: string; stage: string; precision: string }[];
      /** The problem list as shown. */
      problems: string[];
      note?: string;
      /** The Find best plans panel: its state, its status line and its rows as shown (in the table's order). */
      search?: SearchShown;
      /** The Quantized export section as shown. */
      exportText?: string;
      /** Inference on devices: each device's lane as drawn (its layers, memory and the bar's label). */
      devices?: PlannerDeviceShown[];
    };

/** One device lane of the planner, as drawn. */
export interface PlannerDeviceShown {
  name: string;
  layers: string;
  output: boolean;
  weights: number;
  kvCache: number;
  compute: number;
  total: number;
  capacity: number | null;
  /** The memory bar's label (weights, KV cache, compute, free). */
  bar: string;
}

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

/** Lay out boxes and edges (layout-worker.ts); a box may sit in a cluster, a cluster in another. */
export interface LayoutRequest {
  id: number;
  boxes: { id: string; width: number; height: number; parent?: string }[];
  edges: { from: string; to: string }[];
  clusters?: { id: string; parent?: string }[];
}

export interface LayoutAnswer {
  id: number;
  positions: { id: string; x: number; y: number }[];
  paths: { from: string; to: string; points: { x: number; y: number }[] }[];
  /** Each cluster's frame: top-left corner, width and height. */
  clusters: { id: string; x: number; y: number; width: number; height: number }[];
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
  /** Every layer of the workload, in order: the planner's rows (blocks are what stages split; the others follow them). */
  layerNames: string[];
  /** Which rows of layerNames are the blocks (what stages and devices split), and every row's parameters. */
  blockIndices?: number[];
  layerParameters?: number[];
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
