#!/usr/bin/env bash
# GPU acceptance run of mkey-det on a machine with one NVIDIA GPU, Python with a CUDA torch, and no
# internet: setup (offline, reusing the machine's torch), doctor, the CLI's demo training on the GPU
# (SpatialK and Swin-T, 2 epochs each, plus short fp16 and bf16 AMP runs), `test` of the SpatialK checkpoint
# against its last validation, `report` of both runs, and the bench train suite on CUDA (Swin-T vs
# SpatialK, batch 2 and 8, fp32, fp16 and bf16), and SpatialK on its fast paths (--attn-impl sdpa
# --key-order auto) against the stock Swin-T recipe at batch 8 (issue 17). Budget: about 7 minutes on one H100 (plus about
# 4 minutes when mmcv's wheel does not fit the torch there and is built from source).
#
#   scripts/gpu-check.sh [--bundle DIR] [--out DIR] [--work DIR] [--cpu-smoke]
#
#   --bundle DIR   what scripts/gpu-bundle.sh packed (Node binary, Node modules, wheels);
#                  default .gpu-bundle. Not needed where Node 20 + node_modules + .venv exist.
#   --out DIR      where the figures go (default gpu-check-<timestamp>): gpu-check.log (everything
#                  printed), summary.md (the tables), artifacts.tar.gz (doctor, events, test,
#                  report, bench JSON and markdown).
#   --work DIR     scratch folder for runs and checkpoints (default /tmp/mkey-gpu-check).
#   --cpu-smoke    run the same pipeline on CPU with tiny sizes (to check the script itself).
# Exit code: 0 when every step passed, 1 otherwise (the summary lists each step's status).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bundle="$root/.gpu-bundle"; out="$root/gpu-check-$(date +%Y%m%d-%H%M%S)"; work=/tmp/mkey-gpu-check; smoke=0
die() { echo "[gpu-check] error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) [ -n "${2:-}" ] || die "--bundle needs a folder"; bundle="$(cd "$2" 2>/dev/null && pwd)" || die "--bundle '$2' is not a folder"; shift ;;
    --out) [ -n "${2:-}" ] || die "--out needs a folder"; out="$2"; shift ;;
    --work) [ -n "${2:-}" ] || die "--work needs a folder"; work="$2"; shift ;;
    --cpu-smoke) smoke=1 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (accepted: --bundle DIR, --out DIR, --work DIR, --cpu-smoke)" ;;
  esac
  shift
done
[ ! -e "$work" ] || [ -f "$work/.mkey-gpu-check" ] || die "--work '$work' exists and is not a gpu-check scratch folder; pick another"
rm -rf "$work"; mkdir -p "$work" "$out"; touch "$work/.mkey-gpu-check"
out="$(cd "$out" && pwd)"
exec > >(tee -a "$out/gpu-check.log") 2>&1
say() { echo "[gpu-check $(date +%H:%M:%S)] $*"; }
declare -a steps=()
# step NAME CMD...: runs a step, times it, records ok/failed; later steps run regardless.
step() {
  local name="$1" t0=$SECONDS rc; shift
  say "── $name: $*"
  "$@"; rc=$?
  steps+=("| $name | $([ $rc = 0 ] && echo ok || echo "FAILED (exit $rc)") | $((SECONDS - t0)) s |")
  say "── $name: exit $rc in $((SECONDS - t0)) s"
  return $rc
}

# --- Node: the machine's, if it is 20+, else the bundle's ---------------------------------------
node_ok() { command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] 2>/dev/null; }
if ! node_ok; then
  [ -f "$bundle/node.xz" ] || die "no Node 20 here and no $bundle/node.xz (run scripts/gpu-bundle.sh where npm works)"
  mkdir -p "$work/node/bin"
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bundle/node.xz" "$work/node/bin/node"
  chmod +x "$work/node/bin/node"; export PATH="$work/node/bin:$PATH"
