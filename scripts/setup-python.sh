#!/usr/bin/env bash
# Creates or refreshes the project's Python environment (.venv/ at the repository root).
# Idempotent: a stamp file records the hash of the pins, of this script, of the torch in use and of
# the GPU architectures; when nothing changed and the stack imports, it returns in seconds.
#
#   scripts/setup-python.sh [--cuda] [--torch pypi|system] [--torch-index URL] [--wheels DIR]
#                           [--mmcv-wheel FILE] [--cuda-arch LIST] [--extras trackers] [--force]
#
#   --cuda             GPU build: a CUDA torch and mmcv compiled with its CUDA ops.
#   --torch pypi       (default) torch from the lock (2.13.0) from PyPI; on Linux that wheel is a
#                      CUDA build. --torch-index URL (or TORCH_INDEX_URL) takes it from another
#                      index, e.g. https://download.pytorch.org/whl/cu126 for another CUDA variant.
#   --torch system     reuse the torch of an existing interpreter (MKEY_BASE_PYTHON, default python3;
#                      clusters, containers): the venv sees that interpreter's packages, only what is
#                      missing is installed; the torch pin is checked and reported, not forced.
#   --wheels DIR       offline: install only from the wheels (and mmcv's source tarball) in DIR.
#   --mmcv-wheel FILE  install this prebuilt mmcv wheel instead of building mmcv (or MKEY_MMCV_WHEEL).
#                      A wheel named mmcv-2.1.0-*.whl in --wheels DIR is tried too; if its compiled
#                      ops do not load with this torch, mmcv is built from source instead.
#   --cuda-arch LIST   GPU architectures to build mmcv's ops for, e.g. "8.0;9.0" (or MKEY_CUDA_ARCH;
#                      default: those of the GPUs present, from torch.cuda.get_device_capability).
#   --extras trackers  also the optional experiment trackers of --vis-backend: wandb and mlflow (its
#                      client, mlflow-skinny); pinned packages stay as the lock has them. Opt-in.
#   --force            reinstall and rebuild even when the stamp says up to date.
# MKEY_PYTHON names another interpreter to use instead; then this script only checks it.
# MKEY_VENV puts the venv elsewhere than .venv/ (the CLI reads .venv/ or MKEY_PYTHON).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cuda=0; force=0; torch_mode=pypi; wheels=""; mmcv_wheel="${MKEY_MMCV_WHEEL:-}"
torch_index="${TORCH_INDEX_URL:-}"; cuda_arch="${MKEY_CUDA_ARCH:-}"; extras_wanted=""
usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "[setup-python] error: $*" >&2; exit 2; }
need_value() { [ -n "${2:-}" ] && [ "${2#--}" = "$2" ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) cuda=1 ;;
    --force) force=1 ;;
    --torch) need_value "$@"; torch_mode="$2"; shift
      case "$torch_mode" in pypi|system) ;; *) die "--torch '$torch_mode' (accepted: pypi, system)" ;; esac ;;
    --torch-index) need_value "$@"; torch_index="$2"; shift ;;
    --wheels) need_value "$@"; wheels="$(cd "$2" 2>/dev/null && pwd)" || die "--wheels '$2' is not a folder"; shift ;;
    --mmcv-wheel) need_value "$@"; mmcv_wheel="$2"; shift ;;
    --cuda-arch) need_value "$@"; cuda_arch="$2"; shift ;;
    --extras) need_value "$@"; extras_wanted="$2"; shift
      for e in ${extras_wanted//,/ }; do [ "$e" = trackers ] || die "--extras '$e' (accepted: trackers)"; done ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (accepted: --cuda, --torch pypi|system, --torch-index URL, --wheels DIR, --mmcv-wheel FILE, --cuda-arch LIST, --extras trackers, --force)" ;;
  esac
  shift
done
if [ -n "$mmcv_wheel" ]; then
  [ -f "$mmcv_wheel" ] || die "mmcv wheel '$mmcv_wheel' does not exist"
  mmcv_wheel="$(cd "$(dirname "$mmcv_wheel")" && pwd)/$(basename "$mmcv_wheel")"
fi
[ -z "$cuda_arch" ] || [[ "$cuda_arch" =~ ^[0-9]+\.[0-9]+(\+PTX)?([\;\ ][0-9]+\.[0-9]+(\+PTX)?)*$ ]] \
  || die "--cuda-arch '$cuda_arch' (accepted: compute capabilities such as 9.0 or \"8.0;9.0\")"
say() { echo "[setup-python] $*" >&2; }
core_probe='import warnings; warnings.simplefilter("ignore"); import torch, mmcv, mmcv.ops, mmengine, mmdet, mkey_det, mmpretrain, pycocotools, pkg_resources'
full_probe="$core_probe, onnx, onnxruntime, pytest, xdist"

if [ -n "${MKEY_PYTHON:-}" ]; then
  say "MKEY_PYTHON=$MKEY_PYTHON: checking it, not installing into it"
  [ -z "$extras_wanted" ] || say "note: --extras $extras_wanted: install them into it yourself ($MKEY_PYTHON -m pip install wandb mlflow)"
  "$MKEY_PYTHON" -c "$core_probe" || { say "MKEY_PYTHON=$MKEY_PYTHON lacks the stack (see python_shim/requirements.lock)"; exit 1; }
  exit 0
fi

venv="${MKEY_VENV:-$root/.venv}"  # MKEY_VENV: another location (tests)
py="$venv/bin/python"
stamp="$venv/.mkey-setup-stamp"
mmcv_record="$venv/.mkey-mmcv-build.json"
lock=python_shim/requirements.lock
pin() { grep -E "^$1==" "$lock" | head -1; }
pinned_version() { pin "$1" | cut -d= -f3; }

if [ "$torch_mode" = system ]; then
  base_py="${MKEY_BASE_PYTHON:-$(command -v python3)}"
  "$base_py" -c 'import torch' 2>/dev/null || die "--torch system: $base_py cannot import torch (set MKEY_BASE_PYTHON to the interpreter that has it)"
  torch_py="$base_py"
  [ $cuda = 0 ] || "$base_py" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' \
    || die "--cuda: torch $("$base_py" -c 'import torch; print(torch.__version__)') of $base_py is not a CUDA build"
else
  base_py="$(command -v python3.11 || command -v python3)"
  torch_py="$py"
fi

# What the stamp depends on besides the files: the torch in use and the GPUs' architectures.
torch_id() { "$1" -c 'import torch; print(torch.__version__, torch.version.cuda or "cpu")' 2>/dev/null || echo none; }
detect_arch() {
  "$1" - <<'EOF' 2>/dev/null || true
import torch
if torch.cuda.is_available():
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    print(';'.join(f'{a}.{b}' for a, b in caps))
EOF
}
if [ $cuda = 1 ] && [ -z "$cuda_arch" ] && [ -x "$torch_py" ]; then cuda_arch="$(detect_arch "$torch_py")"; fi
want="$(cat "$lock" python_shim/pyproject.toml "$0" | sha256sum | cut -c1-16)-cuda$cuda-$torch_mode-[$( [ -x "$torch_py" ] && torch_id "$torch_py" || true)]-[$cuda_arch]-[${mmcv_wheel##*/}]"
# --extras trackers (opt-in, outside the stamp: adding them refreshes nothing else): the trackers
# --vis-backend logs to through mmengine's WandbVisBackend / MLflowVisBackend; the lock constrains
# whatever they share with the stack (protobuf, numpy, ...), so the stack stays as pinned.
tracker_pins=(wandb==0.31.0 mlflow-skinny==3.18.0)
install_extras() {
  case ",$extras_wanted," in *,trackers,*) ;; *) return 0 ;; esac
  if "$py" -c 'import wandb, mlflow' 2>/dev/null; then say "extras: trackers already installed (wandb, mlflow)"; return 0; fi
  say "extras: trackers (${tracker_pins[*]})"
  "$py" -m pip install -q --disable-pip-version-check ${wheels:+--no-index --find-links "$wheels"} -c "$lock" "${tracker_pins[@]}"
  "$py" -c 'import wandb, mlflow; print(f"[setup-python] extras: wandb {wandb.__version__}, mlflow {mlflow.__version__}")' >&2
}
if [ $force = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" -c "$core_probe" 2>/dev/null; then
  say "up to date ($venv)"
  install_extras
  exit 0
fi
t_start=$SECONDS

# --- the venv -------------------------------------------------------------------------------------
if [ ! -x "$py" ]; then
  say "creating $venv with $base_py"
  # An interpreter without ensurepip (some containers) still gets a venv; pip then runs from outside.
  "$base_py" -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; "$base_py" -m venv --without-pip "$venv"; }
