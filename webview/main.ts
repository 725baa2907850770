import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import { formatCount } from '../src/engine/units';
import { unhandled, type HostToWebview, type LayerBox } from '../src/protocol';
import { Details } from './details';
import { GraphCanvas } from './graph-view';
import { runKernel } from './kernel';
import { Planner } from './planner';
import { post, save, state } from './vscode-api';

/**
 * The model-graph webview, put together: a header (title, search, Fit, Collapse all, Planner), the
 * graph canvas (graph-view.ts), the details pane (details.ts), the planner (planner.ts), and the
 * router of the host's messages. Styles are in media/graph.css; every message is typed in
 * src/protocol.ts. Keys: F fit, P planner, + / − zoom.
 */
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

const togglePlanner = (show?: boolean) => {
  planner.toggle(show);
  state.planner = planner.visible;
  save();
};
plannerButton.addEventListener('click', () => togglePlanner());
fitButton.addEventListener('click', () => graph.fit());
collapseButton.addEventListener('click', () => {
  state.expanded = [];
  save();
  void graph.render();
});
search.addEventListener('input', () => {
  state.search = search.value;
  save();
  // Tensor and node names inside collapsed layers are known to the host: ask it.
  post({ type: 'search', query: search.value });
  void graph.render();
});
document.addEventListener('keydown', (e) => {
  if ((e.target as HTMLElement).tagName === 'VSCODE-TEXTFIELD') return;
  if ((e.target as HTMLElement).closest?.('.planner') && e.key !== 'Escape') return;
  const { clientWidth, clientHeight } = graph.canvas;
  if (e.key === 'f' || e.key === 'F') graph.fit();
  else if (e.key === 'p' || e.key === 'P') togglePlanner();
  else if (e.key === '+' || e.key === '=') graph.zoom(1.2, clientWidth / 2, clientHeight / 2);
  else if (e.key === '-') graph.zoom(1 / 1.2, clientWidth / 2, clientHeight / 2);
});

window.addEventListener('message', (e: MessageEvent<HostToWebview>) => {
  const m = e.data;
  switch (m.type) {
    case 'summary':
      // A new summary (first load, or the file changed on disk): forget the layers fetched so far.
      graph.layerNodes.clear();
      graph.summary = m.summary;
      title.textContent = `${m.summary.file} — ${m.summary.format}, ${m.summary.nodes} nodes, ${formatCount(m.summary.parameters)} parameters`;
      details.showSummary(m.summary);
      // Layers the user had open before the view was hidden: ask for them again.
      for (const l of state.expanded) post({ type: 'expandLayer', layer: l });
      void graph.render();
      break;
    case 'layer':
      graph.layerNodes.set(m.layer, { nodes: m.nodes, edges: m.edges });
      void graph.render();
      break;
    case 'details':
      details.showNode(m.details);
      break;
    case 'searchResult':
      if (m.query !== (state.search ?? '')) break;
      graph.matches = { layers: new Set(m.layers), nodes: new Set(m.nodes) };
      void graph.render();
      break;
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
      planner.setExport(m);
      break;
    case 'showPlanner':
      togglePlanner(true);
      break;
    case 'verifyRun':
      void runKernel(m);
      break;
    case 'verifyReport':
      details.showVerify(m);
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

if (state.search) {
  search.value = state.search;
  post({ type: 'search', query: state.search });
}
post({ type: 'ready' });
// The planner was open when the view was last hidden: open it again.
if (state.planner) planner.toggle(true);

export type { LayerBox };
