import type { Edge, LayoutAnswer, LayoutRequest, ModelSummary, NodeBox, NodeRef } from '../src/protocol';
import { formatCount } from '../src/engine/units';
import type { Details } from './details';
import { post, save, state } from './vscode-api';
import { WorkerClient } from './worker-client';

const SVG = 'http://www.w3.org/2000/svg';

/** Layers sharing a dotted name prefix (`backbone.stage1.*`, `h.*`) are framed together. */
function prefixClusters(names: string[]): {
  parentOf: (name: string) => string | undefined;
  clusters: Map<string, string | undefined>;
} {
  const count = new Map<string, number>();
  for (const n of names) {
    const segs = n.split('.');
    for (let k = 1; k < segs.length; k++) {
      const p = segs.slice(0, k).join('.');
      count.set(p, (count.get(p) ?? 0) + 1);
    }
  }
  const kept = new Set([...count].filter(([, c]) => c >= 2 && c < names.length).map(([p]) => p));
  const deepest = (name: string, below: boolean) => {
    const segs = name.split('.');
    for (let k = segs.length - (below ? 1 : 0); k >= 1; k--) {
      const p = segs.slice(0, k).join('.');
      if (p !== name && kept.has(p)) return p;
    }
    return undefined;
  };
  const clusters = new Map<string, string | undefined>();
  for (const p of kept) clusters.set(p, deepest(p, true));
  return { parentOf: (name) => deepest(name, true), clusters };
}

interface Drawn {
  id: string;
  kind: 'layer' | 'node';
  label: string;
  sub: string;
  index: number;
  parent?: string;
  unknown?: boolean;
  constant?: boolean;
  enters?: string;
}

/**
 * The graph itself: layers as boxes that expand into their nodes inside a frame (the host sends a
 * layer's nodes when asked), layers sharing a name prefix framed together, laid out by dagre in a
 * web worker, drawn as SVG that pans (drag), zooms (wheel, +/−), fits (F), with an overview in the
 * corner and search matches highlighted. Expanding and collapsing keep the layer where it was on
 * screen; going to a node (search, a producer or consumer, an input) opens its layer and centers it.
 */
export class GraphCanvas {
  readonly canvas = document.createElement('div');
  summary: ModelSummary | undefined;
  /** The host's answer to the current search: layers and nodes of this level holding a hit. */
  matches: { layers: Set<number>; nodes: Set<number> } = { layers: new Set(), nodes: new Set() };
  /** The nodes of the layers fetched so far (this level), with how many constant nodes were left out. */
  readonly layerNodes = new Map<number, { nodes: NodeBox[]; edges: Edge[]; hidden: number }>();
  /** The node shown in the details pane (highlighted while it is drawn). */
  selected: number | undefined;
  /** Called after each render and each change the view reports (main.ts posts it to the host). */
  onChange: () => void = () => undefined;
  /** Asks the host for another level (main.ts posts enterLevel). */
  onEnter: (level: string) => void = () => undefined;
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
  /**
   * Keep what the user clicked where they saw it, after the next render: a collapsed layer's box at
   * its frame's corner; an expanded layer's first node (the top of its frame) where its box was.
   */
  private anchor: { id: string; sx: number; sy: number; layer?: number } | undefined;
  /** A node to go to once its level and layer are drawn. */
  private pendingReveal: NodeRef | undefined;
  private frames = new Map<string, { x: number; y: number; width: number; height: number }>();
  /** What the last render drew, for the report. */
  drawn = { boxes: 0, layers: 0, nodes: 0, names: [] as string[], clusters: [] as string[] };
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

  private key(layer: number): string {
    return `${state.level}|${layer}`;
  }

  isExpanded(layer: number): boolean {
    return state.expanded.includes(this.key(layer));
  }

  /** A new level (or the model reloaded): what was fetched for the last one is forgotten, the view fits anew. */
  setSummary(summary: ModelSummary): void {
    const levelChanged = !this.summary || this.summary.level.id !== summary.level.id;
    this.summary = summary;
    this.layerNodes.clear();
    if (levelChanged) {
      this.matches = { layers: new Set(), nodes: new Set() };
      state.view = undefined;
      this.anchor = undefined;
    }
    state.level = summary.level.id;
    save();
    for (const l of summary.layers) if (this.isExpanded(l.index)) this.requestLayer(l.index);
  }

  requestLayer(layer: number): void {
    post({ type: 'expandLayer', level: state.level, layer, constants: state.constants });
  }

