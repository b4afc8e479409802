"""Python side of ``mkey-det report``.

* :func:`describe_configs` (bridge entry ``report.describe_config``): the identity of each run
  from its MMDetection config, read with mmengine's ``Config.fromfile``: backbone type, manifold
  key, charts, seed, loop length, the ``mkey_experiment`` dict, and a fingerprint of the config
  without seed and launch-only settings (same fingerprint = same configuration).
* ``python report_tools.py plot --data series.json --prefix out/report``: PNG plots (training
  loss, learning rate, box/mask AP) drawn with matplotlib; prints the written paths as JSON.
  Run by file path so it does not import torch or mmdet.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
from typing import Any

# Top-level config keys that change from launch to launch without changing the experiment.
_VOLATILE_TOP = ('work_dir', 'resume', 'load_from', 'launcher', 'filename')
# mkey_experiment fields that do not define the configuration.
_VOLATILE_EXPERIMENT = ('seed', 'generator')


def _plain(value: Any) -> Any:
    """ConfigDict/tuple trees as plain JSON-able data (tuples as lists, other objects as repr)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return repr(value)


def fingerprint(cfg: dict[str, Any]) -> str:
    """sha256 (16 hex digits) of the config without seed, work_dir and launch-only settings."""
    d = copy.deepcopy(_plain(cfg))
    for k in _VOLATILE_TOP:
        d.pop(k, None)
    if isinstance(d.get('randomness'), dict):
        d['randomness'].pop('seed', None)
    if isinstance(d.get('mkey_experiment'), dict):
        for k in _VOLATILE_EXPERIMENT:
            d['mkey_experiment'].pop(k, None)
    blob = json.dumps(d, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _num(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def describe_config(path: str) -> dict[str, Any]:
    """Identity of one run from its config file (raises on an unreadable config)."""
    from mmengine.config import Config

    cfg = Config.fromfile(path, import_custom_modules=False)
    d = _plain(cfg.to_dict())
    model = d.get('model') if isinstance(d.get('model'), dict) else {}
    backbone = model.get('backbone') if isinstance(model.get('backbone'), dict) else {}
    exp = d.get('mkey_experiment') if isinstance(d.get('mkey_experiment'), dict) else {}
    train_cfg = d.get('train_cfg') if isinstance(d.get('train_cfg'), dict) else {}
    randomness = d.get('randomness') if isinstance(d.get('randomness'), dict) else {}

    btype = backbone.get('type')
    key = backbone.get('key_type') or exp.get('key_type') or exp.get('key')
    if key is None and isinstance(btype, str) and 'swin' in btype.lower():
        key = 'linear'  # mmdet's own SwinTransformer: the plain linear key
    charts = backbone.get('num_charts', exp.get('charts'))
    if key == 'linear':
        charts = None
    seed = randomness['seed'] if 'seed' in randomness else exp.get('seed')
    loop = str(train_cfg.get('type', ''))
    by_iter = 'IterBased' in loop or ('max_iters' in train_cfg and 'max_epochs' not in train_cfg)
    return {
        'backbone_type': btype if isinstance(btype, str) else None,
        'key_type': key if isinstance(key, str) else None,
        'num_charts': _num(charts),
        'seed': _num(seed),
        'max_epochs': None if by_iter else _num(train_cfg.get('max_epochs')),
        'max_iters': _num(train_cfg.get('max_iters')) if by_iter else None,
        'schedule': exp.get('schedule') if isinstance(exp.get('schedule'), str) else None,
        'backbone_name': exp.get('backbone') if isinstance(exp.get('backbone'), str) else None,
        'experiment': exp or None,
        'fingerprint': fingerprint(d),
    }


def describe_configs(paths: list[str]) -> list[dict[str, Any]]:
    """:func:`describe_config` for each path; a bad config gives ``ok: False`` and a one-line error."""
    out: list[dict[str, Any]] = []
    for p in paths:
        try:
            out.append({'path': p, 'ok': True, **describe_config(p)})
        except Exception as exc:  # noqa: BLE001 - one bad config must not hide the other runs
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
            out.append({'path': p, 'ok': False, 'error': f'{type(exc).__name__}: {msg}'[:300]})
    return out


# ---------------------------------------------------------------- plots

#: One color per run, in order (Okabe-Ito, readable with color-vision deficiencies).
COLORS = ('#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442')


def _draw_series(ax: Any, series: list[dict[str, Any]], key: str, title: str, xlabel: str,
                 ylabel: str, empty: str, **style: Any) -> None:
    """One line per run from its ``key`` points ``[[x, y], ...]``; ``empty`` when no run has any."""
    for i, s in enumerate(series):
        pts = s.get(key) or []
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=s['label'],
                    color=COLORS[i % len(COLORS)], lw=1.4, **style)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if any(s.get(key) for s in series):
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, empty, ha='center', va='center', transform=ax.transAxes, color='#777')


def write_plots(series: list[dict[str, Any]], prefix: str) -> dict[str, str]:
    """Writes ``<prefix>-loss.png``, ``-lr.png`` and ``-ap.png`` (classification series, with
    ``top1``/``top5``: ``-top1.png``); returns their paths."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    files: dict[str, str] = {}

    def save(fig: Any, key: str) -> None:
        fig.tight_layout()
        files[key] = f'{prefix}-{key}.png'
        fig.savefig(files[key])
        plt.close(fig)

    for key, title in (('loss', 'Training loss'), ('lr', 'Learning rate')):
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        _draw_series(ax, series, key, title, 'iteration', key, 'no data yet')
        save(fig, key)

    by_iter = bool(series) and all(s.get('evalBy') == 'iter' for s in series)
    if series and all('top1' in s for s in series):
        # classification (mkey-det pretrain): top-1 and top-5 instead of box and mask AP
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
        for ax, key, title in ((axes[0], 'top1', 'Top-1 accuracy'), (axes[1], 'top5', 'Top-5 accuracy')):
            _draw_series(ax, series, key, title, 'iteration' if by_iter else 'epoch', 'accuracy (%)',
                         'no evaluation yet', marker='o', ms=4)
        save(fig, 'top1')
        return files
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for ax, key, title in ((axes[0], 'apBox', 'Box AP'), (axes[1], 'apMask', 'Mask AP')):
        _draw_series(ax, series, key, title, 'iteration' if by_iter else 'epoch', 'AP (%)',
                     'no evaluation yet', marker='o', ms=4)
    save(fig, 'ap')
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='report_tools.py', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p_plot = sub.add_parser('plot', help='write PNG plots of the report series')
    p_plot.add_argument('--data', required=True, help='JSON file {"series": [...]} as mkey-det report writes it')
    p_plot.add_argument('--prefix', required=True, help='output path prefix: <prefix>-loss.png, -lr.png, -ap.png')
    p_desc = sub.add_parser('describe', help='print the identity of config files as JSON')
    p_desc.add_argument('configs', nargs='+')
    args = parser.parse_args(argv)
    if args.cmd == 'plot':
        with open(args.data, encoding='utf8') as f:
            series = json.load(f)['series']
        print(json.dumps(write_plots(series, args.prefix)))
    else:
        print(json.dumps(describe_configs(args.configs), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
