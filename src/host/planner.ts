import * as path from 'path';
import * as vscode from 'vscode';
import type { CostReport } from '../engine/cost/estimate';
import type { WorkloadSource } from '../engine/cost/workload';
import { InputError } from '../engine/errors';
import { GPUS } from '../engine/hardware/catalog';
import { setJsonPaths, type PlanEdit } from '../engine/plan/edits';
import { parseJsonWithTree, validatePlan, type Plan } from '../engine/plan/plan';
import { offeredFormats, parseFormat } from '../engine/quant/formats';
import type { Checker } from '../node/checker';
import { planLayerErrors, planWorkloadSource, tryEstimatePlan } from '../node/plan-file';
import { measureLayerSqnr, planForSearch } from '../node/optimize-file';
import { candidateFormats } from '../engine/search/optimize';
import type { ExportShown, HostToWebview, LayerErrors, PlanState } from '../protocol';
import { exportShown, saveExport } from './launch-commands';

/** The plan file of a model: `<name>.plan.json` beside it. */
export function planFileFor(model: vscode.Uri): vscode.Uri {
  const base = path.basename(model.fsPath).replace(/\.(onnx|gguf|safetensors|json)$/i, '');
  return vscode.Uri.file(path.join(path.dirname(model.fsPath), `${base}.plan.json`));
}

/** A sensible first plan: one node of eight A100-80GB GPUs, data parallel, bf16 with a 20 dB error budget. */
export function defaultPlanText(model: vscode.Uri): string {
  return `{
  // Created by Layerplan for ${path.basename(model.fsPath)}. Edit here or in the planner (Layerplan graph view → Planner).
  "model": ${JSON.stringify(path.basename(model.fsPath))},
  "cluster": {"gpu": "a100-80gb", "gpusPerNode": 8, "nodes": 1},
  "training": {"globalBatch": 64, "microBatch": 1, "seqLen": 512, "dtype": "bf16", "recompute": "selective"},
  "parallel": {"data": 8, "tensor": 1, "pipeline": 1, "schedule": "1f1b", "zero": 1},
  "precision": {"default": "bf16", "rules": [], "errorBudgetDb": 20}
}
`;
}

/**
 * The text of a document as VS Code holds it (unsaved edits included), or of the file on disk;
 * undefined when there is no such file. A file that is there and cannot be read is an InputError,
 * not "no plan".
 */
export async function planText(uri: vscode.Uri): Promise<string | undefined> {
  const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  if (open) return open.getText();
  try {
    return new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
  } catch (e) {
    if (e instanceof vscode.FileSystemError && e.code === 'FileNotFound') return undefined;
    throw new InputError(uri.fsPath, `cannot read the plan (${(e as Error).message})`);
  }
}

/** Replaces the smallest differing middle of `before` with that of `after`: one small edit, one undo step. */
export function minimalEdit(doc: vscode.TextDocument, after: string): vscode.WorkspaceEdit {
  const before = doc.getText();
  let a = 0;
  while (a < before.length && a < after.length && before[a] === after[a]) a++;
  let b = 0;
  while (
    b < before.length - a &&
    b < after.length - a &&
    before[before.length - 1 - b] === after[after.length - 1 - b]
  ) {
    b++;
  }
  const edit = new vscode.WorkspaceEdit();
  edit.replace(
    doc.uri,
    new vscode.Range(doc.positionAt(a), doc.positionAt(before.length - b)),
    after.slice(a, after.length - b),
  );
  return edit;
}

/** Sets JSON paths in a plan file through a WorkspaceEdit (undo works in its editor) and saves it; returns the texts before and after. */
export async function editPlan(
  uri: vscode.Uri,
  edits: PlanEdit[],
): Promise<{ before: string; after: string } | undefined> {
  const doc = await vscode.workspace.openTextDocument(uri);
  const before = doc.getText();
  const text = setJsonPaths(before, edits);
  if (text === before) return undefined;
  await replacePlanText(doc, text);
  return { before, after: text };
}

async function replacePlanText(doc: vscode.TextDocument, text: string): Promise<void> {
  if (!(await vscode.workspace.applyEdit(minimalEdit(doc, text)))) throw new Error(`could not edit ${doc.uri.fsPath}`);
  await doc.save();
}

/** Creates the plan file of a model when missing; returns its URI. */
export async function createPlan(model: vscode.Uri): Promise<vscode.Uri> {
  const uri = planFileFor(model);
  if ((await planText(uri)) !== undefined) return uri;
  const edit = new vscode.WorkspaceEdit();
  edit.createFile(uri, { ignoreIfExists: true, contents: new TextEncoder().encode(defaultPlanText(model)) });
  if (!(await vscode.workspace.applyEdit(edit))) throw new Error('the folder refused the new file (read-only?)');
  const doc = await vscode.workspace.openTextDocument(uri);
  if (doc.isDirty) await doc.save();
  return uri;
}

