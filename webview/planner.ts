import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-label/index.js';
import { balancedSplit, rangeText, type CostReport } from '../src/engine/cost/estimate';
import { DEFAULT_FRAMEWORK, PROFILES } from '../src/engine/cost/profiles';
import { ganttSvg, memorySvg } from '../src/engine/report/charts';
import { formatCount, formatGiB as fmtBytes, formatSeconds as fmtS } from '../src/engine/units';
import { coverPattern, globMatch } from '../src/engine/glob';
import { findGpu } from '../src/engine/hardware/catalog';
import { formatFor, parseLayerRange, type Plan } from '../src/engine/plan/plan';
import { PendingEdits, setPlanPaths, type PlanEdit } from '../src/engine/plan/edits';
import type {
  EstimateAnswer,
  EstimateRequest,
  HostToWebview,
  ExportShown,
  LayerErrors,
  PlanState,
  WebviewToHost,
} from '../src/protocol';
import { WorkerClient } from './worker-client';
import { SearchPanel } from './search-panel';
import type { WorkloadSource } from '../src/engine/cost/workload';

/**
 * The planner: the model's layers with their pipeline stage and precision, a form for the cluster,
 * batch and parallelism, and the costs of the plan, re-estimated in a web worker on every edit.
 * Edits go to the host as JSON path/value pairs; the host writes the plan file through a
 * WorkspaceEdit (so undo works there) and sends the file back, so hand edits show here too.
 */
type Select = HTMLElement & { value: string };
type Field = HTMLElement & { value: string };

export interface PlannerHost {
  post(m: WebviewToHost): void;
  workerUrl: string;
  /** The optimizer's worker script (Find best plans). */
  searchWorkerUrl: string;
  /** The per-layer error changed: recolour the graph. */
  onErrors(): void;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function custom(tag: string, attrs: Record<string, string> = {}, text?: string): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

export class Planner {
  readonly root = el('section', 'planner');
  private state?: PlanState;
  private plan?: Plan;
  private report?: CostReport;
  private answer?: EstimateAnswer;
  errors?: LayerErrors;
  /** The last *Export Quantized Model* run: progress, error, or measured against predicted. */
  private exported?: Extract<HostToWebview, { type: 'quantExport' }>;
  private selected = new Set<number>();
  private anchor = -1;
  private readonly worker: WorkerClient<EstimateRequest, EstimateAnswer>;
  /** Why the last estimate did not come back (the worker failed), until one does. */
  private failure?: string;
  /** Edits sent to the host and not yet in the state it sent back (laid over each state). */
  private readonly pending = new PendingEdits();
  private sentSource = false;
  private readonly list = el('div', 'layers');
  private readonly form = el('div', 'form');
  private readonly results = el('div', 'results');
  private readonly title = el('span', 'ptitle');
  private readonly pattern = custom('vscode-textfield', {
    placeholder: 'Select layers by name, e.g. h.*',
    'aria-label': 'Select layers by name pattern',
    id: 'layer-pattern',
  }) as Field;
  private readonly stageButtons = el('span', 'stage-buttons');
  private readonly formatSelect = custom('vscode-single-select', {
    'aria-label': 'Precision for the selected layers',
    id: 'precision-select',
    combobox: '',
  }) as Select;
  private fields = new Map<string, Field | Select>();
  private formShape = '';
  /** The table's rows as drawn (for plannerShown). */
  private shownRows: { name: string; parameters: string; stage: string; precision: string }[] = [];
  /** The precision picker's choice (the element's own value is empty until its options upgrade). */
  private format = 'int4-g128';
  /** Find best plans. */
  readonly search: SearchPanel;
  /** The model's workload as the host last sent it (the search worker needs it whole). */
  private source?: WorkloadSource;
  /** What the planner last reported showing (re-sent when the search panel changes). */
  private shown?: Omit<Extract<WebviewToHost, { type: 'plannerShown' }>, 'search'>;
  /** The Export panel: the plan as a framework's launch configuration (the host computes it). */
  private readonly exportPanel = el('div', 'export');
  private exportTarget = 'megatron';

  constructor(private readonly host: PlannerHost) {
    this.worker = new WorkerClient(host.workerUrl, 'the estimate worker', (m) => this.workerFailed(m));
    this.root.setAttribute('aria-label', 'Planner');
    this.root.hidden = true;
    const bar = el('div', 'pbar');
    const newPlan = custom('vscode-button', { id: 'new-plan' }, 'New plan');
    newPlan.addEventListener('click', () => host.post({ type: 'newPlan' }));
    const rebalance = custom('vscode-button', { id: 'rebalance', secondary: '' }, 'Rebalance stages');
    rebalance.addEventListener('click', () => this.rebalance());
    this.search = new SearchPanel({
      post: (m) => host.post(m),
      workerUrl: host.searchWorkerUrl,
      plan: () => this.plan,
      source: () => this.source,
      apply: (edits) => this.edit(edits),
      changed: () => this.postShown(),
    });
    const exportButton = custom(
      'vscode-button',
      {
        id: 'export-quantized',
        secondary: '',
        title:
          "Write the plan's precision as an ONNX model, run it against the original and compare with the prediction",
      },
      'Export quantized model',
    );
    exportButton.addEventListener('click', () => host.post({ type: 'exportQuantized' }));
    const exportBtn = custom(
      'vscode-button',
      {
        id: 'export-plan',
        secondary: '',
        title: 'The plan as a Megatron-LM, DeepSpeed or torchtitan launch configuration',
      },
      'Export launch config',
    );
    exportBtn.addEventListener('click', () => this.toggleExport());
    bar.append(this.title, newPlan, rebalance, this.search.findButton, exportBtn, exportButton);
    this.exportPanel.hidden = true;
    this.exportPanel.setAttribute('aria-label', 'Export launch configuration');
    this.exportPanel.style.cssText =
      'border: 1px solid var(--vscode-panel-border); padding: 6px 8px; margin-bottom: 8px; max-height: 40vh; overflow: auto;';
    const left = el('div', 'pcol');
    const selectRow = el('div', 'row');
    const selectBtn = custom('vscode-button', { id: 'select-pattern', secondary: '' }, 'Select');
    selectBtn.addEventListener('click', () => this.selectPattern());
    this.pattern.addEventListener('keydown', (e) => {
      if ((e as KeyboardEvent).key === 'Enter') this.selectPattern();
    });
    selectRow.append(this.pattern, selectBtn);
    const stageRow = el('div', 'row');
    stageRow.append(el('span', 'lbl', 'Stage:'), this.stageButtons);
    const precRow = el('div', 'row');
    const apply = custom('vscode-button', { id: 'apply-precision' }, 'Apply precision');
    apply.addEventListener('click', () => this.applyPrecision());
    this.formatSelect.addEventListener('change', () => (this.format = this.formatSelect.value || this.format));
    precRow.append(this.formatSelect, apply);
    left.append(selectRow, this.list, stageRow, precRow);
    this.root.append(bar, this.search.root, this.exportPanel, el('div', 'pgrid'));
    (this.root.lastChild as HTMLElement).append(left, this.results, this.form);
    this.list.addEventListener('keydown', (e) => this.keys(e));
    // Undo / redo of the planner's edits (not inside a text field, where they edit the text).
    this.root.addEventListener('keydown', (e) => {
      const inField = (e.target as HTMLElement).closest('vscode-textfield, input, textarea');
      if (inField || !(e.ctrlKey || e.metaKey)) return;
      const k = e.key.toLowerCase();
      if (k === 'z' || k === 'y') {
        e.preventDefault();
        host.post({ type: 'planUndo', redo: k === 'y' || (k === 'z' && e.shiftKey) });
      }
    });
  }

