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

/**
 * A symbolic dim is a sum of monomials (KV caches: "seq_len + 1", torch's `ns - nd`), written with
 * " + " / " - " between terms; a single monomial keeps the product form ("2*batch*sequence").
 */
type Poly = Mono[];

const parsed = new Map<string, Poly>();

/** The parse of a symbolic dim, shared: read it, never change it (parse() copies it). */
function parsedDim(d: string): Poly {
  let m = parsed.get(d);
  if (!m) {
    m = parseSum(d);
    if (parsed.size < 10000) parsed.set(d, m);
  }
  return m;
}

function parse(d: Dim): Poly | null {
  if (d === null) return null;
  if (typeof d === 'number') return [{ coef: d, syms: [] }];
  return parsedDim(d).map((t) => ({ coef: t.coef, syms: [...t.syms] }));
}

/** Whether a symbolic dim is written as a sum (" + " / " - " between its terms). */
const isSum = (d: string) => d.includes(' + ') || d.includes(' - ');

function parseSum(d: string): Poly {
  if (!isSum(d)) return [parseProduct(d)];
  const parts = d.split(/ ([+-]) /);
  const out: Poly = [parseProduct(parts[0])];
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const t = parseProduct(parts[i + 1]);
    if (parts[i] === '-') t.coef = -t.coef;
    out.push(t);
  }
  return normalize(out);
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

/** Adds like terms, drops zeros, orders terms by their symbols with the constant last. */
function normalize(p: Poly): Poly {
  const by = new Map<string, Mono>();
  for (const t of p) {
    const key = t.syms.join('*');
    const have = by.get(key);
    if (have) have.coef += t.coef;
    else by.set(key, { coef: t.coef, syms: t.syms });
  }
  return [...by.entries()]
    .filter(([, t]) => t.coef !== 0)
    .sort(([a], [b]) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : a > b ? 1 : 0))
    .map(([, t]) => t);
}

function formatMono(m: Mono): string {
  if (!m.syms.length) return String(m.coef);
  return (m.coef === 1 ? '' : `${m.coef}*`) + m.syms.join('*');
}

function format(p: Poly): Dim {
  const n = normalize(p);
  if (!n.length) return 0;
  if (n.length === 1 && !n[0].syms.length) return n[0].coef;
  let out = formatMono(n[0]);
  for (let i = 1; i < n.length; i++) {
    const t = n[i];
    out += t.coef < 0 ? ` - ${formatMono({ coef: -t.coef, syms: t.syms })}` : ` + ${formatMono(t)}`;
  }
  return out;
}

/** Turns a dim_param into a symbol safe for this algebra (no '*', not numeric; WinML's "None" is no name). */
export function symbol(name: string): Dim {
  const clean = name.replace(/\*/g, '×').trim();
  if (clean === '' || clean === 'None' || clean === '?' || /^-?\d+$/.test(clean)) return null;
  // onnxruntime's symbolic shape inference writes sums ("past_seq_len + 1"): read them as sums.
  if (/ [+-] /.test(clean)) {
    const p = parseSum(clean);
    if (p.every((t) => Number.isInteger(t.coef) && t.syms.every((s) => !/\s/.test(s)))) return format(p);
  }
  return clean;
}

export function mulDims(a: Dim, b: Dim): Dim {
  // Most products in a real graph are of numbers, or by 1: no algebra (opening a model multiplies thousands).
  if (typeof a === 'number' && typeof b === 'number') return a * b === 0 ? 0 : a * b; // never -0
  if (a === null || b === null) return null;
  // By 1: the other factor as it is, unless it is a sum (format() writes sums in one order).
  if (a === 1 && (typeof b === 'number' || !isSum(b))) return b;
  if (b === 1 && (typeof a === 'number' || !isSum(a))) return a;
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return null;
  const out: Poly = [];
  for (const s of x) for (const t of y) out.push({ coef: s.coef * t.coef, syms: [...s.syms, ...t.syms].sort() });
  return format(out);
}

