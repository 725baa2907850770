import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import type { InspectReport } from '../engine/report/inspect';
import { formatBytes, formatCount } from '../engine/units';
import { inspectFile } from '../node/inspect-file';

const MODEL = /\.(onnx|gguf|safetensors)$|(^|[\\/])config\.json$|\.safetensors\.index\.json$/i;

const escape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The side panel: a summary of the active model (the same numbers as `layerplan inspect`). */
export class ModelSummaryView implements vscode.WebviewViewProvider {
  static readonly viewType = 'layerplan.summary';
  /** What the panel shows now (for tests). */
  static current: { file: string; parameters: number; warnings: string[] } | undefined;
  private view?: vscode.WebviewView;
  private shown?: string;

  static register(): vscode.Disposable {
    const provider = new ModelSummaryView();
    return vscode.Disposable.from(
      vscode.window.registerWebviewViewProvider(ModelSummaryView.viewType, provider),
      vscode.window.tabGroups.onDidChangeTabs(() => void provider.update()),
      vscode.window.onDidChangeActiveTextEditor(() => void provider.update()),
      vscode.commands.registerCommand('layerplan.summaryState', () => ModelSummaryView.current),
      vscode.commands.registerCommand('layerplan.showSummary', async () => {
        await vscode.commands.executeCommand(`${ModelSummaryView.viewType}.focus`);
        await provider.update();
      }),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = { enableScripts: false };
    this.shown = undefined;
    void this.update();
  }

  private activeModel(): vscode.Uri | undefined {
    const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
    const uri = input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputText ? input.uri : undefined;
    return uri && MODEL.test(uri.fsPath) ? uri : undefined;
  }

  async update(): Promise<void> {
    const uri = this.activeModel();
    if (!this.view || !uri || uri.fsPath === this.shown) return;
    this.shown = uri.fsPath;
    let body: string;
    try {
      const r = await inspectFile(uri.fsPath);
      ModelSummaryView.current = { file: uri.fsPath, parameters: r.parameters, warnings: r.warnings };
      body = this.render(vscode.workspace.asRelativePath(uri), r);
    } catch (e) {
      body = `<p class="error">${escape(e instanceof InputError ? e.message : String(e))}</p>`;
    }
    const csp = `default-src 'none'; style-src ${this.view.webview.cspSource} 'unsafe-inline'`;
    this.view.webview.html = `<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8"><meta http-equiv="Content-Security-Policy" content="${csp}">
<style>
  body { color: var(--vscode-foreground); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); padding: 0 8px; }
  h3 { font-size: 12px; margin: 10px 0 4px; text-transform: uppercase; color: var(--vscode-descriptionForeground); }
  table { width: 100%; border-collapse: collapse; } td { padding: 1px 2px; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .error { color: var(--vscode-errorForeground); }
</style></head><body>${body}</body></html>`;
  }

  private render(file: string, r: InspectReport): string {
    const rows = (pairs: [string, string][]) =>
      `<table>${pairs.map(([k, v]) => `<tr><td>${escape(k)}</td><td class="n">${escape(v)}</td></tr>`).join('')}</table>`;
    const top = [...r.layers].sort((a, b) => b.parameters - a.parameters).slice(0, 8);
    return (
      `<h3>${escape(file)}</h3>` +
      rows([
        ['format', r.format],
        ['nodes', String(r.nodes)],
        ['parameters', formatCount(r.parameters)],
        ['weights', formatBytes(r.bytes)],
      ]) +
      `<h3>Parameters by dtype</h3>` +
      rows(Object.entries(r.parametersByDtype).map(([d, n]) => [d, formatCount(n)])) +
      `<h3>Biggest layers</h3>` +
      rows(top.map((l) => [l.name, formatCount(l.parameters)])) +
      (r.warnings.length
        ? `<h3>Warnings</h3><ul>${r.warnings.map((w) => `<li class="warning">${escape(w)}</li>`).join('')}</ul>`
        : '')
    );
  }
}