  toggle(show: boolean = !!this.root.hidden): void {
    this.root.hidden = !show;
    document.getElementById('app')?.classList.toggle('planning', show);
    if (show) this.host.post({ type: 'plannerOpen' });
  }

  get visible(): boolean {
    return !this.root.hidden;
  }

  /** A new plan file state from the host (after our edit, a hand edit, or first open). */
  setState(s: PlanState): void {
    const first = !this.state;
    this.state = s;
    this.plan = this.pending.settle(s.plan, s.editSeq);
    if (s.source) {
      this.sentSource = false;
      this.source = s.source;
    }
    this.title.textContent = s.exists
      ? `Plan: ${s.file}${s.issues.some((i) => i.severity === 'error') ? ` — ${s.issues.filter((i) => i.severity === 'error').length} error(s)` : ''}`
      : `No plan yet (${s.file})`;
    (this.root.querySelector('#new-plan') as HTMLElement).hidden = s.exists;
    if (first || this.formatSelect.childElementCount === 0) {
      for (const f of s.formats) {
        this.formatSelect.append(
          custom('vscode-option', { value: f.name, description: `${f.bitsPerWeight.toFixed(2)} bits/weight` }, f.name),
        );
      }
      this.formatSelect.value = this.format;
    }
    this.buildForm();
    this.estimate();
    // The Export panel follows the plan.
    if (!this.exportPanel.hidden && s.exists) this.host.post({ type: 'exportRequest', to: this.exportTarget });
  }

  private toggleExport(): void {
    this.exportPanel.hidden = !this.exportPanel.hidden;
    if (!this.exportPanel.hidden) {
      this.exportPanel.replaceChildren(el('div', 'pnote', 'Writing the launch configuration…'));
      this.host.post({ type: 'exportRequest', to: this.exportTarget });
    }
  }

  /** The host's export of the plan: the command, the files and what the framework cannot express. */
  setExport(shown: ExportShown): void {
    this.exportTarget = shown.to;
    const p = this.exportPanel;
    p.hidden = false;
    p.replaceChildren();
    const targets = el('div', 'row');
    targets.append(el('span', 'lbl', 'Export to:'));
    for (const t of shown.targets) {
      const b = custom(
        'vscode-button',
        {
          id: `export-to-${t.name.replace(/\W/g, '-')}`,
          title: t.description,
          ...(t.name === shown.to ? {} : { secondary: '' }),
        },
        t.name,
      );
      b.addEventListener('click', () => this.host.post({ type: 'exportRequest', to: t.name }));
      targets.append(b);
    }
    p.append(targets);
    if (shown.error || !shown.result) {
      const e = el('div', 'problems', shown.error ?? 'no launch configuration');
      e.id = 'export-error';
      e.setAttribute('role', 'alert');
      p.append(e);
      return;
    }
    const r = shown.result;
    const actions = el('div', 'row');
    const copy = custom('vscode-button', { id: 'export-copy' }, 'Copy command');
    copy.addEventListener('click', () => this.host.post({ type: 'exportAction', to: r.to, action: 'copy' }));
    const save = custom('vscode-button', { id: 'export-save', secondary: '' }, 'Save files beside the plan');
    save.addEventListener('click', () => this.host.post({ type: 'exportAction', to: r.to, action: 'save' }));
    actions.append(el('span', 'lbl', `options of ${r.version}`), copy, save);
    if (shown.saved) actions.append(el('span', 'pnote', `saved: ${shown.saved.join(', ')}`));
    p.append(actions);
    const pre = (text: string, id?: string) => {
      const e = el('pre', undefined, text);
      if (id) e.id = id;
      e.style.cssText = 'white-space: pre-wrap; word-break: break-all; margin: 2px 0 6px; font-size: 11px;';
      return e;
    };
    p.append(el('h4', undefined, 'Command'), pre(r.command, 'export-command'));
    for (const [name, text] of Object.entries(r.files)) {
      const d = el('details');
      d.append(el('summary', undefined, name), pre(text));
      p.append(d);
    }
    if (r.notes.length) {
      p.append(el('h4', undefined, 'What this configuration does not express of the plan'));
      const ul = el('ul', 'pnote');
      for (const n of r.notes) ul.append(el('li', undefined, n));
      p.append(ul);
    }
  }

  setErrors(e: LayerErrors): void {
    this.errors = e;
    this.renderList();
    this.renderResults();
    this.host.onErrors();
  }

  setQuantExport(m: Extract<HostToWebview, { type: 'quantExport' }>): void {
    this.exported = m;
    this.renderResults();
  }

  /**
   * The heat class of a layer for the graph: the output SQNR its precision alone gives (its weights'
   * SQNR through its sensitivity; the weights' SQNR itself when first-order) against the plan's budget.
   */
  heat(layer: string): string | undefined {
    const at = (l: LayerErrors['layers'][number]) => (l.outputSqnrDb !== undefined ? l.outputSqnrDb : l.sqnrDb);
    const rows = this.errors?.layers.filter((l) => l.name === layer && at(l) !== null);
    if (!rows?.length || !this.visible) return undefined;
    const worst = Math.min(...rows.map((r) => at(r)!));
    const budget = this.errors?.budgetDb ?? 20;
    return worst < budget ? 'heat-bad' : worst < budget + 6 ? 'heat-warn' : 'heat-ok';
  }

