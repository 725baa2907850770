import type { WorkloadSource } from '../src/engine/cost/workload';
import type { PlanEdit } from '../src/engine/plan/edits';
import type { Plan } from '../src/engine/plan/plan';
import { describeEdits } from '../src/engine/search/describe';
import type { Candidate, Objective, SearchResult } from '../src/engine/search/optimize';
import { formatGiB, formatSeconds } from '../src/engine/units';
import type { SearchAnswer, SearchRequest, SearchShown, WebviewToHost } from '../src/protocol';

/**
 * The planner's *Find best plans*: asks the host for what the search needs (the weights' SQNR), runs the
 * optimizer in a web worker of its own (the planner stays responsive; Cancel terminates it), shows progress,
 * then a sortable table of candidates, each with its diff against the current plan and an Apply button that
 * hands the candidate's edits to the planner (one WorkspaceEdit, one undo step).
 */
export interface SearchPanelHost {
  post(m: WebviewToHost): void;
  workerUrl: string;
  /** The plan as the planner shows it now, and its model's workload. */
  plan(): Plan | undefined;
  source(): WorkloadSource | undefined;
  /** Write a candidate's fields into the plan file. */
  apply(edits: PlanEdit[]): void;
  /** What the panel shows changed (the planner reports it). */
  changed(): void;
}

type Column = { key: string; label: string; value: (c: Candidate) => number; text: (c: Candidate) => string };

const COLUMNS: Column[] = [
  { key: 'rank', label: '#', value: () => 0, text: () => '' },
  { key: 'time', label: 'step', value: (c) => c.iterationSeconds, text: (c) => formatSeconds(c.iterationSeconds) },
  { key: 'gpus', label: 'GPUs', value: (c) => c.gpus, text: (c) => String(c.gpus) },
  { key: 'memory', label: 'peak / GPU', value: (c) => c.peakMemoryBytes, text: (c) => formatGiB(c.peakMemoryBytes) },
  { key: 'mfu', label: 'MFU', value: (c) => -c.mfu, text: (c) => `${(c.mfu * 100).toFixed(1)}%` },
  {
    key: 'sqnr',
    label: 'output SQNR',
    value: (c) => -(c.outputSqnrDb ?? Infinity),
    text: (c) => (c.outputSqnrDb === null ? '—' : `${c.outputSqnrDb.toFixed(1)} dB`),
  },
  {
    key: 'cost',
    label: '$ / M tokens',
    value: (c) => c.costPerMillionTokens ?? Infinity,
    text: (c) => (c.costPerMillionTokens === undefined ? '—' : c.costPerMillionTokens.toFixed(2)),
  },
];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(id: string, text: string, secondary = false): HTMLElement {
  const b = document.createElement('vscode-button');
  b.id = id;
  if (secondary) b.setAttribute('secondary', '');
  b.textContent = text;
  return b;
}

export class SearchPanel {
  readonly root = el('div', 'search');
  readonly findButton = button('find-best', 'Find best plans');
  private readonly objective = document.createElement('select');
  private readonly status = el('div', 'search-status');
  private readonly progress = el('progress');
  private readonly cancelButton = button('cancel-search', 'Cancel', true);
  private readonly table = el('div', 'search-results');
  private worker?: Worker;
  private nextId = 0;
  private state: SearchShown['state'] = 'idle';
  private result?: SearchResult;
  /** The plan the result was found for (diffs are against it). */
  private base?: Plan;
  private sortKey = 'rank';
  private open = new Set<number>();

  constructor(private readonly host: SearchPanelHost) {
    this.root.setAttribute('aria-label', 'Find best plans');
    this.root.hidden = true;
    this.status.setAttribute('role', 'status');
    this.status.id = 'search-status';
    for (const [value, text] of [
      ['time', 'fastest step'],
      ['cost', 'cheapest tokens'],
    ] as [Objective, string][]) {
      const o = document.createElement('option');
      o.value = value;
      o.textContent = text;
      this.objective.append(o);
    }
    this.objective.id = 'search-objective';
    this.objective.setAttribute('aria-label', 'What the search optimizes');
    this.findButton.setAttribute('title', 'Search parallel layouts, stages and per-layer precision for the best plans');
    this.findButton.addEventListener('click', () => this.start());
    this.cancelButton.addEventListener('click', () => this.cancel());
    this.progress.hidden = true;
    this.cancelButton.hidden = true;
    const row = el('div', 'row');
    row.append(el('span', 'lbl', 'Optimize for'), this.objective, this.progress, this.cancelButton, this.status);
    this.root.append(el('h4', undefined, 'Best plans'), row, this.table);
  }

