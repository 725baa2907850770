import * as path from 'path';
import * as vscode from 'vscode';
import type { CostReport } from '../engine/cost/estimate';
import type { Plan } from '../engine/plan/plan';
import { formatEstimate } from '../engine/report/estimate-text';
import { planReportHtml, planReportMarkdown } from '../engine/report/plan-report';
import type { GraphViews } from './views';
import type { Checker } from '../node/checker';
import { createPlan, estimateUri, planFileFor, planText } from './planner';
import { registerLaunchCommands } from './launch-commands';

const MODEL_RE = /\.(onnx|gguf|safetensors)$|(^|[\\/])config\.json$/i;
import { GiB } from '../engine/units';

/** The plan a command acts on: an argument (a plan, or a model whose plan is beside it), the active plan editor, or the focused graph view's model. */
export function planTarget(views: GraphViews, arg?: vscode.Uri): vscode.Uri | undefined {
  if (arg) return /\.plan\.json$/i.test(arg.fsPath) ? arg : planFileFor(arg);
  const active = vscode.window.activeTextEditor?.document.uri;
  if (active && /\.plan\.json$/i.test(active.fsPath)) return active;
  const model = views.activeModel();
  return model ? planFileFor(model) : undefined;
}

export async function pickPlan(views: GraphViews, arg?: vscode.Uri): Promise<vscode.Uri | undefined> {
  return (
    planTarget(views, arg) ??
    (
      await vscode.window.showOpenDialog({
        canSelectMany: false,
        filters: { 'Layerplan plans': ['json'] },
        title: 'Which plan?',
      })
    )?.[0]
  );
}

/** The plan a command acts on, estimated; an error message (and undefined) when it cannot be. */
async function estimatedPlan(
  views: GraphViews,
  arg?: vscode.Uri,
): Promise<{ uri: vscode.Uri; report: CostReport; plan: Plan } | undefined> {
  const uri = await pickPlan(views, arg);
  if (!uri) return undefined;
  const r = await estimateUri(uri);
  if (!r.report || !r.plan) {
    void vscode.window.showErrorMessage(`Layerplan: ${vscode.workspace.asRelativePath(uri)}: ${r.error}`);
    return undefined;
  }
  return { uri, report: r.report, plan: r.plan };
}

