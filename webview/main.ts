import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import type { Edge, HostToWebview, LayerBox, ModelSummary, NodeBox, NodeDetails, WebviewToHost } from '../src/protocol';
import { adapterName, runPackedKernel } from '../src/gpu/runner';
import type { VerifyReport } from '../src/engine/quant/verify';
import { Planner } from './planner';
import { formatBytes, formatCount } from '../src/engine/units';

/**
 * The model-graph webview: layers start collapsed and expand on click (the host sends a layer's
 * nodes when asked), dagre lays the boxes out in a web worker, the SVG pans (drag), zooms (wheel,
 * +/−), fits (F), and a search box highlights matching layers and nodes. Every name is set as text,
 * never as markup. Colours come from VS Code's theme variables.
 */
declare function acquireVsCodeApi(): {
  postMessage(m: WebviewToHost): void;
  getState(): unknown;
  setState(s: unknown): void;
};
const vscode = acquireVsCodeApi();
const post = (m: WebviewToHost) => vscode.postMessage(m);
const SVG = 'http://www.w3.org/2000/svg';

interface State {
  expanded: number[];
  planner?: boolean;
  view?: { x: number; y: number; scale: number };
  search?: string;
}
const state: State = (vscode.getState() as State) ?? { expanded: [] };
const save = () => vscode.setState(state);

let summary: ModelSummary | undefined;
/** The host's answer to the current search: layers and nodes holding a matching node or tensor name. */
let matches: { layers: Set<number>; nodes: Set<number> } = { layers: new Set(), nodes: new Set() };
const layerNodes = new Map<number, { nodes: NodeBox[]; edges: Edge[] }>();

