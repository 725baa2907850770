/**
 * `npm run bench` (last part): first paint of the graph view for a 10,000-node model in headless
 * Chromium. The webview app (dist/webview.js + its layout worker) runs in a page served on
 * 127.0.0.1 with a stand-in for VS Code's webview API; the host's side (parse + summary) is timed
 * in Node. Goal: first paint under 2 s. Also times opening every layer at once (all 10k boxes).
 */
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { chromium } from 'playwright-core';
import { openModel } from '../src/engine/formats/registry';
import { layerNodes, modelSummary } from '../src/host/graph-summary';
import { FileByteSource } from '../src/node/file-source';
import { writeGptModel } from './gpt-writer';

/* eslint-disable @typescript-eslint/no-explicit-any */
// The page-side callbacks run in Chromium; the Node tsconfig has no DOM types.
declare const window: any;
declare const document: any;
declare const requestAnimationFrame: (f: () => void) => void;
type SVGGElement = any;
declare const MouseEvent: any;

const REPO = path.resolve(__dirname, '..', '..');

async function main(): Promise<void> {
  const dist = path.join(REPO, 'dist');
  if (!fs.existsSync(path.join(dist, 'webview.js'))) throw new Error('dist/webview.js is missing: npm run build first');
  const dir = path.join(os.tmpdir(), 'layerplan-bench');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'gpt-10k-nodes.onnx');
  if (!fs.existsSync(file)) writeGptModel(file, { layers: 263, hidden: 64, vocab: 512, tiny: true });
  const t0 = performance.now();
  const source = await FileByteSource.open(file);
  const graph = await openModel(source);
  await source.close();
  const summary = modelSummary('gpt-10k-nodes.onnx', graph);
  const hostMs = performance.now() - t0;
  const layers = summary.layers.map((l) => ({
    type: 'layer',
    level: '',
    layer: l.index,
    ...layerNodes(graph, l.index),
  }));

  const page = `<!DOCTYPE html><html><body data-worker="/layout-worker.js"><div id="app"></div>
<script>
  window.__posted = [];
  window.acquireVsCodeApi = () => ({ postMessage: (m) => window.__posted.push(m), getState: () => undefined, setState: () => {} });
</script><script src="/webview.js"></script></body></html>`;
  const server = http.createServer((req, res) => {
    if (req.url === '/') return res.end(page);
    const f = path.join(dist, path.basename(req.url ?? ''));
    if (!fs.existsSync(f)) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/javascript' }).end(fs.readFileSync(f));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  try {
    const tab = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    tab.on('pageerror', (e) => console.error('page error:', e.message));
    tab.on('crash', () => console.error('page crashed'));
    await tab.goto(`http://127.0.0.1:${port}/`);
    await tab.waitForFunction(() =>
      (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'ready'),
    );
    const paint = await tab.evaluate(async (s) => {
      const w = window as unknown as { __posted: { type: string }[] };
      const start = performance.now();
      window.postMessage({ type: 'summary', summary: s }, '*');
      while (!w.__posted.some((m) => m.type === 'rendered')) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => requestAnimationFrame(() => r(null)));
      return performance.now() - start;
    }, summary);
    const expand = await tab.evaluate(async (ls) => {
      const w = window as unknown as { __posted: { type: string; nodes?: number }[] };
      w.__posted.length = 0;
      const start = performance.now();
      // Open every layer: what the view draws when a user expands the whole model.
      const boxes = [...document.querySelectorAll('.box.layer')] as SVGGElement[];
      for (const b of boxes) b.dispatchEvent(new MouseEvent('click', { bubbles: true }));
      for (const m of ls) window.postMessage(m, '*');
      const want = ls.reduce((a, l) => a + (l as { nodes: unknown[] }).nodes.length, 0);
      while (!w.__posted.some((m) => m.type === 'rendered' && m.nodes === want)) {
        await new Promise((r) => setTimeout(r, 20));
      }
      return performance.now() - start;
    }, layers);
    console.log(`graph view: ${summary.nodes} nodes in ${summary.layers.length} layers (generated), headless Chromium`);
    console.log(`  host: parse + summary           ${hostMs.toFixed(0)} ms`);
    console.log(
      `  first paint (layers collapsed)  ${paint.toFixed(0)} ms   ratio to the 2 s goal ${(paint / 2000).toFixed(3)}x`,
    );
    console.log(`  every layer opened (all nodes)  ${expand.toFixed(0)} ms`);
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