fi
if [ ! -d node_modules ]; then
  [ -d "$bundle/node_modules" ] || die "no node_modules here and none in $bundle"
  ln -s "$bundle/node_modules" node_modules
fi
[ -f dist/cli.js ] || die "dist/cli.js is missing: build it (npm run build) where the TypeScript compiler is"
cli() { node "$root/bin/mkey-det.js" "$@"; }
say "node $(node --version), python3 $(python3 --version 2>&1 | cut -d' ' -f2), $(nproc) cores"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# --- settings -------------------------------------------------------------------------------------
if [ $smoke = 1 ]; then
  setup_args=(); device_args=(--gpus 0); train_len=(--max-iters 4); amp_len=()
  bench_args=(--device cpu --batch-sizes 1 --precisions fp32 --size 128 --steps 1)
else
  setup_args=(--cuda --torch system); device_args=(--gpus 1); train_len=(--max-epochs 2); amp_len=(--max-iters 30)
  bench_args=(--device cuda --batch-sizes 2,8 --precisions fp32,fp16,bf16)
fi
[ $smoke = 1 ] || [ ! -d "$bundle/wheels" ] || setup_args+=(--wheels "$bundle/wheels")

# --- 1. setup, doctor -----------------------------------------------------------------------------
step setup bash scripts/setup-python.sh "${setup_args[@]}" || { say "setup failed: nothing else can run"; }
doctor_check() {
  cli doctor --json > "$work/doctor.json"
  cli doctor
  # onnxruntime-node is left out of the bundle (export needs it; training does not).
  python3 - "$work/doctor.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
bad = [c for c in report['checks'] if not c['ok'] and c['name'] != 'onnxruntime-node']
for c in bad:
    print(f"doctor: {c['name']} failed: {c['detail']} (fix: {c.get('fix')})")
sys.exit(1 if bad else 0)
EOF
}
step doctor doctor_check