export function divDims(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return null;
  // A monomial by a monomial (a Reshape's -1: the input's size over the other target dims): without
  // copying the cached parses, then formatting a one-term sum.
  if ((typeof a === 'number' || !isSum(a)) && (typeof b === 'number' || !isSum(b))) {
    const x = typeof a === 'number' ? { coef: a, syms: NO_SYMS } : parsedDim(a)[0];
    const y = typeof b === 'number' ? { coef: b, syms: NO_SYMS } : parsedDim(b)[0];
    if (y.coef === 0 || x.coef % y.coef !== 0) return null;
    let syms = x.syms;
    if (y.syms.length) {
      syms = [...x.syms];
      for (const s of y.syms) {
        const i = syms.indexOf(s);
        if (i < 0) return null;
        syms.splice(i, 1);
      }
    }
    const coef = x.coef / y.coef;
    if (coef === 0) return 0; // never -0
    return syms.length ? formatMono({ coef, syms }) : coef;
  }
  return divPoly(a, b);
}

const NO_SYMS: string[] = [];

/** Division term by term, for any dims: divDims' general case (tests check its fast path against this). */
export function divPoly(a: Dim, b: Dim): Dim {
  const x = parse(a);
  const y = parse(b);
  if (!x || !y || y.length !== 1 || y[0].coef === 0) return null;
  const [d] = y;
  const out: Poly = [];
  for (const t of x) {
    const syms = [...t.syms];
    for (const s of d.syms) {
      const i = syms.indexOf(s);
      if (i < 0) return null;
      syms.splice(i, 1);
    }
    if (t.coef % d.coef !== 0) return null;
    out.push({ coef: t.coef / d.coef, syms });
  }
  return format(out);
}

export function addDims(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  const x = parse(a);
  const y = parse(b);
  return x && y ? format([...x, ...y]) : null;
}

export function subDims(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (b === 0) return a;
  const x = parse(a);
  const y = parse(b);
  return x && y ? format([...x, ...y.map((t) => ({ coef: -t.coef, syms: t.syms }))]) : null;
}

export function productOf(dims: Shape): Dim {
  // A product of numbers and monomials ("batch", "2*sequence": every shape a Reshape or a MatMul sees
  // in a transformer) is one monomial: multiplied here, without a parse and a format per factor.
  // Indexed loops here and below: these run for every tensor while a model opens, mostly before V8
  // optimizes them, and an unoptimized for…of allocates an iterator and a result per step.
  let coef = 1;
  let syms: string[] | undefined;
  for (let i = 0; i < dims.length; i++) {
    const d = dims[i];
    if (typeof d === 'number') coef *= d;
    else if (d === null) return null;
    else if (isSum(d)) return productOfSums(dims);
    else {
      const m = parsedDim(d)[0];
      coef *= m.coef;
      syms ??= [];
      for (let j = 0; j < m.syms.length; j++) syms.push(m.syms[j]);
    }
  }
  if (coef === 0) return 0; // never -0
  if (!syms) return coef;
  return formatMono({ coef, syms: syms.sort() });
}

function productOfSums(dims: Shape): Dim {
  let p: Dim = 1;
  for (let i = 0; i < dims.length; i++) p = mulDims(p, dims[i]);
  return p;
}

/** Evaluates a dim with symbol bindings (unbound symbols count as 1, unknown dims as 1: graph/warnings.ts says which, wherever the numbers are shown). */
export function evalDim(d: Dim, bindings: Record<string, number>): number {
  if (typeof d === 'number') return d;
  if (d === null) return 1;
  const p = parsedDim(d);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const m = p[i];
    let v = m.coef;
    for (let j = 0; j < m.syms.length; j++) v *= bindings[m.syms[j]] ?? 1;
    sum += v;
  }
  return sum;
}

export function evalShape(shape: Shape | undefined, bindings: Record<string, number>): number {
  if (!shape) return 0;
  let v = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    v *= typeof d === 'number' ? d : evalDim(d, bindings);
  }
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
  if (typeof d !== 'string') return [];
  const p = parsedDim(d);
  return p.length === 1 ? [...p[0].syms] : [...new Set(p.flatMap((t) => t.syms))];
}
