#!/usr/bin/env bash
# Provision a real VS Code for the end-to-end tests, offline except for the package
# registries: code-server (VS Code 1.100 for Node 20) and playwright-core from npm into
# editors/vscode/e2e/node_modules, Debian's Chromium, and what code-server's install
# needs (gssapi headers for its kerberos module, ripgrep in place of the binary that
# @vscode/ripgrep would download). Everything it writes stays under this folder
# (npm cache and temporary files included) or goes through apt-get.
#
#   bash provision.sh          exit 0: ready; exit 3: cannot provision here (says why)
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
CODE_SERVER_VERSION=4.100.3
RIPGREP_PACKAGE_VERSION=1.15.11   # @vscode/ripgrep inside code-server 4.100.3
RIPGREP_ASSET_VERSION=v13.0.0-10

cannot() { echo "vscode e2e: cannot provision: $*" >&2; exit 3; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v rg >/dev/null || missing+=(ripgrep)
[ -e /usr/include/gssapi.h ] || [ -e node_modules/.provisioned ] || missing+=(libkrb5-dev)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || cannot "needs ${missing[*]} and this is not a Debian system"
  [ "$(id -u)" = 0 ] || cannot "needs ${missing[*]} (apt-get) and this user is not root"
  echo "vscode e2e: apt-get install ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || cannot "node is not installed"
[ "$(node -p 'process.versions.node.split(".")[0]')" = 20 ] || cannot "code-server $CODE_SERVER_VERSION needs Node 20"

if [ -e node_modules/.provisioned ] && [ "$(cat node_modules/.provisioned)" = "$CODE_SERVER_VERSION" ]; then
  exit 0
fi

case "$(uname -m)" in
  x86_64) target=x86_64-unknown-linux-musl ;;
  aarch64|arm64) target=aarch64-unknown-linux-musl ;;
  *) cannot "no ripgrep asset name for $(uname -m)" ;;
esac
export TMPDIR="$HERE/.tmp"
cache="$TMPDIR/vscode-ripgrep-cache-$RIPGREP_PACKAGE_VERSION"
mkdir -p "$cache" "$TMPDIR/rg"
cp "$(command -v rg)" "$TMPDIR/rg/rg"
tar -czf "$cache/ripgrep-$RIPGREP_ASSET_VERSION-$target.tar.gz" -C "$TMPDIR/rg" rg

export npm_config_cache="$HERE/.npm-cache" npm_config_yes=true npm_config_nodedir=/usr \
  npm_config_unsafe_perm=true npm_config_update_notifier=false
echo "vscode e2e: npm ci (code-server $CODE_SERVER_VERSION, playwright-core)" >&2
npm ci --no-audit --no-fund --loglevel=error >/dev/null
echo "$CODE_SERVER_VERSION" > node_modules/.provisioned