fi
# `pip install` without byte-compiling: pip compiles every installed module one file at a time
# (torch alone: 18 s with, 5 s without); compileall over both cores does it once at the end.
if "$py" -m pip --version >/dev/null 2>&1; then
  pip() { if [ "$1" = install ]; then shift; set -- install --no-compile "$@"; fi; "$py" -m pip --disable-pip-version-check "$@"; }
else
  pip() { if [ "$1" = install ]; then shift; set -- install --no-compile "$@"; fi; "$base_py" -m pip --disable-pip-version-check --python "$py" "$@"; }
fi
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ "$torch_mode" = system ]; then
  # The venv sees the base interpreter's packages after its own (a .pth file, not
  # --system-site-packages: the base is often itself a venv, whose packages that flag would miss).
  "$base_py" -c 'import sysconfig; p = sysconfig.get_paths(); print(p["purelib"]); print(p["platlib"])' \
    | sort -u > "$site/_mkey_system_packages.pth"
  say "--torch system: using $(torch_id "$py" | sed 's/ / (CUDA /;s/$/)/') from $base_py"
else
  rm -f "$site/_mkey_system_packages.pth"
fi
install_args=()
[ -z "$wheels" ] || install_args=(--no-index --find-links "$wheels")

# Installs each given distribution (lock-pinned) that is not importable yet, without dependencies:
# with --torch system the base's own versions are kept, the pins fill only what is missing.
install_missing() {
  local missing=() name
  for name in "$@"; do
    "$py" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$name" 2>/dev/null || missing+=("$(pin "$name" || echo "$name")")
  done
  [ ${#missing[@]} -eq 0 ] || pip install -q --no-deps "${install_args[@]}" "${missing[@]}"
}

# --- 1. build tools and torch ---------------------------------------------------------------------
say "1/4 build tools and torch"
if [ "$torch_mode" = system ]; then
  # mmcv's setup.py and mmengine's config lookup import pkg_resources (gone in setuptools 81).
  "$py" -c 'import pkg_resources' 2>/dev/null || pip install -q --no-deps "${install_args[@]}" "$(pin setuptools)"
  install_missing wheel ninja numpy
  have="$("$py" -c 'import torch; print(torch.__version__)')"
  [ "${have%%+*}" = "$(pinned_version torch)" ] || say "note: system torch $have, pins say $(pinned_version torch): checked, not forced"
else
  pip install -q "${install_args[@]}" -c "$lock" setuptools wheel ninja numpy
  if [ $cuda = 1 ]; then
    # PyPI's Linux torch wheel is a CUDA build; --torch-index picks another CUDA variant.
    pip install -q "${install_args[@]}" ${torch_index:+--index-url "$torch_index"} "$(pin torch)"
  else
    pip install -q "${install_args[@]}" -c "$lock" torch
  fi
fi
if [ $cuda = 1 ]; then
  "$py" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' \
    || die "--cuda: torch $("$py" -c 'import torch; print(torch.__version__)') is not a CUDA build (use --torch-index URL, or --torch system on a machine with a CUDA torch)"
  [ -n "$cuda_arch" ] || cuda_arch="$(detect_arch "$py")"
  [ -n "$cuda_arch" ] || die "--cuda: no GPU visible to torch and no --cuda-arch given (e.g. --cuda-arch 9.0)"
fi

# --- 2. mmengine, mmdet and their runtime needs ---------------------------------------------------
say "2/4 mmengine, mmdet (--no-deps) and their runtime needs"
runtime=(addict yapf terminaltables pyyaml rich termcolor matplotlib opencv-python-headless pillow
  shapely scipy six tqdm pycocotools packaging platformdirs
  tensorboard absl-py grpcio Werkzeug tensorboard-data-server)  # --tensorboard (mmengine's TensorboardVisBackend)
extras=(onnx onnxruntime pytest pytest-xdist)  # pytest-xdist: npm test runs pytest on 2 processes
# mmpretrain (the `pretrain` command) and what it imports, all --no-deps: torchvision's own
# dependency would replace torch, and PyPI's `modelindex` (mmpretrain's stated need) is an empty
# placeholder of `model-index`. A torchvision whose ops do not load with this torch (PyPI's is a
# CUDA build) is made importable by mkey_det/torchvision_compat.py.
pretrain_stack=(mmpretrain torchvision einops mat4py model-index ordered-set Markdown click
  importlib_metadata zipp lazy_importer)
if [ "$torch_mode" = system ]; then
  install_missing mmengine mmdet "${runtime[@]}" "${pretrain_stack[@]}"
  install_missing "${extras[@]}" 2>/dev/null || say "note: ${extras[*]} not installed (export and tests need them; training does not)"
else
  pip install -q --no-deps "${install_args[@]}" -c "$lock" mmengine mmdet "${pretrain_stack[@]}"
  pip install -q "${install_args[@]}" -c "$lock" "${runtime[@]}" "${extras[@]}"
fi

# --- 3. mmcv with its compiled ops ----------------------------------------------------------------
mmcv_ok() {
  "$py" - "$cuda" <<'EOF' 2>/dev/null
import sys
import mmcv._ext  # noqa: F401  (the compiled ops load with this torch)
import torch
if sys.argv[1] == '1' and torch.cuda.is_available():
    # Run a CUDA op rather than ask mmcv.ops.get_compiling_cuda_version(): on an H100 with torch
    # 2.11.0+cu130 that call segfaults in a fresh process (seen 2026-11-26), while the ops work.
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]], device='cuda')
    _, keep = nms(boxes, torch.tensor([0.9, 0.8], device='cuda'), 0.5)
    sys.exit(0 if keep.tolist() == [0] else 1)
