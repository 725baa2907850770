import * as path from 'path';
import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import { validatePlan } from '../engine/plan/plan';
import { formatAssignment, formatEndToEnd, formatExport } from '../engine/report/quant-text';
import { ExportCancelled, MeasureCancelled } from '../node/quant-export';
import { quantPlan, type QuantPlanResult } from '../node/quant-plan';
import type { QuantExportShown } from '../protocol';
import { pickPlan } from './plan-commands';
import type { GraphViews } from './views';

/** The exported model's default name: `<model>.quantized.onnx` beside the model. */
export function defaultExportPath(model: string): string {
  return path.join(path.dirname(model), path.basename(model).replace(/\.onnx$/i, '') + '.quantized.onnx');
}

/**
 * "Layerplan: Export Quantized Model" (and the planner's button): writes the plan's precision as an
 * ONNX model, runs it against the original with onnxruntime, shows measured against predicted (in the
 * planner and the output channel) and opens the exported model in the graph view. Progress in a
 * notification that can cancel it. Arguments (for the planner and tests): the plan or its model, the
 * output file (the planner's button passes `default`: no dialog), and the samples folder.
 */
export function exportQuantizedCommand(views: GraphViews, output: vscode.OutputChannel) {
  return async (
    arg?: vscode.Uri,
    outArg?: vscode.Uri | 'default',
    inputs?: string,
  ): Promise<QuantPlanResult | undefined> => {
    const planUri = await pickPlan(views, arg);
    if (!planUri) return undefined;
    const rel = vscode.workspace.asRelativePath(planUri);
    const fail = (message: string) => void vscode.window.showErrorMessage(`Layerplan: ${rel}: ${message}`);
    let text: string;
    try {
      text = new TextDecoder().decode(await vscode.workspace.fs.readFile(planUri));
      const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === planUri.toString());
      if (open) text = open.getText();
    } catch {
      fail('no such plan (New Plan for This Model creates one)');
      return undefined;
    }
    const { plan, issues } = validatePlan(text);
    const bad = issues.find((i) => i.severity === 'error');
    if (!plan || bad) {
      fail(bad?.message ?? 'invalid plan');
      return undefined;
    }
    if (typeof plan.model !== 'string' || !/\.onnx$/i.test(plan.model)) {
      fail('the plan names no ONNX model: only ONNX models are exported and run (onnxruntime)');
      return undefined;
    }
    const model = path.resolve(path.dirname(planUri.fsPath), plan.model);
    const modelUri = vscode.Uri.file(model);
    let out: vscode.Uri | undefined = outArg === 'default' ? vscode.Uri.file(defaultExportPath(model)) : outArg;
    out ??= await vscode.window.showSaveDialog({
      defaultUri: vscode.Uri.file(defaultExportPath(model)),
      filters: { 'ONNX model': ['onnx'] },
      title: 'Export the quantized model to',
    });
    if (!out) return undefined;
    const view = views.viewIfOpen(modelUri);
    let result: QuantPlanResult;
    try {
      result = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `Layerplan: exporting ${vscode.workspace.asRelativePath(out)}`,
          cancellable: true,
        },
        (progress, token) => {
          let last = '';
          return quantPlan(model, plan.precision, {
            exportTo: out.fsPath,
            measure: true,
            inputs,
            onProgress: (stage, done, total, name) => {
              const message = `${stage} ${done}/${total}${name ? ` ${name}` : ''}`;
              if (message === last) return;
              last = message;
              progress.report({ message });
              view?.post({ type: 'quantExport', progress: message });
            },
            cancelled: () => token.isCancellationRequested,
          });
        },
      );
    } catch (e) {
      if (e instanceof ExportCancelled || e instanceof MeasureCancelled) {
        view?.post({ type: 'quantExport', error: 'cancelled' });
        void vscode.window.showInformationMessage('Layerplan: export cancelled');
        return undefined;
      }
      const message = e instanceof InputError ? e.message : (e as Error).message;
      view?.post({ type: 'quantExport', error: message });
      fail(message);
      return undefined;
    }
    const e = result.export!;
    const m = result.endToEnd!;
    const p = result.predicted;
    output.clear();
    output.append(formatAssignment(rel, result.assignment, p) + formatExport(e) + formatEndToEnd(m, p));
    output.show(true);
    const shown: QuantExportShown = {
      file: vscode.workspace.asRelativePath(out),
      measuredSqnrDb: m.outputSqnrDb,
      predictedSqnrDb: p.outputSqnrDb,
      firstOrderSqnrDb: p.firstOrderSqnrDb,
      errorModel: p.errorModel,
      klDivergence: m.klDivergence,
      top1Agreement: m.top1Agreement,
      generatedInputs: m.generatedInputs,
      batches: m.batches,
      simulated: e.simulated.map((s) => ({ format: s.format, reason: s.reason })),
      bytes: e.bytes,
      originalBytes: e.originalWeightBytes,
    };
    view?.post({ type: 'quantExport', shown });
    const db = (v: number | null) => (v === null ? 'exact' : `${v.toFixed(1)} dB`);
    void vscode.window.showInformationMessage(
      `Layerplan: exported ${shown.file}: output SQNR measured ${db(m.outputSqnrDb)}, predicted ${db(p.outputSqnrDb)} (first-order ${db(p.firstOrderSqnrDb)})`,
    );
    // The exported model in the graph view, beside the plan's model.
    await vscode.commands.executeCommand('vscode.openWith', out, 'layerplan.modelGraph', {
      viewColumn: vscode.ViewColumn.Beside,
      preserveFocus: true,
    });
    return result;
  };
}