/** A plan's estimate from its file or unsaved buffer, as `layerplan estimate` makes it: the plan and the report, or the first error. */
export async function estimateUri(uri: vscode.Uri): Promise<{ plan?: Plan; report?: CostReport; error?: string }> {
  try {
    const text = await planText(uri);
    if (text === undefined) return { error: 'no such file' };
    const r = await tryEstimatePlan(uri.fsPath, text);
    return { plan: r.plan, report: r.report, error: r.error?.problem };
  } catch (e) {
    return { error: e instanceof InputError ? e.problem : (e as Error).message };
  }
}

/**
 * The planner's host side for one graph view: sends the plan beside the model (with its
 * diagnostics and, when the model or its bindings changed, the workload for the web worker),
 * applies the planner's edits, follows hand edits, and measures the per-layer error of the plan's
 * precision assignment on the real weights in the background.
 */
export class PlanSession implements vscode.Disposable {
  readonly planUri: vscode.Uri;
  private sourceKey = '';
  private timer?: ReturnType<typeof setTimeout>;
  private readonly subs: vscode.Disposable[] = [];
  private open = false;
  /** The planner's own edits, for undo / redo from inside the webview (the plan's editor has its own history too). */
  private readonly undo: { before: string; after: string }[] = [];
  private readonly redo: { before: string; after: string }[] = [];
  /** Edits and undo steps run one after another: each computes its text change against the file the last one left. */
  private queue: Promise<void> = Promise.resolve();
  /** The `seq` of the last planner edit written to the file (PlanState.editSeq). */
  private appliedSeq = 0;

  constructor(
    private readonly model: vscode.Uri,
    private readonly post: (m: HostToWebview) => void,
    /** Runs the plan's check off the extension host's main thread, with a time budget (src/node/checker.ts). */
    private readonly checker: Checker,
  ) {
    this.planUri = planFileFor(model);
    const follow = (uri: vscode.Uri) => {
      if (uri.toString() === this.planUri.toString()) this.resend();
    };
    this.subs.push(vscode.workspace.onDidChangeTextDocument((e) => follow(e.document.uri)));
    const watcher = vscode.workspace.createFileSystemWatcher(
      new vscode.RelativePattern(
        vscode.Uri.file(path.dirname(this.planUri.fsPath)),
        path.basename(this.planUri.fsPath),
      ),
    );
    watcher.onDidCreate(follow);
    watcher.onDidChange(follow);
    watcher.onDidDelete(follow);
    this.subs.push(watcher);
  }

  async opened(): Promise<void> {
    this.open = true;
    this.sourceKey = '';
    await this.send();
  }