const style = document.createElement('style');
style.textContent = `
  body { margin: 0; padding: 0; color: var(--vscode-foreground); background: var(--vscode-editor-background); font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); overflow: hidden; }
  #app { display: grid; grid-template-rows: auto 1fr auto; grid-template-columns: 1fr 320px; height: 100vh; }
  #app.planning { grid-template-rows: auto minmax(140px, 34vh) 1fr; }
  .planner { grid-column: 1 / 3; border-top: 1px solid var(--vscode-panel-border); overflow: auto; padding: 6px 10px; font-size: 12px; min-height: 0; }
  .planner .pbar { display: flex; gap: 8px; align-items: center; margin-bottom: 6px; }
  .planner .ptitle { font-weight: 600; margin-right: auto; }
  .planner .pgrid { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 14px; }
  .planner .row { display: flex; gap: 6px; align-items: center; margin: 4px 0; flex-wrap: wrap; }
  .planner .lbl { color: var(--vscode-descriptionForeground); }
  .planner .layers { max-height: 30vh; overflow: auto; border: 1px solid var(--vscode-panel-border); }
  .planner table { border-collapse: collapse; width: 100%; }
  .planner th { text-align: left; color: var(--vscode-descriptionForeground); font-weight: normal; position: sticky; top: 0; background: var(--vscode-editor-background); }
  .planner td, .planner th { padding: 1px 6px; white-space: nowrap; }
  .planner tbody tr { cursor: pointer; }
  .planner tbody tr:focus { outline: 1px solid var(--vscode-focusBorder); outline-offset: -1px; }
  .planner tbody tr.sel { background: var(--vscode-list-activeSelectionBackground); color: var(--vscode-list-activeSelectionForeground); }
  .planner .pgrid > * { min-width: 0; }
  .planner .results { overflow-x: auto; }
  .planner table.comm td { white-space: normal; }
  .planner .field { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 150px); align-items: center; gap: 6px; margin: 2px 0; }
  .planner .field vscode-textfield, .planner .field vscode-single-select { width: 100%; min-width: 0; }
  .planner vscode-label { font-weight: normal; padding: 0; }
  .planner .form { max-width: 340px; }
  .planner h4 { margin: 8px 0 4px; font-size: 12px; }
  .planner .psummary { font-weight: 600; }
  .planner .pnote { color: var(--vscode-descriptionForeground); font-style: italic; margin: 2px 0; }
  .planner .problems { color: var(--vscode-errorForeground); margin: 4px 0; padding-left: 18px; }
  .planner .chart { max-width: 100%; height: auto; display: block; }
  .planner .chart text { fill: var(--vscode-foreground); font-size: 10px; }
  .m-weights { fill: var(--vscode-charts-blue, #3794ff); } .m-gradients { fill: var(--vscode-charts-purple, #b180d7); }
  .m-optimizer { fill: var(--vscode-charts-orange, #d18616); } .m-activations { fill: var(--vscode-charts-green, #89d185); }
  .cap { stroke: var(--vscode-foreground); stroke-width: 1.5; } .cap.over { stroke: var(--vscode-errorForeground); stroke-width: 2.5; }
  .gantt .fwd { fill: var(--vscode-charts-blue, #3794ff); } .gantt .bwd { fill: var(--vscode-charts-green, #89d185); }
  .gantt .idle { fill: var(--vscode-editorWidget-background); stroke: var(--vscode-panel-border); stroke-dasharray: 2 2; }
  td.stage { font-weight: 600; }
  .planner .handle { cursor: ns-resize; margin-left: 6px; padding: 0 4px; border: 1px solid var(--vscode-panel-border); border-radius: 3px; touch-action: none; }
  .planner .handle:focus { outline: 1px solid var(--vscode-focusBorder); }
  .planner tr.drop td { border-top: 2px solid var(--vscode-focusBorder); }
  .s0 { color: var(--vscode-charts-blue, #3794ff); } .s1 { color: var(--vscode-charts-orange, #d18616); } .s2 { color: var(--vscode-charts-green, #89d185); } .s3 { color: var(--vscode-charts-purple, #b180d7); }
  .s4 { color: var(--vscode-charts-red, #f14c4c); } .s5 { color: var(--vscode-charts-yellow, #cca700); } .s6, .s7 { color: var(--vscode-descriptionForeground); }
  td.heat-ok { color: var(--vscode-testing-iconPassed, #73c991); } td.heat-warn { color: var(--vscode-editorWarning-foreground); } td.heat-bad { color: var(--vscode-errorForeground); font-weight: 600; }
  .box.heat-ok rect { stroke: var(--vscode-testing-iconPassed, #73c991); stroke-width: 2; }
  .box.heat-warn rect { stroke: var(--vscode-editorWarning-foreground); stroke-width: 2.5; }
  .box.heat-bad rect { stroke: var(--vscode-errorForeground); stroke-width: 3; fill: color-mix(in srgb, var(--vscode-errorForeground) 15%, var(--vscode-editorWidget-background)); }
  header { grid-column: 1 / 3; display: flex; gap: 8px; align-items: center; padding: 6px 10px; border-bottom: 1px solid var(--vscode-panel-border); }
  header .title { font-weight: 600; margin-right: auto; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  #canvas { position: relative; overflow: hidden; cursor: grab; }
  #canvas:active { cursor: grabbing; }
  svg { width: 100%; height: 100%; }
  .box rect { fill: var(--vscode-editorWidget-background); stroke: var(--vscode-editorWidget-border, var(--vscode-panel-border)); rx: 4; }
  .box.layer rect { fill: var(--vscode-sideBar-background, var(--vscode-editorWidget-background)); }
  .box.unknown rect { stroke-dasharray: 4 2; }
  .box:focus rect, .box.selected rect { stroke: var(--vscode-focusBorder); stroke-width: 2; }
  .box.match rect { stroke: var(--vscode-editorWarning-foreground); stroke-width: 2; }
  .box text { fill: var(--vscode-foreground); font-size: 12px; }
  .box text.sub { fill: var(--vscode-descriptionForeground); font-size: 10px; }
  .edge { fill: none; stroke: var(--vscode-editorLineNumber-foreground); stroke-width: 1.2; }
  aside { border-left: 1px solid var(--vscode-panel-border); padding: 8px 10px; overflow: auto; }
  aside h3 { margin: 4px 0 8px; font-size: 13px; }
  aside table { border-collapse: collapse; width: 100%; font-size: 12px; }
  aside td { padding: 2px 4px; vertical-align: top; word-break: break-all; }
  aside td:first-child { color: var(--vscode-descriptionForeground); white-space: nowrap; }
  .error { padding: 16px; color: var(--vscode-errorForeground); }
  .verify { border: 1px solid var(--vscode-panel-border); padding: 4px 8px 8px; margin-bottom: 10px; }
  .verify h3.pass { color: var(--vscode-testing-iconPassed, var(--vscode-foreground)); }
  .verify h3.fail { color: var(--vscode-errorForeground); }
  aside vscode-button { margin-top: 8px; display: block; }
  #overview { position: absolute; right: 8px; bottom: 8px; width: 180px; height: 120px; background: var(--vscode-editorWidget-background); border: 1px solid var(--vscode-panel-border); opacity: 0.92; cursor: pointer; }
  #overview .frame { fill: var(--vscode-focusBorder); fill-opacity: 0.15; stroke: var(--vscode-focusBorder); stroke-width: 1; vector-effect: non-scaling-stroke; }
`;
document.head.appendChild(style);

