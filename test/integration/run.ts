/**
 * Runs the integration suites inside a real VS Code: code-server (served on 127.0.0.1) driven by
 * Debian's Chromium through playwright-core. The suites run in the extension host; their exit
 * code comes back through codeAutomationExit and their output through the page console.
 * Every wait is bounded; failures leave a screenshot and logs under test-results/.
 */
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { chromium } from 'playwright-core';

/* eslint-disable @typescript-eslint/no-explicit-any */
// The init script runs in the page; the Node tsconfig has no DOM types.
declare const document: any;
declare const MutationObserver: any;

const REPO = path.resolve(__dirname, '..', '..', '..');
/** Where scripts/setup-integration.sh installed code-server (LAYERPLAN_CACHE, as there). */
const CACHE = process.env.LAYERPLAN_CACHE ?? path.join(os.homedir(), '.cache', 'layerplan');
const CODE_SERVER =
  process.env.LAYERPLAN_CODE_SERVER ?? path.join(CACHE, 'code-server-4.100.3', 'node_modules', '.bin', 'code-server');
const CHROMIUM = process.env.LAYERPLAN_CHROMIUM ?? '/usr/bin/chromium';
/** What users install: the platform VSIX `npm run package` built for this machine. */
const VSIX = process.env.LAYERPLAN_VSIX ?? path.join(REPO, 'out', 'layerplan.vsix');
const RESULTS = path.join(REPO, 'test-results');
const TIMEOUT_MS = Number(process.env.LAYERPLAN_INTEGRATION_TIMEOUT ?? 240000);
/** Names this run's files (several VS Code versions run in one npm test). */
const LABEL = process.env.LAYERPLAN_LABEL ?? 'vscode';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitForHttp(url: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`code-server did not answer at ${url} within ${ms} ms`);
}

/**
 * Real input inside a webview: finds the frame that holds the first action's selector (webviews are
 * nested iframes), then clicks (with modifiers), fills or presses there, one action after another.
 */
type UiAction = {
  click?: string;
  dblclick?: string;
  modifiers?: ('Shift' | 'Control')[];
  fill?: [string, string];
  press?: [string, string];
  drag?: [string, string];
  /** Measure: the element's box in the webview (x, y, width, height), or null when it is not there. */
  rect?: string;
  /** Measure every element matching. */
  rects?: string;
  /** Read: the texts of every element matching. */
  texts?: string;
  /** Wait until an element matching is there (up to 10 s). */
  wait?: string;
};
async function uiActions(page: import('playwright-core').Page, actions: UiAction[]): Promise<unknown[]> {
  const a0 = actions[0];
  const first =
    a0.click ??
    a0.dblclick ??
    a0.fill?.[0] ??
    a0.press?.[0] ??
    a0.drag?.[0] ??
    a0.rect ??
    a0.texts ??
    a0.wait ??
    'body';
  const until = Date.now() + 20000;
  let frame: import('playwright-core').Frame | undefined;
  while (!frame && Date.now() < until) {
    for (const f of page.frames()) {
      if (
        await f
          .locator(first)
          .count()
          .catch(() => 0)
      ) {
        frame = f;
      }
    }
    if (!frame) await page.waitForTimeout(200);
  }
  if (!frame) throw new Error(`no webview frame holds ${first}`);
  const results: unknown[] = [];
  for (const a of actions) {
    if (a.click) await frame.locator(a.click).first().click({ modifiers: a.modifiers, timeout: 10000 });
    else if (a.dblclick) await frame.locator(a.dblclick).first().dblclick({ timeout: 10000 });
    else if (a.rect) {
      // In the webview's own coordinates (getBoundingClientRect), as rects measures.
      const one = await frame
        .locator(a.rect)
        .first()
        .evaluate(
          (e) => {
            const r = (
              e as unknown as { getBoundingClientRect(): { x: number; y: number; width: number; height: number } }
            ).getBoundingClientRect();
            return { x: r.x, y: r.y, width: r.width, height: r.height };
          },
          undefined,
          { timeout: 5000 },
        )
        .catch(() => null);
      results.push(one);
    } else if (a.rects) {
      results.push(
        await frame.locator(a.rects).evaluateAll((els) =>
          els.map((e) => {
            const r = (
              e as unknown as { getBoundingClientRect(): { x: number; y: number; width: number; height: number } }
            ).getBoundingClientRect();
            return { x: r.x, y: r.y, width: r.width, height: r.height };
          }),
        ),
      );
    } else if (a.texts) results.push(await frame.locator(a.texts).allTextContents());
    else if (a.wait) await frame.locator(a.wait).first().waitFor({ timeout: 10000 });
    else if (a.fill) await frame.locator(a.fill[0]).first().fill(a.fill[1], { timeout: 10000 });
    else if (a.press) await frame.locator(a.press[0]).first().press(a.press[1], { timeout: 10000 });
    else if (a.drag) {
      await frame.locator(a.drag[0]).first().dragTo(frame.locator(a.drag[1]).first(), { timeout: 10000 });
    }
    await page.waitForTimeout(150);
  }
  return results;
}

