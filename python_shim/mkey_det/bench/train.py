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

Two passes. **Timing** (:mod:`.train_interleaved`): one process builds every variant's detector
and runs, per (batch, precision), ``warmup`` untimed and ``steps`` timed *rounds* in which every
variant takes one step (order alternating), so that a slow phase of a shared machine hits all
variants alike; the ratio to Swin-T is the trimmed geometric mean of the per-round ratios with a
95% bootstrap interval over the rounds (:func:`.common.ratio_spread`). **Memory and FLOPs** (:mod:`.train_worker`, one warm-up
and one step): on the CPU one fresh process per (variant, batch, precision), since the only peak
memory there is the process's ``ru_maxrss``; on CUDA one process per variant that runs its
(batch, precision) pairs in turn, with ``torch.cuda.reset_peak_memory_stats`` between them (peak
memory = ``torch.cuda.max_memory_allocated``). A CUDA out-of-memory error fails that pair only
(its row is ``error: "CUDA out of memory"``).

Reported per row: step time (median, IQR, min/max; ``warmup`` rounds excluded), images/s
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
from .common import TRIM, BenchInputError, Emitter, loadavg

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
# (rounds: every variant takes one step per round, see .train_interleaved)
DEFAULTS = {
    ('cpu', False): dict(batch_sizes=[2], precisions=['fp32'], size=384, warmup=3, steps=40),
    ('cpu', True): dict(batch_sizes=[1], precisions=['fp32'], size=256, warmup=1, steps=2),
    # fp16, not bf16: mmcv 2.1.0's RoIAlign CUDA kernel has no bfloat16 (see BF16_NOTE)
    ('cuda', False): dict(batch_sizes=[2, 8], precisions=['fp32', 'fp16'], size=1024, warmup=5,
                          steps=20),
    ('cuda', True): dict(batch_sizes=[2], precisions=['fp32'], size=512, warmup=1, steps=3),
}
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


def config_imports(module: str) -> List[str]:
    """``custom_imports`` of a config whose key is registered in ``module``: the plugin, and that
    module too when it lies outside it (neither ``mkey_det`` nor a submodule: ``mkey_det_x`` is
    outside). The TS renderers' rule is ``customImports`` in src/core/config/render.ts."""
    outside = module != 'mkey_det' and not module.startswith('mkey_det.')
    return ['mkey_det', module] if outside else ['mkey_det']


def write_config(path: str, key_type: str, charts: int = CHARTS) -> str:
    """A config with the model part of ``mkey-det config --data demo`` (for standalone runs)."""
    spec = KEYS.get(key_type)
    extra = f", num_charts={charts}" if spec.uses_charts else ''
    imports = config_imports(spec.module)
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
    """The memory pass's worker (:mod:`.train_worker`): one variant, one warm-up step and one
    step per pair (peak memory, FLOPs; its step times are not the suite's)."""
    return [sys.executable, '-m', 'mkey_det.bench.train_worker', '--config', config,
            '--batch-sizes', ','.join(str(b) for b in batch_sizes),
            '--precisions', ','.join(precisions), '--size', str(settings['size']),
            '--warmup', '1', '--steps', '1', '--device', device.type, '--flops', flops]


def _timing_cmd(configs: Dict[str, str], device: torch.device, settings: Dict[str, Any]) -> List[str]:
    """The timing pass's worker (:mod:`.train_interleaved`): every variant, interleaved rounds."""
    return [sys.executable, '-m', 'mkey_det.bench.train_interleaved',
            '--configs', ','.join(f'{n}={c}' for n, c in configs.items()),
            '--baseline', BASELINE,
            '--batch-sizes', ','.join(str(b) for b in settings['batch_sizes']),
            '--precisions', ','.join(settings['precisions']), '--size', str(settings['size']),
            '--warmup', str(settings['warmup']), '--steps', str(settings['steps']),
            '--device', device.type]


def _log_tail(path: str) -> str:
    try:
        with open(path) as f:
            lines = [ln for ln in f.read().strip().splitlines() if ln.strip()]
        return lines[-1] if lines else ''
    except OSError:
        return ''


def run_worker(cmd: List[str], log_path: str, on_row=None, on_round=None
               ) -> Tuple[List[Dict[str, Any]], Dict[str, Any], Optional[str]]:
    """One worker process (``cmd``): its rows (in the order it ran them; ``on_row`` sees each as
    it arrives; ``on_round`` the timing pass's progress lines), its FLOPs, and an error message
    if the process failed (rows it did not report are then missing)."""
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
                elif msg.get('kind') == 'round' and on_round is not None:
                    on_round(str(msg.get('line', '')))
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
        error = f'train worker {cmd[2]} failed (exit {code}): {_log_tail(log_path)} (log: {log_path})'
    return rows, flops_res, error