const app = document.getElementById('app')!;
const header = document.createElement('header');
const title = document.createElement('span');
title.className = 'title';
const search = document.createElement('vscode-textfield') as HTMLElement & { value: string; placeholder: string };
search.setAttribute('placeholder', 'Search nodes and layers');
search.setAttribute('aria-label', 'Search nodes and layers');
const fitButton = document.createElement('vscode-button');
fitButton.textContent = 'Fit';
const collapseButton = document.createElement('vscode-button');
collapseButton.textContent = 'Collapse all';
collapseButton.setAttribute('secondary', '');
const plannerButton = document.createElement('vscode-button');
plannerButton.textContent = 'Planner';
plannerButton.id = 'toggle-planner';
plannerButton.setAttribute('title', 'Assign layers to stages and precisions, and see the costs (P)');
header.append(title, search, fitButton, collapseButton, plannerButton);
const canvas = document.createElement('div');
canvas.id = 'canvas';
canvas.tabIndex = -1;
const svg = document.createElementNS(SVG, 'svg');
const transformGroup = document.createElementNS(SVG, 'g');
const viewport = document.createElementNS(SVG, 'g');
viewport.setAttribute('id', 'graph-content');
transformGroup.appendChild(viewport);
svg.appendChild(transformGroup);
canvas.appendChild(svg);
// The overview: the whole graph drawn small (a <use> of the main drawing), with the visible area as a frame; click to go there.
const overview = document.createElementNS(SVG, 'svg');
overview.id = 'overview';
overview.setAttribute('aria-label', 'Overview: click to move the view');
const overviewUse = document.createElementNS(SVG, 'use');
overviewUse.setAttribute('href', '#graph-content');
const overviewFrame = document.createElementNS(SVG, 'rect');
overviewFrame.setAttribute('class', 'frame');
overview.append(overviewUse, overviewFrame);
canvas.appendChild(overview);
const aside = document.createElement('aside');
aside.setAttribute('aria-label', 'Details');
const planner = new Planner({ post, workerUrl: document.body.dataset.estimateWorker!, onErrors: () => void render() });
app.append(header, canvas, aside, planner.root);
const togglePlanner = (show?: boolean) => {
  planner.toggle(show);
  state.planner = planner.visible;
  save();
};
plannerButton.addEventListener('click', () => togglePlanner());

/** A two-column table of label / value rows, as text. */
function keyValueTable(rows: [string, string][]): HTMLTableElement {
  const table = document.createElement('table');
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  return table;
}

function showDetails(rows: [string, string][], heading: string): void {
  aside.replaceChildren();
  const h = document.createElement('h3');
  h.textContent = heading;
  aside.append(h, keyValueTable(rows));
}

function showSummary(): void {
  if (!summary) return;
  showDetails(
    [
      ['format', summary.format],
      ['producer', summary.producer || '—'],
      ['nodes', String(summary.nodes)],
      ['parameters', formatCount(summary.parameters)],
      ['weights', formatBytes(summary.bytes)],
      ['layers', String(summary.layers.length)],
    ],
    summary.file,
  );
}

function showNode(d: NodeDetails): void {
  const rows: [string, string][] = [
    ['op', d.domain ? `${d.domain}.${d.opType}` : d.opType],
    ['layer', d.layer],
    ['FLOPs', formatCount(d.flops)],
    ['parameters', formatCount(d.parameters)],
  ];
  for (const i of d.inputs) rows.push([i.weight ? 'weight' : 'input', `${i.name}: ${i.dtype}${i.shape}`]);
  for (const o of d.outputs) rows.push(['output', `${o.name}: ${o.dtype}${o.shape}`]);
  for (const [k, v] of d.attributes) rows.push([`@${k}`, v]);
  showDetails(rows, d.name || d.opType);
  // A weight matrix can be run quantized on WebGPU: one button per weight.
  for (const i of d.inputs.filter((x) => x.weight && x.shape.includes(','))) {
    const b = document.createElement('vscode-button');
    b.textContent = `Verify ${i.name} quantized…`;
    b.setAttribute('title', 'Run this weight through the quantized WebGPU kernel and compare with the error estimate');
    b.addEventListener('click', () => post({ type: 'verifyRequest', tensor: i.name }));
    aside.append(b);
  }
}

