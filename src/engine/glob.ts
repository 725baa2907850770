/**
 * Glob match for name patterns (precision rules, --tensors): `*` any run of characters, `?` one;
 * matched against the whole name. Compiled patterns are cached: rules are matched against every
 * layer of a model on every estimate.
 */
const compiled = new Map<string, RegExp>();

export function globMatch(pattern: string, name: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(
      '^' +
        pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.') +
        '$',
    );
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re.test(name);
}