  private edit(edits: PlanEdit[]): void {
    if (!this.plan) return;
    setPlanPaths(this.plan, edits);
    const seq = this.pending.add(edits);
    // The list shows the edit at once (stages, precision); the estimate's figures follow from the worker.
    this.renderList();
    this.estimate();
    this.host.post({ type: 'planEdit', seq, edits });
  }

  /** The estimate worker failed: say so here and to the host; the next edit starts a fresh worker. */
  private workerFailed(message: string): void {
    this.sentSource = false; // a fresh worker has no workload yet
    this.failure = message;
    this.renderResults();
    this.host.post({ type: 'viewError', message: `planner: ${message}` });
  }

  private estimate(): void {
    if (!this.plan || !this.state) {
      this.renderList();
      this.renderResults();
      return;
    }
    const source = this.sentSource ? undefined : this.state.source;
    this.sentSource = true;
    const request = this.worker.request({ plan: this.plan, source });
    const id = this.worker.latestId;
    request.then(
      (answer) => {
        // Only the latest edit's estimate is shown; older answers are dropped.
        if (id !== this.worker.latestId) return;
        this.failure = undefined;
        this.answer = answer;
        this.report = answer.report;
        this.renderList();
        this.renderResults();
      },
      () => undefined, // workerFailed has said why
    );
  }

  /** Stage of each block index: the plan's explicit stages, else the engine's split. */
  private stageOf(): number[] {
    const n = this.answer?.blockParameters.length ?? 0;
    const out = new Array<number>(n).fill(-1);
    const stages = this.plan?.stages ?? this.report?.stages.map((s) => ({ layers: s.layers }));
    stages?.forEach((s, i) => parseLayerRange(s.layers)?.forEach((b) => b < n && (out[b] = i)));
    return out;
  }

  /**
   * Stage of each row (every layer of the workload): its block's stage; the layers before the first
   * block (embedding) on the first block's stage, those after the last (final norm, output layer) on
   * the last block's — where the estimate puts them (its stages' layer names, when there is one).
   */
  private rowStages(): number[] {
    const blocks = this.rowBlocks();
    const names = this.answer?.layerNames ?? [];
    const of = this.stageOf();
    const byName = new Map<string, number>();
    this.report?.stages.forEach((st) => st.layerNames.forEach((n) => byName.set(n, st.index)));
    const first = blocks.findIndex((b) => b >= 0);
    return names.map((name, i) => {
      if (blocks[i] >= 0) return of[blocks[i]] ?? -1;
      if (byName.has(name)) return byName.get(name)!;
      const edge = i < first ? of[0] : of[of.length - 1];
      return edge ?? -1;
    });
  }

  /** The block a row stands for, or the nearest block after it (before it, past the last). */
  private blockAtRow(row: number): number {
    const blocks = this.rowBlocks();
    for (let r = row; r < blocks.length; r++) if (blocks[r] >= 0) return blocks[r];
    for (let r = row; r >= 0; r--) if (blocks[r] >= 0) return blocks[r];
    return -1;
  }

  private stageCount(): number {
    return Math.max(
      this.plan?.stages?.length ?? 0,
      this.plan?.parallel?.pipeline ?? 1,
      this.report?.stages.length ?? 1,
    );
  }

  private assignStage(stage: number): void {
    if (!this.selected.size) return;
    const of = this.stageOf();
    const blocks = this.rowBlocks();
    for (const row of this.selected) if (blocks[row] >= 0 && blocks[row] < of.length) of[blocks[row]] = stage;
    this.writeStages(of, stage + 1);
  }

  /**
   * Moves the boundary where `stage` begins to row `start` (drag, or arrow keys on the handle):
   * rows between change sides; each of the two stages keeps at least one layer.
   */
  private moveBoundary(stage: number, start: number): void {
    const of = this.stageOf();
    const first = of.indexOf(stage);
    const prevFirst = of.indexOf(stage - 1);
    const last = of.lastIndexOf(stage);
    if (first < 0 || prevFirst < 0) return;
    start = Math.max(prevFirst + 1, Math.min(last, start));
    if (start === first) return;
    if (start < first) for (let i = start; i < first; i++) of[i] = of[i] === stage - 1 ? stage : of[i];
    else for (let i = first; i < start; i++) of[i] = of[i] === stage ? stage - 1 : of[i];
    this.writeStages(of, 0);
  }

  private writeStages(of: number[], atLeast: number): void {
    const count = Math.max(atLeast, ...of.map((s) => s + 1));
    const stages: { layers: string }[] = [];
    for (let s = 0; s < count; s++) {
      const ix = of.map((v, i) => (v === s ? i : -1)).filter((i) => i >= 0);
      if (ix.length) stages.push({ layers: rangeText(ix) });
    }
    this.edit([
      { path: ['stages'], value: stages },
      { path: ['parallel', 'pipeline'], value: stages.length },
    ]);
  }

  private rebalance(): void {
    const w = this.answer?.blockParameters;
    if (!w?.length) return;
    const parts = Math.min(w.length, this.plan?.parallel?.pipeline ?? this.stageCount());
    const stages = balancedSplit(
      w.map((x) => Math.max(1, x)),
      parts,
    ).map(([a, b]) => ({ layers: rangeText(Array.from({ length: b - a }, (_, i) => a + i)) }));
    this.edit([{ path: ['stages'], value: stages }]);
  }

  /**
   * One rule for the selection: the pattern typed when it selects exactly these rows, else the
   * narrowest pattern that does (`layers.*`, `layers.{3,4,5}`); one rule per row only when no
   * pattern can say it.
   */
  private applyPrecision(): void {
    const names = this.answer?.layerNames ?? [];
    const format = this.formatSelect.value || this.format;
    if (!this.selected.size || !format || !this.plan) return;
    const pat = this.pattern.value.trim();
    const chosen = [...this.selected]
      .sort((a, b) => a - b)
      .map((i) => names[i])
      .filter(Boolean);
    const byPattern =
      pat && names.filter((n) => globMatch(pat, n)).length === chosen.length && chosen.every((n) => globMatch(pat, n));
    const cover = byPattern ? pat : coverPattern(chosen, names);
    const matches = cover ? [cover] : chosen;
    const rules = (this.plan.precision?.rules ?? []).filter((r) => !matches.includes(r.match));
    rules.push(...matches.map((match) => ({ match, format })));
    this.edit([{ path: ['precision', 'rules'], value: rules }]);
  }

  private selectPattern(): void {
    const pat = this.pattern.value.trim();
    if (!pat) return;
    this.selected = new Set(
      (this.answer?.layerNames ?? []).map((n, i) => (globMatch(pat, n) ? i : -1)).filter((i) => i >= 0),
    );
    this.renderList();
  }

