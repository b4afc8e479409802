#!/usr/bin/env bash
# `npm run demo`: sets up what is missing (idempotent), then runs the main job on the embedded demo
# dataset: Mask R-CNN + FPN with a Swin-T + SpatialK (8 charts) backbone, trained from scratch on
# CPU with the short schedule, evaluated on the demo val split (box and mask AP).
# Extra arguments go to `mkey-det train` (e.g. --backbone swin-t, --work-dir DIR, --json).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
work_dir="work_dirs/demo-swin-t-spatialk"
extra=()
# A finished demo run is not overwritten by surprise: a new run gets a fresh folder.
if [ -e "$work_dir" ] && [[ " $* " != *" --work-dir "* ]]; then
  work_dir="$work_dir-$(date +%Y%m%d-%H%M%S)"
fi
[[ " $* " == *" --work-dir "* ]] || extra+=(--work-dir "$work_dir")
echo "[demo] mkey-det train --backbone swin-t-spatialk --data demo ${extra[*]} $*" >&2
exec node bin/mkey-det.js train --backbone swin-t-spatialk --data demo "${extra[@]}" "$@"
