import * as vscode from 'vscode';
import { InputError } from './engine/errors';
import { formatInspect } from './engine/report/inspect-text';
import { ModelGraphEditor } from './host/model-editor';
import { GraphViews } from './host/views';
import { Checker } from './node/checker';
import { ModelSummaryView } from './host/summary-view';
import { JsonDiagnostics } from './host/diagnostics';
import { inspectFile } from './node/inspect-file';
import { verifyCommand } from './host/verify';
import { registerPlanCommands } from './host/plan-commands';
import { installCommandLine, refreshLauncher } from './host/command-line';
import { exportQuantizedCommand } from './host/quant-export';

/** Everything the commands share; built once in activate(). */
interface Ctx {
  output: vscode.OutputChannel;
}

const MODEL_FILTERS = { 'Model files': ['onnx', 'gguf', 'safetensors', 'json'] };

function inspectModel(ctx: Ctx) {
  return async (uri?: vscode.Uri) => {
    let target = uri ?? vscode.window.activeTextEditor?.document.uri;
    if (!target || !/\.(onnx|gguf|safetensors)$|(^|[\\/])config\.json$/i.test(target.fsPath)) {
      const picked = await vscode.window.showOpenDialog({
        canSelectMany: false,
        filters: MODEL_FILTERS,
        title: 'Inspect model',
      });
      target = picked?.[0];
    }
    if (!target) return;
    const file = target.fsPath;
    try {
      const report = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `Layerplan: reading ${vscode.workspace.asRelativePath(target)}`,
        },
        () => inspectFile(file),
      );
      ctx.output.clear();
      ctx.output.append(formatInspect(file, report));
      ctx.output.show(true);
      return report;
    } catch (e) {
      const message = e instanceof InputError ? e.message : `${file}: ${(e as Error).message}`;
      void vscode.window.showErrorMessage(`Layerplan: ${message}`);
      return undefined;
    }
  };
}

export function activate(context: vscode.ExtensionContext): void {
  const ctx: Ctx = { output: vscode.window.createOutputChannel('Layerplan') };
  const views = new GraphViews(ModelGraphEditor.viewType);
  // Plan checks and estimates run in a child process with a time budget (src/node/checker.ts).
  const checker = new Checker();
  context.subscriptions.push(
    ctx.output,
    vscode.commands.registerCommand('layerplan.inspectModel', inspectModel(ctx)),
    ModelGraphEditor.register(context, views, checker),
    vscode.commands.registerCommand('layerplan.verifyLayer', verifyCommand(views, ctx.output)),
    ModelSummaryView.register(),
    registerPlanCommands(ctx.output, views, checker),
    JsonDiagnostics.register(checker),
    { dispose: () => checker.dispose() },
    vscode.commands.registerCommand('layerplan.installCommandLine', installCommandLine(context)),
    vscode.commands.registerCommand('layerplan.exportQuantizedModel', exportQuantizedCommand(views, ctx.output)),
  );
  refreshLauncher(context);
  const startup = vscode.workspace.getConfiguration('layerplan').get<string>('openOnStartup');
  if (startup) {
    void vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(startup), ModelGraphEditor.viewType);
  }
}

export function deactivate(): void {}
