import * as path from 'path';
import * as vscode from 'vscode';
import { planText } from '../engine/check/launch';
import { InputError } from '../engine/errors';
import { EXPORT_TARGETS, exportPlan, type ExportResult } from '../engine/export';
import { GPUS } from '../engine/hardware/catalog';
import { importLaunchFile, launchKindOf, type LaunchOptions } from '../node/launch-file';
import { checkPlanFile } from '../node/plan-file';
import type { ExportShown } from '../protocol';

/**
 * Plans in and out of the training frameworks, in the editor: *Export Launch Configuration* (and the
 * planner's Export panel) write a plan as a Megatron-LM script, a DeepSpeed config or a torchtitan TOML
 * beside it; *New Plan from Launch Configuration* reads one of those back as a plan.
 */

/** The text of a document as VS Code holds it (unsaved edits included), or of the file on disk. */
async function textOf(uri: vscode.Uri): Promise<string | undefined> {
  const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  if (open) return open.getText();
  try {
    return new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
  } catch {
    return undefined;
  }
}

/** The targets a plan can be exported to (training plans: the training frameworks). */
export async function exportTargets(planUri: vscode.Uri): Promise<{ name: string; description: string }[]> {
  const text = await textOf(planUri);
  const inference = text !== undefined && /"inference"\s*:/.test(text) && !/"training"\s*:/.test(text);
  return EXPORT_TARGETS.filter((t) => t.kind === (inference ? 'inference' : 'training')).map((t) => ({
    name: t.name,
    description: t.description,
  }));
}

/** The plan (its editor's buffer when open) as a target's launch configuration; an InputError says why not. */
export async function exportPlanUri(planUri: vscode.Uri, to: string): Promise<ExportResult> {
  const file = planUri.fsPath;
  const { plan, workload, issues } = await checkPlanFile(file, await textOf(planUri));
  const bad = issues.find((i) => i.severity === 'error');
  if (!plan || !workload || bad) throw new InputError(path.basename(file), bad?.message ?? 'invalid plan');
  return exportPlan(plan, to, { planFile: file, workload });
}

/** Writes an export's files beside its plan; returns their URIs (the main file first). */
export async function saveExport(planUri: vscode.Uri, result: ExportResult): Promise<vscode.Uri[]> {
  const dir = path.dirname(planUri.fsPath);
  const uris: vscode.Uri[] = [];
  // The launch script or TOML first, the DeepSpeed config after its script.
  const names = Object.keys(result.files).sort((a, b) => Number(/\.json$/.test(a)) - Number(/\.json$/.test(b)));
  for (const name of names) {
    const uri = vscode.Uri.file(path.join(dir, name));
    await vscode.workspace.fs.writeFile(uri, new TextEncoder().encode(result.files[name]));
    uris.push(uri);
  }
  return uris;
}

/** What the planner's Export panel shows for a target. */
export async function exportShown(planUri: vscode.Uri, to: string): Promise<ExportShown> {
  const targets = await exportTargets(planUri);
  try {
    return { to, targets, result: await exportPlanUri(planUri, to) };
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    return { to, targets, error: e.problem };
  }
}

function report(output: vscode.OutputChannel, label: string, result: ExportResult): void {
  output.appendLine(`${label}: ${result.to} (options of ${result.version})`);
  output.appendLine(result.command);
  for (const n of result.notes) output.appendLine(`note: ${n}`);
}

/** The launch file a command acts on: its argument, the active editor's file, or one the user picks. */
async function pickLaunchFile(arg?: vscode.Uri): Promise<vscode.Uri | undefined> {
  if (arg) return arg;
  const active = vscode.window.activeTextEditor?.document;
  if (active && active.uri.scheme === 'file' && launchKindOf(active.uri.fsPath, active.getText())) return active.uri;
  return (
    await vscode.window.showOpenDialog({
      canSelectMany: false,
      filters: { 'Launch configurations': ['sh', 'bash', 'toml', 'json', 'txt', 'args'] },
      title: 'New plan from which launch configuration (Megatron-LM script, DeepSpeed config, torchtitan TOML)?',
    })
  )?.[0];
}

/** `x.megatron.sh` → `x.megatron.plan.json` beside it (not overwriting a plan that is there). */
async function newPlanUri(launch: vscode.Uri): Promise<vscode.Uri> {
  const dir = path.dirname(launch.fsPath);
  const base = path.basename(launch.fsPath).replace(/\.(sh|bash|toml|jsonc?|txt|args)$/i, '');
  for (let n = 1; n < 100; n++) {
    const uri = vscode.Uri.file(path.join(dir, `${base}${n > 1 ? `-${n}` : ''}.plan.json`));
    if ((await textOf(uri)) === undefined) return uri;
  }
  throw new Error(`no free plan file name beside ${launch.fsPath}`);
}