MEMORY_FIELDS = ('peak_rss_mib', 'rss_before_steps_mib', 'train_rss_increase_mib',
                 'cuda_peak_allocated_mib', 'cuda_peak_reserved_mib', 'cuda_allocated_before_mib')


def run(emitter: Emitter, device: torch.device, quick: bool = False, work_dir: str = '.',
        machine: Optional[Dict[str, Any]] = None, configs: Optional[str] = None,
        variants=None, batch_sizes=None, precisions=None, size: Optional[int] = None,
        steps: Optional[int] = None, warmup: Optional[int] = None) -> Dict[str, Any]:
    """Two passes: timing (every variant in one process, interleaved rounds:
    :mod:`.train_interleaved`), then peak memory and FLOPs (one process per variant on CUDA,
    per (variant, pair) on the CPU: :mod:`.train_worker`). One row per (variant, batch,
    precision) with both."""
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
    config_of = {n: given.get(n) or write_config(os.path.join(work_dir, f'{n}.py'), key_types[n])
                 for n in names}
    per_process = 'variant' if device.type == 'cuda' else 'pair'
    emitter.start(str(device), quick, 2 * len(names) * len(pairs), dict(
        settings, charts=CHARTS,
        timing=(f'one process, all variants built; per (batch, precision) {settings["warmup"]} '
                f'untimed + {settings["steps"]} timed rounds, one step per variant per round, '
                'order alternating; ratio = geometric mean of the per-round ratios, highest and '
                f'lowest {TRIM:.0%} dropped, 95% bootstrap interval over rounds'),
        process=('memory pass: one process per variant, its (batch, precision) pairs in turn '
                 '(torch.cuda.reset_peak_memory_stats between them)' if per_process == 'variant'
                 else 'memory pass: one fresh process per (variant, batch, precision)'),
        memory=('torch.cuda.max_memory_allocated' if device.type == 'cuda'
                else 'ru_maxrss (peak RSS of the process)'),
        inputs='synthetic, identical for all variants',
        config_source=('mkey-det config --data demo' if given
                       else 'written by the suite (same model part)')))
    errors: List[str] = []
    timed: Dict[Tuple[str, int, str], Dict[str, Any]] = {}

    def on_timing(msg: Dict[str, Any]) -> None:
        row = dict(msg)
        row.pop('kind', None)
        timed[(row['variant'], row['batch'], row['precision'])] = row
        emitter.measure(f'{row["variant"]}/b{row["batch"]}/{row["precision"]}/time',
                        _timing_line(row), row)

    t0 = time.perf_counter()
    load_before = loadavg()
    _, _, error = run_worker(_timing_cmd(config_of, device, settings),
                             os.path.join(work_dir, 'timing.log'), on_timing,
                             lambda line: emitter.progress(f'timing {line}'))
    timing_wall_s = time.perf_counter() - t0
    if error is not None:
        errors.append(error)

    rows: List[Dict[str, Any]] = []
    flops_by_variant: Dict[str, Dict[str, Any]] = {}
    base_rows: Dict[Tuple[int, str], Dict[str, Any]] = {}
    for name in names:
        # the detector's FLOPs once (Swin-T, CPU only: slow to trace, and informative only)
        flops_kind = 'detector' if (name == BASELINE and device.type == 'cpu') else 'backbone'
        groups = [pairs] if per_process == 'variant' else [[pr] for pr in pairs]
        for gi, group in enumerate(groups):
            tag = f'{name}' if per_process == 'variant' else f'{name}-b{group[0][0]}-{group[0][1]}'

            def on_memory(msg, _name=name):
                row = _merge(_name, timed.get((_name, msg['batch'], msg['precision'])), msg,
                             settings['size'])
                row.update(wall_s=timing_wall_s, loadavg_before=load_before)
                if _name == BASELINE and 'error' not in row:
                    base_rows[(row['batch'], row['precision'])] = row
                base = base_rows.get((row['batch'], row['precision']))
                row['ratios'] = (ratios(row, base) if base is not None and 'error' not in row
                                 else None)
                rows.append(emitter.measure(f'{_name}/b{row["batch"]}/{row["precision"]}',
                                            _row_line(row), row))

            cmd = _worker_cmd(config_of[name], device, list(dict.fromkeys(b for b, _ in group)),
                              list(dict.fromkeys(p for _, p in group)), settings,
                              flops_kind if gi == 0 else 'none')
            got, flops, error = run_worker(cmd, os.path.join(work_dir, f'{tag}.log'), on_memory)
            if gi == 0:
                flops_by_variant[name] = flops
            seen = {(r['batch'], r['precision']) for r in got}
            if error is not None:
                errors.append(error)
                for b, p in group:
                    if (b, p) not in seen:
                        on_memory(dict(batch=b, precision=p, memory_error=error))
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


