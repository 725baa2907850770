import * as vscode from 'vscode';
import type { ModelGraph } from '../engine/graph/model-graph';
import type { PackedWeight } from '../engine/quant/pack';
import type { ExportShown, HostToWebview, ViewReport, WebviewToHost } from '../protocol';

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
  /** The view drawn as an image (rejects when it could not be drawn). */
  image(format: 'svg' | 'png'): Promise<Extract<WebviewToHost, { type: 'exportImage' }>>;
}

/** Writes an image the view drew: SVG text as is, a PNG from its base64. */
export async function writeImage(to: vscode.Uri, m: Extract<WebviewToHost, { type: 'exportImage' }>): Promise<void> {
  const bytes =
    m.format === 'svg' ? new TextEncoder().encode(m.data) : Uint8Array.from(atob(m.data), (c) => c.charCodeAt(0));
  await vscode.workspace.fs.writeFile(to, bytes);
}

/**
 * The open graph views, by model: the graph editor registers each view when its webview is ready,
 * and commands (verify, the plan commands) find the view of a model here — so no command imports
 * the editor, and the editor imports no command. Also what each view last reported showing (for
 * tests and screen readers). One instance, built in activate().
 */
export class GraphViews {
  /** What each open view last reported drawing. */
  readonly rendered = new Map<string, ViewReport>();
  /** What each view's planner last showed (summary line, stages, estimate time, edits on their way). */
  readonly plannerShown = new Map<string, Omit<Extract<WebviewToHost, { type: 'plannerShown' }>, 'type'>>();
  /** What each view's planner last showed in its Export panel (and saved). */
  readonly exportShown = new Map<string, ExportShown>();
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
    await vscode.commands.executeCommand('layerplan.openGraph', uri);
    return ready;
  }
}
