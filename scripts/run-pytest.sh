#!/usr/bin/env bash
# Runs the python_shim test suite with the project's interpreter (.venv or MKEY_PYTHON).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${MKEY_PYTHON:-$root/.venv/bin/python}"
cd "$root/python_shim"
exec "$py" -m pytest -q -p no:cacheprovider "$@"
