import type { VerifyReport } from '../src/engine/quant/verify';
import { formatBytes, formatCount } from '../src/engine/units';
import type { HostToWebview, ModelSummary, NodeDetails } from '../src/protocol';
import { post } from './vscode-api';

/**
 * The details pane beside the graph: the model's summary, a node's or a layer's details, and the
 * report of a verification. Every name is set as text, never as markup.
 */
export class Details {
  constructor(readonly aside: HTMLElement) {}

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
  }

  showNode(d: NodeDetails): void {
    const rows: [string, string][] = [
      ['op', d.domain ? `${d.domain}.${d.opType}` : d.opType],
      ['layer', d.layer],
      ['FLOPs', formatCount(d.flops)],
      ['parameters', formatCount(d.parameters)],
      ...(d.shapeError !== undefined ? [['shape rule failed', d.shapeError] as [string, string]] : []),
    ];
    for (const i of d.inputs) rows.push([i.weight ? 'weight' : 'input', `${i.name}: ${i.dtype}${i.shape}`]);
    for (const o of d.outputs) rows.push(['output', `${o.name}: ${o.dtype}${o.shape}`]);
    for (const [k, v] of d.attributes) rows.push([`@${k}`, v]);
    this.show(rows, d.name || d.opType);
    // A weight matrix can be run quantized on WebGPU: one button per weight.
    for (const i of d.inputs.filter((x) => x.weight && x.shape.includes(','))) {
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
