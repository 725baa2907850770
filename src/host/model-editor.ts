import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import { openModel } from '../engine/formats/registry';
import type { ModelGraph } from '../engine/graph/model-graph';
import type { Checker } from '../node/checker';
import { FileByteSource, FolderResolver } from '../node/file-source';
import { RequestChannel, unhandled, type HostToWebview, type WebviewToHost } from '../protocol';
import { PlanSession } from './planner';
import { writeImage, type GraphView, type GraphViews, type KernelAnswer } from './views';
import { layerNodes, modelSummary, nodeDetails, searchGraph } from './graph-summary';

/** A model file opened read-only: its graph, parsed once, with positioned reads (no whole-file buffer). */
class ModelDocument implements vscode.CustomDocument {
  constructor(
    readonly uri: vscode.Uri,
    public graph: ModelGraph | undefined,
    public error: string | undefined,
  ) {}
  dispose(): void {}
}

/** Parses a model file from disk into a graph, or an error line naming the file. */
async function loadGraph(uri: vscode.Uri): Promise<{ graph?: ModelGraph; error?: string }> {
  const file = uri.fsPath;
  try {
    const source = await FileByteSource.open(file);
    const siblings = new FolderResolver(file);
    try {
      return { graph: await openModel(source, { siblings }) };
    } finally {
      await source.close();
      await siblings.close();
    }
  } catch (e) {
    return { error: e instanceof InputError ? e.message : `${file}: ${(e as Error).message}` };
  }
}

function nonce(): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from({ length: 32 }, () => chars[Math.floor(Math.random() * chars.length)]).join('');
}

/** The custom read-only editor that shows a model as a layered graph. */
export class ModelGraphEditor implements vscode.CustomReadonlyEditorProvider<ModelDocument> {
  static readonly viewType = 'layerplan.modelGraph';

  static register(context: vscode.ExtensionContext, views: GraphViews, checker: Checker): vscode.Disposable {
    const provider = new ModelGraphEditor(context, views, checker);
    return vscode.Disposable.from(
      // A Hugging Face config.json opens as JSON; its graph opens in a panel of its own, titled as a graph (a custom
      // editor's tab would read "config.json", like the JSON's).
      vscode.commands.registerCommand('layerplan.openGraph', async (uri?: vscode.Uri) => {
        const target =
          uri ??
          vscode.window.activeTextEditor?.document.uri ??
          (
            await vscode.window.showOpenDialog({
              canSelectMany: false,
              filters: { 'Model files': ['onnx', 'gguf', 'safetensors', 'json'] },
              title: 'Open model graph',
            })
          )?.[0];
        if (!target) return;
        if (!/\.json$/i.test(target.fsPath)) {
          await vscode.commands.executeCommand('vscode.openWith', target, ModelGraphEditor.viewType);
          return;
        }
        const open = provider.panels.get(target.toString());
        if (open) {
          open.reveal();
          return;
        }
        const doc = await provider.openCustomDocument(target);
        const panel = vscode.window.createWebviewPanel(
          ModelGraphEditor.viewType,
          `${target.path.split('/').pop()} · graph`,
          vscode.ViewColumn.Active,
        );
        provider.panels.set(target.toString(), panel);
        panel.onDidDispose(() => provider.panels.delete(target.toString()));
        await provider.resolveCustomEditor(doc, panel);
      }),
      vscode.window.registerCustomEditorProvider(ModelGraphEditor.viewType, provider, {
        webviewOptions: { retainContextWhenHidden: false },
        supportsMultipleEditorsPerDocument: true,
      }),
      vscode.commands.registerCommand('layerplan.renderedBoxes', (uri?: vscode.Uri) =>
        uri ? views.rendered.get(uri.toString()) : [...views.rendered.values()].pop(),
      ),
      vscode.commands.registerCommand('layerplan.plannerShown', (uri: vscode.Uri) =>
        views.plannerShown.get(uri.toString()),
      ),
      vscode.commands.registerCommand('layerplan.verifyShown', (uri: vscode.Uri) =>
        views.verifyShown.get(uri.toString()),
      ),
      vscode.commands.registerCommand(
        'layerplan.exportGraphImage',
        async (uri?: vscode.Uri, format?: 'svg' | 'png', target?: vscode.Uri) => {
          const model = uri ?? views.activeModel();
          if (!model) {
            void vscode.window.showErrorMessage('Layerplan: open a model in the graph view first');
            return undefined;
          }
          const kind =
            format ??
            ((
              await vscode.window.showQuickPick(['SVG (vector)', 'PNG (picture)'], {
                title: 'Export the graph view as',
              })
            )?.startsWith('PNG')
              ? 'png'
              : 'svg');
          const view = await views.viewFor(model);
          const m = await view.image(kind);
          const to =
            target ??
            (await vscode.window.showSaveDialog({
              title: 'Export the graph view',
              defaultUri: vscode.Uri.file(
                `${model.fsPath.replace(/\.(onnx|gguf|safetensors|json)$/i, '')}.graph.${kind}`,
              ),
              filters: kind === 'svg' ? { SVG: ['svg'] } : { PNG: ['png'] },
            }));
          if (!to) return undefined;
          await writeImage(to, m);
          return to;
        },
      ),
      vscode.commands.registerCommand('layerplan.exportShown', (uri: vscode.Uri) =>
        views.exportShown.get(uri.toString()),
      ),
    );
  }

