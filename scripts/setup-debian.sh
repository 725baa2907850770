#!/usr/bin/env bash
# Debian packages the tests need, installed idempotently (apt-get; sudo when not root), and said so:
#  - chromium: the browser playwright-core drives, and SwiftShader's Vulkan driver
#    (/usr/lib/chromium/vk_swiftshader_icd.json) that Dawn (npm `webgpu`) runs the WebGPU kernels on;
#  - libvulkan1: the Vulkan loader Dawn opens;
#  - libkrb5-dev: code-server's kerberos module links -lgssapi_krb5;
#  - ripgrep: seeds @vscode/ripgrep, which would otherwise download it;
#  - python3: its argparse and tomllib check the exported launch configurations (test/framework_options.py).
set -euo pipefail
missing=()
for pkg in chromium libvulkan1 libkrb5-dev ripgrep python3; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages present (chromium, libvulkan1, libkrb5-dev, ripgrep, python3)"
fi
