import * as assert from 'assert';
import * as fs from 'fs';
import { onnx } from 'onnx-proto';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import { spawnSync } from 'child_process';

describe('Layerplan in a real VS Code', () => {
  it('activates and registers its commands', async () => {
    const ext = vscode.extensions.all.find((e) => e.packageJSON.name === 'layerplan');
    assert.ok(ext, 'the extension under development is loaded');
    await ext.activate();
    assert.ok(ext.isActive);
    const commands = await vscode.commands.getCommands(true);
    assert.ok(commands.includes('layerplan.inspectModel'));
  });
  it('inspects the bundled example model through the command', async () => {
    const folder = vscode.workspace.workspaceFolders?.[0];
    assert.ok(folder, 'the examples workspace is open');
    const uri = vscode.Uri.file(path.join(folder.uri.fsPath, 'gpt2-tiny.onnx'));
    const report = (await vscode.commands.executeCommand('layerplan.inspectModel', uri)) as { nodes: number; parameters: number } | undefined;
    assert.ok(report, 'the command returns its report');
    assert.strictEqual(report.nodes, 249);
    assert.strictEqual(report.parameters, 137033);
  });
});

async function renderedFor(uri: vscode.Uri, timeoutMs = 45000): Promise<{ boxes: number; layers: number; nodes: number; textNames: string[] }> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = await vscode.commands.executeCommand<{ boxes: number; layers: number; nodes: number; textNames: string[] } | undefined>('layerplan.renderedBoxes', uri);
    if (r) return r;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`the graph view of ${uri.fsPath} reported nothing within ${timeoutMs} ms`);
}

describe('the model graph editor', () => {
  it('shows node names as text: a node named <img src=x onerror=…> runs nothing', async () => {
    const evil = '<img src=x onerror=alert(1)>';
    const bytes = onnx.ModelProto.encode({
      irVersion: 8, producerName: 'xss-test', opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'g', node: [{ opType: 'MatMul', input: ['x', 'w'], output: ['y'], name: evil }],
        initializer: [{ name: 'w', dims: [2, 2], dataType: 1, floatData: [1, 2, 3, 4] }],
        input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 2 }] } } } }],
        output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
      },
    }).finish();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-xss-')), 'evil.onnx');
    fs.writeFileSync(file, bytes);
    const uri = vscode.Uri.file(file);
    await vscode.commands.executeCommand('vscode.openWith', uri, 'layerplan.modelGraph');
    const r = await renderedFor(uri);
    assert.ok(r.textNames.includes(evil), `the name is drawn as text: ${JSON.stringify(r.textNames)}`);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  it('opens a real exported transformer as a graph of collapsed layers', async () => {
    const folder = vscode.workspace.workspaceFolders![0];
    const uri = vscode.Uri.file(path.join(folder.uri.fsPath, 'gpt2-tiny.onnx'));
    await vscode.commands.executeCommand('vscode.openWith', uri, 'layerplan.modelGraph');
    const r = await renderedFor(uri);
    assert.strictEqual(r.layers, 7, `layers drawn: ${JSON.stringify(r)}`);
    for (const name of ['h.0', 'h.1', 'lm_head', 'wte']) assert.ok(r.textNames.includes(name), name);
    // The harness saves test-results/graph-view.png while the extension host is still alive.
    await new Promise((res) => setTimeout(res, 1000));
    console.log('[layerplan-screenshot] graph-view');
    await new Promise((res) => setTimeout(res, 2000));
  });
});

describe('the graph view follows its file', () => {
  it('reloads when the model changes on disk and closes when it is deleted', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-watch-'));
    const folder = vscode.workspace.workspaceFolders![0];
    const file = path.join(dir, 'model.onnx');
    fs.copyFileSync(path.join(folder.uri.fsPath, 'gpt2-tiny.onnx'), file);
    const uri = vscode.Uri.file(file);
    await vscode.commands.executeCommand('vscode.openWith', uri, 'layerplan.modelGraph');
    assert.strictEqual((await renderedFor(uri)).layers, 7);
    // Replace it with the CNN: the view redraws with the CNN's layers.
    fs.copyFileSync(path.join(folder.uri.fsPath, '..', 'test', 'fixtures', 'models', 'cnn-tiny.onnx'), file);
    const until = Date.now() + 30000;
    let layers = 7;
    while (Date.now() < until && layers === 7) {
      await new Promise((r) => setTimeout(r, 300));
      layers = (await renderedFor(uri)).layers;
    }
    assert.notStrictEqual(layers, 7, 'the view reloaded the changed file');
    fs.rmSync(file);
    const closeBy = Date.now() + 30000;
    while (Date.now() < closeBy && (await vscode.commands.executeCommand('layerplan.renderedBoxes', uri))) await new Promise((r) => setTimeout(r, 300));
    assert.strictEqual(await vscode.commands.executeCommand('layerplan.renderedBoxes', uri), undefined, 'the view closed when its file was deleted');
  });
});