// Verification: the kernel runs here, on navigator.gpu; the host packs the weight and judges the result.
let gpuDevice: Promise<{ device: GPUDevice; name: string } | { reason: string }> | undefined;
function webgpu(): Promise<{ device: GPUDevice; name: string } | { reason: string }> {
  gpuDevice ??= (async () => {
    const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
    if (!gpu) return { reason: 'navigator.gpu is not available in this webview (WebGPU disabled or unsupported)' };
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { reason: 'navigator.gpu found no adapter' };
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
      },
    });
    device.lost.then(() => (gpuDevice = undefined));
    return { device, name: `${adapterName(adapter.info)} (webview)` };
  })().catch((e: Error) => ({ reason: `WebGPU failed: ${e.message}` }));
  return gpuDevice;
}

async function runKernel(m: Extract<HostToWebview, { type: 'verifyRun' }>): Promise<void> {
  const g = await webgpu();
  if (!('device' in g)) return post({ type: 'verifyResult', id: m.id, fallback: g.reason });
  try {
    const r = await runPackedKernel(g.device, m.packed, m.x, m.batch, m.repeats);
    post({ type: 'verifyResult', id: m.id, y: r.y, device: g.name, seconds: r.seconds });
  } catch (e) {
    post({ type: 'verifyResult', id: m.id, error: (e as Error).message });
  }
}

