#!/usr/bin/env bash
# Installs what the integration tests need, idempotently, and says what it does:
#  - Debian packages: chromium (the browser playwright-core drives), libkrb5-dev (code-server's
#    kerberos module links -lgssapi_krb5), ripgrep (seeds @vscode/ripgrep, which would download it);
#  - code-server 4.100.3 (VS Code 1.100, runs on Node 20) from npm, cached outside the repository in
#    ~/.cache/layerplan so reruns take no time.
set -euo pipefail
CACHE="${LAYERPLAN_CACHE:-$HOME/.cache/layerplan}"
CS_VERSION=4.100.3
CS_DIR="$CACHE/code-server-$CS_VERSION"

missing=()
for pkg in chromium libkrb5-dev ripgrep; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages present (chromium, libkrb5-dev, ripgrep)"
fi

if [ -x "$CS_DIR/node_modules/.bin/code-server" ] && "$CS_DIR/node_modules/.bin/code-server" --version >/dev/null 2>&1; then
  echo "setup: code-server $CS_VERSION cached in $CS_DIR"
else
  echo "setup: installing code-server $CS_VERSION into $CS_DIR (npm; about a minute)"
  # @vscode/ripgrep's postinstall downloads ripgrep from GitHub; give it Debian's from its cache instead.
  RG_CACHE="$(node -p "require('os').tmpdir()")/vscode-ripgrep-cache-1.15.11"
  mkdir -p "$RG_CACHE" "$CACHE/rg"
  cp "$(command -v rg)" "$CACHE/rg/rg"
  tar czf "$RG_CACHE/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$CACHE/rg" rg
  rm -rf "$CS_DIR" && mkdir -p "$CS_DIR"
  (cd "$CS_DIR" && npm init -y >/dev/null && npm_config_yes=true npm_config_unsafe_perm=true npm install --no-audit --no-fund --loglevel=error "code-server@$CS_VERSION" >/dev/null)
  "$CS_DIR/node_modules/.bin/code-server" --version | head -1
fi