export function registerPlanCommands(
  output: vscode.OutputChannel,
  views: GraphViews,
  checker: Checker,
): vscode.Disposable {
  const status = new PlanStatus(views, checker);
  return vscode.Disposable.from(
    status,
    registerLaunchCommands(output, (arg) => pickPlan(views, arg)),
    vscode.commands.registerCommand('layerplan.newPlan', async (arg?: vscode.Uri) => {
      const model =
        arg ??
        views.activeModel() ??
        (
          await vscode.window.showOpenDialog({
            canSelectMany: false,
            filters: { 'Model files': ['onnx', 'gguf', 'safetensors', 'json'] },
            title: 'New plan for which model?',
          })
        )?.[0];
      if (!model) return undefined;
      let uri: vscode.Uri;
      try {
        uri = await createPlan(model);
      } catch (e) {
        void vscode.window.showErrorMessage(
          `Layerplan: could not create the plan for ${vscode.workspace.asRelativePath(model)}: ${(e as Error).message}`,
        );
        return undefined;
      }
      await vscode.window.showTextDocument(uri, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true });
      if (MODEL_RE.test(model.fsPath)) (await views.viewFor(model)).post({ type: 'showPlanner' });
      status.refresh();
      return uri;
    }),
    vscode.commands.registerCommand('layerplan.showPlanner', async (arg?: vscode.Uri) => {
      const model =
        arg ??
        views.activeModel() ??
        (
          await vscode.window.showOpenDialog({
            canSelectMany: false,
            filters: { 'Model files': ['onnx', 'gguf', 'safetensors'] },
            title: 'Plan which model?',
          })
        )?.[0];
      if (!model) return;
      (await views.viewFor(model)).post({ type: 'showPlanner' });
    }),
    vscode.commands.registerCommand('layerplan.estimatePlan', async (arg?: vscode.Uri) => {
      const picked = await estimatedPlan(views, arg);
      if (!picked) return undefined;
      const { uri, report } = picked;
      output.clear();
      output.append(formatEstimate(vscode.workspace.asRelativePath(uri), report));
      output.show(true);
      return report;
    }),
    vscode.commands.registerCommand('layerplan.showMemoryBreakdown', async (arg?: vscode.Uri) => {
      const picked = await estimatedPlan(views, arg);
      if (!picked) return undefined;
      const { uri, report } = picked;
      const g = (b: number) => (b / GiB).toFixed(2).padStart(9);
      output.clear();
      output.appendLine(`${vscode.workspace.asRelativePath(uri)}: memory per GPU (GiB) on ${report.gpu}`);
      output.appendLine(`stage  layers          weights  gradients  optimizer  activations      total   capacity`);
      for (const s of report.stages) {
        output.appendLine(
          `${String(s.index).padEnd(6)} ${s.layers.padEnd(14)} ${g(s.memory.weights)}  ${g(s.memory.gradients)}  ${g(s.memory.optimizer)}  ${g(s.memory.activations)}  ${g(s.memory.total)}  ${g(s.capacity)}${s.memory.total > s.capacity ? '  OVER' : ''}`,
        );
      }
      output.show(true);
      return report.stages.map((s) => ({ index: s.index, layers: s.layers, memory: s.memory, capacity: s.capacity }));
    }),
    vscode.commands.registerCommand(
      'layerplan.exportReport',
      async (arg?: vscode.Uri, kind?: 'html' | 'markdown', target?: vscode.Uri) => {
        const picked = await estimatedPlan(views, arg);
        if (!picked) return undefined;
        const { uri, report, plan } = picked;
        const base = path.basename(uri.fsPath).replace(/\.plan\.json$/i, '');
        const dir = path.dirname(uri.fsPath);
        // Where: the caller's target, else the user picks (HTML or Markdown by the file type chosen).
        let to = target;
        if (!to) {
          to = await vscode.window.showSaveDialog({
            title: 'Export the plan report',
            defaultUri: vscode.Uri.file(path.join(dir, `${base}.report.${kind === 'markdown' ? 'md' : 'html'}`)),
            filters:
              kind === 'markdown'
                ? { Markdown: ['md'], HTML: ['html'] }
                : { 'HTML (charts inline)': ['html'], 'Markdown (charts as SVG files beside it)': ['md'] },
            saveLabel: 'Export',
          });
          if (!to) return undefined;
        }
        const format = kind ?? (/\.(md|markdown)$/i.test(to.fsPath) ? 'markdown' : 'html');
        const title = vscode.workspace.asRelativePath(uri);
        const write = (file: vscode.Uri, text: string) =>
          vscode.workspace.fs.writeFile(file, new TextEncoder().encode(text));
        if (format === 'html') await write(to, planReportHtml(title, report, plan));
        else {
          const stem = path.basename(to.fsPath).replace(/\.(md|markdown)$/i, '');
          const md = planReportMarkdown(title, report, stem, plan);
          for (const [name, text] of Object.entries(md.files)) {
            await write(vscode.Uri.file(path.join(path.dirname(to.fsPath), name)), text);
          }
          await write(to, md.markdown);
        }
        const written = to;
        void vscode.window
          .showInformationMessage(`Layerplan: report written to ${vscode.workspace.asRelativePath(written)}`, 'Open')
          .then((choice) => {
            if (choice !== 'Open') return;
            if (format === 'markdown') void vscode.commands.executeCommand('markdown.showPreview', written);
            else void vscode.env.openExternal(written);
          });
        return written;
      },
    ),
    vscode.commands.registerCommand('layerplan.planStatus', () => status.text()),
  );
}

