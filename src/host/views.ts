import * as vscode from 'vscode';
import type { ModelGraph } from '../engine/graph/model-graph';
import type { PackedWeight } from '../engine/quant/pack';
import type { HostToWebview, SearchShown, WebviewToHost } from '../protocol';

export type KernelAnswer = Extract<WebviewToHost, { type: 'verifyResult' }>;

/** One open graph view: what the host can ask of it. */
export interface GraphView {
  uri: vscode.Uri;
  graph(): ModelGraph | undefined;
  post(m: HostToWebview): void;
  /**
   * Runs the packed kernel in the webview (navigator.gpu): the output, or `fallback` when the webview
   * has no adapter; rejects (RequestError) when the kernel failed, timed out or the view closed.
   */
  runKernel(packed: PackedWeight, x: Float32Array, batch: number, repeats: number): Promise<KernelAnswer>;
}

/**
 * The open graph views, by model: the graph editor registers each view when its webview is ready,
 * and commands (verify, the plan commands) find the view of a model here — so no command imports
 * the editor, and the editor imports no command. Also what each view last reported showing (for
 * tests and screen readers). One instance, built in activate().
 */
export class GraphViews {
  /** What each open view last reported drawing. */
  readonly rendered = new Map<string, { boxes: number; layers: number; nodes: number; textNames: string[] }>();
  /** What each view's planner last showed (summary line, stages, estimate time, edits on their way). */
  readonly plannerShown = new Map<
    string,
    {
      summary: string;
      stages: string[];
      ms: number;
      pending: number;
      note?: string;
      search?: SearchShown;
      exportText?: string;
    }
  >();
  /** What each view last showed of a verification. */
  readonly verifyShown = new Map<string, string>();
  private readonly views = new Map<string, GraphView>();
  private readonly waiting = new Map<string, ((v: GraphView) => void)[]>();
  private lastActive: vscode.Uri | undefined;

  constructor(private readonly viewType: string) {}

  /** A view's webview is ready: commands waiting for it get it now. */
  ready(view: GraphView): void {
    const key = view.uri.toString();
    this.rendered.delete(key);
    this.views.set(key, view);
    const waiters = this.waiting.get(key) ?? [];
    this.waiting.delete(key);
    for (const w of waiters) w(view);
  }

  closed(uri: vscode.Uri, view: GraphView): void {
    const key = uri.toString();
    if (this.views.get(key) === view) this.views.delete(key);
    this.rendered.delete(key);
  }

  focused(uri: vscode.Uri): void {
    this.lastActive = uri;
  }

  /** The graph view of a model when one is open (nothing is opened). */
  viewIfOpen(uri: vscode.Uri): GraphView | undefined {
    return this.views.get(uri.toString());
  }

  /** The model of the graph view that was focused last. */
  activeModel(): vscode.Uri | undefined {
    return this.lastActive && this.views.has(this.lastActive.toString()) ? this.lastActive : undefined;
  }

  /** The graph view of a model, opening it when needed and waiting (bounded) until its webview is ready. */
  async viewFor(uri: vscode.Uri): Promise<GraphView> {
    const key = uri.toString();
    const open = this.views.get(key);
    if (open) return open;
    const ready = new Promise<GraphView>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the graph view did not start within 60 s')), 60000);
      const list = this.waiting.get(key) ?? [];
      list.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.waiting.set(key, list);
    });
    await vscode.commands.executeCommand('vscode.openWith', uri, this.viewType);
    return ready;
  }
}