const db = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} dB` : 'lossless');
function showVerify(m: Extract<HostToWebview, { type: 'verifyReport' }>): void {
  let box = aside.querySelector('.verify') as HTMLElement | null;
  if (!box) {
    box = document.createElement('section');
    box.className = 'verify';
    box.setAttribute('role', 'status');
    box.setAttribute('aria-live', 'polite');
    aside.prepend(box);
  }
  box.replaceChildren();
  const h = document.createElement('h3');
  if (m.progress || m.error || !m.report) {
    h.textContent = m.error ? 'Verification failed' : 'Verifying…';
    const p = document.createElement('p');
    p.textContent = m.error ?? m.progress ?? '';
    box.append(h, p);
    return;
  }
  const r: VerifyReport = m.report;
  h.textContent = `${r.outcome === 'fallback' ? '⚠ FALLBACK (CPU reference only)' : r.pass ? '✓ PASS' : '✗ FAIL'} — ${r.tensor} in ${r.format}`;
  h.className = r.pass ? 'pass' : 'fail';
  const k = r.kernelVsReference;
  const rows: [string, string][] = [
    ['device', r.device],
    ...(r.fallback ? ([['FALLBACK', `no kernel ran: ${r.fallback}`]] as [string, string][]) : []),
    ['shape', `${r.shape.join(' × ')}, batch ${r.batch}`],
    ['bits/weight', r.bitsPerWeight.toFixed(3)],
    [
      'kernel vs CPU',
      k.ran
        ? `max |Δ| ${k.maxAbsError.toExponential(2)} (${k.maxRelativeToBound.toFixed(3)} of the rounding bound) ${k.pass ? 'agrees' : 'DISAGREES'}`
        : 'not run',
    ],
    ['output SQNR', db(r.outputError.sqnrDb)],
    [
      'predicted',
      `${db(r.predicted.sqnrDb)} (Δ ${r.differenceDb.toFixed(2)} dB, tolerance ±${r.toleranceDb.toFixed(2)})`,
    ],
    ...(r.gbPerSecond !== undefined
      ? ([['kernel', `${(r.kernelSeconds! * 1e3).toFixed(2)} ms, ${r.gbPerSecond.toPrecision(3)} GB/s`]] as [
          string,
          string,
        ][])
      : []),
  ];
  box.append(h, keyValueTable(rows));
  post({ type: 'verifyShown', text: box.innerText || box.textContent || '' });
}

// Layout in a worker, built from the bundled worker script (CSP: worker-src blob:).
let worker: Worker | undefined;
let nextId = 0;
const pending = new Map<number, (r: LayoutResult) => void>();
interface LayoutResult {
  positions: { id: string; x: number; y: number }[];
  paths: { from: string; to: string; points: { x: number; y: number }[] }[];
  width: number;
  height: number;
}
async function layoutWorker(): Promise<Worker> {
  if (worker) return worker;
  const src = await (await fetch(document.body.dataset.worker!)).text();
  worker = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
  worker.onmessage = (e) => {
    pending.get(e.data.id)?.(e.data);
    pending.delete(e.data.id);
  };
  return worker;
}
async function layout(
  boxes: { id: string; width: number; height: number }[],
  edges: { from: string; to: string }[],
): Promise<LayoutResult> {
  const w = await layoutWorker();
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    w.postMessage({ id, boxes, edges });
  });
}

interface Drawn {
  id: string;
  kind: 'layer' | 'node';
  label: string;
  sub: string;
  index: number;
  unknown?: boolean;
}

let renderSeq = 0;
async function render(): Promise<void> {
  if (!summary) return;
  const seq = ++renderSeq;
  const boxes: Drawn[] = [];
  const edges: { from: string; to: string }[] = [];
  const entry = new Map<number, string>();
  const exit = new Map<number, string>();
  for (const l of summary.layers) {
    const expanded = state.expanded.includes(l.index) && layerNodes.has(l.index);
    if (!expanded) {
      const id = `L${l.index}`;
      boxes.push({
        id,
        kind: 'layer',
        label: l.name,
        sub: `${l.nodes} nodes · ${formatCount(l.parameters)} params · ${l.ops}`,
        index: l.index,
      });
      entry.set(l.index, id);
      exit.set(l.index, id);
      continue;
    }
    const { nodes, edges: inner } = layerNodes.get(l.index)!;
    for (const n of nodes) {
      boxes.push({
        id: `N${n.index}`,
        kind: 'node',
        label: n.opType,
        sub: `${n.name} ${n.shape}`,
        index: n.index,
        unknown: !n.known,
      });
    }
    for (const e of inner) edges.push({ from: `N${e.from}`, to: `N${e.to}` });
    if (nodes.length) {
      entry.set(l.index, `N${nodes[0].index}`);
      exit.set(l.index, `N${nodes[nodes.length - 1].index}`);
    }
  }
  for (const e of summary.edges) {
    const from = exit.get(e.from);
    const to = entry.get(e.to);
    if (from && to) edges.push({ from, to });
  }
  const sized = boxes.map((b) => ({
    id: b.id,
    width: Math.min(360, 24 + Math.max(b.label.length * 7.4, Math.min(b.sub.length, 60) * 6.1)),
    height: 40,
  }));
  const result = await layout(sized, edges);
  if (seq !== renderSeq) return;
  const pos = new Map(result.positions.map((p) => [p.id, p]));
  viewport.replaceChildren();
  for (const p of result.paths) {
    const path = document.createElementNS(SVG, 'polyline');
    path.setAttribute('class', 'edge');
    path.setAttribute('points', p.points.map((q) => `${q.x},${q.y}`).join(' '));
    viewport.appendChild(path);
  }
  const term = (state.search ?? '').toLowerCase();
  const names: string[] = [];
  boxes.forEach((b, i) => {
    const p = pos.get(b.id)!;
    const { width, height } = sized[i];
    const g = document.createElementNS(SVG, 'g');
    const hit =
      term &&
      ((b.kind === 'layer' ? matches.layers : matches.nodes).has(b.index) ||
        (b.label + ' ' + b.sub).toLowerCase().includes(term));
    const heat = b.kind === 'layer' ? planner.heat(b.label) : undefined;
    g.setAttribute(
      'class',
      `box ${b.kind}${b.unknown ? ' unknown' : ''}${hit ? ' match' : ''}${heat ? ` ${heat}` : ''}`,
    );
    g.setAttribute('transform', `translate(${p.x - width / 2},${p.y - height / 2})`);
    g.setAttribute('tabindex', '0');
    g.setAttribute('role', 'button');
    g.setAttribute('aria-label', `${b.kind === 'layer' ? 'Layer' : 'Node'} ${b.label}`);
    g.dataset.kind = b.kind;
    g.dataset.index = String(b.index);
    const rect = document.createElementNS(SVG, 'rect');
    rect.setAttribute('width', String(width));
    rect.setAttribute('height', String(height));
    const t1 = document.createElementNS(SVG, 'text');
    t1.setAttribute('x', '8');
    t1.setAttribute('y', '16');
    t1.textContent = b.label;
    const t2 = document.createElementNS(SVG, 'text');
    t2.setAttribute('class', 'sub');
    t2.setAttribute('x', '8');
    t2.setAttribute('y', '31');
    t2.textContent = b.sub.length > 60 ? b.sub.slice(0, 59) + '…' : b.sub;
    const tip = document.createElementNS(SVG, 'title');
    tip.textContent = `${b.label}\n${b.sub}`;
    g.append(rect, t1, t2, tip);
    viewport.appendChild(g);
    if (names.length < 200) names.push(t1.textContent ?? '');
  });
  bounds = { width: result.width, height: result.height };
  if (!state.view) fit();
  else applyView();
  post({
    type: 'rendered',
    boxes: boxes.length,
    layers: boxes.filter((b) => b.kind === 'layer').length,
    nodes: boxes.filter((b) => b.kind === 'node').length,
    textNames: names,
  });
}

// Pan and zoom.
let bounds = { width: 1, height: 1 };
function applyView(): void {
  const v = state.view!;
  transformGroup.setAttribute('transform', `translate(${v.x},${v.y}) scale(${v.scale})`);
  // Overview: the whole drawing scaled into the corner box, the frame shows what the canvas shows.
  overview.setAttribute('viewBox', `0 0 ${Math.max(1, bounds.width)} ${Math.max(1, bounds.height)}`);
  const r = canvas.getBoundingClientRect();
  overviewFrame.setAttribute('x', String(-v.x / v.scale));
  overviewFrame.setAttribute('y', String(-v.y / v.scale));
  overviewFrame.setAttribute('width', String(r.width / v.scale));
  overviewFrame.setAttribute('height', String(r.height / v.scale));
  save();
}
function fit(): void {
  const r = canvas.getBoundingClientRect();
  const scale = Math.min(2, Math.max(0.02, Math.min(r.width / (bounds.width + 20), r.height / (bounds.height + 20))));
  state.view = { x: (r.width - bounds.width * scale) / 2, y: 10, scale };
  applyView();
}
function zoom(factor: number, cx: number, cy: number): void {
  const v = state.view ?? { x: 0, y: 0, scale: 1 };
  const scale = Math.min(4, Math.max(0.02, v.scale * factor));
  state.view = { x: cx - ((cx - v.x) * scale) / v.scale, y: cy - ((cy - v.y) * scale) / v.scale, scale };
  applyView();
}
canvas.addEventListener(
  'wheel',
  (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
  },
  { passive: false },
);
let drag: { x: number; y: number; vx: number; vy: number } | undefined;
canvas.addEventListener('pointerdown', (e) => {
  if ((e.target as Element).closest('.box')) return;
  const v = state.view ?? { x: 0, y: 0, scale: 1 };
  drag = { x: e.clientX, y: e.clientY, vx: v.x, vy: v.y };
  canvas.setPointerCapture(e.pointerId);
});
canvas.addEventListener('pointermove', (e) => {
  if (!drag || !state.view) return;
  state.view = { ...state.view, x: drag.vx + e.clientX - drag.x, y: drag.vy + e.clientY - drag.y };
  applyView();
});
canvas.addEventListener('pointerup', () => (drag = undefined));

function activate(box: SVGGElement): void {
  const index = Number(box.dataset.index);
  viewport.querySelectorAll('.selected').forEach((x) => x.classList.remove('selected'));
  box.classList.add('selected');
  if (box.dataset.kind === 'layer') {
    if (!state.expanded.includes(index)) state.expanded.push(index);
    save();
    if (layerNodes.has(index)) void render();
    else post({ type: 'expandLayer', layer: index });
    const l = summary?.layers[index];
    if (l) {
      showDetails(
        [
          ['nodes', String(l.nodes)],
          ['parameters', formatCount(l.parameters)],
          ['FLOPs', formatCount(l.flops)],
          ['ops', l.ops],
        ],
        l.name,
      );
      if (l.parameters > 0) {
        const b = document.createElement('vscode-button');
        b.textContent = 'Verify a weight quantized…';
        b.id = 'verify-layer';
        b.setAttribute('title', "Run one of this layer's weights through the quantized WebGPU kernel");
        b.addEventListener('click', () => post({ type: 'verifyRequest', layer: index }));
        aside.append(b);
      }
    }
  } else post({ type: 'select', node: index });
}
viewport.addEventListener('click', (e) => {
  const box = (e.target as Element).closest('.box') as SVGGElement | null;
  if (box) activate(box);
});
viewport.addEventListener('keydown', (e) => {
  const box = (e.target as Element).closest('.box') as SVGGElement | null;
  if (box && (e.key === 'Enter' || e.key === ' ')) {
    e.preventDefault();
    activate(box);
  }
});
document.addEventListener('keydown', (e) => {
  if ((e.target as HTMLElement).tagName === 'VSCODE-TEXTFIELD') return;
  if ((e.target as HTMLElement).closest?.('.planner') && e.key !== 'Escape') return;
  if (e.key === 'f' || e.key === 'F') fit();
  else if (e.key === 'p' || e.key === 'P') togglePlanner();
  else if (e.key === '+' || e.key === '=') zoom(1.2, canvas.clientWidth / 2, canvas.clientHeight / 2);
  else if (e.key === '-') zoom(1 / 1.2, canvas.clientWidth / 2, canvas.clientHeight / 2);
});
fitButton.addEventListener('click', fit);
overview.addEventListener('pointerdown', (e) => {
  e.stopPropagation();
  const o = overview.getBoundingClientRect();
  const s = Math.min(o.width / Math.max(1, bounds.width), o.height / Math.max(1, bounds.height));
  const gx = (e.clientX - o.left - (o.width - bounds.width * s) / 2) / s;
  const gy = (e.clientY - o.top - (o.height - bounds.height * s) / 2) / s;
  const v = state.view ?? { x: 0, y: 0, scale: 1 };
  const r = canvas.getBoundingClientRect();
  state.view = { ...v, x: r.width / 2 - gx * v.scale, y: r.height / 2 - gy * v.scale };
  applyView();
});
collapseButton.addEventListener('click', () => {
  state.expanded = [];
  save();
  void render();
});
search.addEventListener('input', () => {
  state.search = search.value;
  save();
  // Tensor and node names inside collapsed layers are known to the host: ask it.
  post({ type: 'search', query: search.value });
  void render();
});

window.addEventListener('message', (e: MessageEvent<HostToWebview>) => {
  const m = e.data;
  switch (m.type) {
    case 'summary':
      // A new summary (first load, or the file changed on disk): forget the layers fetched so far.
      layerNodes.clear();
      summary = m.summary;
      title.textContent = `${m.summary.file} — ${m.summary.format}, ${m.summary.nodes} nodes, ${formatCount(m.summary.parameters)} parameters`;
      showSummary();
      // Layers the user had open before the view was hidden: ask for them again.
      for (const l of state.expanded) post({ type: 'expandLayer', layer: l });
      void render();
      break;
    case 'layer':
      layerNodes.set(m.layer, { nodes: m.nodes, edges: m.edges });
      void render();
      break;
    case 'details':
      showNode(m.details);
      break;
    case 'searchResult':
      if (m.query !== (state.search ?? '')) break;
      matches = { layers: new Set(m.layers), nodes: new Set(m.nodes) };
      void render();
      break;
    case 'plan':
      planner.setState(m.state);
      break;
    case 'layerErrors':
      planner.setErrors(m.errors);
      break;
    case 'showPlanner':
      togglePlanner(true);
      break;
    case 'verifyRun':
      void runKernel(m);
      break;
    case 'verifyReport':
      showVerify(m);
      break;
    case 'error': {
      const div = document.createElement('div');
      div.className = 'error';
      div.textContent = m.message;
      app.replaceChildren(div);
      break;
    }
  }
});

if (state.search) {
  search.value = state.search;
  post({ type: 'search', query: state.search });
}
post({ type: 'ready' });
// The planner was open when the view was last hidden: open it again.
if (state.planner) planner.toggle(true);

export type { LayerBox };