  private click(i: number, e: MouseEvent | KeyboardEvent): void {
    if (e.shiftKey && this.anchor >= 0) {
      const [a, b] = [Math.min(this.anchor, i), Math.max(this.anchor, i)];
      if (!(e.ctrlKey || e.metaKey)) this.selected.clear();
      for (let k = a; k <= b; k++) this.selected.add(k);
    } else if (e.ctrlKey || e.metaKey || e instanceof KeyboardEvent) {
      if (this.selected.has(i)) this.selected.delete(i);
      else this.selected.add(i);
      this.anchor = i;
    } else {
      this.selected = new Set([i]);
      this.anchor = i;
    }
    this.renderList();
    (this.list.querySelector(`[data-i="${i}"]`) as HTMLElement | null)?.focus();
  }

  private keys(e: KeyboardEvent): void {
    const row = (e.target as HTMLElement).closest('tr') as HTMLElement | null;
    if (!row?.dataset.i) return;
    const i = Number(row.dataset.i);
    const move = (j: number) => {
      const next = this.list.querySelector(`[data-i="${j}"]`) as HTMLElement | null;
      if (!next) return;
      next.focus();
      if (e.shiftKey) this.click(j, e);
    };
    if (e.key === 'ArrowDown') move(i + 1);
    else if (e.key === 'ArrowUp') move(i - 1);
    else if (e.key === ' ' || e.key === 'Enter') this.click(i, e);
    else if (/^[0-9]$/.test(e.key) && this.selected.size) {
      // Digits move the selection to that stage, or to that device when the plan places layers on devices.
      if (this.devices()) this.moveToDevice(this.selectedBlocks(), Number(e.key));
      else this.assignStage(Number(e.key));
    } else return;
    e.preventDefault();
  }

  private renderList(): void {
    const names = this.answer?.layerNames ?? [];
    const blocks = this.rowBlocks();
    const stages = this.rowStages();
    const devices = this.devices();
    const blockDev = devices ? this.deviceOf() : [];
    const outputDev = devices?.find((d) => d.output)?.index ?? -1;
    // Rows that are not blocks: the embeddings stay on the host, the final norm and head go with the output layer.
    const firstBlockRow = blocks.findIndex((b) => b >= 0);
    const devOf = blocks.map((b, i) => (b >= 0 ? blockDev[b] : i < firstBlockRow ? -1 : outputDev));
    const table = el('table');
    table.setAttribute('role', 'grid');
    table.setAttribute('aria-multiselectable', 'true');
    const head = table.createTHead().insertRow();
    for (const [h, tip] of [
      ['#', ''],
      ['layer', ''],
      ['params', ''],
      [devices ? 'device' : 'stage', ''],
      ['precision', ''],
      ['SQNR', "the weights' SQNR in this precision"],
      ['sensitivity', "how much of the layer's weight noise reaches the output (measured; 1 when first-order)"],
      ['at output', 'the output SQNR this layer’s noise alone gives'],
    ]) {
      const th = el('th', undefined, h);
      if (tip) th.title = tip;
      head.append(th);
    }
    const body = table.createTBody();
    this.shownRows = [];
    let prevBlockStage = -1;
    names.forEach((name, i) => {
      const tr = body.insertRow();
      tr.dataset.i = String(i);
      tr.tabIndex = 0;
      tr.setAttribute('aria-selected', String(this.selected.has(i)));
      tr.className = this.selected.has(i) ? 'sel' : '';
      const stage = stages[i] ?? -1;
      const rows = this.errors?.layers.filter((l) => l.name === name) ?? [];
      const fmt = rows.map((r) => r.format).join(', ') || formatFor(this.plan?.precision, name, name);
      const sq = rows.filter((r) => r.sqnrDb !== null).map((r) => r.sqnrDb!);
      const gain = rows.find((r) => r.sensitivity !== undefined)?.sensitivity;
      const outAt = rows
        .filter((r) => r.outputSqnrDb !== undefined && r.outputSqnrDb !== null)
        .map((r) => r.outputSqnrDb!);
      const cells = [
        String(i),
        name,
        formatCount(this.answer?.layerParameters?.[i] ?? 0),
        devices
          ? (devices.find((d) => d.index === devOf[i])?.name ?? devices.find((d) => d.kind === 'cpu')?.name ?? 'host')
          : stage >= 0
            ? String(stage)
            : '—',
        fmt,
        sq.length ? `${Math.min(...sq).toFixed(1)} dB` : '—',
        gain !== undefined && sq.length ? `×${gain < 0.01 ? gain.toExponential(1) : gain.toFixed(2)}` : '—',
        outAt.length ? `${Math.min(...outAt).toFixed(1)} dB` : '—',
      ];
      this.shownRows.push({ name, parameters: cells[2], stage: cells[3], precision: fmt });
      // The first block of every stage after the first carries the boundary handle: drag it along the list.
      const boundary = blocks[i] >= 0 && stage > 0 && prevBlockStage === stage - 1;
      if (blocks[i] >= 0) prevBlockStage = stage;
      cells.forEach((c, k) => {
        const td = tr.insertCell();
        td.textContent = c;
        if (devices) {
          if (k === 3) td.className = `stage s${(devOf[i] + 8) % 8}`;
        } else {
          if (k === 3 && stage >= 0) td.className = `stage s${stage % 8}`;
          if (k === 3 && boundary) td.append(this.handle(stage, i));
        }
        if (k === 7 && outAt.length) td.className = this.heat(name) ?? '';
        if (k === 5 && sq.length && !outAt.length) td.className = this.heat(name) ?? '';
      });
      tr.addEventListener('click', (e) => this.click(i, e));
    });
    // Redrawing keeps the keyboard where it was: on the same row, or on the same stage's boundary handle.
    const had = this.list.contains(document.activeElement) ? (document.activeElement as HTMLElement) : undefined;
    const again =
      had?.dataset.boundary !== undefined
        ? `[data-boundary="${had.dataset.boundary}"]`
        : had?.dataset.i !== undefined
          ? `tr[data-i="${had.dataset.i}"]`
          : undefined;
    this.list.replaceChildren(table);
    if (again) (table.querySelector(again) as HTMLElement | null)?.focus();
    // One button per stage (and one more): assign the selection there. Device plans move layers between lanes instead.
    if (this.stageButtons.parentElement) this.stageButtons.parentElement.style.display = devices ? 'none' : '';
    this.stageButtons.replaceChildren();
    const n = this.stageCount();
    for (let s = 0; s <= n; s++) {
      const b = custom(
        'vscode-button',
        {
          'data-stage': String(s),
          secondary: '',
          title:
            s < n ? `Assign the selected layers to stage ${s} (key ${s})` : 'Assign the selected layers to a new stage',
        },
        s < n ? String(s) : `+ ${s}`,
      );
      b.addEventListener('click', () => this.assignStage(s));
      this.stageButtons.append(b);
    }
  }

