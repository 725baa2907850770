#!/usr/bin/env bash
# `npm start`: builds Layerplan, prints its CLI report on the bundled example, then serves a real
# VS Code (code-server, installed and cached by scripts/setup-integration.sh) with the extension
# installed from its VSIX and the examples/ folder open. Open the printed URL in a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "Building Layerplan (tsc, esbuild, VSIX) …"
npm run --silent compile
node scripts/build.mjs --production
npm run --silent package >/dev/null
echo
echo "layerplan inspect examples/gpt2-tiny.onnx --dim sequence=64"
node dist/cli.js inspect examples/gpt2-tiny.onnx --dim batch=1 --dim sequence=64 | head -16
echo
bash scripts/setup-integration.sh
CACHE="${LAYERPLAN_CACHE:-$HOME/.cache/layerplan}"
CS="$CACHE/code-server-4.100.3/node_modules/.bin/code-server"
STATE="$CACHE/start"
mkdir -p "$STATE/user-data/User"
# Open the bundled example in the graph view when the workbench starts.
echo "{\"workbench.startupEditor\": \"none\", \"git.openRepositoryInParentFolders\": \"never\", \"layerplan.openOnStartup\": \"$(pwd)/examples/gpt2-tiny.onnx\"}" > "$STATE/user-data/User/settings.json"
"$CS" --user-data-dir "$STATE/user-data" --extensions-dir "$STATE/extensions" --install-extension out/layerplan.vsix --force >/dev/null
PORT="${PORT:-8080}"
echo
echo "Layerplan is running in VS Code: open http://127.0.0.1:$PORT/?folder=$(pwd)/examples"
echo "(it opens examples/gpt2-tiny.onnx in the graph view; the command palette has the Layerplan commands; Ctrl+C stops)"
exec "$CS" --auth none --disable-telemetry --disable-update-check --disable-workspace-trust --bind-addr "127.0.0.1:$PORT" \
  --user-data-dir "$STATE/user-data" --extensions-dir "$STATE/extensions" "$(pwd)/examples"
