#!/usr/bin/env bash
# One-command setup of everything mkey-det needs, idempotent (a second run takes seconds):
#   1. Node dependencies (npm ci, onnxruntime-node without its network postinstall),
#   2. the TypeScript build (dist/),
#   3. the Python environment in .venv/ (scripts/setup-python.sh; pass --cuda for a GPU build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "[setup] $*" >&2; }

# onnxruntime-node's postinstall downloads CUDA binaries and fails offline; the CPU ones ship in the package.
export ONNXRUNTIME_NODE_INSTALL=skip npm_config_onnxruntime_node_install=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing Node dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
else
  say "Node dependencies up to date"
fi

if [ ! -f dist/mkey-det.mjs ] || [ -n "$(find src tsconfig.json scripts/bundle.mjs -newer dist/mkey-det.mjs -print -quit)" ]; then
  say "building TypeScript (tsc, then the one-module CLI: scripts/bundle.mjs)"
  npm run --silent build
else
  say "TypeScript build up to date"
fi

bash scripts/setup-python.sh "$@"