def _merge(name: str, timing: Optional[Dict[str, Any]], memory: Dict[str, Any],
           size: int) -> Dict[str, Any]:
    """One suite row: the timing pass's row (its step times, losses, ratio spread) with the
    memory pass's peak memory; ``error`` when the timing failed, ``memory_error`` when only the
    memory pass did."""
    key_type = dict(VARIANTS)[name]
    row: Dict[str, Any] = dict(timing or dict(batch=memory['batch'], precision=memory['precision'],
                                              size=size, error='no timing (the timing pass failed)'))
    row.update(variant=name, key_type=key_type,
               charts=CHARTS if KEYS.get(key_type).uses_charts else None)
    for k in ('params', 'backbone_params', 'threads', 'device'):
        if k not in row and k in memory:
            row[k] = memory[k]
    if memory.get('error') or memory.get('memory_error'):
        row['memory_error'] = memory.get('memory_error') or memory['error']
        if memory.get('error') == OOM_MESSAGE and 'error' not in row:
            row['error'] = OOM_MESSAGE
    for k in MEMORY_FIELDS:
        if k in memory:
            row[k] = memory[k]
    if 'cuda_peak_allocated_mib' in row:
        row['peak_mem_gib'] = row['cuda_peak_allocated_mib'] / 1024
        row['peak_mem_kind'] = 'cuda_max_allocated'
    elif 'peak_rss_mib' in row:
        row['peak_mem_gib'] = row['peak_rss_mib'] / 1024
        row['peak_mem_kind'] = 'rss'
    if 'error' in row and 'BFloat16' in row['error'] and 'roi_align' in row['error']:
        row['note'] = BF16_NOTE
    return row


def _timing_line(row: Dict[str, Any]) -> str:
    head = f'{row["variant"]} b{row["batch"]} {row["precision"]} {row["size"]}px'
    if 'error' in row:
        return f'{head}: timing failed: {row["error"]}'
    st, tr = row['step_s'], row.get('time_ratio') or {}
    line = (f'{head}: step {st["median"]:.3f} s (IQR {st["iqr"]:.3f}, n={st["n"]}), '
            f'{row["images_per_s"]:.1f} img/s')
    if tr.get('ratio') is not None and row['variant'] != BASELINE:
        lo, hi = tr['ci']
        line += f'; vs Swin-T {tr["ratio"]:.3f}x (95% {lo:.3f}-{hi:.3f})'
    return line


def _row_line(row: Dict[str, Any]) -> str:
    head = f'{row["variant"]} b{row["batch"]} {row["precision"]}'
    if 'error' in row:
        return f'{head}: {row["error"]}'
    if 'memory_error' in row:
        return f'{head}: memory pass failed: {row["memory_error"]}'
    line = (f'{head}: peak {"GPU" if row["peak_mem_kind"] == "cuda_max_allocated" else "RSS"} '
            f'{row["peak_mem_gib"]:.2f} GiB')
    r = row['ratios']
    if r is not None and row['variant'] != BASELINE:
        line += f'; vs Swin-T: time {_fmt(r["time"])}x, memory {_fmt(r["memory"])}x'
    if not row.get('losses_finite', True):
        line += '; NON-FINITE LOSS'
    return line


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
    tr = res.get('time_ratio') or {}
    of_medians = div(res['step_s']['median'], base['step_s']['median'])
    return dict(
        # the paired per-round estimate when the rounds were timed together (the timing pass)
        time=tr['ratio'] if tr.get('ratio') is not None else of_medians,
        time_ci=tr.get('ci'),
        time_of_medians=of_medians,
        time_round_median=tr.get('round_median'),
        time_min=div(res['step_s']['min'], base['step_s']['min']),
        images_per_s=div(res.get('images_per_s'), base.get('images_per_s')),
        memory=div(res.get(mem), base.get(mem)),
        peak_rss=div(res.get('peak_rss_mib'), base.get('peak_rss_mib')),
        train_rss_increase=div(res.get('train_rss_increase_mib'),
                               base.get('train_rss_increase_mib')),
        params=div(res.get('params'), base.get('params')),
        flops_backbone=div(f.get('backbone_train_order'), bf.get('backbone_train_order')),
        flops_backbone_paper=div(f.get('backbone_paper'), bf.get('backbone_paper')),
        flops_detector=div(res.get('detector_flops_est'), det_total),
        flops_step=div((f.get('step') or {}).get('flops'), (bf.get('step') or {}).get('flops')))