  /** The graph panels of config.json files (opened by layerplan.openGraph, not as custom editors). */
  private readonly panels = new Map<string, vscode.WebviewPanel>();

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly views: GraphViews,
    private readonly checker: Checker,
  ) {}

  async openCustomDocument(uri: vscode.Uri): Promise<ModelDocument> {
    const { graph, error } = await loadGraph(uri);
    return new ModelDocument(uri, graph, error);
  }

  async resolveCustomEditor(doc: ModelDocument, panel: vscode.WebviewPanel): Promise<void> {
    const dist = vscode.Uri.joinPath(this.context.extensionUri, 'dist');
    const media = vscode.Uri.joinPath(this.context.extensionUri, 'media');
    panel.webview.options = { enableScripts: true, localResourceRoots: [dist, media] };
    const css = panel.webview.asWebviewUri(vscode.Uri.joinPath(media, 'graph.css'));
    const n = nonce();
    const script = panel.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.js'));
    const worker = panel.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'layout-worker.js'));
    const estimateWorker = panel.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'estimate-worker.js'));
    const searchWorker = panel.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'search-worker.js'));
    const csp = [
      "default-src 'none'",
      `style-src ${panel.webview.cspSource} 'unsafe-inline'`,
      `script-src 'nonce-${n}'`,
      `connect-src ${panel.webview.cspSource}`,
      'worker-src blob:',
      `font-src ${panel.webview.cspSource}`,
      // The PNG export draws the SVG through an <img> from a blob: URL.
      'img-src blob: data:',
    ].join('; ');
    panel.webview.html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Layerplan graph</title>
