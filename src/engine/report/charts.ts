import type { CostReport } from '../cost/estimate';
import { formatGiB as gib, formatSeconds as secs } from '../units';

/**
 * The planner's charts as SVG text: memory per GPU by stage (stacked against capacity) and the
 * pipeline schedule (a Gantt chart with the idle time visible). The webview draws these and
 * "Export report" embeds the same. Colours are classes; the exporter and the webview style them.
 */
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const n = (v: number) => (Number.isFinite(v) ? +v.toFixed(2) : 0);

export const MEMORY_PARTS = ['weights', 'gradients', 'optimizer', 'activations'] as const;

export function memorySvg(r: CostReport): string {
  const rowH = 22;
  const W = 420;
  const left = 64;
  const max = Math.max(1, ...r.stages.map((s) => Math.max(s.memory.total, s.capacity)));
  const scale = (W - left - 10) / max;
  const out: string[] = [];
  const desc: string[] = [];
  r.stages.forEach((s, i) => {
    const y = i * rowH + 4;
    out.push(`<text x="0" y="${y + 13}">stage ${s.index}</text>`);
    let x = left;
    for (const p of MEMORY_PARTS) {
      const w = Math.max(0, s.memory[p] * scale);
      out.push(
        `<rect x="${n(x)}" y="${y}" width="${n(w)}" height="${rowH - 6}" class="m-${p}"><title>stage ${s.index} ${p}: ${gib(s.memory[p])}</title></rect>`,
      );
      x += w;
    }
    const cx = n(left + s.capacity * scale);
    out.push(
      `<line x1="${cx}" x2="${cx}" y1="${y - 2}" y2="${y + rowH - 4}" class="${s.memory.total > s.capacity ? 'cap over' : 'cap'}"/>`,
    );
    desc.push(`stage ${s.index}: ${gib(s.memory.total)} of ${gib(s.capacity)}`);
  });
  const ly = r.stages.length * rowH + 18;
  MEMORY_PARTS.forEach((p, k) =>
    out.push(
      `<rect x="${left + k * 90}" y="${ly - 9}" width="10" height="10" class="m-${p}"/><text x="${left + k * 90 + 14}" y="${ly}">${p}</text>`,
    ),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart memory" width="${W}" height="${ly + 6}" viewBox="0 0 ${W} ${ly + 6}" role="img" aria-label="${esc(`Memory per GPU: ${desc.join('; ')}`)}">${out.join('')}</svg>`;
}

export function ganttSvg(r: CostReport): string {
  const rowH = 18;
  const W = 420;
  const left = 64;
  const stages = r.stages.length;
  // The axis spans the whole iteration: the schedule, then the data-parallel gradient sync and the optimizer step
  // (the summary's time per step is this end, not the last backward's).
  const makespan = Math.max(0, ...r.timeline.map((e) => e.end));
  const end = Math.max(1e-12, makespan, r.iterationSeconds);
  const scale = (W - left - 6) / end;
  const optimizer = Math.min(r.optimizerSeconds, Math.max(0, end - makespan));
  const sync = Math.max(0, end - makespan - optimizer);
  const out: string[] = [];
  for (let s = 0; s < stages; s++) {
    out.push(
      `<text x="0" y="${s * rowH + 13}">stage ${s}</text><rect x="${left}" y="${s * rowH + 2}" width="${n(end * scale)}" height="${rowH - 4}" class="idle"/>`,
    );
  }
  // Very long schedules are thinned to 4,000 boxes: the chart stays light, the bubble stays visible.
  const step = Math.max(1, Math.ceil(r.timeline.length / 4000));
  r.timeline.forEach((e, i) => {
    if (i % step) return;
    out.push(
      `<rect x="${n(left + e.start * scale)}" y="${e.stage * rowH + 2}" width="${Math.max(0.5, n((e.end - e.start) * scale))}" height="${rowH - 4}" class="${e.pass === 'forward' ? 'fwd' : 'bwd'}">` +
        `<title>stage ${e.stage}, micro-batch ${e.microBatch}${e.chunk ? `, chunk ${e.chunk}` : ''}: ${e.pass} ${secs(e.start)}–${secs(e.end)}</title></rect>`,
    );
  });
  for (let s = 0; s < stages; s++) {
    const y = s * rowH + 2;
    if (sync > 0) {
      out.push(
        `<rect x="${n(left + makespan * scale)}" y="${y}" width="${Math.max(0.5, n(sync * scale))}" height="${rowH - 4}" class="sync"><title>gradient sync ${secs(makespan)}–${secs(makespan + sync)}</title></rect>`,
      );
    }
    if (optimizer > 0) {
      out.push(
        `<rect x="${n(left + (makespan + sync) * scale)}" y="${y}" width="${Math.max(0.5, n(optimizer * scale))}" height="${rowH - 4}" class="opt"><title>optimizer step ${secs(makespan + sync)}–${secs(end)}</title></rect>`,
      );
    }
  }
  out.push(
    `<text x="${left}" y="${stages * rowH + 14}">0 … ${secs(end)} · forward / backward / idle (bubble ${(r.bubbleFraction * 100).toFixed(1)}%)${sync + optimizer > 0 ? ' · sync / optimizer' : ''}</text>`,
  );
  const label = `Pipeline schedule: ${stages} stages, ${r.microBatches} micro-batches, bubble ${(r.bubbleFraction * 100).toFixed(1)}% idle`;
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart gantt" width="${W}" height="${stages * rowH + 18}" viewBox="0 0 ${W} ${stages * rowH + 18}" role="img" aria-label="${esc(label)}">${out.join('')}</svg>`;
}

/** Light-theme colours for charts outside VS Code (exported reports). */
export const CHART_CSS = `
.chart text { font: 10px sans-serif; fill: #333; }
.m-weights { fill: #3794ff; } .m-gradients { fill: #b180d7; } .m-optimizer { fill: #d18616; } .m-activations { fill: #4caf50; }
.cap { stroke: #333; stroke-width: 1.5; } .cap.over { stroke: #e51400; stroke-width: 2.5; }
.fwd { fill: #3794ff; } .bwd { fill: #4caf50; } .idle { fill: #f3f3f3; stroke: #bbb; stroke-dasharray: 2 2; }
.sync { fill: #b180d7; } .opt { fill: #d18616; }`;
