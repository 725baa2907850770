// Import rules (npm run lint:imports; part of npm test). The layering of docs/ARCHITECTURE.md:
// imports point one way, and a cycle anywhere fails.
//
//   src/extension.ts, src/host/**  →  src/node/**, src/protocol.ts, src/gpu/**, src/engine/**
//   webview/**                     →  src/protocol.ts, src/gpu/**, src/engine/**
//   src/cli.ts                     →  src/node/**, src/engine/**
//   src/engine/**: each folder imports only the folders below it:
//     report  →  search  →  export  →  check  →  cost  →  plan  →  quant  →  formats  →  graph  →  hardware  →  base
//   (base: src/engine/*.ts — bytes, errors, glob)
'use strict';

const ENGINE = ['report', 'search', 'export', 'check', 'cost', 'plan', 'quant', 'formats', 'graph', 'hardware'];
const folder = (names) => `^src/engine/(${names})/`;

/** A folder may not import any folder at its own level (other than itself) or above it. */
const layering = ENGINE.map((level, i) => {
  const above = ENGINE.slice(0, i + 1).join('|');
  return {
    name: `engine-layer-${level.split('|')[0]}`,
    comment: `src/engine/{${level}} imports only the engine folders below it (${ENGINE.slice(i + 1).join(' → ')} → base)`,
    severity: 'error',
    from: { path: folder(level) },
    to: { path: folder(above), pathNot: '^src/engine/$1/' },
  };
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'imports point one way: no cycles',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layering,
    {
      name: 'engine-base',
      comment: 'the base files (bytes, errors, glob) import no engine folder',
      severity: 'error',
      from: { path: '^src/engine/[^/]+\\.ts$' },
      to: { path: '^src/engine/[^/]+/' },
    },
    {
      name: 'engine-is-pure',
      comment: 'the engine imports nothing outside src/engine (ESLint also bans vscode, fs and the DOM there)',
      severity: 'error',
      from: { path: '^src/engine/' },
      to: { path: '^(src/(?!engine/)|webview/|test/)' },
    },
    {
      name: 'webview-is-browser',
      comment: 'the webview reaches the host only through messages: no host, node or CLI modules',
      severity: 'error',
      from: { path: '^webview/' },
      to: { path: '^src/(host|node)/|^src/(cli|extension)\\.ts$' },
    },
    {
      name: 'node-helpers-below-host',
      comment: 'src/node serves the CLI and the host alike: it imports neither',
      severity: 'error',
      from: { path: '^src/node/' },
      to: { path: '^src/host/|^src/(cli|extension)\\.ts$|^webview/' },
    },
    {
      name: 'cli-not-host',
      comment: 'the command line does not load VS Code code',
      severity: 'error',
      from: { path: '^src/cli\\.ts$' },
      to: { path: '^src/host/|^webview/' },
    },
    {
      name: 'protocol-types-only',
      comment: 'the protocol names engine types only',
      severity: 'error',
      from: { path: '^src/protocol\\.ts$' },
      to: { path: '^src/(host|node)/|^webview/' },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.generated\\.ts$' },
  },
};
