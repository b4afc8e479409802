#!/usr/bin/env bash
# Regenerates src/core/key-variants.generated.ts from the Python key registry
# (python_shim/mkey_det/models/keys/registry.py), with the project's interpreter (.venv or
# MKEY_PYTHON). Run it after adding or changing a key variant; `--check` only compares (exit 1
# when the checked-in file is stale). Extra arguments go to the generator, e.g.
# `--import path/to/plugin_key.py --format json --out -`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${MKEY_PYTHON:-$root/.venv/bin/python}"
cd "$root"
out="src/core/key-variants.generated.ts"
if [ "${1:-}" = "--check" ]; then
  shift
  exec "$py" -m mkey_det.models.keys.manifest --check "$out" "$@"
fi
if [ $# -gt 0 ]; then
  exec "$py" -m mkey_det.models.keys.manifest "$@"
fi
"$py" -m mkey_det.models.keys.manifest --out "$out"
echo "wrote $out" >&2
