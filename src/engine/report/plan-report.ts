import type { CostReport } from '../cost/estimate';
import type { Plan } from '../plan/plan';
import { GiB, formatSeconds as secs } from '../units';
import { CHART_CSS, MEMORY_PARTS, ganttSvg, memorySvg } from './charts';

/**
 * "Export report": a plan's costs as a self-contained HTML page (charts inline) or as Markdown
 * (charts as SVG files beside it). Pure: the caller writes the files.
 */
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** GiB as a number: the tables name the unit in their headers. */
const gib = (b: number) => (b / GiB).toFixed(2);

function rows(r: CostReport): { summary: [string, string][]; stages: string[][]; comm: string[][] } {
  const peak = Math.max(...r.stages.map((s) => s.memory.total));
  const summary: [string, string][] = [
    ['GPUs', `${r.gpus} × ${r.gpu}`],
    ['mode', r.mode],
    ['time per iteration', secs(r.iterationSeconds)],
    ['TFLOP/s per GPU', r.tflopsPerGpu.toFixed(1)],
    ['MFU', `${(r.mfu * 100).toFixed(1)}%`],
    ['pipeline bubble', `${(r.bubbleFraction * 100).toFixed(1)}%`],
    ['micro-batches', String(r.microBatches)],
    ['peak memory per GPU', `${gib(peak)} GiB of ${gib(r.stages[0]?.capacity ?? 0)} GiB`],
    ['parameters', r.parameters.toLocaleString('en-US')],
  ];
  const stages = r.stages.map((s) => [
    String(s.index),
    s.layers,
    ...MEMORY_PARTS.map((p) => gib(s.memory[p])),
    gib(s.memory.total),
    gib(s.capacity),
    secs(s.computeSeconds),
    secs(s.commSeconds),
    secs(s.idleSeconds),
  ]);
  const comm = (['data', 'tensor', 'pipeline'] as const).map((k) => [
    k,
    r.communication[k].link ?? '',
    `${gib(r.communication[k].bytes)} GiB`,
    secs(r.communication[k].seconds),
  ]);
  return { summary, stages, comm };
}

/** What the plan asks for, as the report's reader needs it: cluster, batch, parallel degrees, ZeRO, precision and its rules. */
function planRows(p: Plan): { settings: [string, string][]; rules: string[][] } {
  const settings: [string, string][] = [];
  const c = p.cluster;
  if (c) settings.push(['cluster', `${c.nodes ?? 1} node(s) × ${c.gpusPerNode ?? '(catalog)'} GPU(s) of ${c.gpu}`]);
  if (p.training) {
    const t = p.training;
    settings.push(
      ['global batch', String(t.globalBatch)],
      ['micro-batch', String(t.microBatch)],
      ['sequence length', String(t.seqLen ?? '(default)')],
      ['dtype', t.dtype ?? 'bf16'],
      ['recompute', t.recompute ?? 'none'],
    );
    if (t.optimizer) settings.push(['optimizer', t.optimizer]);
    if (t.framework) settings.push(['framework', t.framework]);
  }
  if (p.inference) {
    const i = p.inference;
    settings.push(
      ['batch', String(i.batch)],
      ['prompt length', String(i.promptLen)],
      ['generated tokens', String(i.genLen)],
    );
  }
  const par = p.parallel ?? {};
  settings.push(
    [
      'parallel degrees',
      `data ${par.data ?? 1} × tensor ${par.tensor ?? 1} × pipeline ${par.pipeline ?? 1}` +
        (par.context && par.context > 1 ? ` × context ${par.context}` : '') +
        (par.expert && par.expert > 1 ? `, expert ${par.expert}` : ''),
    ],
    [
      'schedule',
      `${par.schedule ?? '1f1b'}${par.schedule === 'interleaved' ? ` (${par.virtualStages ?? 2} chunks)` : ''}`,
    ],
    ['sequence parallel', par.sequenceParallel ? 'on' : 'off'],
    ['ZeRO stage', String(par.zero ?? 0)],
  );
  if (par.distributedOptimizer) settings.push(['distributed optimizer', 'on']);
  if (p.stages) settings.push(['stages', p.stages.map((s) => s.layers).join(' | ')]);
  const prec = p.precision;
  settings.push(['precision', prec?.default ?? 'bf16']);
  if (prec?.activations?.format) settings.push(['activations', prec.activations.format]);
  if (prec?.errorBudgetDb !== undefined) settings.push(['error budget', `${prec.errorBudgetDb} dB output SQNR`]);
  const rules = (prec?.rules ?? []).map((r, i) => [String(i), r.match, r.format]);
  return { settings, rules };
}

