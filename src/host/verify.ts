import * as vscode from 'vscode';
import { InputError } from '../engine/errors';
import { offeredFormats, parseFormat } from '../engine/quant/formats';
import { finishVerify, type VerifyReport } from '../engine/quant/verify';
import { formatVerify } from '../engine/report/verify-text';
import { loadLayerWeight, verifiableTensors, verifyJob } from '../node/verify-file';
import type { GraphViews } from './views';

/**
 * "Layerplan: Verify Quantized Layer": packs a real weight of the model in a format (engine, in the
 * extension host), runs the kernel in the model's graph view on navigator.gpu (the same WGSL as
 * `layerplan verify` runs through Dawn), and shows the report there and in the output channel.
 * Without a WebGPU adapter in the webview it falls back to the CPU reference and says so.
 */
export function verifyCommand(editors: GraphViews, output: vscode.OutputChannel) {
  return async (
    uriArg?: vscode.Uri,
    tensorArg?: string,
    formatArg?: string,
    layerArg?: number,
    inputsArg?: string,
  ): Promise<VerifyReport | undefined> => {
    const uri =
      uriArg ??
      editors.activeModel() ??
      (
        await vscode.window.showOpenDialog({
          canSelectMany: false,
          filters: { 'Model files': ['onnx', 'gguf', 'safetensors'] },
          title: 'Verify a quantized layer of…',
        })
      )?.[0];
    if (!uri) return undefined;
    try {
      const view = await editors.viewFor(uri);
      const graph = view.graph();
      if (!graph) throw new InputError(uri.fsPath, 'the model could not be read');
      let tensor = tensorArg;
      if (!tensor) {
        // From a layer's details: that layer's weights only.
        const names = verifiableTensors(graph).filter(
          (n) => layerArg === undefined || graph.tensors.get(n)!.layer === layerArg,
        );
        if (!names.length) {
          throw new InputError(
            uri.fsPath,
            `layer ${graph.layers[layerArg!]?.name ?? layerArg} holds no weight matrix to verify`,
          );
        }
        const items = names.map((name) => {
          const t = graph.tensors.get(name)!;
          return {
            label: name,
            description: `[${(t.shape ?? []).join(', ')}] ${t.dtype}`,
            detail: t.layer !== undefined ? `layer ${graph.layers[t.layer]?.name}` : undefined,
          };
        });
        tensor = (
          await vscode.window.showQuickPick(items, {
            title: 'Verify: which weight?',
            matchOnDescription: true,
            matchOnDetail: true,
          })
        )?.label;
      }
      if (!tensor) return undefined;
      let format = formatArg;
      if (!format) {
        const items = offeredFormats().map((f) => ({
          label: f,
          description: `${parseFormat(f)!.bitsPerWeight.toFixed(3)} bits/weight`,
        }));
        format = (await vscode.window.showQuickPick(items, { title: `Verify ${tensor} in which format?` }))?.label;
      }
      if (!format) return undefined;
      if (!parseFormat(format)) throw new InputError(format, 'unknown format');
      // Inputs: generated unless given; an ONNX model may run on the user's samples (onnxruntime-node).
      let inputs = inputsArg;
      if (inputs === undefined && !formatArg && /\.onnx$/i.test(uri.fsPath)) {
        const pick = await vscode.window.showQuickPick(
          [
            { label: 'Generated inputs', description: '8 rows of N(0, 1), seeded' },
            {
              label: 'Calibration samples…',
              description: 'a folder of input_<i>.pb sets (ONNX test-data layout); needs onnxruntime-node',
            },
          ],
          { title: `Verify ${tensor} in ${format} on which inputs?` },
        );
        if (!pick) return undefined;
        if (pick.label.startsWith('Calibration')) {
          inputs = (
            await vscode.window.showOpenDialog({
              canSelectFiles: false,
              canSelectFolders: true,
              canSelectMany: false,
              title: 'Folder of calibration samples',
            })
          )?.[0]?.fsPath;
          if (!inputs) return undefined;
        }
      }
      const chosen = format;
      const name = tensor;
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `Layerplan: verifying ${name} in ${chosen}` },
        async (progress) => {
          view.post({ type: 'verifyReport', progress: `Packing ${name} in ${chosen}…` });
          progress.report({ message: 'packing the weight' });
          const layer = await loadLayerWeight(uri.fsPath, name);
          if (inputs) progress.report({ message: 'running the model on your samples (onnxruntime)' });
          const job = await verifyJob(uri.fsPath, layer, { format: chosen, inputs: inputs || undefined });
          progress.report({ message: 'running the kernel in the graph view (WebGPU)' });
          view.post({ type: 'verifyReport', progress: `Running the ${chosen} kernel on WebGPU…` });
          // A kernel that errors or never answers is a failure, not a fallback: it rejects.
          const res = await view.runKernel(job.packed, job.x, job.batch, 3).catch((e: Error) => {
            view.post({ type: 'verifyReport', error: `The ${chosen} kernel failed in the graph view: ${e.message}` });
            throw e;
          });
          const report = res.y
            ? finishVerify(job, { y: res.y, device: res.device ?? 'WebGPU', seconds: res.seconds })
            : finishVerify(job, { fallback: res.fallback ?? 'no WebGPU in the webview' });
          view.post({ type: 'verifyReport', report });
          output.appendLine(formatVerify(vscode.workspace.asRelativePath(uri), report));
          if (report.outcome === 'fallback') {
            void vscode.window.showWarningMessage(
              `Layerplan: no WebGPU adapter in the view, so no kernel ran for ${name} in ${chosen}; only the CPU reference was compared (${report.fallback}).`,
            );
          } else if (!report.pass) {
            void vscode.window.showWarningMessage(
              `Layerplan: ${name} in ${chosen} failed verification (see the graph view).`,
            );
          }
          return report;
        },
      );
    } catch (e) {
      const message = e instanceof InputError ? e.message : `${uri.fsPath}: ${(e as Error).message}`;
      void vscode.window.showErrorMessage(`Layerplan: ${message}`);
      return undefined;
    }
  };
}
