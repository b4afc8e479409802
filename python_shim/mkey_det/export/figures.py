"""Helpers of ``scripts/export-figures.sh``: test images, and the tables of its results.

    python -m mkey_det.export.figures images DIR   # grace_224x224.png, grace_800x1216.png, ...
    python -m mkey_det.export.figures table DIR    # markdown tables from the sidecars and
                                                   # the run-onnx JSON files in DIR
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any, Dict, List

IMAGE_SIZES = ((224, 224), (800, 1216), (333, 517))


def write_images(out_dir: str) -> List[str]:
    """The first sample photograph resized (bilinear) to each of :data:`IMAGE_SIZES`, as PNG."""
    import cv2
    from .images import read_image, sample_image_paths
    os.makedirs(out_dir, exist_ok=True)
    img = read_image(sample_image_paths()[0])
    paths = []
    for h, w in IMAGE_SIZES:
        path = os.path.join(out_dir, f'grace_{h}x{w}.png')
        cv2.imwrite(path, cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR))
        paths.append(path)
    return paths


def _load(path: str) -> Dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def _fmt(v) -> str:
    return 'n/a' if v is None else f'{v:.2e}'


def tables(out_dir: str) -> str:
    lines: List[str] = []
    sidecars = sorted(glob.glob(os.path.join(out_dir, '*.onnx.json')) +
                      glob.glob(os.path.join(out_dir, '*.pt.json')))
    lines += ['### Parity (max|exported - PyTorch| / max|PyTorch|, worst output)', '',
              '| file | variant | format | fold | ' + ' | '.join(
                  ['check 1', 'check 2', 'check 3', 'check 4']) + ' | export s | parity s |',
              '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for path in sidecars:
        s = _load(path)
        checks = [f"b{c['batch']} {c['size'][0]}x{c['size'][1]}: {_fmt(c['max_rel_diff'])}"
                  for c in s['parity']['checks']]
        checks += [''] * (4 - len(checks))
        t = s['timings_s']
        variant = s['variant'] + (f" ({s['charts']}c)" if s['charts'] else '')
        lines.append(f"| {s['file']} | {variant} | {s['format']} | {s['fold']} | "
                     + ' | '.join(checks[:4]) + f" | {t.get('export_s', '')} | "
                     f"{t.get('parity_s', '')} |")
    lines.append('')
    folded = [(_load(p), p) for p in sidecars if _load(p).get('fold')]
    for s, _ in folded:
        f, p = s['flops'], s['params']
        lines += [f"### Folding {s['variant']} ({s['charts']} charts), {s['format']}", '',
                  '| | unfolded | folded |', '| --- | --- | --- |',
                  f"| params | {p['unfolded'] / 1e6:.2f}M | {p['folded'] / 1e6:.2f}M |"]
        if f:
            lines.append(f"| FLOPs at {f['size'][0]}x{f['size'][1]} | {f['unfolded'] / 1e9:.2f}G | "
                         f"{f['folded'] / 1e9:.2f}G |")
        lines += [f"| max rel diff folded vs unfolded (PyTorch) | | "
                  f"{_fmt(s['fold_parity']['max_rel_diff'])} |", '']
    runs = sorted(glob.glob(os.path.join(out_dir, 'latency-*.json')))
    if runs:
        pooled: Dict[tuple, Dict[str, Any]] = {}
        failures = []
        for path in runs:
            r = _load(path)
            if not r.get('ok', True):
                failures.append(f"{os.path.basename(path)}: {r['error']['message']}")
                continue
            for img in r['images']:
                key = (os.path.basename(r['model']), os.path.basename(img['path']))
                entry = pooled.setdefault(key, dict(shape=img['inputShape'], threads=r['threads'],
                                                    times=[], rounds=0))
                entry['times'] += img['latencyMs']['runs']
                entry['rounds'] += 1
        lines += ['### Latency in onnxruntime-node (CPU; timed runs pooled over the rounds)', '',
                  '| model | image | input | threads | rounds x runs | median ms | min ms | max ms |',
                  '| --- | --- | --- | --- | --- | --- | --- | --- |']
        for (model, image), e in sorted(pooled.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            t = sorted(e['times'])
            med = t[len(t) // 2] if len(t) % 2 else (t[len(t) // 2 - 1] + t[len(t) // 2]) / 2
            lines.append(f"| {model} | {image} | {'x'.join(map(str, e['shape']))} | {e['threads']} | "
                         f"{e['rounds']} x {len(t) // max(e['rounds'], 1)} | {med:.1f} | {t[0]:.1f} | "
                         f"{t[-1]:.1f} |")
        lines += [f'failed: {f}' for f in failures]
        lines.append('')
    return '\n'.join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('what', choices=['images', 'table'])
    parser.add_argument('dir')
    args = parser.parse_args(argv)
    if args.what == 'images':
        print('\n'.join(write_images(args.dir)))
    else:
        sys.stdout.write(tables(args.dir) + '\n')


if __name__ == '__main__':
    main()