  /** Constants shown or hidden: the open layers are fetched again. */
  setConstants(show: boolean): void {
    state.constants = show;
    save();
    this.layerNodes.clear();
    for (const l of this.summary?.layers ?? []) if (this.isExpanded(l.index)) this.requestLayer(l.index);
    void this.render();
  }

  /** Collapse every layer of this level and show the whole graph, with the model's summary beside it. */
  collapseAll(): void {
    state.expanded = state.expanded.filter((k) => !k.startsWith(`${state.level}|`));
    state.view = undefined;
    this.anchor = undefined;
    this.selected = undefined;
    save();
    if (this.summary) this.details.showSummary(this.summary);
    void this.render();
  }

  /** Go to a node: enter its level, open its layer, center it and show its details. */
  reveal(ref: NodeRef): void {
    this.pendingReveal = ref;
    if (ref.level !== state.level) this.onEnter(ref.level);
    else this.continueReveal();
  }

  private continueReveal(): void {
    const ref = this.pendingReveal;
    if (!ref || !this.summary || this.summary.level.id !== ref.level) return;
    if (ref.layer >= 0 && !this.isExpanded(ref.layer)) {
      state.expanded.push(this.key(ref.layer));
      save();
    }
    if (ref.layer >= 0 && !this.layerNodes.has(ref.layer)) {
      this.requestLayer(ref.layer);
      return; // continues when the layer's nodes arrive and are drawn
    }
    const box = this.viewport.querySelector(`.box.node[data-index="${ref.node}"]`) as SVGGElement | null;
    if (!box) {
      if (!this.renderPending) void this.render();
      this.renderPending = true;
      return;
    }
    this.renderPending = false;
    this.pendingReveal = undefined;
    this.centerOn(box);
    this.select(ref.node);
  }
  private renderPending = false;

  private centerOn(box: SVGGElement): void {
    const r = this.canvas.getBoundingClientRect();
    const t = box.getAttribute('transform') ?? '';
    const m = /translate\(([-\d.e]+),([-\d.e]+)\)/.exec(t);
    if (!m) return;
    const w = Number(box.querySelector('rect')?.getAttribute('width') ?? 0);
    const h = Number(box.querySelector('rect')?.getAttribute('height') ?? 0);
    const scale = Math.max(state.view?.scale ?? 1, 0.8);
    const gx = Number(m[1]) + w / 2;
    const gy = Number(m[2]) + h / 2;
    state.view = { x: r.width / 2 - gx * scale, y: r.height / 2 - gy * scale, scale };
    this.applyView();
  }

  /** Shows a node's details (asked of the host) and marks it. */
  select(node: number): void {
    this.selected = node;
    this.viewport.querySelectorAll('.selected').forEach((x) => x.classList.remove('selected'));
    this.viewport.querySelector(`.box.node[data-index="${node}"]`)?.classList.add('selected');
    post({ type: 'select', node });
  }

  private layout(req: Omit<LayoutRequest, 'id'>): Promise<LayoutAnswer> {
    return this.layoutWorker.request(req);
  }

