#!/usr/bin/env bash
# `npm run demo`: sets up what is missing (idempotent), then runs the main job on the embedded demo
# dataset: Mask R-CNN + FPN with a Swin-T + SpatialK (8 charts) backbone, trained from scratch on
# CPU with the short schedule, evaluated on the demo val split (box and mask AP). See docs/DEMO.md.
# Extra arguments go to `mkey-det train` (e.g. --backbone swin-t, --work-dir DIR, --json).
#
# `npm run demo -- --compare [train args]`: trains both swin-t and swin-t-spatialk the same way (same
# seed, same data, same schedule; extra arguments go to both trainings, except --backbone and
# --work-dir) into work_dirs/demo-compare-<time>/{swin-t,swin-t-spatialk}, one after the other, then
# writes the comparison with `mkey-det report` to work_dirs/demo-compare-<time>/report.md and
# report.html (PNG plots next to them) and prints where they are. Takes about twice the time of one
# demo run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

compare=0
args=()
for a in "$@"; do
  if [ "$a" = "--compare" ]; then compare=1; else args+=("$a"); fi
done

if [ "$compare" = 1 ]; then
  for a in ${args[@]+"${args[@]}"}; do
    case "$a" in
      --backbone|--backbone=*|--work-dir|--work-dir=*)
        echo "[demo] --compare chooses the backbones and work dirs itself; drop $a" >&2
        exit 2
        ;;
    esac
  done
fi

bash scripts/setup.sh

if [ "$compare" = 1 ]; then
  out="work_dirs/demo-compare-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$out"
  for backbone in swin-t swin-t-spatialk; do
    echo "[demo] mkey-det train --backbone $backbone --data demo --work-dir $out/$backbone ${args[*]+${args[*]}}" >&2
    node bin/mkey-det.js train --backbone "$backbone" --data demo --work-dir "$out/$backbone" ${args[@]+"${args[@]}"}
  done
  node bin/mkey-det.js report "$out/swin-t" "$out/swin-t-spatialk" --out "$out/report.md"
  node bin/mkey-det.js report "$out/swin-t" "$out/swin-t-spatialk" --out "$out/report.html" --no-plots
  echo "[demo] comparison written: $out/report.md and $out/report.html (runs in $out/swin-t and $out/swin-t-spatialk)" >&2
  exit 0
fi

work_dir="work_dirs/demo-swin-t-spatialk"
extra=()
# A finished demo run is not overwritten by surprise: a new run gets a fresh folder.
if [ -e "$work_dir" ] && [[ " ${args[*]+${args[*]}} " != *" --work-dir "* ]]; then
  work_dir="$work_dir-$(date +%Y%m%d-%H%M%S)"
fi
[[ " ${args[*]+${args[*]}} " == *" --work-dir "* ]] || extra+=(--work-dir "$work_dir")
echo "[demo] mkey-det train --backbone swin-t-spatialk --data demo ${extra[*]} ${args[*]+${args[*]}}" >&2
exec node bin/mkey-det.js train --backbone swin-t-spatialk --data demo "${extra[@]}" ${args[@]+"${args[@]}"}
