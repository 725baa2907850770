import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import { setJsonPaths } from '../engine/plan/edits';
import type { Issue } from '../engine/plan/plan';
import type { Checker } from '../node/checker';
import { minimalEdit } from './planner';

const CHECKED = /\.plan\.json$|(^|[\\/])config\.json$|(ds_config|deepspeed)[^\\/]*\.json$|\.(sh|bash|toml|args)$/i;

/**
 * Inline diagnostics (squiggles and the Problems panel) for plan files, Hugging Face config.json,
 * DeepSpeed configs, Megatron-LM launch scripts and torchtitan TOMLs: the same engine and ranges as
 * `layerplan check`, on the editor's buffer, re-run as the user types (debounced). A shell script or
 * a TOML that is no launch configuration gets none.
 */
export class JsonDiagnostics implements vscode.CodeActionProvider {
  static register(checker: Checker): vscode.Disposable {
    const d = new JsonDiagnostics(checker);
    for (const doc of vscode.workspace.textDocuments) d.schedule(doc);
    return vscode.Disposable.from(
      d.collection,
      vscode.workspace.onDidOpenTextDocument((doc) => d.schedule(doc)),
      vscode.workspace.onDidChangeTextDocument((e) => d.schedule(e.document)),
      vscode.workspace.onDidCloseTextDocument((doc) => {
        d.collection.delete(doc.uri);
        d.issues.delete(doc.uri.toString());
      }),
      new vscode.Disposable(() => d.timers.forEach(clearTimeout)),
      vscode.languages.registerCodeActionsProvider(
        [
          { scheme: 'file', language: 'json' },
          { scheme: 'file', language: 'jsonc' },
        ],
        d,
        { providedCodeActionKinds: [vscode.CodeActionKind.QuickFix] },
      ),
    );
  }

  constructor(private readonly checker: Checker) {}

  /** The engine's issues behind the diagnostics, per document, for their quick fixes. */
  private readonly issues = new Map<string, Issue[]>();

  /** Quick fixes where the engine knows the fix (rebalance stages, a consistent batch size, parallel.data for the GPU count…). */
  provideCodeActions(
    doc: vscode.TextDocument,
    _range: vscode.Range,
    context: vscode.CodeActionContext,
  ): vscode.CodeAction[] {
    const issues = this.issues.get(doc.uri.toString()) ?? [];
    const out: vscode.CodeAction[] = [];
    for (const d of context.diagnostics) {
      if (d.source !== 'layerplan') continue;
      const issue = issues.find(
        (i) =>
          (i.fix || i.fixes?.length) &&
          i.message === d.message &&
          i.range.start.line === d.range.start.line &&
          i.range.start.character === d.range.start.character,
      );
      if (!issue) continue;
      [issue.fix, ...(issue.fixes ?? [])].forEach((fix, k) => {
        if (!fix) return;
        const text = setJsonPaths(doc.getText(), fix.edits);
        const action = new vscode.CodeAction(fix.title, vscode.CodeActionKind.QuickFix);
        action.edit = minimalEdit(doc, text);
        action.diagnostics = [d];
        action.isPreferred = k === 0;
        out.push(action);
      });
    }
    return out;
  }

  readonly collection = vscode.languages.createDiagnosticCollection('layerplan');
  private readonly timers = new Map<string, NodeJS.Timeout>();

  schedule(doc: vscode.TextDocument): void {
    if (doc.uri.scheme !== 'file' || !CHECKED.test(doc.uri.fsPath)) return;
    const key = doc.uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.set(
      key,
      setTimeout(() => void this.check(doc), 250),
    );
  }

  private async check(doc: vscode.TextDocument): Promise<void> {
    const version = doc.version;
    let diagnostics: vscode.Diagnostic[];
    try {
      // In the check process, with a time budget; typing again supersedes the run in flight.
      const run = await this.checker.run('check', doc.uri.fsPath, doc.getText());
      if ('superseded' in run) return;
      if ('skipped' in run) {
        this.issues.delete(doc.uri.toString());
        const d = new vscode.Diagnostic(
          new vscode.Range(0, 0, 0, 1),
          `Layerplan did not check this file: ${run.skipped}`,
          vscode.DiagnosticSeverity.Information,
        );
        d.source = 'layerplan';
        if (doc.version === version) this.collection.set(doc.uri, [d]);
        return;
      }
      if (run.done.notChecked) {
        // Not a file Layerplan understands (a JSON config of something else): no diagnostics.
        this.issues.delete(doc.uri.toString());
        if (doc.version === version) this.collection.set(doc.uri, []);
        return;
      }
      if (run.done.inputError !== undefined) throw new InputError(doc.uri.fsPath, run.done.inputError);
      if (run.done.error !== undefined) throw new Error(run.done.error);
      const found = run.done.diagnostics ?? [];
      if (doc.version === version) this.issues.set(doc.uri.toString(), found);
      diagnostics = found.map((i) => {
        const range = new vscode.Range(
          i.range.start.line,
          i.range.start.character,
          i.range.end.line,
          i.range.end.character,
        );
        const severity =
          i.severity === 'error'
            ? vscode.DiagnosticSeverity.Error
            : i.severity === 'warning'
              ? vscode.DiagnosticSeverity.Warning
              : vscode.DiagnosticSeverity.Information;
        const d = new vscode.Diagnostic(range, i.message, severity);
        d.source = 'layerplan';
        return d;
      });
    } catch (e) {
      this.issues.delete(doc.uri.toString());
      if (e instanceof InputError) {
        // The check could not run on this input: say why, instead of clearing every diagnostic of the file.
        const d = new vscode.Diagnostic(new vscode.Range(0, 0, 0, 1), e.problem, vscode.DiagnosticSeverity.Error);
        d.source = 'layerplan';
        diagnostics = [d];
      } else {
        // A check that failed must not leave the last run's diagnostics standing as if current.
        const d = new vscode.Diagnostic(
          new vscode.Range(0, 0, 0, 1),
          `Layerplan could not check this file: ${(e as Error).message} (an internal error; the diagnostics shown before are gone)`,
          vscode.DiagnosticSeverity.Warning,
        );
        d.source = 'layerplan';
        diagnostics = [d];
      }
    }
    if (doc.version === version) this.collection.set(doc.uri, diagnostics);
  }
}