function inferenceRows(r: CostReport): string[][] {
  const i = r.inference!;
  return [
    ['prefill', secs(i.prefillSeconds)],
    ['decode per token', secs(i.decodeSecondsPerToken)],
    ['tokens per second', i.tokensPerSecond.toFixed(0)],
    ['KV cache per GPU', `${gib(i.kvCacheBytes)} GiB`],
  ];
}

const STAGE_HEAD = [
  'stage',
  'layers',
  'weights GiB',
  'gradients GiB',
  'optimizer GiB',
  'activations GiB',
  'total GiB',
  'capacity GiB',
  'compute',
  'communication',
  'idle',
];

export function planReportHtml(title: string, r: CostReport, plan?: Plan): string {
  const { summary, stages, comm } = rows(r);
  const table = (head: string[], body: string[][]) =>
    `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${body.map((row) => `<tr>${row.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  const p = plan ? planRows(plan) : undefined;
  const planSection = p
    ? `<h2>Plan</h2>${table(['', ''], p.settings)}${p.rules.length ? `<h3>Precision rules (the last match wins)</h3>${table(['#', 'match', 'format'], p.rules)}` : ''}`
    : '';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8"><title>${esc(title)} — Layerplan report</title>
<style>body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; } table { border-collapse: collapse; margin: 8px 0 16px; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; } .chart { max-width: 640px; display: block; }${CHART_CSS}</style></head>
<body><h1>${esc(title)}</h1>
${table(['', ''], summary)}
${planSection}
<h2>Memory per GPU, by stage</h2>${memorySvg(r)}
${r.inference ? `<h2>Inference</h2>${table(['', ''], inferenceRows(r))}` : `<h2>Pipeline schedule</h2>${ganttSvg(r)}`}
<h2>Stages</h2>${table(STAGE_HEAD, stages)}
<h2>Communication</h2>${table(['kind', 'link', 'bytes per GPU', 'time'], comm)}
${r.warnings.length ? `<h2>Warnings</h2><ul>${r.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>` : ''}
<p>Estimated by Layerplan.</p></body></html>
`;
}

/** Markdown with the two charts as image links (the caller writes `<base>-memory.svg` and `<base>-schedule.svg`). */
export function planReportMarkdown(
  title: string,
  r: CostReport,
  base: string,
  plan?: Plan,
): { markdown: string; files: Record<string, string> } {
  const { summary, stages, comm } = rows(r);
  const table = (head: string[], body: string[][]) =>
    [
      `| ${head.join(' | ')} |`,
      `|${head.map(() => ' --- ').join('|')}|`,
      ...body.map((row) => `| ${row.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`),
    ].join('\n');
  const p = plan ? planRows(plan) : undefined;
  const planSection = p
    ? `## Plan\n\n${table(['', ''], p.settings)}\n${p.rules.length ? `\n### Precision rules (the last match wins)\n\n${table(['#', 'match', 'format'], p.rules)}\n` : ''}\n`
    : '';
  const style = (svg: string) => svg.replace('>', `><style>${CHART_CSS}</style>`);
  const markdown = `# ${title}

${table(['', ''], summary)}

${planSection}## Memory per GPU, by stage

![memory per GPU](${base}-memory.svg)

${
  r.inference
    ? `## Inference

${table(['', ''], inferenceRows(r))}
`
    : `## Pipeline schedule

![pipeline schedule](${base}-schedule.svg)
`
}
## Stages

${table(STAGE_HEAD, stages)}

## Communication

${table(['kind', 'link', 'bytes per GPU', 'time'], comm)}
${r.warnings.length ? `\n## Warnings\n\n${r.warnings.map((w) => `- ${w}`).join('\n')}\n` : ''}`;
  const files: Record<string, string> = { [`${base}-memory.svg`]: style(memorySvg(r)) };
  if (!r.inference) files[`${base}-schedule.svg`] = style(ganttSvg(r));
  return { markdown, files };
}
