#!/usr/bin/env bash
# `npm start`: builds Layerplan and runs it on the bundled example model (examples/gpt2-tiny.onnx).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "Building Layerplan (esbuild) …"
node scripts/build.mjs --production
echo "Running: layerplan inspect examples/gpt2-tiny.onnx --dim batch=1 --dim sequence=64"
echo
node dist/cli.js inspect examples/gpt2-tiny.onnx --dim batch=1 --dim sequence=64
