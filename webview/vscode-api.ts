import type { WebviewToHost } from '../src/protocol';

/** The webview's handle on VS Code: messages to the host, and state kept while the view is hidden. */
declare function acquireVsCodeApi(): {
  postMessage(m: WebviewToHost): void;
  getState(): unknown;
  setState(s: unknown): void;
};
const vscode = acquireVsCodeApi();

export const post = (m: WebviewToHost): void => vscode.postMessage(m);

/** What survives the view being hidden and shown again. */
export interface ViewState {
  /** Expanded layers, as `<level>|<layer index>`. */
  expanded: string[];
  /** The level shown: '' the model's top level, else a subgraph id. */
  level: string;
  /** Constant-foldable nodes (Constants, weight plumbing) drawn too. */
  constants: boolean;
  planner?: boolean;
  view?: { x: number; y: number; scale: number };
  search?: string;
}
const saved = vscode.getState() as Partial<ViewState> | undefined;
export const state: ViewState = {
  expanded: Array.isArray(saved?.expanded) ? saved.expanded.filter((x): x is string => typeof x === 'string') : [],
  level: typeof saved?.level === 'string' ? saved.level : '',
  constants: saved?.constants === true,
  planner: saved?.planner,
  view: saved?.view,
  search: saved?.search,
};
export const save = (): void => vscode.setState(state);