  /** Find best plans: first the host measures what the search needs, then the worker searches. */
  start(): void {
    if (this.state === 'preparing' || this.state === 'running') return;
    if (!this.host.plan() || !this.host.source()) {
      this.set('failed', 'The plan must be loaded before searching.');
      return;
    }
    this.root.hidden = false;
    this.set('preparing', 'Preparing the search (measuring the weights where the error budget needs them)…');
    this.host.post({ type: 'searchPrepare' });
  }

  /** The host's answer to searchPrepare: run the search now. */
  inputs(layerSqnr: Record<string, Record<string, number | null>> | undefined, notes: string[]): void {
    if (this.state !== 'preparing') return;
    const plan = this.host.plan();
    const source = this.host.source();
    if (!plan || !source) return this.set('failed', 'The plan went away before the search started.');
    this.base = structuredClone(plan);
    const id = ++this.nextId;
    const request: SearchRequest = {
      id,
      plan,
      source,
      objective: this.objective.value as Objective,
      top: 10,
      layerSqnr,
    };
    this.set('running', `Searching…${notes.length ? ` (${notes.join('; ')})` : ''}`);
    this.progress.hidden = false;
    this.progress.removeAttribute('value');
    this.cancelButton.hidden = false;
    void this.startWorker().then(
      (w) => {
        w.onmessage = (e: MessageEvent<SearchAnswer>) => this.answer(id, e.data);
        w.postMessage(request);
      },
      (e: Error) => this.set('failed', `The search worker did not start: ${e.message}`),
    );
  }

  cancel(): void {
    if (this.state !== 'running' && this.state !== 'preparing') return;
    this.stopWorker();
    this.set('cancelled', 'Search cancelled.');
  }

  shown(): SearchShown {
    return {
      state: this.state,
      status: this.status.textContent ?? '',
      rows: this.sorted().map(({ c, rank }) => ({
        rank,
        iterationSeconds: c.iterationSeconds,
        gpus: c.gpus,
        peakMemoryBytes: c.peakMemoryBytes,
        changes: this.base ? describeEdits(this.base, c.edits).join(', ') : '',
      })),
      sortedBy: this.sortKey,
      diffs: [...this.open].map((rank) => ({
        rank,
        text:
          this.base && this.result?.candidates[rank - 1] ? diffText(this.base, this.result.candidates[rank - 1]) : '',
      })),
    };
  }

  private async startWorker(): Promise<Worker> {
    this.worker?.terminate();
    this.worker = undefined;
    const response = await fetch(this.host.workerUrl);
    if (!response.ok) throw new Error(`its script did not load (${response.status})`);
    const w = new Worker(URL.createObjectURL(new Blob([await response.text()], { type: 'text/javascript' })));
    w.onerror = (e) => {
      e.preventDefault();
      this.stopWorker();
      this.set('failed', `The search failed: ${e.message || 'its worker stopped'}`);
    };
    this.worker = w;
    return w;
  }

  private stopWorker(): void {
    this.worker?.terminate();
    this.worker = undefined;
    this.progress.hidden = true;
    this.cancelButton.hidden = true;
  }

  private answer(id: number, a: SearchAnswer): void {
    if (id !== this.nextId || this.state !== 'running') return;
    if (a.progress) {
      const p = a.progress;
      if (p.evaluated > 0) {
        this.progress.max = p.evaluated + p.queued;
        this.progress.value = p.evaluated;
      }
      this.status.textContent =
        p.evaluated === 0
          ? `Searching… ${p.searched.toLocaleString('en-US')} configurations bounded`
          : `Searching… ${p.evaluated} plans estimated${p.bestSeconds !== undefined ? `, best so far ${formatSeconds(p.bestSeconds)} per step` : ''}`;
      this.host.changed();
      return;
    }
    this.stopWorker();
    if (a.error !== undefined || !a.result) return this.set('failed', `The search failed: ${a.error ?? 'no result'}`);
    this.result = a.result;
    this.open.clear();
    const r = a.result;
    this.set(
      'done',
      `${r.candidates.length} plans from ${r.searched.toLocaleString('en-US')} configurations (${r.evaluated} estimated, ${((r.pruned / Math.max(1, r.searched)) * 100).toFixed(1)}% pruned) in ${r.seconds.toFixed(2)} s${r.notes.length ? ` — ${r.notes.join('; ')}` : ''}`,
    );
  }