# --- 2. training through the CLI ------------------------------------------------------------------
train_run() {  # backbone work-dir extra-args...
  local backbone="$1" dir="$2"; shift 2
  cli train --backbone "$backbone" --data demo --work-dir "$dir" "${device_args[@]}" "$@"
}
step "train swin-t-spatialk" train_run swin-t-spatialk "$work/runs/spatialk" "${train_len[@]}"
step "train swin-t" train_run swin-t "$work/runs/swin-t" "${train_len[@]}"
if [ ${#amp_len[@]} -gt 0 ]; then
  for dtype in fp16 bf16; do
    step "train swin-t-spatialk --amp $dtype" train_run swin-t-spatialk "$work/amp-runs/spatialk-$dtype" --amp "$dtype" "${amp_len[@]}"
  done
fi

# --- 2b. two GPUs through torchrun (NCCL): only where the machine has two or more ----------------
gpu_count="$(command -v nvidia-smi >/dev/null && nvidia-smi --list-gpus 2>/dev/null | wc -l || echo 0)"
if [ "$smoke" = 0 ] && [ "${gpu_count:-0}" -ge 2 ]; then
  step "train swin-t-spatialk --gpus 2" cli train --backbone swin-t-spatialk --data demo --work-dir "$work/runs/spatialk-2gpu" --gpus 2 --max-iters 30
else
  say "skip: train --gpus 2 needs two GPUs; this machine has ${gpu_count:-0} (the same path runs on CPU processes in npm test: test/distributed.test.ts)"
fi

# --- 3. test reproduces the last validation -------------------------------------------------------
test_matches_val() {
  local run="$work/runs/spatialk" ckpt
  ckpt="$(cat "$run/last_checkpoint" 2>/dev/null)" || { echo "no checkpoint in $run"; return 1; }
  cli test --checkpoint "$ckpt" "${device_args[@]}" --json > "$work/test.json" || return 1
  python3 - "$run/mkey-run.json" "$work/test.json" <<'EOF'
import json, sys
val = json.load(open(sys.argv[1])).get('metrics') or {}
test = json.load(open(sys.argv[2])).get('metrics') or {}
keys = ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50']
bad = [k for k in keys if val.get(k) is None or test.get(k) is None or abs(val[k] - test[k]) > 1e-3]
for k in keys:
    print(f'{k}: last validation {val.get(k)}  test {test.get(k)}')
print('test == last validation' if not bad else f'MISMATCH: {bad}')
sys.exit(1 if bad else 0)
EOF
}
step "test == last validation" test_matches_val

# --- 4. report of both runs -----------------------------------------------------------------------
step report cli report "$work/runs/spatialk" "$work/runs/swin-t" --out "$work/report/table3.md"

# --- 5. bench train suite on the GPU --------------------------------------------------------------
step "bench train" cli bench --suite train --variants swin-t,swin-t-spatialk "${bench_args[@]}" --out "$work/bench/bench-train.json"

# --- 6. issue 17: SpatialK on its fast paths against the stock Swin-T recipe -----------------------
# (the variant gets --attn-impl sdpa --key-order auto; the swin-t baseline stays stock fp32/fp16)
if [ $smoke = 1 ]; then fast_args=(--device cpu --batch-sizes 1 --precisions fp32 --size 128 --steps 1)
else fast_args=(--device cuda --batch-sizes 8 --precisions fp32,fp16); fi
step "bench fast paths" cli bench --suite train --variants swin-t-spatialk "${fast_args[@]}" --attn-impl sdpa --key-order auto --out "$work/bench/bench-fast.json"

# --- summary and artifacts ------------------------------------------------------------------------
{
  echo "# mkey-det GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  command -v nvidia-smi >/dev/null && echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  echo "$(.venv/bin/python -c 'import torch, mmcv; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, mmcv {mmcv.__version__}")' 2>/dev/null)"
  echo
  echo "| step | status | time |"; echo "|---|---|---|"
  printf '%s\n' "${steps[@]}"
  echo
  for run in spatialk swin-t; do
    f="$work/runs/$run/mkey-events.jsonl"
    [ -f "$f" ] && python3 - "$f" "$run" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
start = next((e for e in ev if e['event'] == 'start'), {})
its = [e for e in ev if e['event'] == 'iter']
vals = [e for e in ev if e['event'] == 'val']
print(f"{sys.argv[2]}: device {start.get('device')}, {start.get('max_iters')} iters, backbone FLOPs "
      f"{start.get('backbone_flops') or start.get('backbone_flops_error')}, last iter {its[-1].get('iter_time_s') if its else '?'} s/it, "
      f"peak {its[-1].get('memory_mb') if its else '?'} MB ({its[-1].get('memory_kind') if its else '?'})")
for v in vals:
    m = v['metrics']
    print(f"  epoch {v['epoch']}: box AP {100 * (m.get('coco/bbox_mAP') or 0):.1f}, mask AP {100 * (m.get('coco/segm_mAP') or 0):.1f}")
EOF
  done
  echo
  [ -f "$work/report/table3.md" ] && cat "$work/report/table3.md" && echo
  [ -f "$work/bench/bench-train.md" ] && cat "$work/bench/bench-train.md" && echo
  [ -f "$work/bench/bench-fast.md" ] && cat "$work/bench/bench-fast.md"
} > "$out/summary.md" 2>&1
cat "$out/summary.md"
# Small files only (no checkpoints): events, logs, configs, test, report, bench.
(cd "$work" && find . -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name '*.png' -o -name '*.log' -o -name 'config.py' -o -name '*.csv' -o -name '*.html' \) -size -8M -print0 \
  | tar -czf "$out/artifacts.tar.gz" --null -T -)
say "figures in $out (summary.md, gpu-check.log, artifacts.tar.gz)"
failed=$(printf '%s\n' "${steps[@]}" | grep -c FAILED)
[ "$failed" = 0 ]