<link rel="stylesheet" href="${css}"></head>
<body data-worker="${worker}" data-estimate-worker="${estimateWorker}" data-search-worker="${searchWorker}"><div id="app" role="application" aria-label="Model graph"></div>
<script nonce="${n}" src="${script}"></script></body></html>`;
    const post = (m: HostToWebview) => void panel.webview.postMessage(m);
    const key = doc.uri.toString();
    const relative = () => vscode.workspace.asRelativePath(doc.uri);
    // Images of the view: asked for by the Export Graph Image command (by id), or sent by the view's own button.
    const images = new Map<number, (m: Extract<WebviewToHost, { type: 'exportImage' }>) => void>();
    let imageId = 0;
    const saveImage = async (m: Extract<WebviewToHost, { type: 'exportImage' }>) => {
      const waiting = m.id !== undefined ? images.get(m.id) : undefined;
      if (waiting) {
        images.delete(m.id!);
        waiting(m);
        return;
      }
      if (m.error) {
        void vscode.window.showErrorMessage(`Layerplan: the graph could not be drawn as an image: ${m.error}`);
        return;
      }
      const base = doc.uri.fsPath.replace(/\.(onnx|gguf|safetensors|json)$/i, '');
      const to = await vscode.window.showSaveDialog({
        title: 'Export the graph view',
        defaultUri: vscode.Uri.file(`${base}.graph.${m.format}`),
        filters: m.format === 'svg' ? { SVG: ['svg'] } : { PNG: ['png'] },
        saveLabel: 'Export',
      });
      if (!to) return;
      await writeImage(to, m);
      void vscode.window
        .showInformationMessage(`Layerplan: the graph view was saved to ${vscode.workspace.asRelativePath(to)}`, 'Open')
        .then((c) => c === 'Open' && void vscode.commands.executeCommand('vscode.open', to));
    };
    // Kernel runs in the webview: requests matched to their answers by id (src/protocol.ts).
    const kernels = new RequestChannel<Extract<HostToWebview, { type: 'verifyRun' }>, KernelAnswer>(post, 120000);
    let planner: PlanSession | undefined;
    const plannerSession = () => (planner ??= new PlanSession(doc.uri, post, this.checker));
    const view: GraphView = {
      uri: doc.uri,
      graph: () => doc.graph,
      post,
      image: (format) =>
        new Promise((resolve, reject) => {
          const id = ++imageId;
          const timer = setTimeout(() => {
            images.delete(id);
            reject(new Error('the graph view did not draw its image within 30 s'));
          }, 30000);
          images.set(id, (m) => {
            clearTimeout(timer);
            if (m.error) reject(new Error(m.error));
            else resolve(m);
          });
          post({ type: 'requestImage', id, format });
        }),
      runKernel: (packed, x, batch, repeats) =>
        kernels.request({ type: 'verifyRun', packed, x, batch, repeats }, 'the WebGPU kernel in the graph view'),
    };
    const views = this.views;
    if (panel.active) views.focused(doc.uri);
    panel.onDidChangeViewState((e) => {
      if (e.webviewPanel.active) views.focused(doc.uri);
    });
    panel.webview.onDidReceiveMessage((m: WebviewToHost) => {
      switch (m.type) {
        case 'ready': {
          // A fresh webview (first show, or shown again after being hidden): it has drawn nothing yet.
          views.ready(view);
          if (doc.graph) post({ type: 'summary', summary: modelSummary(relative(), doc.graph) });
          else post({ type: 'error', message: doc.error ?? 'cannot read this model' });
          break;
        }
        case 'verifyResult':
          kernels.answer(m);
          break;
        case 'verifyRequest':
          void vscode.commands.executeCommand('layerplan.verifyLayer', doc.uri, m.tensor, undefined, m.layer);
          break;
        case 'plannerOpen':
          void plannerSession().opened();
          break;
        case 'planEdit':
          void plannerSession().edit(m.edits, m.seq);
          break;
        case 'planUndo':
          void plannerSession().step(m.redo);
          break;
        case 'newPlan':
          void plannerSession().create();
          break;
        case 'exportQuantized':
          void vscode.commands.executeCommand('layerplan.exportQuantizedModel', doc.uri, 'default');
          break;
        case 'exportRequest':
          void plannerSession()
            .exportTo(m.to)
            .then((shown) => views.exportShown.set(key, shown));
          break;
        case 'exportAction':
          void plannerSession()
            .exportAction(m.to, m.action)
            .then((shown) => views.exportShown.set(key, shown));
          break;
        case 'plannerShown':
          views.plannerShown.set(key, {
            summary: m.summary,
            stages: m.stages,
            ms: m.ms,
            pending: m.pending,
            rows: m.rows,
            problems: m.problems,
            note: m.note,
            search: m.search,
            exportText: m.exportText,
            devices: m.devices,
          });
          break;
        case 'searchPrepare':
          void plannerSession().prepareSearch();
          break;
        case 'verifyShown':
          views.verifyShown.set(key, m.text);
          break;
        case 'expandLayer':
          if (doc.graph) {
            post({
              type: 'layer',
              level: m.level,
              layer: m.layer,
              ...layerNodes(doc.graph, m.layer, m.level, m.constants),
            });
          }
          break;
        case 'enterLevel':
          if (doc.graph) post({ type: 'summary', summary: modelSummary(relative(), doc.graph, m.level) });
          break;
        case 'exportImage':
          void saveImage(m);
          break;
        case 'exportImageRequest':
          void vscode.commands.executeCommand('layerplan.exportGraphImage', doc.uri);
          break;
        case 'select': {
          const details = doc.graph && nodeDetails(doc.graph, m.node);
          if (details) post({ type: 'details', details });
          break;
        }
        case 'search':
          if (doc.graph) post({ type: 'searchResult', result: searchGraph(doc.graph, m.query, m.level) });
          break;
        case 'rendered': {
          const { type: _, ...report } = m;
          void _;
          views.rendered.set(key, report);
          break;
        }
        case 'viewError':
          // A failure inside the view (a worker that crashed, a layout that failed): the user hears of it.
          void vscode.window.showErrorMessage(`Layerplan: ${vscode.workspace.asRelativePath(doc.uri)}: ${m.message}`);
          break;
        default:
          unhandled(m);
      }
    });
    // A model that changes on disk reloads the view; one that is deleted closes it.
    const watcher = vscode.workspace.createFileSystemWatcher(
      new vscode.RelativePattern(vscode.Uri.joinPath(doc.uri, '..'), doc.uri.path.split('/').pop()!),
    );
    const reload = async () => {
      const { graph, error } = await loadGraph(doc.uri);
      doc.graph = graph;
      doc.error = error;
      if (graph) post({ type: 'summary', summary: modelSummary(relative(), graph) });
      else post({ type: 'error', message: error ?? 'cannot read this model' });
    };
    watcher.onDidChange(() => void reload());
    watcher.onDidCreate(() => void reload());
    watcher.onDidDelete(() => panel.dispose());
    panel.onDidDispose(() => {
      views.closed(doc.uri, view);
      planner?.dispose();
      kernels.failAll('the graph view was closed');
      watcher.dispose();
    });
  }
}