/** The status bar item: the active plan's fit, e.g. "72.4 / 80.0 GiB · 1.31 s/step". */
class PlanStatus implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('layerplan.plan', vscode.StatusBarAlignment.Left, 50);
  private readonly subs: vscode.Disposable[] = [];
  private timer?: ReturnType<typeof setTimeout>;
  private seq = 0;

  constructor(
    private readonly views: GraphViews,
    private readonly checker: Checker,
  ) {
    this.item.name = 'Layerplan plan';
    this.item.command = 'layerplan.estimatePlan';
    const soon = () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.update(), 300);
    };
    this.subs.push(
      vscode.window.onDidChangeActiveTextEditor(soon),
      vscode.window.tabGroups.onDidChangeTabs(soon),
      vscode.workspace.onDidChangeTextDocument((e) => /\.plan\.json$/i.test(e.document.uri.fsPath) && soon()),
      vscode.workspace.onDidSaveTextDocument(soon),
    );
    soon();
  }

  refresh(): void {
    void this.update();
  }

  text(): string | undefined {
    return this.item.text || undefined;
  }

  private async update(): Promise<void> {
    const seq = ++this.seq;
    // The active tab: a plan file, or a model in the graph view (its plan beside it).
    const tab = vscode.window.tabGroups.activeTabGroup.activeTab?.input as { uri?: vscode.Uri } | undefined;
    const uri = planTarget(
      this.views,
      tab?.uri && (MODEL_RE.test(tab.uri.fsPath) || /\.plan\.json$/i.test(tab.uri.fsPath)) ? tab.uri : undefined,
    );
    if (!uri) {
      this.item.hide();
      return;
    }
    let text: string | undefined;
    try {
      text = await planText(uri);
    } catch (e) {
      if (seq !== this.seq) return;
      this.item.text = '$(error) plan unreadable';
      this.item.tooltip = (e as Error).message;
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      this.item.show();
      return;
    }
    if (text === undefined) {
      this.item.hide();
      return;
    }
    // In the check process with a time budget: the status bar never holds the editor up.
    const run = await this.checker.run('estimate', uri.fsPath, text);
    if (seq !== this.seq || 'superseded' in run) return;
    if ('skipped' in run) {
      this.item.text = '$(clock) estimate skipped';
      this.item.tooltip = `${vscode.workspace.asRelativePath(uri)}: estimate ${run.skipped}`;
      this.item.backgroundColor = undefined;
      this.item.show();
      return;
    }
    const r = {
      plan: run.done.plan,
      report: run.done.report,
      error: run.done.estimateError ?? run.done.inputError ?? run.done.error,
    };
    if (!r.plan) {
      this.item.hide();
      return;
    }
    const report = r.report;
    if (!report) {
      this.item.text = '$(error) plan invalid';
      this.item.tooltip = `${vscode.workspace.asRelativePath(uri)}: ${r.error}`;
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else {
      const peak = Math.max(...report.stages.map((s) => s.memory.total));
      const cap = report.stages[0].capacity;
      const step = report.iterationSeconds;
      // What the numbers miss (no config.json beside a checkpoint, dims counted as 1) is said beside them.
      const caveat = report.warnings.length ? ` Warnings: ${report.warnings.join('; ')}.` : '';
      this.item.text = `${peak > cap || caveat ? '$(warning)' : '$(server)'} ${(peak / GiB).toFixed(1)} / ${(cap / GiB).toFixed(1)} GiB · ${step >= 1 ? step.toFixed(2) + ' s' : (step * 1e3).toFixed(1) + ' ms'}/step`;
      this.item.tooltip = `${vscode.workspace.asRelativePath(uri)}: peak memory per GPU ${(peak / GiB).toFixed(2)} of ${(cap / GiB).toFixed(2)} GiB on ${report.gpu}; ${step.toFixed(4)} s per iteration, MFU ${(report.mfu * 100).toFixed(1)}%.${caveat} Click for the estimate.`;
      this.item.backgroundColor = peak > cap ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    }
    this.item.show();
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.item.dispose();
    for (const s of this.subs) s.dispose();
  }
}
