/**
 * Symbolic dimensions: a Dim is a number, a product of named symbols with a coefficient written as
 * a string ("batch*sequence", "2*sequence"), or null when unknown. Enough algebra for the shapes
 * that torch and HF exports build from Shape → Gather → Concat → Reshape chains.
 */
export type Dim = number | string | null;
export type Shape = Dim[];

interface Mono {
  coef: number;
  syms: string[];
}

const parsed = new Map<string, Mono>();

function parse(d: Dim): Mono | null {
  if (d === null) return null;
  if (typeof d === 'number') return { coef: d, syms: [] };
  let m = parsed.get(d);
  if (!m) {
    m = parseProduct(d);
    if (parsed.size < 10000) parsed.set(d, m);
  }
  return { coef: m.coef, syms: [...m.syms] };
}

function parseProduct(d: string): Mono {
  let coef = 1;
  const syms: string[] = [];
  for (const part of d.split('*')) {
    if (/^-?\d+$/.test(part)) coef *= Number(part);
    else if (part) syms.push(part);
  }
  return { coef, syms: syms.sort() };
}

function format(m: Mono): Dim {
  if (!m.syms.length) return m.coef;
  if (m.coef === 0) return 0;
  return (m.coef === 1 ? '' : `${m.coef}*`) + m.syms.join('*');
}

/** Turns a dim_param into a symbol safe for this algebra (no '*', not numeric). */
export function symbol(name: string): Dim {
  const clean = name.replace(/\*/g, '×').trim();
  return clean === '' || /^-?\d+$/.test(clean) ? null : clean;
}

export function mulDims(a: Dim, b: Dim): Dim {
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return null;
  return format({ coef: x.coef * y.coef, syms: [...x.syms, ...y.syms].sort() });
}

export function divDims(a: Dim, b: Dim): Dim {
  const x = parse(a);
  const y = parse(b);
  if (!x || !y || y.coef === 0) return null;
  const syms = [...x.syms];
  for (const s of y.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return null;
    syms.splice(i, 1);
  }
  if (x.coef % y.coef !== 0) return null;
  return format({ coef: x.coef / y.coef, syms });
}

export function addDims(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  return null;
}

export function productOf(dims: Shape): Dim {
  let p: Dim = 1;
  for (const d of dims) p = mulDims(p, d);
  return p;
}

/** Evaluates a dim with symbol bindings (unbound symbols count as 1, unknown dims as 1: graph/warnings.ts says which, wherever the numbers are shown). */
export function evalDim(d: Dim, bindings: Record<string, number>): number {
  if (typeof d === 'number') return d;
  if (d === null) return 1;
  // Read-only use of the cached parse (parse() copies it for callers that change it).
  const m = parsed.get(d) ?? parseProduct(d);
  let v = m.coef;
  for (const s of m.syms) v *= bindings[s] ?? 1;
  return v;
}

export function evalShape(shape: Shape | undefined, bindings: Record<string, number>): number {
  if (!shape) return 0;
  let v = 1;
  for (const d of shape) v *= evalDim(d, bindings);
  return v;
}

/** Numpy-style broadcasting of two shapes; unknown where it cannot tell. */
export function broadcast(a: Shape, b: Shape): Shape {
  const n = Math.max(a.length, b.length);
  const out: Shape = [];
  for (let i = 0; i < n; i++) {
    const x = i - (n - a.length) >= 0 ? a[i - (n - a.length)] : 1;
    const y = i - (n - b.length) >= 0 ? b[i - (n - b.length)] : 1;
    if (x === 1) out.push(y);
    else if (y === 1) out.push(x);
    else if (x === y) out.push(x);
    else if (x === null) out.push(y);
    else if (y === null) out.push(x);
    else out.push(typeof x === 'number' ? y : x);
  }
  return out;
}

export function symbolsIn(d: Dim): string[] {
  return parse(d)?.syms ?? [];
}
