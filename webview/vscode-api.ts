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
  expanded: number[];
  planner?: boolean;
  view?: { x: number; y: number; scale: number };
  search?: string;
}
export const state: ViewState = (vscode.getState() as ViewState) ?? { expanded: [] };
export const save = (): void => vscode.setState(state);
