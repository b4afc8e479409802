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

# Results (vitest JSON, pytest JUnit XML) go to .test-results/ for the table of slow files at the end.
results="$root/.test-results"
rm -rf "$results" && mkdir -p "$results"

echo "[test] vitest (TypeScript, drives the real bridge, MMDetection and onnxruntime-node)" >&2
t0=$SECONDS
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$results/vitest.json"
ts=$?
t1=$SECONDS
echo "[test] pytest (python_shim, 2 processes)" >&2
# Two pytest processes (pytest-xdist), a test file each at a time (its module fixtures built once):
# pytest runs after vitest, when both cores are free, and most of its tests use one. The files go
# out longest first (SLOWEST_FIRST in python_shim/tests/conftest.py), not xdist's most-tests-first.
bash scripts/run-pytest.sh -n 2 --dist loadfile --no-loadscope-reorder --junitxml="$results/pytest.xml" -o junit_family=xunit2
py=$?
t2=$SECONDS
node scripts/test-times.mjs "$results"
echo "[test] vitest $((t1 - t0)) s (exit $ts), pytest $((t2 - t1)) s (exit $py)" >&2
[ $ts -eq 0 ] && [ $py -eq 0 ]
