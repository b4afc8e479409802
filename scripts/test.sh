#!/usr/bin/env bash
# `npm test`: sets up what is missing (idempotent), then runs the TypeScript tests (vitest) and the
# Python tests (pytest); fails if either fails.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Test files start Python children next to the bridge: passive OpenMP waits keep them from
# starving each other on a 2-core machine.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
bash scripts/setup.sh || { echo "[test] setup failed" >&2; exit 1; }

echo "[test] vitest (TypeScript, drives the real bridge, MMDetection and onnxruntime-node)" >&2
npx --no-install vitest run
ts=$?
echo "[test] pytest (python_shim)" >&2
bash scripts/run-pytest.sh
py=$?
echo "[test] vitest exit $ts, pytest exit $py" >&2
[ $ts -eq 0 ] && [ $py -eq 0 ]