describe('the side panel', () => {
  it('summarizes the active model', async () => {
    const folder = vscode.workspace.workspaceFolders![0];
    const uri = vscode.Uri.file(path.join(folder.uri.fsPath, 'gpt2-tiny.onnx'));
    await vscode.commands.executeCommand('vscode.openWith', uri, 'layerplan.modelGraph');
    await vscode.commands.executeCommand('layerplan.showSummary');
    const until = Date.now() + 30000;
    let state: { file: string; parameters: number } | undefined;
    while (Date.now() < until && state?.file !== uri.fsPath) {
      await new Promise((r) => setTimeout(r, 300));
      state = await vscode.commands.executeCommand('layerplan.summaryState');
    }
    assert.deepStrictEqual(state, { file: uri.fsPath, parameters: 137033 });
    // Hidden behind another editor and shown again, the graph draws itself anew (and stays for the closing screenshot).
    await vscode.window.showTextDocument(vscode.Uri.file(path.join(folder.uri.fsPath, 'gpt2-tiny.plan.json')));
    await new Promise((r) => setTimeout(r, 500));
    await vscode.commands.executeCommand('vscode.openWith', uri, 'layerplan.modelGraph');
    assert.strictEqual((await renderedFor(uri)).layers, 7);
  });
});

describe('inline diagnostics', () => {
  it('marks an unknown GPU in a plan file at its exact range, as layerplan check does', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-diag-'));
    const text = '{\n  "model": {"arch": "gpt", "layers": 2, "hidden": 64, "heads": 4, "vocab": 100},\n  "cluster": {"gpu": "b300", "gpusPerNode": 1},\n  "training": {"globalBatch": 1, "microBatch": 1}\n}\n';
    const file = path.join(dir, 'x.plan.json');
    fs.writeFileSync(file, text);
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
    await vscode.window.showTextDocument(doc);
    const until = Date.now() + 20000;
    let diags: vscode.Diagnostic[] = [];
    while (Date.now() < until && !diags.some((d) => d.source === 'layerplan')) {
      await new Promise((r) => setTimeout(r, 200));
      diags = vscode.languages.getDiagnostics(doc.uri);
    }
    const d = diags.find((x) => x.source === 'layerplan');
    assert.ok(d, `diagnostics: ${JSON.stringify(diags)}`);
    assert.match(d.message, /unknown GPU 'b300' \(did you mean 'b200'\?\)/);
    assert.strictEqual(d.severity, vscode.DiagnosticSeverity.Error);
    const at = text.indexOf('"gpu": "b300"');
    assert.deepStrictEqual([d.range.start.line, d.range.start.character], [2, at - text.lastIndexOf('\n', at) - 1]);
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });
});

describe('verifying a quantized layer in the webview (WebGPU in Chromium)', () => {
  it('runs the q4_k kernel on a real weight in the graph view, shows the report there, and agrees with layerplan verify', async function () {
    this.timeout(120000);
    const folder = vscode.workspace.workspaceFolders![0];
    const uri = vscode.Uri.file(path.join(folder.uri.fsPath, 'gpt2-tiny.onnx'));
    const tensor = 'onnx::MatMul_304';
    const report = await vscode.commands.executeCommand<{
      device: string; fallback?: string; pass: boolean; format: string;
      kernelVsReference: { ran: boolean; pass: boolean; maxAbsError: number };
      outputError: { sqnrDb: number }; predicted: { sqnrDb: number };
    }>('layerplan.verifyLayer', uri, tensor, 'q4_k');
    assert.ok(report, 'the command returns its report');
    assert.strictEqual(report.fallback, undefined, `a WebGPU adapter in the webview: ${report.device} ${report.fallback ?? ''}`);
    assert.match(report.device, /\(webview\)$/);
    assert.ok(report.kernelVsReference.ran && report.kernelVsReference.pass, JSON.stringify(report.kernelVsReference));
    assert.ok(report.pass, JSON.stringify(report));
    // The same verification from the command line (Dawn in Node): same inputs, same packed bits.
    const root = path.join(folder.uri.fsPath, '..');
    const cli = spawnSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'verify', uri.fsPath, '--tensor', tensor, '--format', 'q4_k', '--json'], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
    assert.strictEqual(cli.status, 0, cli.stderr);
    const j = JSON.parse(cli.stdout);
    assert.strictEqual(j.predicted.sqnrDb, report.predicted.sqnrDb);
    assert.ok(Math.abs(j.outputError.sqnrDb - report.outputError.sqnrDb) < 0.01, `webview ${report.outputError.sqnrDb} dB vs CLI ${j.outputError.sqnrDb} dB`);
    // What the graph view shows.
    const until = Date.now() + 20000;
    let shown: string | undefined;
    while (Date.now() < until && !/PASS/.test(shown ?? '')) {
      await new Promise((r) => setTimeout(r, 200));
      shown = await vscode.commands.executeCommand<string>('layerplan.verifyShown', uri);
    }
    assert.match(shown ?? '', /PASS/);
    assert.ok((shown ?? '').includes(`${report.outputError.sqnrDb.toFixed(2)} dB`), shown);
    await new Promise((res) => setTimeout(res, 500));
    console.log('[layerplan-screenshot] verify-layer');
    await new Promise((res) => setTimeout(res, 1500));
  });
});
