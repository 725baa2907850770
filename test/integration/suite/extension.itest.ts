import * as assert from 'assert';
import * as path from 'path';
import * as vscode from 'vscode';

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
