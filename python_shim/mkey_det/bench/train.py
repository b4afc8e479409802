"""``train`` suite: one Mask R-CNN + FPN training step per backbone variant, batch size and
precision.

The model is built from the MMDetection config that ``mkey-det config --backbone X --charts 8
--data demo`` writes (the CLI passes the files in ``--configs``; run standalone, an equivalent
model part is written here): Swin-T Mask R-CNN + FPN from mmdet's 3x config with the demo's
CPU-sized heads (3 classes, 200 RPN proposals and 32 sampled RoIs per image in training) and AdamW
with gradient clipping. With the stock heads (2000/1000 proposals, 512 RoIs), a CPU step at a
small size is dominated by mmcv's CPU RoIAlign and mask targets, and the backbone (where the
variants differ) drowns in noise. Inputs are synthetic (:func:`.train_worker.make_batch`): fixed
batches of ``batch`` images of ``size x size``, the same for every variant (the dataset part of
the config is not read).

Precisions: ``fp32``, and on CUDA ``fp16``/``bf16`` through mmengine's ``AmpOptimWrapper``, set up
as MMDetection's ``tools/train.py --amp`` does (:func:`.train_worker.amp_optim_wrapper_cfg`).

Processes (:mod:`.train_worker`): on the CPU, one fresh process per (variant, batch, precision),
since the only peak memory there is the process's ``ru_maxrss``; on CUDA, one process per variant
that runs its (batch, precision) pairs in turn, with ``torch.cuda.reset_peak_memory_stats``
between them (peak memory = ``torch.cuda.max_memory_allocated``). A CUDA out-of-memory error fails
that pair only (its row is ``error: "CUDA out of memory"``).

Reported per row: step time (median, IQR, min/max; ``warmup`` steps excluded), images/s
(``batch / median``), peak memory (GPU GiB on CUDA, peak RSS on the CPU), whether every loss was
finite, and ratios to Swin-T at the same batch and precision: time, memory, (CPU) the RSS added
by training, and FLOPs: the backbone's (training order, i.e. ``'fast'``, and the paper order,
counted on a CPU copy) and, on the CPU, the whole detector's (the detector's inference forward,
counted once for Swin-T, plus each variant's backbone difference: everything but the backbone is
identical).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..models.keys import KEYS
from ..models.keys.registry import BASE_BACKBONE
from .common import BenchInputError, Emitter, loadavg

#: (CLI backbone name, key type) of every registered key variant, in display order (the names of
#: ``mkey-det config --backbone``: 'swin-t', 'swin-t-spatialk', ...)
VARIANTS = tuple((s.backbone_name, s.key_type) for s in KEYS.specs())
VARIANT_NAMES = tuple(v for v, _ in VARIANTS)
BASELINE = BASE_BACKBONE[0]
PRECISIONS = ('fp32', 'fp16', 'bf16')
CHARTS = 8
MAX_BATCH = 128
SIZE_RANGE = (64, 4096)
# defaults per (device, quick): batch sizes, precisions, size, warm-up steps, timed steps
DEFAULTS = {
    ('cpu', False): dict(batch_sizes=[2], precisions=['fp32'], size=384, warmup=1, steps=3),
    ('cpu', True): dict(batch_sizes=[1], precisions=['fp32'], size=256, warmup=1, steps=2),
    # fp16, not bf16: mmcv 2.1.0's RoIAlign CUDA kernel has no bfloat16 (see BF16_NOTE)
    ('cuda', False): dict(batch_sizes=[2, 8], precisions=['fp32', 'fp16'], size=1024, warmup=3,
                          steps=8),
    ('cuda', True): dict(batch_sizes=[2], precisions=['fp32'], size=512, warmup=1, steps=3),
}
# kept for callers of the previous single-setting interface
FULL = dict(batch=2, size=384, warmup=1, steps=3)
QUICK = dict(batch=1, size=256, warmup=1, steps=2)
WORKER_TIMEOUT_S = 3600
OOM_MESSAGE = 'CUDA out of memory'
BF16_NOTE = ("mmcv 2.1.0's roi_align CUDA kernel has no bfloat16 (AT_DISPATCH_FLOATING_TYPES_AND_HALF), "
             "so Mask R-CNN under AmpOptimWrapper(dtype='bfloat16') fails in the RoI extractor; "
             "`train --amp bf16` fails the same way: use fp16")

_BASE = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'


def _split(value) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(',') if v.strip()]
    return [str(v).strip() for v in value]


def resolve_settings(device: str, quick: bool = False, variants=None, batch_sizes=None,
                     precisions=None, size: Optional[int] = None, steps: Optional[int] = None,
                     warmup: Optional[int] = None) -> Dict[str, Any]:
    """The suite's settings: the device's defaults, overridden by what was given (comma strings
    or lists). Swin-T is always run first (the baseline of every ratio).
    :class:`BenchInputError` (exit code 2) names a bad value and what is accepted."""
    base = dict(DEFAULTS[(device, bool(quick))])
    names = _split(variants) or list(VARIANT_NAMES)
    unknown = [v for v in names if v not in VARIANT_NAMES]
    if unknown:
        raise BenchInputError(f'--variants: unknown variant {unknown[0]!r}; accepted: a comma '
                              f'list of {", ".join(VARIANT_NAMES)}')
    ordered = [BASELINE] + [v for v in dict.fromkeys(names) if v != BASELINE]
    if batch_sizes is not None:
        raw = _split(batch_sizes)
        try:
            sizes = [int(v) for v in raw]
        except ValueError:
            sizes = []
        if not sizes or any(b < 1 or b > MAX_BATCH for b in sizes):
            raise BenchInputError(f'--batch-sizes {",".join(raw) or "(empty)"!s}: accepted: a comma '
                                  f'list of integers from 1 to {MAX_BATCH}')
        base['batch_sizes'] = list(dict.fromkeys(sizes))
    if precisions is not None:
        precs = _split(precisions)
        bad = [p for p in precs if p not in PRECISIONS]
        if not precs or bad:
            raise BenchInputError(f'--precisions {",".join(precs) or "(empty)"}: accepted: a comma '
                                  f'list of {", ".join(PRECISIONS)}')
        base['precisions'] = list(dict.fromkeys(precs))
    if device == 'cpu' and any(p != 'fp32' for p in base['precisions']):
        raise BenchInputError(f'--precisions {",".join(base["precisions"])}: fp16 and bf16 '
                              '(AmpOptimWrapper) need --device cuda; accepted on cpu: fp32')
    if size is not None:
        if not SIZE_RANGE[0] <= int(size) <= SIZE_RANGE[1]:
            raise BenchInputError(f'--size {size}: accepted: an integer from {SIZE_RANGE[0]} to '
                                  f'{SIZE_RANGE[1]}')
        base['size'] = int(size)
    if steps is not None:
        if int(steps) < 1:
            raise BenchInputError(f'--steps {steps}: accepted: an integer >= 1')
        base['steps'] = int(steps)
    if warmup is not None:
        if int(warmup) < 0:
            raise BenchInputError(f'--warmup {warmup}: accepted: an integer >= 0')
        base['warmup'] = int(warmup)
    return dict(variants=ordered, **base)


def write_config(path: str, key_type: str, charts: int = CHARTS) -> str:
    """A config with the model part of ``mkey-det config --data demo`` (for standalone runs).
    A variant registered outside ``mkey_det`` (a plugin) has its module imported as well."""
    spec = KEYS.get(key_type)
    extra = f", num_charts={charts}" if spec.uses_charts else ''
    imports = ['mkey_det'] + ([] if spec.module.startswith('mkey_det.') else [spec.module])
    with open(path, 'w') as f:
        f.write(f"_base_ = '{_BASE}'\n"
                f"custom_imports = dict(imports={imports!r}, allow_failed_imports=False)\n"
                f"model = dict(backbone=dict(type='SwinTransformerMKey', key_type='{key_type}'"
                f"{extra}, init_cfg=None),\n"
                "    roi_head=dict(bbox_head=dict(num_classes=3), mask_head=dict(num_classes=3)),\n"
                "    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=200),\n"
                "                   rcnn=dict(sampler=dict(num=32))),\n"
                "    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100),\n"
                "                  rcnn=dict(max_per_img=20)))\n"
                "optim_wrapper = dict(optimizer=dict(lr=0.0002),\n"
                "                     clip_grad=dict(max_norm=10, norm_type=2))\n")
    return path


def _worker_cmd(config: str, device: torch.device, batch_sizes: Sequence[int],
                precisions: Sequence[str], settings: Dict[str, Any], flops: str) -> List[str]:
    return [sys.executable, '-m', 'mkey_det.bench.train_worker', '--config', config,
            '--batch-sizes', ','.join(str(b) for b in batch_sizes),
            '--precisions', ','.join(precisions), '--size', str(settings['size']),
            '--warmup', str(settings['warmup']), '--steps', str(settings['steps']),
            '--device', device.type, '--flops', flops]


def _log_tail(path: str) -> str:
    try:
        with open(path) as f:
            lines = [ln for ln in f.read().strip().splitlines() if ln.strip()]
        return lines[-1] if lines else ''
    except OSError:
        return ''


def run_worker(config: str, device: torch.device, batch_sizes: Sequence[int],
               precisions: Sequence[str], settings: Dict[str, Any], flops: str, log_path: str,
               on_row=None) -> Tuple[List[Dict[str, Any]], Dict[str, Any], Optional[str]]:
    """One worker process: its rows (in the order it ran them; ``on_row`` sees each as it
    arrives), its FLOPs, and an error message if the process failed (rows it did not report
    are then missing)."""
    cmd = _worker_cmd(config, device, batch_sizes, precisions, settings, flops)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    rows: List[Dict[str, Any]] = []
    flops_res: Dict[str, Any] = {}
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        watchdog = threading.Timer(WORKER_TIMEOUT_S, proc.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                line = line.strip()
                if not line.startswith('{'):
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get('kind') == 'row':
                    rows.append(msg)
                    if on_row is not None:
                        on_row(msg)
                elif msg.get('kind') == 'flops':
                    flops_res = msg.get('flops') or {}
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            watchdog.cancel()
    error = None
    if code != 0:
        error = f'train worker for {config} failed (exit {code}): {_log_tail(log_path)} (log: {log_path})'
    return rows, flops_res, error


def run(emitter: Emitter, device: torch.device, quick: bool = False, work_dir: str = '.',
        machine: Optional[Dict[str, Any]] = None, configs: Optional[str] = None,
        variants=None, batch_sizes=None, precisions=None, size: Optional[int] = None,
        steps: Optional[int] = None, warmup: Optional[int] = None) -> Dict[str, Any]:
    settings = resolve_settings(device.type, quick, variants, batch_sizes, precisions, size,
                                steps, warmup)
    if device.type == 'cuda' and 'bf16' in settings['precisions'] \
            and not torch.cuda.is_bf16_supported():
        raise BenchInputError('--precisions bf16: this GPU does not support bfloat16; '
                              'accepted here: fp32, fp16')
    names = settings['variants']
    pairs = [(b, p) for b in settings['batch_sizes'] for p in settings['precisions']]
    key_types = dict(VARIANTS)
    given: Dict[str, str] = {}
    if configs:
        with open(configs) as f:
            given = json.load(f)
    per_process = 'variant' if device.type == 'cuda' else 'pair'
    emitter.start(str(device), quick, len(names) * len(pairs), dict(
        settings, charts=CHARTS,
        process=('one process per variant, its (batch, precision) pairs in turn '
                 '(torch.cuda.reset_peak_memory_stats between them)' if per_process == 'variant'
                 else 'one fresh process per (variant, batch, precision)'),
        memory=('torch.cuda.max_memory_allocated' if device.type == 'cuda'
                else 'ru_maxrss (peak RSS of the process)'),
        inputs='synthetic, identical for all variants',
        config_source=('mkey-det config --data demo' if given
                       else 'written by the suite (same model part)')))
    rows: List[Dict[str, Any]] = []
    errors: List[str] = []
    flops_by_variant: Dict[str, Dict[str, Any]] = {}
    base_rows: Dict[Tuple[int, str], Dict[str, Any]] = {}

    def finish_row(name: str, res: Dict[str, Any], wall_s: float, load_before) -> Dict[str, Any]:
        key_type = key_types[name]
        res = dict(res)
        res.pop('kind', None)
        res.update(variant=name, key_type=key_type,
                   charts=CHARTS if KEYS.get(key_type).uses_charts else None,
                   wall_s=wall_s, loadavg_before=load_before)
        if 'cuda_peak_allocated_mib' in res:
            res['peak_mem_gib'] = res['cuda_peak_allocated_mib'] / 1024
            res['peak_mem_kind'] = 'cuda_max_allocated'
        else:
            res['peak_mem_gib'] = res.get('peak_rss_mib', 0.0) / 1024
            res['peak_mem_kind'] = 'rss'
        key = (res['batch'], res['precision'])
        if name == BASELINE and 'error' not in res:
            base_rows[key] = res
        base = base_rows.get(key)
        res['ratios'] = ratios(res, base) if base is not None and 'error' not in res else None
        if 'error' in res:
            if 'BFloat16' in res['error'] and 'roi_align' in res['error']:
                res['note'] = BF16_NOTE
            line = f'{name} b{res["batch"]} {res["precision"]}: {res["error"]}'
        else:
            line = (f'{name} b{res["batch"]} {res["precision"]} {res["size"]}px: step '
                    f'{res["step_s"]["median"]:.3f} s (IQR {res["step_s"]["iqr"]:.3f}, '
                    f'n={res["step_s"]["n"]}), {res["images_per_s"]:.1f} img/s, peak '
                    f'{"GPU" if res["peak_mem_kind"] == "cuda_max_allocated" else "RSS"} '
                    f'{res["peak_mem_gib"]:.2f} GiB')
            r = res['ratios']
            if r is not None and name != BASELINE:
                line += f'; vs Swin-T: time {_fmt(r["time"])}x, memory {_fmt(r["memory"])}x'
            if not res.get('losses_finite', True):
                line += '; NON-FINITE LOSS'
        return emitter.measure(f'{name}/b{res["batch"]}/{res["precision"]}', line, res)

    for name in names:
        key_type = key_types[name]
        config = given.get(name) or write_config(os.path.join(work_dir, f'{name}.py'), key_type)
        # the detector's FLOPs once (Swin-T, CPU only: slow to trace, and informative only)
        flops_kind = 'detector' if (name == BASELINE and device.type == 'cpu') else 'backbone'
        groups = [pairs] if per_process == 'variant' else [[pr] for pr in pairs]
        for gi, group in enumerate(groups):
            t0 = time.perf_counter()
            load_before = loadavg()
            tag = f'{name}' if per_process == 'variant' else f'{name}-b{group[0][0]}-{group[0][1]}'
            batch_list = list(dict.fromkeys(b for b, _ in group))
            prec_list = list(dict.fromkeys(p for _, p in group))

            def on_row(msg, _name=name, _t0=t0, _load=load_before):
                rows.append(finish_row(_name, msg, time.perf_counter() - _t0, _load))

            got, flops, error = run_worker(config, device, batch_list, prec_list, settings,
                                           flops_kind if gi == 0 else 'none',
                                           os.path.join(work_dir, f'{tag}.log'), on_row)
            if gi == 0:
                flops_by_variant[name] = flops
            seen = {(r['batch'], r['precision']) for r in got}
            if error is not None:
                errors.append(error)
                for b, p in group:
                    if (b, p) not in seen:
                        rows.append(finish_row(name, dict(batch=b, precision=p,
                                                          size=settings['size'], error=error),
                                               time.perf_counter() - t0, load_before))
    # FLOPs (counted after the timings) and their ratios
    base_flops = flops_by_variant.get(BASELINE) or {}
    det = base_flops.get('detector') or {}
    for r in rows:
        f = flops_by_variant.get(r['variant']) or {}
        r['flops'] = f
        if 'rest' in det and 'backbone_train_order' in f:
            r['detector_flops_est'] = f['backbone_train_order'] + det['rest']
        if r.get('ratios') is not None:
            base = base_rows[(r['batch'], r['precision'])]
            base_f = dict(base, flops=base_flops)
            if 'rest' in det and 'backbone_train_order' in base_flops:
                base_f['detector_flops_est'] = base_flops['backbone_train_order'] + det['rest']
            r['ratios'] = ratios(dict(r, flops=f), base_f, det_total=det.get('total'))
    if any(r.get('note') == BF16_NOTE for r in rows):
        errors.insert(0, f'bf16: {BF16_NOTE}')
    other_errors = [r for r in rows if r.get('error') and r['error'] != OOM_MESSAGE]
    for r in other_errors:
        msg = f'{r["variant"]} b{r["batch"]} {r["precision"]}: {r["error"]}'
        if msg not in errors:
            errors.append(msg)
    ratio_table = [dict(variant=r['variant'], batch=r['batch'], precision=r['precision'],
                        **(r.get('ratios') or {})) for r in rows]
    return dict(rows=rows, settings=settings, charts=CHARTS, ratio_table=ratio_table,
                errors=errors, passed=not errors,
                oom=[f'{r["variant"]} b{r["batch"]} {r["precision"]}' for r in rows
                     if r.get('error') == OOM_MESSAGE])


def _fmt(v: Optional[float]) -> str:
    return 'n/a' if v is None else f'{v:.2f}'


def ratios(res: Dict[str, Any], base: Dict[str, Any],
           det_total: Optional[float] = None) -> Dict[str, Optional[float]]:
    """variant / Swin-T (same batch and precision): time, memory (GPU peak on CUDA, peak RSS on
    the CPU), RSS added by training, params, FLOPs."""
    def div(a, b):
        return a / b if a is not None and b else None
    f, bf = res.get('flops') or {}, base.get('flops') or {}
    if det_total is None:
        det_total = (bf.get('detector') or {}).get('total')
    mem = 'peak_mem_gib' if 'peak_mem_gib' in res and 'peak_mem_gib' in base else 'peak_rss_mib'
    return dict(
        time=div(res['step_s']['median'], base['step_s']['median']),
        time_min=div(res['step_s']['min'], base['step_s']['min']),
        images_per_s=div(res.get('images_per_s'), base.get('images_per_s')),
        memory=div(res.get(mem), base.get(mem)),
        peak_rss=div(res.get('peak_rss_mib'), base.get('peak_rss_mib')),
        train_rss_increase=div(res.get('train_rss_increase_mib'),
                               base.get('train_rss_increase_mib')),
        params=div(res.get('params'), base.get('params')),
        flops_backbone=div(f.get('backbone_train_order'), bf.get('backbone_train_order')),
        flops_backbone_paper=div(f.get('backbone_paper'), bf.get('backbone_paper')),
        flops_detector=div(res.get('detector_flops_est'), det_total))