  private handle(stage: number, row: number): HTMLElement {
    const h = el('span', 'handle', '⇕');
    h.tabIndex = 0;
    h.dataset.boundary = String(stage);
    h.setAttribute('role', 'slider');
    h.setAttribute(
      'aria-label',
      `Boundary between stage ${stage - 1} and stage ${stage}: drag, or Up / Down to move it`,
    );
    h.setAttribute('aria-valuenow', String(row));
    h.title = 'Drag to move the stage boundary (or focus and press Up / Down)';
    h.addEventListener('click', (e) => e.stopPropagation());
    h.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
      e.preventDefault();
      e.stopPropagation();
      // From where the boundary is now, not where it was when this handle was drawn (stages count blocks, not rows).
      const at = this.stageOf().indexOf(stage);
      this.moveBoundary(stage, (at < 0 ? this.blockAtRow(row) : at) + (e.key === 'ArrowUp' ? -1 : 1));
    });
    h.addEventListener('pointerdown', (e) => {
      e.preventDefault();
      e.stopPropagation();
      // Listen on the window, not the handle: an estimate or a measurement arriving mid-drag redraws the list.
      const rowAt = (ev: PointerEvent) =>
        document.elementFromPoint(ev.clientX, ev.clientY)?.closest('tr[data-i]') as HTMLElement | null;
      const over = (ev: PointerEvent) => {
        this.list.querySelectorAll('.drop').forEach((x) => x.classList.remove('drop'));
        rowAt(ev)?.classList.add('drop');
      };
      const up = (ev: PointerEvent) => {
        window.removeEventListener('pointermove', over);
        window.removeEventListener('pointerup', up);
        this.list.querySelectorAll('.drop').forEach((x) => x.classList.remove('drop'));
        const tr = rowAt(ev);
        if (tr) this.moveBoundary(stage, this.blockAtRow(Number(tr.dataset.i)));
      };
      window.addEventListener('pointermove', over);
      window.addEventListener('pointerup', up);
    });
    return h;
  }

  /**
   * The form for the plan's scalars. A new state with the same fields only updates their values, and never the
   * field being typed in: rebuilding would throw away what the user is typing when the file's state comes back.
   */
  private buildForm(): void {
    const p = this.plan;
    if (!p) {
      this.form.replaceChildren();
      this.fields.clear();
      this.formShape = '';
      return;
    }
    const cat = this.state?.catalog ?? [];
    type Spec =
      | { label: string; path: (string | number)[]; value: unknown; options?: string[]; numeric: boolean }
      | { heading: string };
    const specs: Spec[] = [];
    const add = (label: string, path: (string | number)[], value: unknown, options?: string[], numeric = true) =>
      specs.push({ label, path, value, options, numeric });
    const heading = (text: string) => specs.push({ heading: text });
    if (p.cluster) {
      heading('Cluster');
      // An alias ("h100") shows as the catalog entry it names; an unknown name stays visible (the problems offer the fix).
      const gpu = findGpu(String(p.cluster.gpu ?? ''))?.id ?? p.cluster.gpu;
      const gpuIds = cat.map((g) => g.id);
      add('GPU', ['cluster', 'gpu'], gpu, gpu && !gpuIds.includes(gpu) ? [gpu, ...gpuIds] : gpuIds, false);
      add('Nodes', ['cluster', 'nodes'], p.cluster.nodes ?? 1);
      add('GPUs per node', ['cluster', 'gpusPerNode'], p.cluster.gpusPerNode);
      // Links: blank keeps the catalog's figure for the GPU (NVLink inside a node, the NIC between nodes).
      add(
        'NVLink GB/s per GPU (blank: catalog)',
        ['cluster', 'intraNode', 'bandwidthGBps'],
        p.cluster.intraNode?.bandwidthGBps,
      );
      add(
        'Network GB/s per GPU (blank: catalog)',
        ['cluster', 'interNode', 'bandwidthGBps'],
        p.cluster.interNode?.bandwidthGBps,
      );
    }
    if (p.training) {
      heading('Training');
      add('Global batch', ['training', 'globalBatch'], p.training.globalBatch);
      add('Micro-batch', ['training', 'microBatch'], p.training.microBatch);
      add('Sequence length', ['training', 'seqLen'], p.training.seqLen);
      add('Recompute', ['training', 'recompute'], p.training.recompute ?? 'none', ['none', 'selective', 'full'], false);
      // The software profile: its defaults (overlaps, attention kernel, sharding) and calibrated efficiency.
      const framework = p.training.framework ?? DEFAULT_FRAMEWORK;
      add('Framework', ['training', 'framework'], framework, Object.keys(PROFILES), false);
      add('Precision', ['training', 'dtype'], p.training.dtype ?? 'bf16', ['bf16', 'fp16', 'fp8', 'fp32'], false);
      if (p.training.dtype === 'fp8') {
        add(
          'fp8 scaling',
          ['training', 'fp8Recipe'],
          p.training.fp8Recipe ?? 'delayed',
          ['delayed', 'current', 'blockwise'],
          false,
        );
      }
    } else if (p.inference) {
      heading('Inference');
      add('Batch', ['inference', 'batch'], p.inference.batch);
      add('Prompt length', ['inference', 'promptLen'], p.inference.promptLen);
      add('Generated tokens', ['inference', 'genLen'], p.inference.genLen);
      if (p.devices || p.inference.runtime) {
        add(
          'Runtime',
          ['inference', 'runtime'],
          p.inference.runtime ?? 'llama.cpp',
          ['llama.cpp', 'vllm', 'accelerate'],
          false,
        );
        add('Context (blank: batch × (prompt + generated))', ['inference', 'contextLen'], p.inference.contextLen);
        add(
          'KV cache',
          ['inference', 'kvCache'],
          p.inference.kvCache ?? 'f16',
          ['f16', 'bf16', 'f32', 'q8_0', 'q5_1', 'q5_0', 'q4_1', 'q4_0', 'iq4_nl', 'fp8'],
          false,
        );
        add('GPU layers, -ngl (blank: auto-fit)', ['inference', 'gpuLayers'], p.inference.gpuLayers);
      }
    }
    heading('Parallelism');
    add('Data parallel', ['parallel', 'data'], p.parallel?.data ?? 1);
    add('Tensor parallel', ['parallel', 'tensor'], p.parallel?.tensor ?? 1);
    add('Pipeline stages', ['parallel', 'pipeline'], p.parallel?.pipeline ?? 1);
    if (p.training) {
      add('Context parallel', ['parallel', 'context'], p.parallel?.context ?? 1);
      add('Expert parallel (MoE)', ['parallel', 'expert'], p.parallel?.expert ?? 1);
    }
    add('Schedule', ['parallel', 'schedule'], p.parallel?.schedule ?? '1f1b', ['1f1b', 'gpipe', 'interleaved'], false);
    if (p.parallel?.schedule === 'interleaved') {
      add('Virtual stages per GPU', ['parallel', 'virtualStages'], p.parallel?.virtualStages ?? 2);
    }
    add(
      'Sequence parallel',
      ['parallel', 'sequenceParallel'],
      String(p.parallel?.sequenceParallel ?? false),
      ['false', 'true'],
      false,
    );
    const profile = p.training ? PROFILES[p.training.framework ?? DEFAULT_FRAMEWORK] : undefined;
    add('ZeRO stage', ['parallel', 'zero'], String(p.parallel?.zero ?? profile?.zero ?? 0), ['0', '1', '2', '3'], true);
    if (profile) {
      add(
        'Distributed optimizer',
        ['parallel', 'distributedOptimizer'],
        String(p.parallel?.distributedOptimizer ?? profile.distributedOptimizer),
        ['false', 'true'],
        false,
      );
    }
    heading('Precision');
    add('Error budget (min SQNR, dB)', ['precision', 'errorBudgetDb'], p.precision?.errorBudgetDb);

    const text = (spec: { value: unknown; options?: string[] }) =>
      spec.options ? String(spec.value ?? spec.options[0]) : spec.value === undefined ? '' : String(spec.value);
    const shape = JSON.stringify(specs.map((x) => ('heading' in x ? x.heading : [x.path, x.options])));
    if (shape === this.formShape) {
      for (const spec of specs) {
        if ('heading' in spec) continue;
        const input = this.fields.get(`f-${spec.path.join('-')}`);
        if (input && input !== document.activeElement && input.value !== text(spec)) input.value = text(spec);
      }
      return;
    }
    this.formShape = shape;
    this.form.replaceChildren();
    this.fields.clear();
    for (const spec of specs) {
      if ('heading' in spec) {
        this.form.append(el('h4', undefined, spec.heading));
        continue;
      }
      const { label, path, options, numeric } = spec;
      const id = `f-${path.join('-')}`;
      const wrap = el('div', 'field');
      const lab = custom('vscode-label', { for: id }, label);
      let input: Field | Select;
      if (options) {
        input = custom('vscode-single-select', { id, 'aria-label': label }) as Select;
        for (const o of options) {
          const known = cat.find((g) => g.id === o);
          input.append(
            custom('vscode-option', { value: o }, known ? known.name : path[1] === 'gpu' ? `${o} (unknown)` : o),
          );
        }
      } else {
        input = custom('vscode-textfield', { id, 'aria-label': label, type: numeric ? 'number' : 'text' }) as Field;
      }
      input.value = text(spec);
      input.addEventListener('change', () => {
        const raw = input.value;
        const v =
          numeric && !options
            ? raw === ''
              ? undefined
              : Number(raw)
            : options && numeric
              ? Number(raw)
              : raw === 'true'
                ? true
                : raw === 'false'
                  ? false
                  : raw;
        if (typeof v === 'number' && !Number.isFinite(v)) return;
        this.edit([{ path, value: v }]);
      });
      wrap.append(lab, input);
      this.fields.set(id, input);
      this.form.append(wrap);
    }
  }

  /** The inference devices of the estimate (a plan with `devices` or a runtime), else undefined. */
  private devices(): NonNullable<CostReport['devices']> | undefined {
    return this.report?.runtime ? this.report.devices : undefined;
  }

  /** Plan device index of each block (−1: the host), from the estimate's placement. */
  private deviceOf(): number[] {
    const n = this.answer?.blockParameters.length ?? 0;
    const out = new Array<number>(n).fill(-1);
    for (const d of this.devices() ?? []) for (const b of d.layerList) if (b < n) out[b] = d.index;
    return out;
  }

  /**
   * Moves blocks to a device (a drop on its lane, or the device's button with rows selected): the plan's
   * stages become the runs of consecutive blocks per device (stages[].device); blocks left on the host
   * belong to no stage. Explicit stage devices win over -ngl / --tensor-split.
   */
  private moveToDevice(blocks: number[], device: number): void {
    const of = this.deviceOf();
    for (const b of blocks) if (b >= 0 && b < of.length) of[b] = device;
    const stages: { layers: string; device: number }[] = [];
    for (let i = 0; i < of.length;) {
      let j = i;
      while (j + 1 < of.length && of[j + 1] === of[i]) j++;
      if (of[i] >= 0) {
        stages.push({ layers: rangeText(Array.from({ length: j - i + 1 }, (_, k) => i + k)), device: of[i] });
      }
      i = j + 1;
    }
    this.edit([{ path: ['stages'], value: stages }]);
  }

  /** Devices as lanes: each holds its layers (drag them between lanes) over its memory bar. */
  private devicesView(devices: NonNullable<CostReport['devices']>): HTMLElement {
    const wrap = el('div', 'devices');
    wrap.id = 'devices';
    for (const d of devices) {
      const lane = el('div', 'lane');
      lane.dataset.lane = String(d.index);
      lane.setAttribute('aria-label', `Device ${d.name}: layers ${d.layers || 'none'}`);
      const cap = d.capacity;
      const over = cap !== null && d.memory.total > cap;
      const head = el(
        'div',
        'lane-head',
        `${d.name}  ${fmtBytes(d.memory.total)} / ${cap === null ? '?' : fmtBytes(cap)}${over ? ' — over' : ''}`,
      );
      const bar = el('div', over ? 'mbar over' : 'mbar');
      bar.dataset.deviceBar = String(d.index);
      const scale = Math.max(cap ?? 0, d.memory.total, 1);
      const parts: [string, number, string][] = [
        ['w', d.memory.weights, 'weights'],
        ['kv', d.memory.kvCache, 'KV cache'],
        ['c', d.memory.compute, 'compute'],
        ['free', Math.max(0, (cap ?? d.memory.total) - d.memory.total), 'free'],
      ];
      const label = parts.map(([, b, n]) => `${n} ${fmtBytes(b)}`).join(', ');
      bar.setAttribute('role', 'img');
      bar.setAttribute('aria-label', `${d.name}: ${label}`);
      bar.title = label;
      for (const [cls, bytes] of parts) {
        const seg = el('span', cls);
        seg.style.width = `${((100 * bytes) / scale).toFixed(2)}%`;
        bar.append(seg);
      }
      const chips = el('div', 'chips');
      for (const b of d.layerList) chips.append(this.chip(b));
      if (d.output) chips.append(el('span', 'chip out', 'out'));
      lane.append(head, bar, chips);
      wrap.append(lane);
    }
    // Keyboard and click alternative to dragging: move the selected rows to a device.
    const row = el('div', 'row');
    row.append(el('span', 'lbl', 'Move selected layers to:'));
    for (const d of devices) {
      const b = custom('vscode-button', { 'data-device': String(d.index), secondary: '' }, d.name);
      b.addEventListener('click', () => this.moveToDevice(this.selectedBlocks(), d.index));
      row.append(b);
    }
    wrap.append(row);
    return wrap;
  }

  /** Block index of each row of the layer list (−1 for rows that are not blocks: embeddings, final norm, head). */
  private rowBlocks(): number[] {
    const names = this.answer?.layerNames ?? [];
    const blocks = this.answer?.blockIndices;
    return names.map((_, i) => (blocks ? blocks.indexOf(i) : i));
  }

  /** The selected rows' blocks. */
  private selectedBlocks(): number[] {
    const rb = this.rowBlocks();
    return [...this.selected].map((i) => rb[i]).filter((b) => b !== undefined && b >= 0);
  }

  /** A layer on a device lane: drag it to another lane. */
  private chip(block: number): HTMLElement {
    const row = this.rowBlocks().indexOf(block);
    const c = el('span', this.selected.has(row) ? 'chip sel' : 'chip', String(block));
    c.dataset.layer = String(block);
    c.tabIndex = 0;
    c.title = `Layer ${block}: drag to another device`;
    c.addEventListener('pointerdown', (e) => {
      e.preventDefault();
      const laneAt = (ev: PointerEvent) =>
        document.elementFromPoint(ev.clientX, ev.clientY)?.closest('[data-lane]') as HTMLElement | null;
      const over = (ev: PointerEvent) => {
        this.results.querySelectorAll('.lane.drop').forEach((x) => x.classList.remove('drop'));
        laneAt(ev)?.classList.add('drop');
      };
      const up = (ev: PointerEvent) => {
        window.removeEventListener('pointermove', over);
        window.removeEventListener('pointerup', up);
        this.results.querySelectorAll('.lane.drop').forEach((x) => x.classList.remove('drop'));
        const lane = laneAt(ev);
        if (!lane) return;
        const to = Number(lane.dataset.lane);
        // A selected layer carries the selection with it.
        const moving = this.selected.has(row) ? this.selectedBlocks() : [block];
        if (this.deviceOf()[block] !== to) this.moveToDevice(moving, to);
      };
      window.addEventListener('pointermove', over);
      window.addEventListener('pointerup', up);
    });
    return c;
  }

  private renderResults(): void {
    this.results.replaceChildren();
    // One diagnostic source: the plan file's diagnostics, the list the Problems panel and `layerplan check` show,
    // with their quick fixes. The worker's own model checks only fill in while an edit is on its way to the file.
    const issues = this.state?.issues ?? [];
    const listed = new Set(issues.map((i) => i.message));
    const errors = issues.some((i) => i.severity === 'error');
    const problems: { text: string; fixes?: { title: string; edits: PlanEdit[] }[] }[] = [
      ...issues.map((i) => ({ text: `${i.severity}: ${i.message}`, fixes: i.fixes })),
      ...(this.pending.size ? (this.answer?.problems ?? []) : [])
        .filter((p) => !listed.has(p))
        .map((p) => ({ text: `error: ${p}` })),
      ...(this.answer?.engineError && !errors ? [{ text: `error: ${this.answer.engineError}` }] : []),
      ...(this.failure ? [{ text: this.failure }] : []),
    ];
    const r = this.report;
    const summary = el('div', 'psummary');
    summary.id = 'plan-summary';
    if (!this.plan) {
      summary.textContent =
        this.state?.exists === false ? 'No plan file beside this model: "New plan" creates one.' : 'Loading…';
    } else if (!r) {
      summary.textContent = `The plan cannot be estimated: ${(problems.find((p) => p.text.startsWith('error: '))?.text ?? 'see the problems below').replace(/^error: /, '')}`;
    } else if (r.runtime && r.devices) {
      const rt = r.runtime;
      const over = r.devices.filter((d) => d.capacity !== null && d.memory.total > d.capacity).length;
      summary.textContent =
        `${rt.runtime} ${rt.version}: prefill ${fmtS(r.prefillSeconds!)} · ${r.decodeTokensPerSecond!.toFixed(1)} tokens/s · ${r.devices.length} devices` +
        (over ? ` · ${over} over memory` : '') +
        (rt.gpuLayers !== undefined
          ? ` · -ngl ${rt.gpuLayers}${rt.tensorSplit ? ` -ts ${rt.tensorSplit.join(',')}` : ''}`
          : '') +
        ` (estimated in ${this.answer!.ms.toFixed(1)} ms)`;
    } else {
      const peak = Math.max(...r.stages.map((s) => s.memory.total));
      const cap = r.stages[0]?.capacity ?? 1;
      summary.textContent =
        `${fmtBytes(peak)} / ${fmtBytes(cap)} per GPU · ${fmtS(r.iterationSeconds)}/step · MFU ${(r.mfu * 100).toFixed(1)}%` +
        (r.hfu !== undefined && r.hfu !== r.mfu ? ` · HFU ${(r.hfu * 100).toFixed(1)}%` : '') +
        ` · bubble ${(r.bubbleFraction * 100).toFixed(1)}% · ${r.gpus} × ${r.gpu}` +
        (this.errors?.outputSqnrDb != null
          ? ` · output SQNR ≈ ${this.errors.outputSqnrDb.toFixed(1)} dB` +
            (this.errors.errorModel === 'calibrated' && this.errors.firstOrderSqnrDb != null
              ? ` (calibrated; first-order ${this.errors.firstOrderSqnrDb.toFixed(1)} dB)`
              : ' (first-order)')
          : '') +
        ` (estimated in ${this.answer!.ms.toFixed(1)} ms)`;
    }
    this.results.append(summary);
    if (this.errors?.note) {
      const note = el('div', 'pnote', this.errors.note);
      note.setAttribute('role', 'status');
      this.results.append(note);
    }
    const exportText = this.exportSection();
    if (problems.length) {
      const ul = el('ul', 'problems');
      ul.setAttribute('aria-label', 'Problems');
      for (const p of problems) {
        const li = el('li', undefined, p.text);
        // The quick fixes the editor offers, as buttons: the same edits, through the same plan-file edit.
        for (const f of p.fixes ?? []) {
          const b = custom('vscode-button', { secondary: '', class: 'fix', title: f.title }, f.title);
          b.addEventListener('click', () => this.edit(f.edits));
          li.append(' ', b);
        }
        ul.append(li);
      }
      this.results.append(ul);
    }
    const devices = this.devices();
    if (r && devices) {
      const notes = el('ul', 'pnotes');
      for (const n of r.runtime!.notes) notes.append(el('li', undefined, n));
      for (const f of [r.runtime!.fix, ...r.runtime!.suggestions].filter(Boolean)) {
        const li = el('li', undefined, `${f!.title} `);
        const apply = custom('vscode-button', { secondary: '', 'data-fix': f!.title }, 'Apply');
        apply.addEventListener('click', () => this.edit(f!.edits));
        li.append(apply);
        notes.append(li);
      }
      this.results.append(el('h4', undefined, 'Devices (drag layers between them)'), this.devicesView(devices), notes);
    } else if (r) {
      const schedule: Node[] = r.inference
        ? [el('h4', undefined, 'Inference'), this.inferenceTable(r.inference)]
        : [el('h4', undefined, 'Pipeline schedule (one iteration)'), this.chart(ganttSvg(r))];
      this.results.append(
        el('h4', undefined, 'Memory per GPU, by stage'),
        this.chart(memorySvg(r)),
        ...schedule,
        el('h4', undefined, 'Communication'),
        this.commTable(r),
      );
    }
    this.shown = {
      type: 'plannerShown',
      summary: summary.textContent ?? '',
      // The stages as the table shows them: the estimate's, or the plan's own while it cannot be estimated.
      stages: r?.stages.map((s) => s.layers) ?? this.plan?.stages?.map((s) => s.layers) ?? [],
      ms: this.answer?.ms ?? 0,
      pending: this.pending.size,
      rows: this.shownRows,
      problems: problems.map((p) => p.text),
      note: this.errors?.note,
      exportText,
      devices: devices?.map((d) => ({
        name: d.name,
        layers: d.layers,
        output: d.output,
        weights: d.memory.weights,
        kvCache: d.memory.kvCache,
        compute: d.memory.compute,
        total: d.memory.total,
        capacity: d.capacity,
        bar: (this.results.querySelector(`[data-device-bar="${d.index}"]`) as HTMLElement | null)?.title ?? '',
      })),
    };
    this.postShown();
  }

  /** Tells the host what the planner shows (the estimate's summary, the stages, the search panel). */
  private postShown(): void {
    if (this.shown) this.host.post({ ...this.shown, search: this.search.shown() });
  }

  /** The last export: measured against predicted (or its progress, or why it failed); returns its text. */
  private exportSection(): string | undefined {
    const m = this.exported;
    if (!m) return undefined;
    const box = el('div', 'pexport');
    box.id = 'quant-export';
    box.setAttribute('role', 'status');
    box.append(el('h4', undefined, 'Quantized export'));
    const db = (v: number | null) => (v === null ? 'exact' : `${v.toFixed(1)} dB`);
    if (m.progress && !m.shown) box.append(el('div', undefined, `Exporting… ${m.progress}`));
    if (m.error) box.append(el('div', 'problems', `Export failed: ${m.error}`));
    const s = m.shown;
    if (s) {
      const t = el('table', 'comm');
      const rows: [string, string][] = [
        ['exported model', s.file],
        ['output SQNR measured (onnxruntime)', db(s.measuredSqnrDb)],
        [`predicted (${s.errorModel})`, db(s.predictedSqnrDb)],
        ['first-order', db(s.firstOrderSqnrDb)],
        ...(s.klDivergence !== null
          ? ([
              ['KL divergence (nats per position)', s.klDivergence.toExponential(2)],
              ['top-1 agreement', `${((s.top1Agreement ?? 0) * 100).toFixed(1)}%`],
            ] as [string, string][])
          : []),
        ['inputs', `${s.batches} batches, ${s.generatedInputs ? 'generated' : 'your samples'}`],
        ...s.simulated.map((x): [string, string] => [`${x.format} simulated`, x.reason]),
      ];
      for (const [k, v] of rows) {
        const row = t.insertRow();
        row.insertCell().textContent = k;
        row.insertCell().textContent = v;
      }
      box.append(t);
    }
    this.results.append(box);
    return box.textContent ?? '';
  }

  /** A chart from the engine's SVG text (the same the exported report embeds); it holds no user-supplied names. */
  private chart(svg: string): Element {
    return document.importNode(new DOMParser().parseFromString(svg, 'image/svg+xml').documentElement, true);
  }

  private inferenceTable(i: NonNullable<CostReport['inference']>): HTMLTableElement {
    const t = el('table', 'comm');
    for (const [k, v] of [
      ['prefill', fmtS(i.prefillSeconds)],
      ['decode per token', fmtS(i.decodeSecondsPerToken)],
      ['tokens per second', i.tokensPerSecond.toFixed(0)],
      ['KV cache per GPU', fmtBytes(i.kvCacheBytes)],
    ]) {
      const row = t.insertRow();
      row.insertCell().textContent = k;
      row.insertCell().textContent = v;
    }
    return t;
  }

  private commTable(r: CostReport): HTMLTableElement {
    const t = el('table', 'comm');
    const h = t.createTHead().insertRow();
    for (const x of ['kind', 'link', 'bytes per GPU', 'time']) h.append(el('th', undefined, x));
    const ops: Record<string, string> = {
      data: 'gradient all-reduce',
      tensor: 'all-reduce / all-gather',
      pipeline: 'point-to-point',
    };
    for (const k of ['data', 'tensor', 'pipeline'] as const) {
      const row = t.insertRow();
      for (const v of [
        `${k} · ${ops[k]}`,
        r.communication[k].link ?? '—',
        fmtBytes(r.communication[k].bytes),
        fmtS(r.communication[k].seconds),
      ]) {
        row.insertCell().textContent = v;
      }
    }
    return t;
  }
}