EOF
}
record_mmcv() {  # source seconds
  "$py" - "$1" "$2" "$cuda_arch" "$mmcv_record" <<'EOF'
import json, sys, torch
source, seconds, arch, path = sys.argv[1:5]
json.dump(dict(source=source, seconds=float(seconds), arch_list=arch or None, torch=torch.__version__,
               cuda=torch.version.cuda), open(path, 'w'))
EOF
}
build_mmcv() {
  local t0=$SECONDS src tmp jobs
  jobs="${MAX_JOBS:-$(nproc)}"
  if [ $cuda = 0 ] && [ -z "$wheels" ]; then
    # CPU ops from PyPI's sdist: pip caches the built wheel, so every later setup on this machine
    # (another clone included) installs it in seconds; say which of the two is about to happen.
    local cached
    cached="$(pip cache list 'mmcv-2.1.0-*' --format abspath 2>/dev/null | head -1 || true)"
    if [ -n "$cached" ]; then
      say "3/4 mmcv 2.1.0 with CPU ops: the wheel an earlier setup on this machine built, from pip's cache ($cached)"
    else
      say "3/4 building mmcv 2.1.0 with CPU ops, MAX_JOBS=$jobs: about 5-6 min on 2 cores, once per machine (pip caches the wheel)"
    fi
    FORCE_CUDA=0 MMCV_WITH_OPS=1 MAX_JOBS="$jobs" CFLAGS=-g0 pip install -q --no-build-isolation --no-deps -c "$lock" mmcv
    mmcv_ok || { say "mmcv built without working ops (mmcv._ext missing)"; exit 1; }
    local how=built
    [ -z "$cached" ] || how=cached
    say "mmcv $( [ $how = built ] && echo built || echo 'installed from the cache') in $((SECONDS - t0)) s"
    record_mmcv $how $((SECONDS - t0))
    return
  fi
  tmp="$(mktemp -d)"
  src="$( [ -n "$wheels" ] && ls "$wheels"/mmcv-2.1.0.tar.gz 2>/dev/null || true)"
  if [ -z "$src" ]; then
    [ -z "$wheels" ] || die "offline (--wheels $wheels): no mmcv-2.1.0.tar.gz there to build mmcv from"
    pip download -q --no-deps --no-binary :all: -d "$tmp" "$(pin mmcv)"
    src="$(ls "$tmp"/mmcv-2.1.0.tar.gz)"
  fi
  tar -xzf "$src" -C "$tmp"
  if [ $cuda = 1 ]; then
    export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$cuda_arch"
    # mmcv 2.1.0 includes THC/THCAtomics.cuh, which newer torch builds no longer ship.
    if ! "$py" -c 'import os, sys, torch.utils.cpp_extension as c; sys.exit(0 if any(os.path.exists(os.path.join(d, "THC", "THCAtomics.cuh")) for d in c.include_paths()) else 1)'; then
      say "this torch has no THC/THCAtomics.cuh: using ATen/cuda/Atomic.cuh in mmcv's sources"
      grep -rl 'THC/THCAtomics.cuh' "$tmp/mmcv-2.1.0" | xargs -r sed -i 's#<THC/THCAtomics.cuh>#<ATen/cuda/Atomic.cuh>#'
    fi
    say "3/4 building mmcv 2.1.0 with CUDA ops for arch $cuda_arch with MAX_JOBS=$jobs (about 4 min on 16 cores)"
  else
    export FORCE_CUDA=0
    say "3/4 building mmcv 2.1.0 with CPU ops, MAX_JOBS=$jobs (about 4 min on 2 cores)"
  fi
  MMCV_WITH_OPS=1 MAX_JOBS="$jobs" CFLAGS=-g0 pip install -q --no-build-isolation --no-deps "$tmp/mmcv-2.1.0"
  rm -rf "$tmp"
  mmcv_ok || { say "mmcv built without working ops (mmcv._ext missing or no CUDA ops)"; exit 1; }
  say "mmcv built in $((SECONDS - t0)) s"
  record_mmcv built $((SECONDS - t0))
}
candidate="$mmcv_wheel"
[ -n "$candidate" ] || [ -z "$wheels" ] || candidate="$(ls "$wheels"/mmcv-2.1.0-*.whl 2>/dev/null | head -1 || true)"
recorded_arch="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("arch_list") or "")' "$mmcv_record" 2>/dev/null || true)"
if [ $force = 0 ] && mmcv_ok && { [ $cuda = 0 ] || [ "$recorded_arch" = "$cuda_arch" ] || [ -n "$candidate" ]; }; then
  say "3/4 mmcv with ops already present"
