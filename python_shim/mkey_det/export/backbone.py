"""``export.backbone``: the bridge entry behind ``mkey-det export``.

Builds the backbone (checkpoint or seeded random weights), optionally folds it, exports it to a
temporary sibling of ``out`` (``<out>.partial``), checks parity against the unfolded PyTorch
model on real photographs, and only then moves the file into place and writes the sidecar
``<out>.json``. A failed check leaves no file behind at ``out``.

Returns ``dict(status='ok' | 'parity_failed' | 'bad_input', message, ...)`` instead of raising
for expected failures, so the CLI can print the figures and choose the exit code.
"""
from __future__ import annotations

import datetime as _dt
import os
import pickle
import platform
import time
from typing import Any, Dict, List, Optional, Sequence

import torch

from ..models.keys import KEYS
from .core import (DEFAULT_OPSET, EXPORT_THRESHOLD, FOLD_THRESHOLD,
                   build_backbone, count_params, export_onnx, export_torchscript, fold,
                   parity_check, quiet_tracing)
from .images import MEAN, SAMPLE_IMAGES, STD

#: Extra sizes checked for a dynamic export (besides the export size): one that needs padding
#: at every stage, and a second aspect ratio.
DEFAULT_DYNAMIC_SIZES = ((333, 517), (480, 640))


class _BadInput(Exception):
    pass


def _versions() -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = dict(torch=torch.__version__, python=platform.python_version())
    for mod in ('onnx', 'onnxruntime', 'mmdet', 'mmengine'):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            out[mod] = None
    from .. import __version__
    out['mkey_det'] = __version__
    return out


def _complexity(model, h: int, w: int) -> Dict[str, int]:
    from ..analysis import count_complexity
    with quiet_tracing():
        c = count_complexity(model, h, w)
    return dict(params=c['params'], flops=c['flops'])


