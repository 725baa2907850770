import type { VerifyReport } from '../src/engine/quant/verify';
import { formatBytes, formatCount } from '../src/engine/units';
import type { HostToWebview, IoEntry, ModelSummary, NodeDetails, NodeRef } from '../src/protocol';
import { post } from './vscode-api';

/**
 * The details pane beside the graph: the model's summary, a node's or a layer's details, and the
 * report of a verification. Every name is set as text, never as markup.
 */
export class Details {
  /** Go to a node (its producer, a consumer, the node reading an input): set by main.ts. */
  onGo: (ref: NodeRef) => void = () => undefined;
  /** Enter a subgraph: set by main.ts. */
  onEnter: (level: string) => void = () => undefined;

  constructor(readonly aside: HTMLElement) {}

  /** The heading shown now (for the view's report). */
  get heading(): string {
    return this.aside.querySelector('h3:not(.verify h3)')?.textContent ?? '';
  }

  /** A two-column table of label / value rows, as text. */
  keyValueTable(rows: [string, string][]): HTMLTableElement {
    const table = document.createElement('table');
    for (const [k, v] of rows) {
      const tr = table.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    }
    return table;
  }

  show(rows: [string, string][], heading: string): void {
    this.aside.replaceChildren();
    const h = document.createElement('h3');
    h.textContent = heading;
    this.aside.append(h, this.keyValueTable(rows));
  }

  /** A link that goes to a node. */
  private link(ref: NodeRef, text = `${ref.opType} ${ref.name}`): HTMLAnchorElement {
    const a = document.createElement('a');
    a.href = '#';
    a.className = 'go';
    a.textContent = text;
    a.title = `Go to ${ref.name}`;
    a.dataset.node = String(ref.node);
    a.addEventListener('click', (e) => {
      e.preventDefault();
      this.onGo(ref);
    });
    return a;
  }

  /** A section of label / value rows where values may hold links. */
  private section(title: string, rows: [string, (string | Node)[]][], cls: string): HTMLElement {
    const box = document.createElement('section');
    box.className = cls;
    const h = document.createElement('h4');
    h.textContent = title;
    const table = document.createElement('table');
    for (const [k, parts] of rows) {
      const tr = table.insertRow();
      tr.insertCell().textContent = k;
      const td = tr.insertCell();
      parts.forEach((x, i) => {
        if (i) td.append(' ');
        td.append(x);
      });
    }
    box.append(h, table);
    return box;
  }

  showSummary(summary: ModelSummary): void {
    this.show(
      [
        ['format', summary.format],
        ['producer', summary.producer || '—'],
        ['nodes', String(summary.nodes)],
        ['parameters', formatCount(summary.parameters)],
        ['weights', formatBytes(summary.bytes)],
        ['layers', String(summary.layers.length)],
        ...summary.warnings.map((w): [string, string] => ['warning', w]),
      ],
      summary.file,
    );
    // Inputs and outputs of the level shown, each a link to the node that reads or writes it.
    const io = (e: IoEntry): [string, (string | Node)[]] => [
      e.name,
      [`${e.dtype}${e.shape}`, ...(e.node ? [this.link(e.node, `→ ${e.node.name}`)] : [])],
    ];
    const where =
      summary.level.crumbs.length > 1 ? ` of ${summary.level.crumbs[summary.level.crumbs.length - 1].label}` : '';
    this.aside.append(
      this.section(`Inputs${where}`, summary.inputs.map(io), 'io inputs'),
      this.section(`Outputs${where}`, summary.outputs.map(io), 'io outputs'),
    );
  }

  showNode(d: NodeDetails): void {
    const rows: [string, string][] = [
      ['op', d.domain ? `${d.domain}.${d.opType}` : d.opType],
      ['layer', d.layer],
      ['FLOPs', formatCount(d.flops)],
      ['parameters', formatCount(d.parameters)],
      ...(d.shapeError !== undefined ? [['shape rule failed', d.shapeError] as [string, string]] : []),
    ];
    for (const [k, v] of d.attributes) rows.push([`@${k}`, v]);
    this.show(rows, d.name || d.opType);
    // Inputs with the node that produces each (go there), weights with the stored tensors behind them;
    // outputs with the nodes that consume them.
    this.aside.append(
      this.section(
        'Inputs',
        d.inputs.map((i) => [
          i.weight ? 'weight' : 'input',
          [
            `${i.name}: ${i.dtype}${i.shape}`,
            ...(i.sources?.length ? [`← ${i.sources.join(', ')}`] : []),
            ...(i.producer && !i.weight ? [this.link(i.producer, `← ${i.producer.opType} ${i.producer.name}`)] : []),
          ],
        ]),
        'io node-inputs',
      ),
      this.section(
        'Outputs',
        d.outputs.map((o) => [
          'output',
          [`${o.name}: ${o.dtype}${o.shape}`, ...o.consumers.map((c) => this.link(c, `→ ${c.opType} ${c.name}`))],
        ]),
        'io node-outputs',
      ),
    );
    for (const sg of d.subgraphs) {
      const b = document.createElement('vscode-button');
      b.textContent = `Open ${sg.label} (${sg.nodes} nodes)`;
      b.className = 'enter';
      b.dataset.level = sg.id;
      b.setAttribute('title', 'Show the subgraph as a graph of its own (Backspace or the breadcrumbs to come back)');
      b.addEventListener('click', () => this.onEnter(sg.id));
      this.aside.append(b);
    }
    // A weight matrix can be run quantized on WebGPU: one button per weight.
    for (const i of d.inputs.filter((x) => x.weight && !x.sources?.length && x.shape.includes(','))) {
      const b = document.createElement('vscode-button');
      b.textContent = `Verify ${i.name} quantized…`;
      b.setAttribute(
        'title',
        'Run this weight through the quantized WebGPU kernel and compare with the error estimate',
      );
      b.addEventListener('click', () => post({ type: 'verifyRequest', tensor: i.name }));
      this.aside.append(b);
    }
  }

  showVerify(m: Extract<HostToWebview, { type: 'verifyReport' }>): void {
    let box = this.aside.querySelector('.verify') as HTMLElement | null;
    if (!box) {
      box = document.createElement('section');
      box.className = 'verify';
      box.setAttribute('role', 'status');
      box.setAttribute('aria-live', 'polite');
      this.aside.prepend(box);
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
    box.append(h, this.keyValueTable(rows));
    post({ type: 'verifyShown', text: box.innerText || box.textContent || '' });
  }
}

const db = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} dB` : 'lossless');