  /** Send the plan's state soon (changes come in bursts: one state after the last of them). */
  private resend(): void {
    if (!this.open) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.send(), 150);
  }

  private serial(work: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(work, work);
    return this.queue;
  }

  edit(edits: PlanEdit[], seq = this.appliedSeq): Promise<void> {
    return this.serial(async () => {
      try {
        const step = await editPlan(this.planUri, edits);
        if (step) {
          this.undo.push(step);
          this.redo.length = 0;
          if (this.undo.length > 200) this.undo.shift();
        }
      } catch (e) {
        void vscode.window.showErrorMessage(`Layerplan: ${(e as Error).message}`);
      } finally {
        this.appliedSeq = Math.max(this.appliedSeq, seq);
        // Also when the edit changed nothing (no file event follows): the planner learns the edit is done.
        this.resend();
      }
    });
  }

  /** Undo (or redo) the planner's last edit, when the file still reads as that edit left it. */
  step(redo: boolean): Promise<void> {
    return this.serial(() => this.undoStep(redo));
  }

  private async undoStep(redo: boolean): Promise<void> {
    const from = redo ? this.redo : this.undo;
    const to = redo ? this.undo : this.redo;
    const last = from.pop();
    if (!last) return;
    const doc = await vscode.workspace.openTextDocument(this.planUri);
    const expected = redo ? last.before : last.after;
    if (doc.getText() !== expected) {
      // Edited by hand since: the planner's history no longer applies.
      this.undo.length = 0;
      this.redo.length = 0;
      void vscode.window.showInformationMessage('Layerplan: the plan was edited since; use Undo in its editor.');
      return;
    }
    await replacePlanText(doc, redo ? last.after : last.before);
    to.push(last);
  }

  /** The plan as a target's launch configuration, shown in the planner's Export panel. */
  async exportTo(to: string): Promise<ExportShown> {
    const shown = await exportShown(this.planUri, to);
    this.post({ type: 'exportResult', shown });
    return shown;
  }

  /** The Export panel's buttons: copy the command, or write the files beside the plan (and open the first). */
  async exportAction(to: string, action: 'copy' | 'save'): Promise<ExportShown> {
    const shown = await exportShown(this.planUri, to);
    if (shown.result && action === 'copy') await vscode.env.clipboard.writeText(shown.result.command);
    if (shown.result && action === 'save') {
      const uris = await saveExport(this.planUri, shown.result);
      shown.saved = uris.map((u) => vscode.workspace.asRelativePath(u));
      await vscode.window.showTextDocument(uris[0], { viewColumn: vscode.ViewColumn.Beside, preview: false });
    }
    this.post({ type: 'exportResult', shown });
    return shown;
  }

  async create(): Promise<void> {
    try {
      await createPlan(this.model);
    } catch (e) {
      void vscode.window.showErrorMessage(
        `Layerplan: could not create ${this.planUri.fsPath}: ${(e as Error).message}`,
      );
    }
    await this.send();
  }

  private async send(): Promise<void> {
    // Read before the text: a state may then claim fewer edits than its text holds, never more (re-applying one is harmless).
    const editSeq = this.appliedSeq;
    let text: string | undefined;
    let unreadable: string | undefined;
    try {
      text = await planText(this.planUri);
    } catch (e) {
      unreadable = (e as Error).message;
    }
    const state: PlanState = {
      editSeq,
      file: vscode.workspace.asRelativePath(this.planUri),
      exists: text !== undefined || unreadable !== undefined,
      issues: unreadable ? [{ severity: 'error', message: unreadable }] : [],
      catalog: GPUS.map((g) => ({ id: g.id, name: g.name, memoryGB: g.memoryGB })),
      formats: offeredFormats().map((name) => ({ name, bitsPerWeight: parseFormat(name)!.bitsPerWeight })),
    };
    if (text !== undefined) {
      // An invalid plan (degrees that do not multiply to the GPU count…) still shows: the planner is how it gets fixed.
      const valid = validatePlan(text).plan;
      const raw = parseJsonWithTree(text).value as Plan | undefined;
      const plan =
        valid ?? (raw && typeof raw === 'object' && raw.cluster && typeof raw.cluster === 'object' ? raw : undefined);
      let checkedSource: WorkloadSource | undefined;
      // On the check worker: a huge or mistyped plan must not stall the extension host while the user types.
      const run = await this.checker.run('planner', this.planUri.fsPath, text);
      // A newer change started its own check, which posts the newer state.
      if ('superseded' in run) return;
      if ('skipped' in run) {
        state.issues = [
          { severity: 'warning', message: `${path.basename(this.planUri.fsPath)}: check ${run.skipped}` },
        ];
      } else {
        const a = run.done;
        const failed = a.inputError ?? a.error;
        state.issues = failed
          ? [{ severity: 'error', message: failed }]
          : (a.diagnostics ?? []).map((d) => ({
              severity: d.severity,
              message: d.message,
              ...(d.fix ? { fixes: [d.fix, ...(d.fixes ?? [])] } : {}),
            }));
        checkedSource = a.source;
      }
      if (plan) {
        state.plan = plan;
        const key = JSON.stringify([
          plan.model,
          plan.training?.microBatch,
          plan.training?.seqLen,
          plan.inference?.batch,
          plan.inference?.promptLen,
        ]);
        if (key !== this.sourceKey) {
          try {
            // The check built the workload already when the plan is valid; an invalid one gets its own.
            state.source = checkedSource ?? (await planWorkloadSource(plan, this.planUri.fsPath));
            this.sourceKey = key;
          } catch (e) {
            state.issues.push({
              severity: 'error',
              message: e instanceof InputError ? e.message : (e as Error).message,
            });
          }
        }
        void this.measure(plan);
      }
    }
    this.post({ type: 'plan', state });
  }

  /** The last measurement started: an older one that finishes later must not replace its answer. */
  private measuring = 0;

  /**
   * What Find best plans needs from the host: the weights' SQNR per layer for the formats the precision search
   * may choose (measured here, where the model file is; cached like the heatmap's measurement).
   */
  async prepareSearch(): Promise<void> {
    const notes: string[] = [];
    let layerSqnr: Record<string, Record<string, number | null>> | undefined;
    try {
      const text = await planText(this.planUri);
      if (text !== undefined) {
        const plan = planForSearch(this.planUri.fsPath, text);
        if (plan.precision?.errorBudgetDb !== undefined) {
          layerSqnr = await measureLayerSqnr(plan, this.planUri.fsPath, candidateFormats(plan), notes);
        }
      }
    } catch (e) {
      notes.push(`precision: ${(e as Error).message}`);
    }
    this.post({ type: 'searchInputs', layerSqnr, notes });
  }

  /** Quantization error per layer for the formats the plan uses, on the real weights (the measurement the diagnostics use, cached there). */
  private async measure(plan: Plan): Promise<void> {
    const run = ++this.measuring;
    const show = (errors: LayerErrors) => {
      if (run === this.measuring) this.post({ type: 'layerErrors', errors });
    };
    // Always one answer: the figures, or why there are none (a failure must not leave the last plan's heatmap standing).
    show(
      await planLayerErrors(plan, this.planUri.fsPath, (formats) =>
        show({
          budgetDb: plan.precision?.errorBudgetDb,
          outputSqnrDb: null,
          layers: [],
          note: `measuring the quantization error of ${formats.join(', ')} on the weights, and each layer's sensitivity…`,
        }),
      ),
    );
  }

  dispose(): void {
    clearTimeout(this.timer);
    for (const s of this.subs) s.dispose();
  }
}
