"""``train`` suite: one Mask R-CNN + FPN training step per backbone variant.

Each variant (Swin-T and the four manifold keys at 8 charts) runs in a fresh process
(:mod:`.train_worker`), so that its ``ru_maxrss`` is its own peak. The model is built from the
MMDetection config that ``mkey-det config --backbone X --charts 8 --data demo`` writes (the CLI
passes the files in ``--configs``; run standalone, an equivalent model part is written here):
Swin-T Mask R-CNN + FPN from mmdet's 3x config with the demo's CPU-sized heads (3 classes, 200
RPN proposals and 64 sampled RoIs per image in training) and AdamW with gradient clipping. With
the stock heads (2000/1000 proposals, 512 RoIs), a CPU step at a small size is dominated by
mmcv's CPU RoIAlign and mask targets, and the backbone (where the variants differ) drowns in
noise. Inputs are synthetic (:func:`.train_worker.make_batch`): a fixed batch of ``batch``
images of ``size x size``, the same for every variant (the dataset part of the config is not
read).

Reported per variant: median step time (``warmup`` steps excluded) with IQR and min/max, peak
RSS, and ratios to Swin-T of time, peak RSS, the RSS added by training (peak minus RSS before the
first step), and FLOPs: the backbone's (training order, i.e. ``'fast'``, and the paper order)
and the whole detector's (the detector's inference forward, counted once for Swin-T, plus each
variant's backbone difference: everything but the backbone is identical).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import torch

from .common import Emitter, loadavg

VARIANTS = (('swin-t', 'linear'), ('swin-t-spatialk', 'spatialk'), ('swin-t-kua', 'kua'),
            ('swin-t-simplek', 'simplek'), ('swin-t-vanillak', 'vanillak'))
CHARTS = 8
FULL = dict(batch=2, size=384, warmup=1, steps=3)
QUICK = dict(batch=1, size=256, warmup=1, steps=2)
WORKER_TIMEOUT_S = 3600

_BASE = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'


def write_config(path: str, key_type: str, charts: int = CHARTS) -> str:
    """A config with the model part of ``mkey-det config --data demo`` (for standalone runs)."""
    extra = '' if key_type == 'linear' else f", num_charts={charts}"
    with open(path, 'w') as f:
        f.write(f"_base_ = '{_BASE}'\n"
                "custom_imports = dict(imports=['mkey_det'], allow_failed_imports=False)\n"
                f"model = dict(backbone=dict(type='SwinTransformerMKey', key_type='{key_type}'"
                f"{extra}, init_cfg=None),\n"
                "    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),\n"
                "    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=200),\n"
                "                   rcnn=dict(sampler=dict(num=64))),\n"
                "    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100),\n"
                "                  rcnn=dict(max_per_img=20)))\n"
                "optim_wrapper = dict(optimizer=dict(lr=0.0002),\n"
                "                     clip_grad=dict(max_norm=10, norm_type=2))\n")
    return path


def run_worker(config: str, settings: Dict[str, int], device: torch.device, flops: str,
               log_path: str) -> Dict[str, Any]:
    cmd = [sys.executable, '-m', 'mkey_det.bench.train_worker', '--config', config,
           '--batch', str(settings['batch']), '--size', str(settings['size']),
           '--warmup', str(settings['warmup']), '--steps', str(settings['steps']),
           '--device', device.type, '--flops', flops]
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    with open(log_path, 'w') as log:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                              timeout=WORKER_TIMEOUT_S)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith('{')]
    if proc.returncode != 0 or not lines:
        tail = ''
        try:
            with open(log_path) as f:
                tail = f.read().strip().splitlines()[-1:]
                tail = tail[0] if tail else ''
        except OSError:
            pass
        raise RuntimeError(f'train worker for {config} failed (exit {proc.returncode}): {tail} '
                           f'(log: {log_path})')
    return json.loads(lines[-1])


def run(emitter: Emitter, device: torch.device, quick: bool = False, work_dir: str = '.',
        machine: Optional[Dict[str, Any]] = None, configs: Optional[str] = None) -> Dict[str, Any]:
    settings = QUICK if quick else FULL
    given: Dict[str, str] = {}
    if configs:
        with open(configs) as f:
            given = json.load(f)
    emitter.start(str(device), quick, len(VARIANTS), dict(
        variants=[v for v, _ in VARIANTS], charts=CHARTS, **settings,
        process='one fresh process per variant', inputs='synthetic, identical for all variants',
        config_source=('mkey-det config --data demo' if given
                       else 'written by the suite (same model part)')))
    rows: List[Dict[str, Any]] = []
    base: Optional[Dict[str, Any]] = None
    for name, key_type in VARIANTS:
        config = given.get(name) or write_config(os.path.join(work_dir, f'{name}.py'), key_type)
        t0 = time.perf_counter()
        load_before = loadavg()
        flops = 'detector' if key_type == 'linear' else 'backbone'
        res = run_worker(config, settings, device, flops,
                         os.path.join(work_dir, f'{name}.log'))
        res.update(variant=name, key_type=key_type, charts=None if key_type == 'linear' else CHARTS,
                   wall_s=time.perf_counter() - t0, loadavg_before=load_before)
        if base is None:
            base = res
        f, bf = res.get('flops') or {}, base.get('flops') or {}
        det = bf.get('detector') or {}
        if 'rest' in det and 'backbone_train_order' in f:
            res['detector_flops_est'] = f['backbone_train_order'] + det['rest']
        res['ratios'] = ratios(res, base)
        r = res['ratios']
        line = (f'{name}: step {res["step_s"]["median"]:.2f} s (IQR {res["step_s"]["iqr"]:.2f}, '
                f'n={res["step_s"]["n"]}), peak RSS {res["peak_rss_mib"] / 1024:.2f} GiB')
        if res is not base:
            line += (f'; vs Swin-T: time {r["time"]:.2f}x, peak RSS {r["peak_rss"]:.2f}x, '
                     f'FLOPs {_fmt(r.get("flops_detector"))}x detector / '
                     f'{_fmt(r.get("flops_backbone"))}x backbone')
        rows.append(emitter.measure(name, line, res))
    return dict(rows=rows, settings=settings, charts=CHARTS,
                ratio_table=[dict(variant=r['variant'], **r['ratios']) for r in rows])


def _fmt(v: Optional[float]) -> str:
    return 'n/a' if v is None else f'{v:.2f}'


def ratios(res: Dict[str, Any], base: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """variant / Swin-T: time, peak RSS, RSS added by training, FLOPs."""
    def div(a, b):
        return a / b if a is not None and b else None
    f, bf = res.get('flops') or {}, base.get('flops') or {}
    det_b = (bf.get('detector') or {}).get('total')
    return dict(
        time=div(res['step_s']['median'], base['step_s']['median']),
        time_min=div(res['step_s']['min'], base['step_s']['min']),
        peak_rss=div(res['peak_rss_mib'], base['peak_rss_mib']),
        train_rss_increase=div(res.get('train_rss_increase_mib'),
                               base.get('train_rss_increase_mib')),
        params=div(res.get('params'), base.get('params')),
        flops_backbone=div(f.get('backbone_train_order'), bf.get('backbone_train_order')),
        flops_backbone_paper=div(f.get('backbone_paper'), bf.get('backbone_paper')),
        flops_detector=div(res.get('detector_flops_est'), det_b))
