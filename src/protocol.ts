import type { PackedWeight } from './engine/quant/pack';
import type { VerifyReport } from './engine/quant/verify';
import type { WorkloadSource } from './engine/cost/workload';
import type { Plan } from './engine/plan/plan';
import type { PlanEdit } from './engine/plan/edits';

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
  outputSqnrDb: number | null;
  layers: { name: string; format: string; sqnrDb: number | null }[];
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
  /** Ctrl+Z / Ctrl+Shift+Z (Ctrl+Y) in the planner: take back or redo the planner's last edit of the plan file. */
  | { type: 'planUndo'; redo: boolean }
  /** What the planner shows after an estimate (for tests): the summary line, the stage assignment, and how many of its edits the file's state did not hold yet. */
  | { type: 'plannerShown'; summary: string; stages: string[]; ms: number; pending: number };
