import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import { formatCount } from '../src/engine/units';
import { unhandled, type HostToWebview, type LayerBox, type NodeRef, type GraphSearchResult } from '../src/protocol';
import { Details } from './details';
import { GraphCanvas } from './graph-view';
import { runKernel } from './kernel';
import { Planner } from './planner';
import { post, save, state } from './vscode-api';

/**
 * The model-graph webview, put together: a header (title, breadcrumbs, search with its count and
 * next / previous, Fit, Collapse all, Constants, Export, Planner), the graph canvas
 * (graph-view.ts), the details pane (details.ts), the planner (planner.ts), and the router of the
 * host's messages. Styles are in media/graph.css; every message is typed in src/protocol.ts.
 * Keys: F fit, P planner, + / − zoom, Backspace up one level, Enter / Shift+Enter in the search box
 * next / previous match.
 */
const app = document.getElementById('app')!;
const header = document.createElement('header');
const title = document.createElement('span');
title.className = 'title';
const crumbs = document.createElement('nav');
crumbs.className = 'crumbs';
crumbs.setAttribute('aria-label', 'Graph level');
const search = document.createElement('vscode-textfield') as HTMLElement & { value: string; placeholder: string };
search.id = 'search';
search.setAttribute('placeholder', 'Search nodes and layers');
search.setAttribute('aria-label', 'Search nodes and layers');
const counter = document.createElement('span');
counter.className = 'counter';
counter.id = 'search-count';
counter.setAttribute('role', 'status');
counter.setAttribute('aria-live', 'polite');
const button = (text: string, id: string, tip: string, secondary = true) => {
  const b = document.createElement('vscode-button');
  b.textContent = text;
  b.id = id;
  b.setAttribute('title', tip);
  if (secondary) b.setAttribute('secondary', '');
  return b;
};
const prevButton = button('↑', 'search-prev', 'Previous match (Shift+Enter)');
const nextButton = button('↓', 'search-next', 'Next match (Enter)');
const fitButton = button('Fit', 'fit', 'Show the whole graph (F)', false);
const collapseButton = button('Collapse all', 'collapse-all', 'Collapse every layer of this level');
const constantsButton = button(
  'Constants',
  'toggle-constants',
  'Show or hide constant nodes (Constant, Identity / Transpose / Cast of weights)',
);
const exportButton = button('Export…', 'export-image', 'Save the view as an SVG or PNG image');
const plannerButton = button(
  'Planner',
  'toggle-planner',
  'Assign layers to stages and precisions, and see the costs (P)',
  false,
);
header.append(
  title,
  crumbs,
  search,
  counter,
  prevButton,
  nextButton,
  fitButton,
  collapseButton,
  constantsButton,
  exportButton,
  plannerButton,
);

const aside = document.createElement('aside');
aside.setAttribute('aria-label', 'Details');
const details = new Details(aside);
const planner = new Planner({
  post,
  workerUrl: document.body.dataset.estimateWorker!,
  searchWorkerUrl: document.body.dataset.searchWorker!,
  onErrors: () => void graph.render(),
});
const graph = new GraphCanvas(details, (layer) => planner.heat(layer));
app.append(header, graph.canvas, aside, planner.root);

let result: GraphSearchResult | undefined;
/** The match shown last (its index in result.hits), -1 before the first. */
let current = -1;

/** What the view shows, for the host (tests, screen readers). */
function report(): void {
  post({
    type: 'rendered',
    boxes: graph.drawn.boxes,
    layers: graph.drawn.layers,
    nodes: graph.drawn.nodes,
    textNames: graph.drawn.names,
    level: state.level,
    crumbs: graph.summary?.level.crumbs.map((c) => c.label) ?? [],
    clusters: graph.drawn.clusters,
    details: details.heading,
    search: counter.textContent ?? '',
    constants: state.constants,
    expanded: (graph.summary?.layers ?? []).filter((l) => graph.isExpanded(l.index)).map((l) => l.name),
  });
}
graph.onChange = report;
const enter = (level: string) => post({ type: 'enterLevel', level });
graph.onEnter = enter;
details.onGo = (ref) => graph.reveal(ref);
details.onEnter = enter;

const showConstants = () => {
  constantsButton.toggleAttribute('secondary', !state.constants);
  constantsButton.setAttribute('aria-pressed', String(state.constants));
};
showConstants();

function showCrumbs(): void {
  crumbs.replaceChildren();
  const list = graph.summary?.level.crumbs ?? [];
  if (list.length < 2) return;
  list.forEach((c, i) => {
    if (i) crumbs.append(' › ');
    if (i === list.length - 1) {
      const here = document.createElement('span');
      here.textContent = c.label;
      here.setAttribute('aria-current', 'location');
      crumbs.append(here);
    } else {
      const a = document.createElement('a');
      a.href = '#';
      a.textContent = c.label;
      a.dataset.level = c.id;
      a.addEventListener('click', (e) => {
        e.preventDefault();
        enter(c.id);
      });
      crumbs.append(a);
    }
  });
}

function showCount(): void {
  if (!(state.search ?? '').trim() || !result) counter.textContent = '';
  else if (!result.total) counter.textContent = 'no matches';
  else {
    const where = current >= 0 ? `${current + 1} of ` : '';
    counter.textContent = `${where}${result.total} match${result.total === 1 ? '' : 'es'}`;
  }
  prevButton.toggleAttribute('disabled', !result?.hits.length);
  nextButton.toggleAttribute('disabled', !result?.hits.length);
  report();
}

