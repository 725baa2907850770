/**
 * Glob match for name patterns (precision rules, --tensors): `*` any run of characters, `?` one,
 * `{a,b,c}` one of the alternatives (not nested); matched against the whole name. Compiled
 * patterns are cached: rules are matched against every layer of a model on every estimate.
 */
const compiled = new Map<string, RegExp>();

function toRegExp(pattern: string): RegExp {
  let out = '';
  let inBraces = false;
  for (const ch of pattern) {
    if (ch === '*') out += '.*';
    else if (ch === '?') out += '.';
    else if (ch === '{' && !inBraces && pattern.includes('}')) {
      out += '(?:';
      inBraces = true;
    } else if (ch === '}' && inBraces) {
      out += ')';
      inBraces = false;
    } else if (ch === ',' && inBraces) out += '|';
    else out += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  if (inBraces) return new RegExp('^' + pattern.replace(/[.+^${}()|[\]\\*?]/g, '\\$&') + '$');
  return new RegExp('^' + out + '$');
}

export function globMatch(pattern: string, name: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    re = toRegExp(pattern);
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re.test(name);
}

const SPECIAL = /[*?{},]/;

/**
 * One pattern that selects exactly `selected` among `all` names (for one precision rule over a
 * selection instead of one rule per name): `*` when everything is selected, else the shared
 * prefix and suffix (cut at a '.' or '/') around `*`, else around `{a,b,…}`. Undefined when no
 * single pattern can say it (names with glob characters in them).
 */
export function coverPattern(selected: string[], all: string[]): string | undefined {
  const chosen = [...new Set(selected)];
  if (!chosen.length || chosen.some((n) => SPECIAL.test(n))) return undefined;
  if (chosen.length === 1) return chosen[0];
  const want = new Set(chosen);
  const exact = (p: string) => all.every((n) => globMatch(p, n) === want.has(n));
  if (all.every((n) => want.has(n))) return '*';
  let prefix = chosen.reduce((p, n) => {
    let k = 0;
    while (k < p.length && k < n.length && p[k] === n[k]) k++;
    return p.slice(0, k);
  });
  let suffix = chosen.reduce((s, n) => {
    let k = 0;
    while (k < s.length && k < n.length && s[s.length - 1 - k] === n[n.length - 1 - k]) k++;
    return s.slice(s.length - k);
  });
  // Whole name segments: 'layers.1' + {0,1,2} reads worse than 'layers.' + {10,11,12}.
  prefix = prefix.slice(0, Math.max(prefix.lastIndexOf('.'), prefix.lastIndexOf('/')) + 1);
  const cut = Math.max(suffix.indexOf('.'), suffix.indexOf('/'));
  suffix = cut < 0 ? '' : suffix.slice(cut);
  const minLen = Math.min(...chosen.map((n) => n.length));
  if (prefix.length + suffix.length > minLen) suffix = '';
  const star = `${prefix}*${suffix}`;
  if ((prefix || suffix) && exact(star)) return star;
  const middles = chosen.map((n) => n.slice(prefix.length, n.length - suffix.length));
  const braces = `${prefix}{${middles.join(',')}}${suffix}`;
  return exact(braces) ? braces : undefined;
}
