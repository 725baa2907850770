import { type Edge, type LayoutAnswer, type LayoutRequest, type ModelSummary, type NodeBox } from '../src/protocol';
import { formatCount } from '../src/engine/units';
import type { Details } from './details';
import { post, save, state } from './vscode-api';
import { WorkerClient } from './worker-client';

const SVG = 'http://www.w3.org/2000/svg';

/**
 * The graph itself: layers as boxes that expand into their nodes (the host sends a layer's nodes when
 * asked), laid out by dagre in a web worker, drawn as SVG that pans (drag), zooms (wheel, +/−), fits
 * (F), with an overview in the corner and search matches highlighted.
 */
export class GraphCanvas {
  readonly canvas = document.createElement('div');
  summary: ModelSummary | undefined;
  /** The host's answer to the current search: layers and nodes holding a matching node or tensor name. */
  matches: { layers: Set<number>; nodes: Set<number> } = { layers: new Set(), nodes: new Set() };
  readonly layerNodes = new Map<number, { nodes: NodeBox[]; edges: Edge[] }>();
  private readonly svg = document.createElementNS(SVG, 'svg');
  private readonly transformGroup = document.createElementNS(SVG, 'g');
  private readonly viewport = document.createElementNS(SVG, 'g');
  // The overview: the whole graph drawn small (a <use> of the main drawing), with the visible area as a frame; click to go there.
  private readonly overview = document.createElementNS(SVG, 'svg');
  private readonly overviewFrame = document.createElementNS(SVG, 'rect');
  /** A line over the canvas that says what went wrong (a failed layout), until the next good render. */
  private readonly banner = document.createElement('div');
  private renderSeq = 0;
  private bounds = { width: 1, height: 1 };
  private drag: { x: number; y: number; vx: number; vy: number } | undefined;
  // Layout in a worker (src/protocol.ts LayoutRequest / LayoutAnswer); a failed layout is said, not waited on.
  private readonly layoutWorker: WorkerClient<LayoutRequest, LayoutAnswer>;

  constructor(
    private readonly details: Details,
    /** The heat-map class of a layer (the planner's per-layer error against the budget). */
    private readonly heat: (layerName: string) => string | undefined,
  ) {
    this.layoutWorker = new WorkerClient<LayoutRequest, LayoutAnswer>(
      document.body.dataset.worker!,
      'the layout worker',
      (message) => post({ type: 'viewError', message }),
    );
    const { canvas, svg, transformGroup, viewport, overview, overviewFrame, banner } = this;
    canvas.id = 'canvas';
    canvas.tabIndex = -1;
    viewport.setAttribute('id', 'graph-content');
    transformGroup.appendChild(viewport);
    svg.appendChild(transformGroup);
    canvas.appendChild(svg);
    overview.id = 'overview';
    overview.setAttribute('aria-label', 'Overview: click to move the view');
    const overviewUse = document.createElementNS(SVG, 'use');
    overviewUse.setAttribute('href', '#graph-content');
    overviewFrame.setAttribute('class', 'frame');
    overview.append(overviewUse, overviewFrame);
    canvas.appendChild(overview);
    banner.className = 'banner';
    banner.setAttribute('role', 'alert');
    banner.hidden = true;
    canvas.appendChild(banner);
    this.listen();
  }

  private showBanner(text: string | undefined): void {
    this.banner.hidden = !text;
    this.banner.textContent = text ?? '';
  }

  private layout(boxes: LayoutRequest['boxes'], edges: LayoutRequest['edges']): Promise<LayoutAnswer> {
    return this.layoutWorker.request({ boxes, edges });
  }

