#!/usr/bin/env bash
# The whole test suite: `npm install && npm test`. Every step prints what it does; any failure stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "ONNX schema matches onnx-proto, type-check and compile (tsc)"
npm run --silent compile
step "lint (eslint: src/engine stays pure)"
npm run --silent lint
step "bundle (esbuild)"
node scripts/build.mjs --production
step "unit tests (mocha)"
rm -f test-results/counts-*.json
npx mocha --config .mocharc.json
step "package the VSIX and run the CLI from inside it"
npm run --silent package
node scripts/check-vsix.cjs out/layerplan.vsix
step "integration tests in a real VS Code (code-server + headless Chromium)"
bash scripts/setup-integration.sh
node out/test/integration/run.js
node scripts/test-summary.cjs