/** Go to the next (or previous) match: its level, its layer opened, the node centered and selected. */
function step(by: number): void {
  if (!result?.hits.length) return;
  current = (current + by + result.hits.length) % result.hits.length;
  showCount();
  graph.reveal(result.hits[current]);
}

function askSearch(): void {
  post({ type: 'search', query: state.search ?? '', level: state.level });
}

const togglePlanner = (show?: boolean) => {
  planner.toggle(show);
  state.planner = planner.visible;
  save();
};
plannerButton.addEventListener('click', () => togglePlanner());
fitButton.addEventListener('click', () => graph.fit());
collapseButton.addEventListener('click', () => graph.collapseAll());
constantsButton.addEventListener('click', () => {
  graph.setConstants(!state.constants);
  showConstants();
});
prevButton.addEventListener('click', () => step(-1));
nextButton.addEventListener('click', () => step(1));
// The host asks SVG or PNG and where, then asks the view for the image (requestImage).
exportButton.addEventListener('click', () => post({ type: 'exportImageRequest' }));
search.addEventListener('input', () => {
  state.search = search.value;
  save();
  current = -1;
  // Tensor and node names inside collapsed layers and subgraphs are known to the host: ask it.
  askSearch();
});
search.addEventListener('keydown', (e) => {
  if (e.key === 'Enter') {
    e.preventDefault();
    step(e.shiftKey ? -1 : 1);
  }
});
document.addEventListener('keydown', (e) => {
  if ((e.target as HTMLElement).tagName === 'VSCODE-TEXTFIELD') return;
  if ((e.target as HTMLElement).closest?.('.planner') && e.key !== 'Escape') return;
  const { clientWidth, clientHeight } = graph.canvas;
  if (e.key === 'f' || e.key === 'F') graph.fit();
  else if (e.key === 'p' || e.key === 'P') togglePlanner();
  else if (e.key === '+' || e.key === '=') graph.zoom(1.2, clientWidth / 2, clientHeight / 2);
  else if (e.key === '-') graph.zoom(1 / 1.2, clientWidth / 2, clientHeight / 2);
  else if (e.key === 'Backspace') {
    const list = graph.summary?.level.crumbs ?? [];
    if (list.length > 1) enter(list[list.length - 2].id);
  }
});

window.addEventListener('message', (e: MessageEvent<HostToWebview>) => {
  const m = e.data;
  switch (m.type) {
    case 'summary':
      // A level shown (first load, a subgraph entered or left, or the file changed on disk).
      graph.setSummary(m.summary);
      title.textContent = `${m.summary.file} — ${m.summary.format}, ${m.summary.nodes} nodes, ${formatCount(m.summary.parameters)} parameters`;
      details.showSummary(m.summary);
      showCrumbs();
      if ((state.search ?? '').trim()) askSearch();
      void graph.render();
      break;
    case 'layer':
      if (m.level !== state.level) break;
      graph.layerNodes.set(m.layer, { nodes: m.nodes, edges: m.edges, hidden: m.hidden });
      void graph.render();
      break;
    case 'details':
      details.showNode(m.details);
      report();
      break;
    case 'searchResult': {
      if (m.result.query !== (state.search ?? '') || m.result.level !== state.level) break;
      const keep = result && current >= 0 ? result.hits[current]?.node : undefined;
      result = m.result;
      current = keep !== undefined ? result.hits.findIndex((h: NodeRef) => h.node === keep) : -1;
      graph.matches = { layers: new Set(m.result.layers), nodes: new Set(m.result.nodes) };
      showCount();
      void graph.render();
      break;
    }
    case 'plan':
      planner.setState(m.state);
      break;
    case 'layerErrors':
      planner.setErrors(m.errors);
      break;
    case 'searchInputs':
      planner.search.inputs(m.layerSqnr, m.notes);
      break;
    case 'quantExport':
      planner.setQuantExport(m);
      break;
    case 'showPlanner':
      togglePlanner(true);
      break;
    case 'exportResult':
      planner.setExport(m.shown);
      break;
    case 'verifyRun':
      void runKernel(m);
      break;
    case 'verifyReport':
      details.showVerify(m);
      break;
    case 'requestImage':
      void (async () => {
        try {
          post({
            type: 'exportImage',
            id: m.id,
            format: m.format,
            data: m.format === 'svg' ? graph.toSvg() : await graph.toPng(),
          });
        } catch (err) {
          post({ type: 'exportImage', id: m.id, format: m.format, data: '', error: (err as Error).message });
        }
      })();
      break;
    case 'error': {
      const div = document.createElement('div');
      div.className = 'error';
      div.textContent = m.message;
      app.replaceChildren(div);
      break;
    }
    default:
      unhandled(m);
  }
});

if (state.search) search.value = state.search;
post({ type: 'ready' });
// The level the view showed when it was last hidden: ask for it again (the host sent the top level on ready).
if (state.level) enter(state.level);
// The planner was open when the view was last hidden: open it again.
if (state.planner) planner.toggle(true);

export type { LayerBox };
