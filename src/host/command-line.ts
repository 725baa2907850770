import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';

/**
 * `layerplan` in a terminal for users of the extension: *Layerplan: Install Command Line* writes a
 * small launcher that runs the extension's own bundled CLI (dist/cli.js) with the Node runtime VS
 * Code already ships (its executable with ELECTRON_RUN_AS_NODE=1; plain Node in code-server), so no
 * separate Node install is needed. The launcher names this extension's folder; every activation
 * rewrites a launcher it wrote before when the extension has moved (an update), so it keeps working.
 */

const MARK = 'layerplan-launcher';
const isWindows = process.platform === 'win32';

/** Where the launcher goes by default: ~/.local/bin on Linux and macOS, %LOCALAPPDATA%\Programs\layerplan on Windows. */
export function defaultLauncherDir(): string {
  if (isWindows) {
    return path.join(process.env.LOCALAPPDATA ?? path.join(os.homedir(), 'AppData', 'Local'), 'Programs', 'layerplan');
  }
  return path.join(os.homedir(), '.local', 'bin');
}

function launcherText(extensionPath: string): string {
  const cli = path.join(extensionPath, 'dist', 'cli.js');
  const node = process.execPath;
  if (isWindows) {
    return `@echo off\r\nrem ${MARK}: written by the Layerplan extension\r\nset ELECTRON_RUN_AS_NODE=1\r\n"${node}" "${cli}" %*\r\n`;
  }
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh\n# ${MARK}: written by the Layerplan extension (Layerplan: Install Command Line)\nELECTRON_RUN_AS_NODE=1 exec ${q(node)} ${q(cli)} "$@"\n`;
}

/** Writes the launcher into `dir`; returns its path. */
export function writeLauncher(dir: string, extensionPath: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, isWindows ? 'layerplan.cmd' : 'layerplan');
  if (fs.existsSync(file) && !fs.readFileSync(file, 'utf8').includes(MARK)) {
    throw new Error(`${file} exists and was not written by Layerplan; remove it or choose another folder`);
  }
  fs.writeFileSync(file, launcherText(extensionPath), { mode: 0o755 });
  return file;
}

const onPath = (dir: string) =>
  (process.env.PATH ?? '').split(path.delimiter).some((p) => path.resolve(p) === path.resolve(dir));

/** The command: `dir` may be passed (tests, scripts); otherwise the default folder. Returns the launcher's path. */
export function installCommandLine(context: vscode.ExtensionContext) {
  return async (dir?: string): Promise<string | undefined> => {
    const target = typeof dir === 'string' && dir ? dir : defaultLauncherDir();
    try {
      const file = writeLauncher(target, context.extensionPath);
      await context.globalState.update('layerplan.launcher', file);
      const hint = onPath(target)
        ? 'run `layerplan --help` in a new terminal'
        : `add ${target} to your PATH, then run \`layerplan --help\``;
      void vscode.window.showInformationMessage(`Layerplan: command line installed at ${file}; ${hint}.`);
      return file;
    } catch (e) {
      void vscode.window.showErrorMessage(`Layerplan: could not install the command line: ${(e as Error).message}`);
      return undefined;
    }
  };
}

/** On activation: a launcher this extension wrote that names an older extension folder is rewritten. */
export function refreshLauncher(context: vscode.ExtensionContext): void {
  const file = context.globalState.get<string>('layerplan.launcher');
  if (!file) return;
  try {
    const text = fs.readFileSync(file, 'utf8');
    if (text.includes(MARK) && text !== launcherText(context.extensionPath)) {
      writeLauncher(path.dirname(file), context.extensionPath);
    }
  } catch {
    // The user removed it: nothing to refresh, and nothing to recreate uninvited.
    void context.globalState.update('layerplan.launcher', undefined);
  }
}
