import { formatBytes, formatCount } from '../units';
import type { InspectReport } from './inspect';

function table(rows: string[][], align: ('l' | 'r')[]): string {
  if (!rows.length) return '  (none)';
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (align[c] === 'r' ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The terminal report of `layerplan inspect` (also shown in VS Code's output channel). */
export function formatInspect(file: string, r: InspectReport): string {
  const lines: string[] = [];
  const opsets = Object.entries(r.opsets)
    .map(([d, v]) => `${d} ${v}`)
    .join(', ');
  lines.push(`${file}`);
  lines.push(`  format ${r.format}   producer ${r.producer || '?'} ${r.producerVersion}   opsets ${opsets || '-'}`);
  lines.push(
    `  ${r.nodes} nodes, ${r.tensors} weight tensors, ${formatCount(r.parameters)} parameters, ${formatBytes(r.bytes)}`,
  );
  const dims = Object.entries(r.bindings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  const unbound = r.unboundDims.length
    ? `${r.unboundDims.join(', ')} not bound, counted as 1: set with --dim name=value`
    : '';
  lines.push(
    `  FLOPs per run ${formatCount(r.flops)} (symbolic dims ${[dims, unbound].filter(Boolean).join('; ') || 'none'})`,
  );
  for (const io of r.inputs) {
    lines.push(`  input  ${io.name}: ${io.dtype}[${io.shape.map((d) => d ?? '?').join(', ')}]`);
  }
  for (const io of r.outputs) {
    lines.push(`  output ${io.name}: ${io.dtype}[${io.shape.map((d) => d ?? '?').join(', ')}]`);
  }
  if (r.unknownOps.length) lines.push(`  ops without shape/FLOP rules (kept, marked): ${r.unknownOps.join(', ')}`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  const top = (key: 'parameters' | 'flops') =>
    [...r.layers]
      .sort((a, b) => b[key] - a[key])
      .filter((l) => l[key] > 0)
      .slice(0, 10);
  for (const key of ['parameters', 'flops'] as const) {
    const rows = top(key);
    if (!rows.length) continue;
    lines.push('', `Top layers by ${key} (${r.layers.length} layers)`);
    lines.push(
      table(
        [
          ['layer', 'parameters', 'FLOPs', 'nodes'],
          ...rows.map((l) => [l.name, formatCount(l.parameters), formatCount(l.flops), String(l.nodes)]),
        ],
        ['l', 'r', 'r', 'r'],
      ),
    );
  }
  lines.push('', 'Ops');
  const ops = Object.entries(r.ops).sort((a, b) => b[1] - a[1]);
  const maxCount = ops[0]?.[1] ?? 1;
  lines.push(
    table(
      ops.map(([op, n]) => [op, String(n), '█'.repeat(Math.max(1, Math.round((n / maxCount) * 30)))]),
      ['l', 'r', 'l'],
    ),
  );
  lines.push('', 'Weight dtypes');
  lines.push(
    table(
      [
        ['dtype', 'tensors', 'parameters'],
        ...Object.entries(r.dtypes).map(([d, n]) => [d, String(n), formatCount(r.parametersByDtype[d])]),
      ],
      ['l', 'r', 'r'],
    ),
  );
  return lines.join('\n') + '\n';
}