  private set(state: SearchShown['state'], status: string): void {
    this.state = state;
    this.root.hidden = false;
    this.status.textContent = status;
    this.findButton.toggleAttribute('disabled', state === 'preparing' || state === 'running');
    this.render();
    this.host.changed();
  }

  private sorted(): { c: Candidate; rank: number }[] {
    const rows = (this.result?.candidates ?? []).map((c, i) => ({ c, rank: i + 1 }));
    const col = COLUMNS.find((k) => k.key === this.sortKey);
    if (col && col.key !== 'rank') rows.sort((a, b) => col.value(a.c) - col.value(b.c) || a.rank - b.rank);
    return rows;
  }

  private render(): void {
    this.table.replaceChildren();
    const r = this.result;
    if (!r || !this.base) return;
    const base = this.base;
    const t = el('table', 'candidates');
    t.setAttribute('aria-label', 'Candidate plans');
    const head = t.createTHead().insertRow();
    for (const col of COLUMNS) {
      const th = el('th', undefined, col.label);
      th.dataset.sort = col.key;
      th.tabIndex = 0;
      th.setAttribute('aria-sort', this.sortKey === col.key ? 'ascending' : 'none');
      th.title = `Sort by ${col.label}`;
      const sort = () => {
        this.sortKey = col.key;
        this.render();
        this.host.changed();
        (this.table.querySelector(`th[data-sort="${col.key}"]`) as HTMLElement | null)?.focus();
      };
      th.addEventListener('click', sort);
      th.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), sort()));
      head.append(th);
    }
    for (const h of ['binds', 'what changes', '']) head.append(el('th', undefined, h));
    const body = t.createTBody();
    for (const { c, rank } of this.sorted()) {
      const tr = body.insertRow();
      tr.dataset.rank = String(rank);
      if (r.pareto.includes(rank - 1)) tr.classList.add('pareto');
      for (const col of COLUMNS) {
        tr.insertCell().textContent =
          col.key === 'rank' ? `${rank}${r.pareto.includes(rank - 1) ? '*' : ''}` : col.text(c);
      }
      tr.insertCell().textContent = c.binds.join(', ') || '—';
      const changes = describeEdits(base, c.edits);
      const what = tr.insertCell();
      what.className = 'changes';
      what.textContent = changes.length ? changes.join(', ') : 'no change';
      what.title = c.why;
      const actions = tr.insertCell();
      const diff = button(`diff-${rank}`, this.open.has(rank) ? 'Hide diff' : 'Diff', true);
      diff.classList.add('diff');
      diff.addEventListener('click', () => {
        if (this.open.has(rank)) this.open.delete(rank);
        else this.open.add(rank);
        this.render();
        this.host.changed();
      });
      const apply = button(`apply-${rank}`, 'Apply');
      apply.classList.add('apply');
      apply.title = `Write this plan's fields into the plan file (one undo step): ${changes.join(', ') || 'no change'}`;
      apply.addEventListener('click', () => {
        this.host.apply(c.edits);
        this.status.textContent = `Applied plan #${rank} to the plan file (undo with Ctrl+Z).`;
        this.host.changed();
      });
      actions.append(diff, apply);
      if (this.open.has(rank)) {
        const row = body.insertRow();
        row.className = 'diff-row';
        const cell = row.insertCell();
        cell.colSpan = COLUMNS.length + 3;
        const pre = el('pre', 'diff');
        pre.textContent = diffText(base, c);
        cell.append(pre);
      }
    }
    this.table.append(t, el('div', 'pnote', '* on the Pareto front of step time, memory and output error'));
  }
}

/** The candidate against the current plan, field by field, as JSON. */
function diffText(base: Plan, c: Candidate): string {
  if (!c.edits.length) return 'the current plan';
  return c.edits
    .map((e) => {
      const own = e.path.reduce<unknown>((o, k) => (o as Record<string | number, unknown> | undefined)?.[k], base);
      const show = (v: unknown) => (v === undefined ? '(removed)' : JSON.stringify(v));
      return `${e.path.join('.')}:\n  - ${own === undefined ? '(absent)' : JSON.stringify(own)}\n  + ${show(e.value)}`;
    })
    .join('\n');
}
