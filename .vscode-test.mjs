// @vscode/test-cli: the same integration suites in desktop VS Code (downloaded by @vscode/test-electron
// where the network allows; this workplace has no access to VS Code's CDN, so npm test runs them in
// code-server instead — see test/integration/run.ts). Run with `npx vscode-test`.
import { defineConfig } from '@vscode/test-cli';

export default defineConfig({
  files: 'out/test/integration/suite/*.itest.js',
  workspaceFolder: './examples',
  version: 'stable',
  mocha: { ui: 'bdd', timeout: 60000 },
});
