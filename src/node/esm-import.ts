/** Where dist/cli.js (src/node/code-cache.ts) leaves an `import()` compiled by Node's own loader. */
export const ESM_IMPORT = Symbol.for('layerplan.esmImport');

/**
 * `import(specifier)` for ES modules (the npm package webgpu), also from the CLI's bundle when
 * dist/cli.js runs it from V8's code cache: Node 20 loses a cached script's import() callback, so
 * the launcher's import() is used there (bare specifiers resolve from dist/, the bundle's folder).
 */
export function esmImport(specifier: string): Promise<unknown> {
  const launcher = (globalThis as Record<symbol, unknown>)[ESM_IMPORT] as
    ((specifier: string) => Promise<unknown>) | undefined;
  return launcher ? launcher(specifier) : import(specifier);
}