  async render(): Promise<void> {
    if (!this.summary) return;
    const seq = ++this.renderSeq;
    const boxes: Drawn[] = [];
    const edges: { from: string; to: string }[] = [];
    const entry = new Map<number, string>();
    const exit = new Map<number, string>();
    for (const l of this.summary.layers) {
      const expanded = state.expanded.includes(l.index) && this.layerNodes.has(l.index);
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
      const { nodes, edges: inner } = this.layerNodes.get(l.index)!;
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
    for (const e of this.summary.edges) {
      const from = exit.get(e.from);
      const to = entry.get(e.to);
      if (from && to) edges.push({ from, to });
    }
    const sized = boxes.map((b) => ({
      id: b.id,
      width: Math.min(360, 24 + Math.max(b.label.length * 7.4, Math.min(b.sub.length, 60) * 6.1)),
      height: 40,
    }));
    let result: LayoutAnswer;
    try {
      result = await this.layout(sized, edges);
    } catch (e) {
      if (seq !== this.renderSeq) return;
      // The drawing stays as it was; the message says why it did not change (the host shows it too).
      this.showBanner(`The graph could not be laid out: ${(e as Error).message}`);
      post({ type: 'viewError', message: `layout: ${(e as Error).message}` });
      return;
    }
    if (seq !== this.renderSeq) return;
    this.showBanner(undefined);
    const pos = new Map(result.positions.map((p) => [p.id, p]));
    this.viewport.replaceChildren();
    for (const p of result.paths) {
      const path = document.createElementNS(SVG, 'polyline');
      path.setAttribute('class', 'edge');
      path.setAttribute('points', p.points.map((q) => `${q.x},${q.y}`).join(' '));
      this.viewport.appendChild(path);
    }
    const term = (state.search ?? '').toLowerCase();
    const names: string[] = [];
    boxes.forEach((b, i) => {
      const p = pos.get(b.id)!;
      const { width, height } = sized[i];
      const g = document.createElementNS(SVG, 'g');
      const hit =
        term &&
        ((b.kind === 'layer' ? this.matches.layers : this.matches.nodes).has(b.index) ||
          (b.label + ' ' + b.sub).toLowerCase().includes(term));
      const heat = b.kind === 'layer' ? this.heat(b.label) : undefined;
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
      this.viewport.appendChild(g);
      if (names.length < 200) names.push(t1.textContent ?? '');
    });
    this.bounds = { width: result.width, height: result.height };
    if (!state.view) this.fit();
    else this.applyView();
    post({
      type: 'rendered',
      boxes: boxes.length,
      layers: boxes.filter((b) => b.kind === 'layer').length,
      nodes: boxes.filter((b) => b.kind === 'node').length,
      textNames: names,
    });
  }

  applyView(): void {
    const v = state.view!;
    this.transformGroup.setAttribute('transform', `translate(${v.x},${v.y}) scale(${v.scale})`);
    // Overview: the whole drawing scaled into the corner box, the frame shows what the canvas shows.
    this.overview.setAttribute('viewBox', `0 0 ${Math.max(1, this.bounds.width)} ${Math.max(1, this.bounds.height)}`);
    const r = this.canvas.getBoundingClientRect();
    this.overviewFrame.setAttribute('x', String(-v.x / v.scale));
    this.overviewFrame.setAttribute('y', String(-v.y / v.scale));
    this.overviewFrame.setAttribute('width', String(r.width / v.scale));
    this.overviewFrame.setAttribute('height', String(r.height / v.scale));
    save();
  }
  fit(): void {
    const r = this.canvas.getBoundingClientRect();
    const scale = Math.min(
      2,
      Math.max(0.02, Math.min(r.width / (this.bounds.width + 20), r.height / (this.bounds.height + 20))),
    );
    state.view = { x: (r.width - this.bounds.width * scale) / 2, y: 10, scale };
    this.applyView();
  }
  zoom(factor: number, cx: number, cy: number): void {
    const v = state.view ?? { x: 0, y: 0, scale: 1 };
    const scale = Math.min(4, Math.max(0.02, v.scale * factor));
    state.view = { x: cx - ((cx - v.x) * scale) / v.scale, y: cy - ((cy - v.y) * scale) / v.scale, scale };
    this.applyView();
  }
  private activate(box: SVGGElement): void {
    const index = Number(box.dataset.index);
    this.viewport.querySelectorAll('.selected').forEach((x) => x.classList.remove('selected'));
    box.classList.add('selected');
    if (box.dataset.kind === 'layer') {
      if (!state.expanded.includes(index)) state.expanded.push(index);
      save();
      if (this.layerNodes.has(index)) void this.render();
      else post({ type: 'expandLayer', layer: index });
      const l = this.summary?.layers[index];
      if (l) {
        this.details.show(
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
          this.details.aside.append(b);
        }
      }
    } else post({ type: 'select', node: index });
  }

  private listen(): void {
    this.canvas.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault();
        const r = this.canvas.getBoundingClientRect();
        this.zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
      },
      { passive: false },
    );
    this.canvas.addEventListener('pointerdown', (e) => {
      if ((e.target as Element).closest('.box')) return;
      const v = state.view ?? { x: 0, y: 0, scale: 1 };
      this.drag = { x: e.clientX, y: e.clientY, vx: v.x, vy: v.y };
      this.canvas.setPointerCapture(e.pointerId);
    });
    this.canvas.addEventListener('pointermove', (e) => {
      if (!this.drag || !state.view) return;
      state.view = {
        ...state.view,
        x: this.drag.vx + e.clientX - this.drag.x,
        y: this.drag.vy + e.clientY - this.drag.y,
      };
      this.applyView();
    });
    this.canvas.addEventListener('pointerup', () => (this.drag = undefined));

    this.viewport.addEventListener('click', (e) => {
      const box = (e.target as Element).closest('.box') as SVGGElement | null;
      if (box) this.activate(box);
    });
    this.viewport.addEventListener('keydown', (e) => {
      const box = (e.target as Element).closest('.box') as SVGGElement | null;
      if (box && (e.key === 'Enter' || e.key === ' ')) {
        e.preventDefault();
        this.activate(box);
      }
    });
    this.overview.addEventListener('pointerdown', (e) => {
      e.stopPropagation();
      const o = this.overview.getBoundingClientRect();
      const s = Math.min(o.width / Math.max(1, this.bounds.width), o.height / Math.max(1, this.bounds.height));
      const gx = (e.clientX - o.left - (o.width - this.bounds.width * s) / 2) / s;
      const gy = (e.clientY - o.top - (o.height - this.bounds.height * s) / 2) / s;
      const v = state.view ?? { x: 0, y: 0, scale: 1 };
      const r = this.canvas.getBoundingClientRect();
      state.view = { ...v, x: r.width / 2 - gx * v.scale, y: r.height / 2 - gy * v.scale };
      this.applyView();
    });
  }
}

interface Drawn {
  id: string;
  kind: 'layer' | 'node';
  label: string;
  sub: string;
  index: number;
  unknown?: boolean;
}
