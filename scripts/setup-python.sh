#!/usr/bin/env bash
# Creates or refreshes the project's Python environment (.venv/ at the repository root).
# Idempotent: a stamp file records the hash of the pins and of this script; when nothing changed
# and the stack imports, it returns in seconds.
#   scripts/setup-python.sh [--cuda] [--force]
# MKEY_PYTHON names another interpreter to use instead; then this script only checks it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cuda=0; force=0
for a in "$@"; do
  case "$a" in
    --cuda) cuda=1 ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup-python: unknown option '$a' (accepted: --cuda, --force)" >&2; exit 2 ;;
  esac
done
say() { echo "[setup-python] $*" >&2; }
probe='import torch, mmcv, mmcv.ops, mmengine, mmdet, mkey_det, pycocotools, onnx, onnxruntime, pytest'

if [ -n "${MKEY_PYTHON:-}" ]; then
  say "MKEY_PYTHON=$MKEY_PYTHON: checking it, not installing into it"
  "$MKEY_PYTHON" -c "$probe" || { say "MKEY_PYTHON=$MKEY_PYTHON lacks the stack (see python_shim/requirements.lock)"; exit 1; }
  exit 0
fi

venv="$root/.venv"
py="$venv/bin/python"
stamp="$venv/.mkey-setup-stamp"
want="$(cat python_shim/requirements.lock python_shim/pyproject.toml "$0" | sha256sum | cut -c1-16)-cuda$cuda"
if [ $force = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" -c "$probe" 2>/dev/null; then
  say "up to date ($venv)"
  exit 0
fi

base_py="$(command -v python3.11 || command -v python3)"
[ -x "$py" ] || { say "creating $venv with $base_py"; "$base_py" -m venv "$venv"; }
pip() { "$py" -m pip --disable-pip-version-check "$@"; }
pins() { grep -E "^$1==" python_shim/requirements.lock | head -1; }
lock_args=(-c python_shim/requirements.lock)

say "1/4 build tools and torch"
pip install -q "${lock_args[@]}" setuptools wheel ninja numpy
if [ $cuda = 1 ]; then
  # CUDA wheels come from PyTorch's own index; not reachable on the project's CI machines.
  pip install -q "$(pins torch | sed 's/+cpu//')" --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cu121}"
else
  pip install -q "${lock_args[@]}" torch
fi

say "2/4 mmengine, mmdet (--no-deps) and their runtime needs"
pip install -q --no-deps "${lock_args[@]}" mmengine mmdet
pip install -q "${lock_args[@]}" addict yapf terminaltables pyyaml rich termcolor matplotlib \
  opencv-python-headless pillow shapely scipy six tqdm pycocotools packaging \
  onnx onnxruntime pytest

# mmcv's own import needs opencv (step 2); its build needs torch (step 1).
if ! "$py" -c 'import mmcv, mmcv._ext' 2>/dev/null || [ $force = 1 ]; then
  say "3/4 mmcv from source with compiled ops (about 4 min on 2 cores; cached by pip after the first build)"
  if [ $cuda = 1 ]; then export FORCE_CUDA=1; else export FORCE_CUDA=0; fi
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" CFLAGS=-g0 \
    pip install -q --no-build-isolation --no-deps "${lock_args[@]}" mmcv
  "$py" -c 'import mmcv._ext' || { say "mmcv built without its ops (mmcv._ext missing)"; exit 1; }
else
  say "3/4 mmcv with ops already present"
fi

say "4/4 python_shim as the editable package mkey_det"
pip install -q --no-deps --no-build-isolation -e python_shim

"$py" -c "$probe"
echo "$want" > "$stamp"
say "done: $("$py" -c 'import torch, mmcv, mmengine, mmdet; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmdet {mmdet.__version__}")')"
