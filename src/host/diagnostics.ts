import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import { checkFile } from '../node/plan-file';

const CHECKED = /\.plan\.json$|(^|[\\/])config\.json$|(ds_config|deepspeed)[^\\/]*\.json$/i;

/**
 * Inline diagnostics (squiggles and the Problems panel) for plan files, Hugging Face config.json
 * and DeepSpeed configs: the same engine and ranges as `layerplan check`, on the editor's buffer,
 * re-run as the user types (debounced).
 */
export class JsonDiagnostics {
  static register(): vscode.Disposable {
    const d = new JsonDiagnostics();
    for (const doc of vscode.workspace.textDocuments) d.schedule(doc);
    return vscode.Disposable.from(
      d.collection,
      vscode.workspace.onDidOpenTextDocument((doc) => d.schedule(doc)),
      vscode.workspace.onDidChangeTextDocument((e) => d.schedule(e.document)),
      vscode.workspace.onDidCloseTextDocument((doc) => d.collection.delete(doc.uri)),
      new vscode.Disposable(() => d.timers.forEach(clearTimeout)),
    );
  }

  readonly collection = vscode.languages.createDiagnosticCollection('layerplan');
  private readonly timers = new Map<string, NodeJS.Timeout>();

  schedule(doc: vscode.TextDocument): void {
    if (doc.uri.scheme !== 'file' || !CHECKED.test(doc.uri.fsPath)) return;
    const key = doc.uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.set(key, setTimeout(() => void this.check(doc), 250));
  }

  private async check(doc: vscode.TextDocument): Promise<void> {
    const version = doc.version;
    let diagnostics: vscode.Diagnostic[];
    try {
      const r = await checkFile(doc.uri.fsPath, { text: doc.getText() });
      diagnostics = r.diagnostics.map((i) => {
        const range = new vscode.Range(i.range.start.line, i.range.start.character, i.range.end.line, i.range.end.character);
        const severity = i.severity === 'error' ? vscode.DiagnosticSeverity.Error : i.severity === 'warning' ? vscode.DiagnosticSeverity.Warning : vscode.DiagnosticSeverity.Information;
        const d = new vscode.Diagnostic(range, i.message, severity);
        d.source = 'layerplan';
        return d;
      });
    } catch (e) {
      // Not a file Layerplan understands (a JSON config of something else): no diagnostics.
      if (!(e instanceof InputError)) throw e;
      diagnostics = [];
    }
    if (doc.version === version) this.collection.set(doc.uri, diagnostics);
  }
}
