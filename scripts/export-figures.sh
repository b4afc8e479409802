#!/usr/bin/env bash
# Figures for docs/EXPORT.md, measured in one run (CPU; about 15 minutes on 2 busy cores):
#  - swin-t and swin-t-spatialk (8 charts): ONNX and TorchScript exports with --dynamic, parity
#    checked at 224x224, 333x517, 800x1216 and batch 2 at 224x224;
#  - swin-t-spatialk folded vs unfolded: params, FLOPs (224x224), max relative difference;
#  - latency in onnxruntime-node (mkey-det run-onnx) at 224x224 and 800x1216, the models
#    interleaved over 3 rounds.
# Usage: scripts/export-figures.sh [OUT_DIR]   (default /tmp/mkey-export-figures; files are large)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/mkey-export-figures}"
PY="${MKEY_PYTHON:-.venv/bin/python}"
THREADS="${MKEY_FIGURE_THREADS:-2}"
SIZES=333x517,800x1216
cli() { node bin/mkey-det.js "$@"; }

mkdir -p "$OUT"
npm run build --silent
"$PY" -m mkey_det.export.figures images "$OUT" >/dev/null
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt"

export_one() { # variant format extra-args...
  local variant=$1 format=$2; shift 2
  local ext=onnx; [ "$format" = torchscript ] && ext=pt
  local name="$variant-$format$([ "$*" = "" ] || echo "-folded")"
  echo "> export $name" >&2
  cli export --backbone "$variant" --charts 8 --format "$format" --dynamic --check-sizes "$SIZES" \
    --out "$OUT/$name.$ext" --force --json "$@" > "$OUT/$name.export.json" 2> "$OUT/$name.export.log" \
    || echo "  export $name FAILED (see $OUT/$name.export.log)" >&2
}

for variant in swin-t swin-t-spatialk; do
  export_one "$variant" onnx
  export_one "$variant" torchscript
done
export_one swin-t-spatialk onnx --fold

# latency: the three models in turn, in several rounds, so that a change of machine load does not
# favour one of them; the table pools the timed runs of all rounds
for round in 1 2 3; do
  for model in swin-t-onnx swin-t-spatialk-onnx swin-t-spatialk-onnx-folded; do
    echo "> latency round $round $model" >&2
    cli run-onnx "$OUT/$model.onnx" "$OUT/grace_224x224.png" --threads "$THREADS" --runs 5 --warmup 1 --json \
      > "$OUT/latency-224-$model-r$round.json" || true
    cli run-onnx "$OUT/$model.onnx" "$OUT/grace_800x1216.png" --threads "$THREADS" --runs 1 --warmup 1 --json \
      > "$OUT/latency-800x1216-$model-r$round.json" || true
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"
"$PY" -m mkey_det.export.figures table "$OUT" | tee "$OUT/figures.md"