function killGroup(p: ChildProcess | undefined): void {
  if (!p?.pid) return;
  try {
    process.kill(-p.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function main(): Promise<number> {
  if (!fs.existsSync(CODE_SERVER)) {
    throw new Error(`code-server not found at ${CODE_SERVER}: run scripts/setup-integration.sh`);
  }
  if (!fs.existsSync(VSIX)) throw new Error(`${VSIX} not found: run npm run package first`);
  fs.mkdirSync(RESULTS, { recursive: true });
  // A failure or timeout picture from an earlier run would read as this run's.
  for (const f of ['failure', 'timeout']) fs.rmSync(path.join(RESULTS, `${LABEL}-${f}.png`), { force: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'layerplan-vscode-'));
  const port = await freePort();
  const workspace = path.join(REPO, 'examples');
  // Suites ask the harness to click inside webviews ('[layerplan-ui] id {json}'); it answers with a file in this folder.
  const uiDir = path.join(tmp, 'ui');
  fs.mkdirSync(uiDir, { recursive: true });
  const env = {
    ...process.env,
    LAYERPLAN_UI_DIR: uiDir,
    PATH: process.env.LAYERPLAN_NODE_DIR ? `${process.env.LAYERPLAN_NODE_DIR}:${process.env.PATH}` : process.env.PATH,
    XDG_CONFIG_HOME: path.join(tmp, 'config'),
    XDG_DATA_HOME: path.join(tmp, 'data'),
    XDG_CACHE_HOME: path.join(tmp, 'cache'),
  };
  // Quiet, deterministic workbench: no startup walkthrough, no git prompt for the parent repository.
  fs.mkdirSync(path.join(tmp, 'user-data', 'User'), { recursive: true });
  fs.writeFileSync(
    path.join(tmp, 'user-data', 'User', 'settings.json'),
    JSON.stringify({
      'workbench.startupEditor': 'none',
      'git.openRepositoryInParentFolders': 'never',
      'telemetry.telemetryLevel': 'off',
    }),
  );
  // The extension under test is the packaged VSIX, installed as a user installs it.
  const installed = spawnSync(
    CODE_SERVER,
    [
      '--user-data-dir',
      path.join(tmp, 'user-data'),
      '--extensions-dir',
      path.join(tmp, 'extensions'),
      '--install-extension',
      VSIX,
      '--force',
    ],
    { env, encoding: 'utf8' },
  );
  if (installed.status !== 0) {
    throw new Error(`code-server --install-extension ${VSIX} failed: ${installed.stderr || installed.stdout}`);
  }
  // VS Code runs a test payload only beside an extension under development: a stub that contributes
  // nothing, so that nothing of this repository's source folder is loaded as an extension.
  const harness = path.join(tmp, 'test-harness');
  fs.mkdirSync(harness);
  fs.writeFileSync(
    path.join(harness, 'package.json'),
    JSON.stringify({
      name: 'layerplan-test-harness',
      publisher: 'layerplan',
      version: '0.0.0',
      engines: { vscode: '^1.100.0' },
    }),
  );
  const log = fs.createWriteStream(path.join(RESULTS, `${LABEL}-code-server.log`));
  // A process group of its own (setsid), so its watchers die with it.
  const server = spawn(
    CODE_SERVER,
    [
      '--auth',
      'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--user-data-dir',
      path.join(tmp, 'user-data'),
      '--extensions-dir',
      path.join(tmp, 'extensions'),
      ...(process.env.LAYERPLAN_RECONNECTION_GRACE
        ? ['--reconnection-grace-time', process.env.LAYERPLAN_RECONNECTION_GRACE]
        : []),
      workspace,
    ],
    { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stdout!.pipe(log);
  server.stderr!.pipe(log);
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
  try {
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60000);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
        '--enable-unsafe-webgpu',
      ],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    // VS Code ≥ 1.1xx honours the test payload only with developmentOptions.enableSmokeTestDriver, which
    // code-server's CLI rejects: set it in the page's configuration element before the workbench reads it.
    await page.addInitScript(() => {
      const patch = () => {
        const el = document.getElementById('vscode-workbench-web-configuration');
        const raw = el?.getAttribute('data-settings');
        if (!el || !raw || el.hasAttribute('data-layerplan-patched')) return !!el;
        const settings = JSON.parse(raw);
        settings.developmentOptions = { ...(settings.developmentOptions ?? {}), enableSmokeTestDriver: true };
        el.setAttribute('data-settings', JSON.stringify(settings));
        el.setAttribute('data-layerplan-patched', '');
        return true;
      };
      if (!patch()) {
        const mo = new MutationObserver(() => patch() && mo.disconnect());
        mo.observe(document, { childList: true, subtree: true });
      }
    });
    const output: string[] = [];
    // The extension host's console reaches the page as '%c INFO color: … text': keep the text of the test run.
    let inRun = false;
    const shots: Promise<unknown>[] = [];
    page.on('console', (m) => {
      const text = m.text().replace(/^%c\s+\w+\s+color:\s*#\w+\s?/, '');
      output.push(text);
      // A suite asks for a screenshot while the extension host is alive: '[layerplan-screenshot] name'.
      const shot = /\[layerplan-screenshot\] ([\w-]+)/.exec(text);
      if (shot) {
        shots.push(page.screenshot({ path: path.join(RESULTS, `${LABEL}-${shot[1]}.png`) }).catch(() => undefined));
      }
      const ui = /\[layerplan-ui\] (\w+) (.*)$/.exec(text);
      if (ui) {
        void uiActions(page, JSON.parse(ui[2])).then(
          (results) => fs.writeFileSync(path.join(uiDir, `${ui[1]}.done`), `ok\n${JSON.stringify(results)}`),
          (e: Error) => fs.writeFileSync(path.join(uiDir, `${ui[1]}.done`), `error: ${e.message}`),
        );
      }
      if (/^\s*Layerplan in a real VS Code|^\s{2}\S/.test(text)) inRun = true;
      if (inRun && !/^Error: \d+ integration tests failed|^\s+at /.test(text)) process.stdout.write(text + '\n');
    });
    const exit = new Promise<number>(
      (resolve) => void page.exposeFunction('codeAutomationExit', (code: number) => resolve(code)),
    );
    const remote = (p: string) => `vscode-remote://127.0.0.1:${port}${p}`;
    const payload = JSON.stringify([
      ['extensionDevelopmentPath', remote(harness)],
      ['extensionTestsPath', remote(path.join(REPO, 'out', 'test', 'integration', 'suite', 'index.js'))],
    ]);
    await page.goto(
      `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(payload)}`,
    );
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<number>(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`no exit code within ${TIMEOUT_MS} ms`)), TIMEOUT_MS)),
    );
    let code = await Promise.race([exit, timeout])
      .finally(() => clearTimeout(timer))
      .catch(async (e) => {
        await page.screenshot({ path: path.join(RESULTS, `${LABEL}-timeout.png`) }).catch(() => undefined);
        fs.writeFileSync(path.join(RESULTS, `${LABEL}-console.log`), output.join('\n'));
        throw e;
      });
    process.stdout.write(`integration: exit code ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    await Promise.all(shots);
    await page.waitForTimeout(Number(process.env.LAYERPLAN_SHOT_DELAY ?? 2000)); // let the webviews paint before the screenshot
    await page
      .screenshot({ path: path.join(RESULTS, code === 0 ? `${LABEL}-workbench.png` : `${LABEL}-failure.png`) })
      .catch(() => undefined);
    fs.writeFileSync(path.join(RESULTS, `${LABEL}-console.log`), output.join('\n'));
    const counts = /integration: (\d+) passed, (\d+) failed, (\d+) skipped/.exec(output.join('\n'));
    if (!counts) {
      // The suite reports its counts as its last act; without them it did not finish (an extension host that
      // crashed makes the workbench exit with 0 all the same).
      process.stdout.write(
        `integration: the suite ended without reporting its results (the extension host died? see ${LABEL}-code-server.log)\n`,
      );
      code = code || 1;
    }
    fs.writeFileSync(
      path.join(RESULTS, `counts-integration-${LABEL}.json`),
      JSON.stringify({
        passed: Number(counts?.[1] ?? 0),
        failed: Number(counts?.[2] ?? (code ? 1 : 0)),
        skipped: Number(counts?.[3] ?? 0),
      }),
    );
    return code;
  } finally {
    await browser?.close().catch(() => undefined);
    killGroup(server);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(`integration: ${(e as Error).message}`);
    process.exitCode = 1;
  },
);