export function registerLaunchCommands(
  output: vscode.OutputChannel,
  pickPlan: (arg?: vscode.Uri) => Promise<vscode.Uri | undefined>,
): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.commands.registerCommand(
      'layerplan.exportLaunchConfig',
      async (arg?: vscode.Uri, to?: string): Promise<{ files: vscode.Uri[]; result: ExportResult } | undefined> => {
        const planUri = await pickPlan(arg);
        if (!planUri) return undefined;
        const targets = await exportTargets(planUri);
        const target =
          to ??
          (
            await vscode.window.showQuickPick(
              targets.map((t) => ({ label: t.name, description: t.description })),
              { title: 'Export the plan as the launch configuration of' },
            )
          )?.label;
        if (!target) return undefined;
        let result: ExportResult;
        try {
          result = await exportPlanUri(planUri, target);
        } catch (e) {
          const message = e instanceof InputError ? e.message : (e as Error).message;
          void vscode.window.showErrorMessage(`Layerplan: ${message}`);
          return undefined;
        }
        const files = await saveExport(planUri, result);
        report(output, vscode.workspace.asRelativePath(planUri), result);
        await vscode.window.showTextDocument(files[0], { preview: false });
        void vscode.window
          .showInformationMessage(
            `Layerplan: ${files.map((f) => vscode.workspace.asRelativePath(f)).join(', ')} written (${result.version}); ${result.notes.length} note(s) in the Layerplan output`,
            'Copy Command',
          )
          .then((a) => a && vscode.env.clipboard.writeText(result.command));
        return { files, result };
      },
    ),
    vscode.commands.registerCommand(
      'layerplan.newPlanFromLaunchConfig',
      async (arg?: vscode.Uri, given?: LaunchOptions): Promise<vscode.Uri | undefined> => {
        const launch = await pickLaunchFile(arg);
        if (!launch) return undefined;
        const options: LaunchOptions = { ...(given ?? {}) };
        let r;
        try {
          r = await importLaunchFile(launch.fsPath, options, await textOf(launch));
          // What the file does not say and no argument gave: ask (the GPU; the model of a DeepSpeed / torchtitan config).
          if (!given && r.imp.plan && !r.imp.header?.cluster?.gpu && !options.gpu) {
            const gpu = await vscode.window.showQuickPick(
              GPUS.map((g) => ({ label: g.id, description: `${g.name}, ${g.memoryGB} GB` })),
              { title: `${path.basename(launch.fsPath)} does not name the GPU: which one?` },
            );
            if (gpu) {
              options.gpu = gpu.label;
              r = await importLaunchFile(launch.fsPath, options, await textOf(launch));
            }
          }
          if (!given && !r.imp.plan && r.kind !== 'megatron') {
            const model = (
              await vscode.window.showOpenDialog({
                canSelectMany: false,
                filters: { 'Model files': ['json', 'onnx', 'gguf', 'safetensors'] },
                title: `${path.basename(launch.fsPath)} does not name the model: which one?`,
              })
            )?.[0];
            if (model) {
              options.model = model.fsPath;
              r = await importLaunchFile(launch.fsPath, options, await textOf(launch));
            }
          }
        } catch (e) {
          const message = e instanceof InputError ? e.message : (e as Error).message;
          void vscode.window.showErrorMessage(`Layerplan: ${message}`);
          return undefined;
        }
        if (!r.imp.plan) {
          const why = [...r.diagnostics, ...r.related.flatMap((x) => x.diagnostics)].find(
            (d) => d.severity === 'error',
          );
          void vscode.window.showErrorMessage(
            `Layerplan: ${vscode.workspace.asRelativePath(launch)}: ${why?.message ?? 'no plan could be read from it'}`,
          );
          return undefined;
        }
        const uri = await newPlanUri(vscode.Uri.file(r.file));
        const edit = new vscode.WorkspaceEdit();
        edit.createFile(uri, { contents: new TextEncoder().encode(planText(r.imp, path.basename(launch.fsPath))) });
        if (!(await vscode.workspace.applyEdit(edit))) {
          void vscode.window.showErrorMessage(`Layerplan: could not create ${vscode.workspace.asRelativePath(uri)}`);
          return undefined;
        }
        const doc = await vscode.workspace.openTextDocument(uri);
        if (doc.isDirty) await doc.save();
        await vscode.window.showTextDocument(doc, { preview: false });
        output.appendLine(
          `${vscode.workspace.asRelativePath(uri)}: read from ${vscode.workspace.asRelativePath(launch)} with the options of ${r.imp.version}`,
        );
        for (const n of r.imp.notes) output.appendLine(`note: ${n}`);
        return uri;
      },
    ),
  );
}