elif [ -n "$candidate" ]; then
  say "3/4 mmcv from the prebuilt wheel $candidate"
  pip install -q --no-deps --force-reinstall "$candidate"
  if mmcv_ok; then
    record_mmcv wheel 0
  else
    say "the wheel's ops do not load with torch $("$py" -c 'import torch; print(torch.__version__)'): building from source"
    pip uninstall -q -y mmcv
    build_mmcv
  fi
else
  build_mmcv
fi

# --- 4. the plugin --------------------------------------------------------------------------------
say "4/4 python_shim as the editable package mkey_det"
pip install -q --no-deps --no-build-isolation -e python_shim
# torchvision made importable whoever imports it first (not only after `import mkey_det`): a .pth
# line loads mkey_det/torchvision_compat.py alone, without the package, and installs its import hook
# (kept in sys.modules: the operator schemas it defines live as long as that module).
cat > "$site/_mkey_torchvision_compat.pth" <<'PTH'
import importlib.util as u, os, sys; s = u.find_spec('mkey_det'); f = os.path.join(os.path.dirname(s.origin), 'torchvision_compat.py') if s and s.origin else ''; t = u.spec_from_file_location('_mkey_torchvision_hook', f) if os.path.isfile(f) else None; m = u.module_from_spec(t) if t else None; t and t.loader.exec_module(m); m and sys.modules.setdefault(t.name, m); m and m.install_import_hook()
PTH

t_compile=$SECONDS
# -j 0: a process per core. Modules that fail to compile (other Python versions' files shipped in
# some packages) are skipped, as pip skips them.
"$py" -m compileall -q -j 0 "$site" python_shim/mkey_det >/dev/null 2>&1 || true
say "byte-compiled the environment in $((SECONDS - t_compile)) s"
# One interpreter start checks the whole stack and names the versions (each start imports torch
# and MMDetection: seconds); only when it fails, the core alone, to show why or to go on without
# the extras.
versions='print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmdet {mmdet.__version__}")'
if ! summary="$("$py" -c "$full_probe; $versions" 2>/dev/null)"; then
  "$py" -c "$core_probe"
  say "note: onnx/onnxruntime/pytest/pytest-xdist missing: export and the test suite need them"
  summary="$("$py" -c "$core_probe; $versions")"
fi
echo "$want" > "$stamp"
install_extras
say "done in $((SECONDS - t_start)) s: $summary"
