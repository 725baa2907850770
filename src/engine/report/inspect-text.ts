import type { InspectReport } from './inspect';

export function human(n: number, unit = ''): string {
  const abs = Math.abs(n);
  const [div, suffix] =
    abs >= 1e12 ? [1e12, 'T'] : abs >= 1e9 ? [1e9, 'G'] : abs >= 1e6 ? [1e6, 'M'] : abs >= 1e3 ? [1e3, 'k'] : [1, ''];
  const v = n / div;
  return `${div === 1 ? String(Math.round(v)) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)}${suffix}${unit}`;
}

export function bytesHuman(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 2 : 0)} ${units[i]}`;
}

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
    `  ${r.nodes} nodes, ${r.tensors} weight tensors, ${human(r.parameters)} parameters, ${bytesHuman(r.bytes)}`,
  );
  const dims = Object.entries(r.bindings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  lines.push(
    `  FLOPs per run ${human(r.layers.reduce((s, l) => s + l.flops, 0))} (symbolic dims ${dims || 'bound to 1; set with --dim name=value'})`,
  );
  for (const io of r.inputs) {
    lines.push(`  input  ${io.name}: ${io.dtype}[${io.shape.map((d) => d ?? '?').join(', ')}]`);
  }
  for (const io of r.outputs) {
    lines.push(`  output ${io.name}: ${io.dtype}[${io.shape.map((d) => d ?? '?').join(', ')}]`);
  }
  if (r.unknownOps.length) lines.push(`  ops without shape/FLOP rules (kept, marked): ${r.unknownOps.join(', ')}`);
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
          ...rows.map((l) => [l.name, human(l.parameters), human(l.flops), String(l.nodes)]),
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
        ...Object.entries(r.dtypes).map(([d, n]) => [d, String(n), human(r.parametersByDtype[d])]),
      ],
      ['l', 'r', 'r'],
    ),
  );
  return lines.join('\n') + '\n';
}