def _plan(shape: Sequence[int], dynamic: bool, check_sizes: Optional[List[List[int]]]):
    b, _, h, w = shape
    plan = [(b, h, w)]
    if dynamic:
        extra = check_sizes if check_sizes is not None else DEFAULT_DYNAMIC_SIZES
        plan += [(b, int(s[0]), int(s[1])) for s in extra if (b, int(s[0]), int(s[1])) != (b, h, w)]
        plan.append((b + 1, h, w))  # the batch axis is dynamic too: check another batch size
    elif check_sizes:
        raise _BadInput('--check-sizes needs --dynamic: a fixed-shape export runs only at '
                        f'{h}x{w}')
    return plan


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def export_backbone(key_type: str, out: str, format: str = 'onnx',  # noqa: A002
                    charts: int = 8, variant: Optional[str] = None,
                    checkpoint: Optional[str] = None, input_shape: Sequence[int] = (1, 3, 224, 224),
                    dynamic: bool = False, fold_keys: bool = False, force: bool = False,
                    check_sizes: Optional[List[List[int]]] = None,
                    threshold: float = EXPORT_THRESHOLD, fold_threshold: float = FOLD_THRESHOLD,
                    opset: int = DEFAULT_OPSET, seed: int = 0, flops: bool = True,
                    tool_version: Optional[str] = None) -> Dict[str, Any]:
    """Export one backbone and check it (see the module docstring). ``key_type``: as
    ``SwinTransformerMKey``; ``variant``: the CLI name, recorded in the sidecar."""
    t_start = time.perf_counter()
    timings: Dict[str, float] = {}
    out = os.path.abspath(out)
    sidecar_path = out + '.json'
    if format not in ('onnx', 'torchscript'):
        return dict(status='bad_input', message=f"format must be 'onnx' or 'torchscript', got {format!r}")
    if not force and (os.path.exists(out) or os.path.exists(sidecar_path)):
        return dict(status='bad_input', message=f'{out} (or its sidecar) already exists; '
                    'refusing to overwrite it without force')
    shape = [int(v) for v in input_shape]
    try:
        if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
            raise _BadInput(f'input shape must be Bx3xHxW, got {"x".join(map(str, shape))}')
        if shape[2] < 32 or shape[3] < 32:
            raise _BadInput(f'input height and width must be at least 32, got {shape[2]}x{shape[3]}')
        plan = _plan(shape, dynamic, check_sizes)
        if fold_keys and key_type in KEYS and not KEYS.get(key_type).manifold:
            raise _BadInput(f'--fold needs a manifold-key variant: the {key_type} key of '
                            f'{KEYS.get(key_type).backbone_name} has nothing to fold')
        if checkpoint is not None and not os.path.isfile(checkpoint):
            raise _BadInput(f'checkpoint file not found: {checkpoint}')
        t = time.perf_counter()
        try:
            model = build_backbone(key_type, charts, checkpoint=checkpoint, seed=seed)
        except (ValueError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
            # a checkpoint that does not fit or is not a checkpoint (torch.load's zip reader
            # raises RuntimeError on a corrupt file)
            if checkpoint is not None:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise _BadInput(f'cannot load checkpoint {checkpoint}: {reason}') from exc
            raise
        timings['build_s'] = time.perf_counter() - t
    except _BadInput as exc:
        return dict(status='bad_input', message=str(exc))

    weights = model.export_weights_info
    exported_model = model
    fold_report = None
    h, w = shape[2], shape[3]
    if fold_keys:
        t = time.perf_counter()
        exported_model = fold(model)
        fold_report = parity_check(model, exported_model, checks=[tuple([shape[0], h, w])],
                                   threshold=fold_threshold)
        fold_report['reference'] = 'the unfolded PyTorch model (paper order)'
        timings['fold_s'] = time.perf_counter() - t

    params = dict(exported=count_params(exported_model))
    if fold_keys:
        params.update(unfolded=count_params(model), folded=params['exported'])
    flops_report = None
    if flops:
        t = time.perf_counter()
        cx = _complexity(exported_model, h, w)
        flops_report = dict(size=[h, w], exported=cx['flops'],
                            convention='fvcore (mmengine FlopAnalyzer): one multiply-add = 1 '
                            'FLOP; matmuls and convolutions only; batch 1')
        if fold_keys:
            flops_report.update(unfolded=_complexity(model, h, w)['flops'], folded=cx['flops'])
        timings['flops_s'] = time.perf_counter() - t

    os.makedirs(os.path.dirname(out), exist_ok=True)
    partial = f'{out}.partial-{os.getpid()}'
    try:
        t = time.perf_counter()
        if format == 'onnx':
            info = export_onnx(exported_model, partial, shape, dynamic=dynamic, opset=opset)
        else:
            info = export_torchscript(exported_model, partial, shape)
        timings['export_s'] = time.perf_counter() - t
        t = time.perf_counter()
        parity = parity_check(model, partial, checks=plan, threshold=threshold, fmt=format,
                              output_names=info['output_names'])
        parity['reference'] = ('the PyTorch model in eager mode (mmdet forward, unfolded, '
                               'paper order)')
        timings['parity_s'] = time.perf_counter() - t
        passed = parity['passed'] and (fold_report is None or fold_report['passed'])
        if not passed:
            _remove(partial)
            return dict(status='parity_failed', message=_failure_message(parity, fold_report),
                        parity=parity, fold_parity=fold_report, params=params, flops=flops_report)
        file_bytes = os.path.getsize(partial)
        os.replace(partial, out)
    except BaseException:
        _remove(partial)
        raise

    channels = [int(model.num_features[i]) for i in model.out_indices]
    strides = [4 * 2**i for i in model.out_indices]
    sidecar = dict(
        tool='mkey-det', tool_version=tool_version,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
        format=format, file=os.path.basename(out), file_bytes=file_bytes,
        variant=variant, key_type=key_type,
        charts=charts if key_type in KEYS and KEYS.get(key_type).uses_charts else None,
        key_order='folded' if fold_keys else 'paper', fold=bool(fold_keys),
        weights=weights,
        input=dict(name=info['input_name'], shape=shape, layout='NCHW', dtype='float32',
                   dynamic=dict(batch=True, height=True, width=True) if dynamic else False,
                   preprocess=dict(color='RGB', mean=list(MEAN), std=list(STD),
                                   pad_size_divisor=32, pad_value=0.0,
                                   note='MMDetection DetDataPreprocessor (bgr_to_rgb=True); '
                                   'pad bottom/right after normalisation')),
        outputs=[dict(name=n, channels=c, stride=s, shape=sh) for n, c, s, sh in
                 zip(info['output_names'], channels, strides, info['output_shapes'])],
        dynamic=bool(dynamic), opset=info['opset'],
        versions=_versions(),
        parity=parity, fold_parity=fold_report,
        params=params, flops=flops_report,
        parity_images=list(SAMPLE_IMAGES),
        timings_s={k: round(v, 3) for k, v in timings.items()},
    )
    sidecar['timings_s']['total_s'] = round(time.perf_counter() - t_start, 3)
    from ..utils import json_safe, write_json_replacing
    write_json_replacing(sidecar_path, json_safe(sidecar), indent=2, allow_nan=False)
    return dict(status='ok', message='ok', path=out, sidecar_path=sidecar_path, sidecar=sidecar)


def _failure_message(parity: Dict[str, Any], fold_report: Optional[Dict[str, Any]]) -> str:
    if fold_report is not None and not fold_report['passed']:
        return (f'fold parity failed: max relative difference {fold_report["max_rel_diff"]:.3g} > '
                f'{fold_report["threshold"]:.0e} (folded vs unfolded PyTorch)')
    for c in parity['checks']:
        size = f'batch {c["batch"]} {c["size"][0]}x{c["size"][1]}'
        if c['error']:
            return f'export parity failed at {size}: {c["error"]}'
        if c['max_rel_diff'] is None or c['max_rel_diff'] > parity['threshold']:
            worst = max(c['per_output'], key=lambda k: c['per_output'][k])
            return (f'export parity failed at {size}: max relative difference '
                    f'{c["max_rel_diff"]:.3g} > {parity["threshold"]:.0e} ({worst})')
    return 'export parity failed'


_REFERENCE_CACHE: Dict[str, Any] = {}


def reference_outputs(key_type: str, out_dir: str, image: str, charts: int = 8,
                      checkpoint: Optional[str] = None, seed: int = 0, fold_keys: bool = False,
                      size: Optional[List[int]] = None, pad_divisor: Optional[int] = 32) -> Dict[str, Any]:
    """Write the PyTorch outputs of the backbone that ``export_backbone`` builds with the same
    arguments, for one image preprocessed like MMDetection (``size``: resize first; padded to
    ``pad_divisor``), as ``out_dir/input.npy`` and ``out_dir/out{i}.npy``. Used by the Node tests
    to compare onnxruntime-node with PyTorch."""
    import numpy as np
    from .images import preprocess, read_image
    key = (key_type, charts, checkpoint, seed, fold_keys)
    if _REFERENCE_CACHE.get('key') != key:  # repeated calls (several images) build once
        model = build_backbone(key_type, charts, checkpoint=checkpoint, seed=seed)
        _REFERENCE_CACHE.update(key=key, model=fold(model) if fold_keys else model)
    model = _REFERENCE_CACHE['model']
    x = preprocess(read_image(image), size=tuple(size) if size else None, pad_divisor=pad_divisor)
    with torch.no_grad():
        outs = model(x)
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, 'input.npy'), x.numpy())
    names = []
    for i, o in zip(model.out_indices, outs):
        np.save(os.path.join(out_dir, f'out{i}.npy'), o.numpy())
        names.append(f'out{i}')
    return dict(input_shape=list(x.shape), outputs=names,
                shapes=[list(o.shape) for o in outs])