  /**
   * Draws the view again. Bursts coalesce: while a layout is in the worker, more requests make one
   * more render after it, not one each (opening 268 layers at once made 268 layouts of up to 10k boxes).
   */
  render(): Promise<void> {
    this.dirty = true;
    if (!this.running) this.running = this.pump().finally(() => (this.running = undefined));
    return this.running;
  }
  private dirty = false;
  private running: Promise<void> | undefined;
  private async pump(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      await this.renderNow();
    }
  }

  private async renderNow(): Promise<void> {
    if (!this.summary) return;
    const seq = ++this.renderSeq;
    const boxes: Drawn[] = [];
    const edges: { from: string; to: string }[] = [];
    const entry = new Map<number, string>();
    const exit = new Map<number, string>();
    const prefixes = prefixClusters(this.summary.layers.map((l) => l.name));
    const clusters: { id: string; parent?: string; label: string; layer?: number }[] = [...prefixes.clusters].map(
      ([p, parent]) => ({ id: `P:${p}`, parent: parent ? `P:${parent}` : undefined, label: p }),
    );
    for (const l of this.summary.layers) {
      const group = prefixes.parentOf(l.name);
      const parent = group ? `P:${group}` : undefined;
      const expanded = this.isExpanded(l.index) && this.layerNodes.has(l.index);
      if (!expanded) {
        const id = `L${l.index}`;
        boxes.push({
          id,
          kind: 'layer',
          label: l.name,
          sub: `${l.nodes} nodes · ${formatCount(l.parameters)} params · ${l.ops}`,
          index: l.index,
          parent,
        });
        entry.set(l.index, id);
        exit.set(l.index, id);
        continue;
      }
      const { nodes, edges: inner, hidden } = this.layerNodes.get(l.index)!;
      const frame = `C${l.index}`;
      clusters.push({
        id: frame,
        parent,
        label: `${l.name}${hidden ? ` (${hidden} constant${hidden === 1 ? '' : 's'} hidden)` : ''}`,
        layer: l.index,
      });
      for (const n of nodes) {
        const enters = n.subgraphs?.map((s) => s.label).join(' · ');
        boxes.push({
          id: `N${n.index}`,
          kind: 'node',
          label: n.opType,
          sub: `${n.name} ${n.shape}${enters ? ` ⤵ ${enters}` : ''}`,
          index: n.index,
          parent: frame,
          unknown: !n.known,
          constant: n.constant,
          enters: n.subgraphs?.[0]?.id,
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
      parent: b.parent,
    }));
    let result: LayoutAnswer;
    try {
      result = await this.layout({ boxes: sized, edges, clusters: clusters.map(({ id, parent }) => ({ id, parent })) });
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
    this.frames = new Map(result.clusters.map((c) => [c.id, c]));
    // Frames first (outer ones first), then edges, then boxes on top.
    const depth = (id: string) => {
      let d = 0;
      for (let c = clusters.find((x) => x.id === id); c?.parent; c = clusters.find((x) => x.id === c!.parent)) d++;
      return d;
    };
    for (const c of [...clusters].sort((a, b) => depth(a.id) - depth(b.id))) {
      const f = this.frames.get(c.id);
      if (!f) continue;
      const g = document.createElementNS(SVG, 'g');
      g.setAttribute('class', `cluster${c.layer !== undefined ? ' layer-frame' : ''}`);
      g.dataset.cluster = c.id;
      if (c.layer !== undefined) g.dataset.index = String(c.layer);
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', String(f.x));
      rect.setAttribute('y', String(f.y));
      rect.setAttribute('width', String(f.width));
      rect.setAttribute('height', String(f.height));
      const label = document.createElementNS(SVG, 'text');
      label.setAttribute('x', String(f.x + 6));
      label.setAttribute('y', String(f.y + 12));
      label.textContent = c.layer !== undefined ? `▾ ${c.label}` : c.label;
      if (c.layer !== undefined) {
        label.setAttribute('class', 'collapse');
        label.setAttribute('tabindex', '0');
        label.setAttribute('role', 'button');
        label.setAttribute('aria-label', `Collapse layer ${c.label}`);
      }
      g.append(rect, label);
      this.viewport.appendChild(g);
    }
    for (const p of result.paths) {
      const path = document.createElementNS(SVG, 'polyline');
      path.setAttribute('class', 'edge');
      path.setAttribute('points', p.points.map((q) => `${q.x},${q.y}`).join(' '));
      this.viewport.appendChild(path);
    }
    const names: string[] = [];
    const searching = !!(state.search ?? '').trim();
    boxes.forEach((b, i) => {
      const p = pos.get(b.id)!;
      const { width, height } = sized[i];
      const g = document.createElementNS(SVG, 'g');
      const hit = searching && (b.kind === 'layer' ? this.matches.layers : this.matches.nodes).has(b.index);
      const heat = b.kind === 'layer' ? this.heat(b.label) : undefined;
      const selected = b.kind === 'node' && b.index === this.selected;
      g.setAttribute(
        'class',
        `box ${b.kind}${b.unknown ? ' unknown' : ''}${b.constant ? ' constant' : ''}${hit ? ' match' : ''}${selected ? ' selected' : ''}${heat ? ` ${heat}` : ''}`,
      );
      g.setAttribute('transform', `translate(${p.x - width / 2},${p.y - height / 2})`);
      g.setAttribute('tabindex', '0');
      g.setAttribute('role', 'button');
      g.setAttribute('aria-label', `${b.kind === 'layer' ? 'Layer' : 'Node'} ${b.label}`);
      g.dataset.kind = b.kind;
      g.dataset.index = String(b.index);
      if (b.enters) g.dataset.enters = b.enters;
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
      tip.textContent = `${b.label}\n${b.sub}${b.enters ? '\nDouble-click to open its subgraph' : ''}`;
      g.append(rect, t1, t2, tip);
      this.viewport.appendChild(g);
      if (names.length < 200) names.push(t1.textContent ?? '');
    });
    this.bounds = { width: result.width, height: result.height };
    this.drawn = {
      boxes: boxes.length,
      layers: boxes.filter((b) => b.kind === 'layer').length,
      nodes: boxes.filter((b) => b.kind === 'node').length,
      names,
      clusters: clusters.filter((c) => this.frames.has(c.id)).map((c) => c.label),
    };
    const anchor = this.anchor;
    this.anchor = undefined;
    const at =
      anchor &&
      (anchor.layer !== undefined
        ? this.entryOf(anchor.layer, boxes, pos, sized)
        : (this.frames.get(anchor.id) ?? this.boxFrame(anchor.id, pos, sized)));
    if (anchor && at && state.view) {
      // The layer stays where the user clicked it: its frame (or box) at the same place on screen.
      const s = state.view.scale;
      state.view = { scale: s, x: anchor.sx - at.x * s, y: anchor.sy - at.y * s };
      this.applyView();
    } else if (!state.view) this.fit();
    else this.applyView();
    if (this.pendingReveal) this.continueReveal();
    this.onChange();
  }

  /** The top-center of an expanded layer's first row (the node nearest the frame's top, then its middle). */
  private entryOf(
    layer: number,
    boxes: Drawn[],
    pos: Map<string, { x: number; y: number }>,
    sized: { id: string; width: number; height: number }[],
  ): { x: number; y: number } | undefined {
    const frame = this.frames.get(`C${layer}`);
    if (!frame) return undefined;
    const mid = frame.x + frame.width / 2;
    let best: { x: number; y: number; d: number } | undefined;
    boxes.forEach((b, i) => {
      if (b.parent !== `C${layer}`) return;
      const p = pos.get(b.id)!;
      const top = p.y - sized[i].height / 2;
      const d = top * 1e6 + Math.abs(p.x - mid);
      if (!best || d < best.d) best = { x: p.x, y: top, d };
    });
    return best ? { x: best.x, y: best.y } : undefined;
  }

  private boxFrame(
    id: string,
    pos: Map<string, { x: number; y: number }>,
    sized: { id: string; width: number; height: number }[],
  ): { x: number; y: number } | undefined {
    const p = pos.get(id);
    const s = sized.find((b) => b.id === id);
    return p && s ? { x: p.x - s.width / 2, y: p.y - s.height / 2 } : undefined;
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

  /** The whole drawing inside the canvas (which ends where the details pane begins), centered. */
  fit(): void {
    const r = this.canvas.getBoundingClientRect();
    const scale = Math.min(
      2,
      Math.max(0.02, Math.min(r.width / (this.bounds.width + 20), r.height / (this.bounds.height + 20))),
    );
    state.view = {
      x: (r.width - this.bounds.width * scale) / 2,
      y: Math.max(10, (r.height - this.bounds.height * scale) / 2),
      scale,
    };
    this.applyView();
  }

  zoom(factor: number, cx: number, cy: number): void {
    const v = state.view ?? { x: 0, y: 0, scale: 1 };
    const scale = Math.min(4, Math.max(0.02, v.scale * factor));
    state.view = { x: cx - ((cx - v.x) * scale) / v.scale, y: cy - ((cy - v.y) * scale) / v.scale, scale };
    this.applyView();
  }

  /** Where an element is on the canvas (for anchoring). */
  private onCanvas(el: Element): { sx: number; sy: number } {
    const c = this.canvas.getBoundingClientRect();
    const r = el.getBoundingClientRect();
    return { sx: r.left - c.left, sy: r.top - c.top };
  }

  private toggleLayer(index: number, from: Element | null): void {
    if (this.isExpanded(index)) {
      state.expanded = state.expanded.filter((k) => k !== this.key(index));
      if (from) this.anchor = { id: `L${index}`, ...this.onCanvas(from) };
    } else {
      state.expanded.push(this.key(index));
      if (from) {
        // The layer's first node takes the place of the box's top middle.
        const c = this.canvas.getBoundingClientRect();
        const r = from.getBoundingClientRect();
        this.anchor = { id: `C${index}`, sx: r.left + r.width / 2 - c.left, sy: r.top - c.top, layer: index };
      }
    }
    save();
    if (!this.isExpanded(index) || this.layerNodes.has(index)) void this.render();
    else this.requestLayer(index);
  }

  private activate(box: SVGGElement): void {
    const index = Number(box.dataset.index);
    if (box.dataset.kind === 'layer') {
      this.viewport.querySelectorAll('.selected').forEach((x) => x.classList.remove('selected'));
      box.classList.add('selected');
      this.toggleLayer(index, box);
      const l = this.summary?.layers.find((x) => x.index === index);
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
        if (l.parameters > 0 && state.level === '') {
          const b = document.createElement('vscode-button');
          b.textContent = 'Verify a weight quantized…';
          b.id = 'verify-layer';
          b.setAttribute('title', "Run one of this layer's weights through the quantized WebGPU kernel");
          b.addEventListener('click', () => post({ type: 'verifyRequest', layer: index }));
          this.details.aside.append(b);
        }
        this.onChange();
      }
    } else this.select(index);
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
      if ((e.target as Element).closest('.box, .collapse')) return;
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
      const collapse = (e.target as Element).closest('.collapse');
      if (collapse) {
        const frame = collapse.closest('.cluster') as SVGGElement;
        this.toggleLayer(Number(frame.dataset.index), frame.querySelector('rect'));
        return;
      }
      const box = (e.target as Element).closest('.box') as SVGGElement | null;
      if (box) this.activate(box);
    });
    this.viewport.addEventListener('dblclick', (e) => {
      const box = (e.target as Element).closest('.box.node') as SVGGElement | null;
      if (box?.dataset.enters) this.onEnter(box.dataset.enters);
    });
    this.viewport.addEventListener('keydown', (e) => {
      const collapse = (e.target as Element).closest('.collapse');
      if (collapse && (e.key === 'Enter' || e.key === ' ')) {
        e.preventDefault();
        const frame = collapse.closest('.cluster') as SVGGElement;
        this.toggleLayer(Number(frame.dataset.index), frame.querySelector('rect'));
        return;
      }
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

  /**
   * The drawing as a standalone SVG: the theme's colours resolved into a style sheet (the file shows
   * as the view does, outside VS Code), sized to the whole graph.
   */
  toSvg(): string {
    const css = getComputedStyle(document.body);
    const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
    const bg = v('--vscode-editor-background', '#1e1e1e');
    const fg = v('--vscode-foreground', '#cccccc');
    const sub = v('--vscode-descriptionForeground', '#9d9d9d');
    const box = v('--vscode-editorWidget-background', '#252526');
    const border = v('--vscode-editorWidget-border', v('--vscode-panel-border', '#454545'));
    const edge = v('--vscode-editorLineNumber-foreground', '#858585');
    const match = v('--vscode-editorWarning-foreground', '#cca700');
    const focus = v('--vscode-focusBorder', '#007fd4');
    const font = v('--vscode-font-family', 'sans-serif');
    const style = `text { font-family: ${font}; font-size: 12px; fill: ${fg}; } text.sub { font-size: 10px; fill: ${sub}; }
.box rect { fill: ${box}; stroke: ${border}; rx: 4; } .box.match rect { stroke: ${match}; stroke-width: 2; }
.box.selected rect { stroke: ${focus}; stroke-width: 2; } .box.unknown rect { stroke-dasharray: 4 2; }
.box.constant rect { stroke-dasharray: 2 2; opacity: 0.8; }
.edge { fill: none; stroke: ${edge}; stroke-width: 1.2; } .cluster rect { fill: none; stroke: ${border}; stroke-dasharray: 4 3; rx: 6; }
.cluster text { font-size: 11px; fill: ${sub}; }`;
    const w = Math.ceil(this.bounds.width);
    const h = Math.ceil(this.bounds.height);
    const content = new XMLSerializer().serializeToString(this.viewport);
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><style>${style}</style><rect width="100%" height="100%" fill="${bg}"/>${content}</svg>`;
  }

  /** The drawing as a PNG (base64), at up to 2× and at most 8,192 pixels a side. */
  async toPng(): Promise<string> {
    const svg = this.toSvg();
    const scale = Math.min(2, 8192 / Math.max(1, this.bounds.width), 8192 / Math.max(1, this.bounds.height));
    const img = new Image();
    const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
    try {
      await new Promise<void>((resolve, reject) => {
        img.onload = () => resolve();
        img.onerror = () => reject(new Error('the SVG could not be drawn'));
        img.src = url;
      });
      const c = document.createElement('canvas');
      c.width = Math.max(1, Math.round(this.bounds.width * scale));
      c.height = Math.max(1, Math.round(this.bounds.height * scale));
      const ctx = c.getContext('2d')!;
      ctx.scale(scale, scale);
      ctx.drawImage(img, 0, 0);
      return c.toDataURL('image/png').replace(/^data:image\/png;base64,/, '');
    } finally {
      URL.revokeObjectURL(url);
    }
  }
}
