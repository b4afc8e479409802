"""Export of manifold-key Swin backbones: fold, ONNX, TorchScript, parity.

The functions here take an ordinary PyTorch backbone (``SwinTransformerMKey`` or mmdet's
``SwinTransformer``) and never change it: exports work on a copy rewritten by
:func:`~mkey_det.export.swin_export.prepare_for_export`, folding on a copy too.

Parity metric (one number per output): ``max|exported - reference| / max|reference|``, computed
in float64 from the float32 outputs; a check passes when the largest over all outputs and all
checked sizes is at most the threshold (1e-4 for exports, 1e-5 for folding). The reference is
the PyTorch model in eager mode with mmdet's own (unrewritten) forward.
"""
from __future__ import annotations

import copy
import contextlib
import os
import time
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from ..utils import quiet_mmengine, rel_diff
from .images import image_batch
from .swin_export import prepare_for_export

__all__ = ['build_backbone', 'randomize_weights', 'fold', 'export_onnx', 'export_torchscript',
           'load_exported', 'parity_check', 'rel_diff', 'count_params', 'DEFAULT_OPSET',
           'EXPORT_THRESHOLD', 'FOLD_THRESHOLD']

DEFAULT_OPSET = 17
EXPORT_THRESHOLD = 1e-4
FOLD_THRESHOLD = 1e-5
PARITY_METRIC = ('max|exported - reference| / max|reference| per output (float32 outputs, '
                 'computed in float64); the maximum over outputs and checks')

Check = Tuple[int, int, int]  # (batch, height, width)


@contextlib.contextmanager
def quiet_tracing():
    """Silence the tracer's and exporter's warnings (they flag the shape arithmetic the export
    rewrite relies on, and torch's TorchScript/legacy-exporter deprecations)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield


def build_backbone(key_type: str = 'spatialk', num_charts: int = 8,
                   checkpoint: Optional[Union[str, dict]] = None, seed: int = 0,
                   randomize: bool = True, **swin_overrides) -> nn.Module:
    """Swin-T (``mkey_det.analysis.SWIN_T``; ``swin_overrides`` change any argument) with the
    given key, in eval mode and the paper's computation order.

    ``checkpoint``: a path or dict loaded with
    :func:`~mkey_det.models.backbones.load_pretrained` (backbone or full-detector checkpoints,
    with or without the ``backbone.`` prefix, official Swin format). Without one, the weights
    are Swin's random initialisation (seeded), and with ``randomize`` every key parameter and
    relative-position table is perturbed (:func:`randomize_weights`) so that token mixing,
    ``gamma`` and CB are not at their identity start (a parity check on identity weights would
    prove little). The load report is kept in ``model.export_weights_info``.
    """
    from ..analysis import SWIN_T
    from ..models.backbones import SwinTransformerMKey
    from ..models.backbones.pretrained import load_pretrained
    from ..models.keys import set_key_order

    cfg = dict(SWIN_T)
    cfg.update(swin_overrides)
    torch.manual_seed(seed)
    model = SwinTransformerMKey(key_type=key_type, num_charts=num_charts, **cfg)
    if checkpoint is not None:
        report = load_pretrained(model, checkpoint)
        if report['created']:
            # As `test` refuses a checkpoint of another variant: keys started from a linear
            # checkpoint's W_k would export an untrained manifold key under a trained one's name.
            source = checkpoint if isinstance(checkpoint, str) else 'the checkpoint'
            raise ValueError(
                f'{source} holds linear keys (a swin-t checkpoint), not {key_type} keys: the export '
                f'would start {len(report["created"])} key tensors afresh from them instead of '
                f'loading trained ones; export it with --backbone swin-t, or give a checkpoint of '
                f'a swin-t-{key_type} run')
        info = dict(source='checkpoint',
                    checkpoint=checkpoint if isinstance(checkpoint, str) else '<dict>',
                    loaded=len(report['loaded']), created=len(report['created']),
                    ignored=len(report['ignored']), missing=len(report['missing']))
    else:
        with quiet_mmengine():  # 'No pre-trained weights ... from scratch': expected here
            model.init_weights()
        if randomize:
            randomize_weights(model, seed)
        info = dict(source='random', seed=seed, randomized=bool(randomize))
    set_key_order(model, 'paper')
    model.eval()
    model.export_weights_info = info
    return model


@torch.no_grad()
def randomize_weights(model: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Perturb, in place, every manifold-key parameter (by ``scale`` times its own std, at least
    0.02) and every relative-position bias table (``N(0, 0.02)``): random test weights whose
    keys actually mix tokens and charts."""
    from ..models.keys.base import ManifoldKey
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, ManifoldKey):
            for p in m.parameters():
                std = float(p.float().std()) if p.numel() > 1 else 0.0
                p.add_(torch.randn(p.shape, generator=g).to(p) * max(std, 0.02) * scale)
    for name, p in model.named_parameters():
        if name.endswith('relative_position_bias_table'):
            p.add_(torch.randn(p.shape, generator=g).to(p) * 0.02)
    return model


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def fold(model: nn.Module, drop_cb: bool = False, inplace: bool = False) -> nn.Module:
    """Every manifold key folded into per-chart ``C x C`` matrices and ``N x N`` token-mixing
    matrices (:func:`~mkey_det.models.keys.fold_backbone`): same outputs (float rounding), fewer
    parameters and FLOPs. Works on a copy unless ``inplace``. ``drop_cb``: also drop the CB
    term of KUA/VanillaK (a per-window constant in the key that softmax ignores: backbone
    outputs unchanged, ``H C^2`` fewer parameters per block). Raises ValueError if the model
    has no manifold key."""
    from ..models.keys import fold_backbone
    from ..models.keys.base import ManifoldKey
    if not any(isinstance(m, ManifoldKey) for m in model.modules()):
        raise ValueError('fold: the model has no manifold key (a linear-key Swin has nothing '
                         'to fold)')
    target = model if inplace else copy.deepcopy(model)
    fold_backbone(target, drop_cb=drop_cb)
    return target.eval()


def _out_indices(model: nn.Module) -> List[int]:
    return list(getattr(model, 'out_indices', range(4)))


def _stage_channels(model: nn.Module) -> List[int]:
    feats = getattr(model, 'num_features', None)
    return [int(feats[i]) for i in _out_indices(model)] if feats is not None else []


def _check_input_shape(input_shape: Sequence[int]) -> Tuple[int, int, int, int]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
        raise ValueError(f'input_shape must be (batch, 3, height, width), got {tuple(input_shape)}')
    return shape  # type: ignore[return-value]


def _trace_input(shape: Tuple[int, int, int, int]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def export_onnx(model: nn.Module, path: str, input_shape: Sequence[int] = (1, 3, 224, 224),
                dynamic: bool = False, opset: int = DEFAULT_OPSET, input_name: str = 'input',
                output_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Export ``model`` (a Swin backbone, unchanged) to ONNX with the legacy TorchScript-based
    exporter (``dynamo=False``).

    ``dynamic``: batch, height and width are dynamic axes, and the graph is correct at every
    size (size-generic rewrite); otherwise every dimension is fixed to ``input_shape`` and
    onnxruntime refuses other shapes. Outputs: ``out{i}`` for each ``out_indices`` entry,
    ``(B, C_i, H_i, W_i)``. Returns a description (names, shapes, opset, dynamic axes).
    """
    import onnx
    shape = _check_input_shape(input_shape)
    prepared = prepare_for_export(model)
    idx = _out_indices(model)
    names = list(output_names) if output_names else [f'out{i}' for i in idx]
    x = _trace_input(shape)
    with torch.no_grad():
        outs = prepared(x)
    if len(outs) != len(names):
        raise ValueError(f'model returns {len(outs)} outputs, {len(names)} names given')
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {input_name: {0: 'batch', 2: 'height', 3: 'width'}}
        for n in names:
            dynamic_axes[n] = {0: 'batch', 2: f'{n}_height', 3: f'{n}_width'}
    with quiet_tracing():
        torch.onnx.export(prepared, (x, ), path, dynamo=False, opset_version=opset,
                          input_names=[input_name], output_names=names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    # With dynamic axes the exporter leaves the channel count of the outputs symbolic: record
    # the true (static) channel counts so that consumers see (batch, C, h, w).
    m = onnx.load(path)
    for out, t in zip(m.graph.output, outs):
        dims = out.type.tensor_type.shape.dim
        if len(dims) == 4 and not dims[1].HasField('dim_value'):
            dims[1].Clear()
            dims[1].dim_value = int(t.shape[1])
    m.producer_name = 'mkey-det'
    onnx.save(m, path)
    onnx.checker.check_model(path)
    return dict(format='onnx', path=path, opset=opset, input_name=input_name,
                input_shape=list(shape), output_names=names,
                output_shapes=[list(t.shape) for t in outs], dynamic=bool(dynamic),
                dynamic_axes=dynamic_axes)


def export_torchscript(model: nn.Module, path: str,
                       input_shape: Sequence[int] = (1, 3, 224, 224)) -> Dict[str, Any]:
    """Trace ``model`` (unchanged) with ``torch.jit.trace`` and save it. TorchScript is
    deprecated in recent PyTorch; prefer ONNX. The traced module comes from the size-generic
    rewrite, so it runs at other sizes and batches too (check them with
    :func:`parity_check`). Returns a description."""
    shape = _check_input_shape(input_shape)
    prepared = prepare_for_export(model)
    x = _trace_input(shape)
    with quiet_tracing(), torch.no_grad():
        traced = torch.jit.trace(prepared, (x, ), check_trace=False, strict=False)
        outs = traced(x)
    traced.save(path)
    idx = _out_indices(model)
    return dict(format='torchscript', path=path, opset=None, input_name='input',
                input_shape=list(shape), output_names=[f'out{i}' for i in idx],
                output_shapes=[list(t.shape) for t in outs], dynamic=None, dynamic_axes=None)


def _format_of(path: str, fmt: Optional[str]) -> str:
    if fmt:
        return fmt
    return 'onnx' if str(path).lower().endswith('.onnx') else 'torchscript'


def load_exported(path: str, fmt: Optional[str] = None,
                  threads: Optional[int] = None) -> Callable[[torch.Tensor], List[torch.Tensor]]:
    """A callable ``x -> [outputs]`` for an exported file: ONNX through onnxruntime (CPU), or a
    TorchScript file through ``torch.jit.load``."""
    fmt = _format_of(path, fmt)
    if fmt == 'onnx':
        import onnxruntime as ort
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])
        name = sess.get_inputs()[0].name

        def run_onnx(x: torch.Tensor) -> List[torch.Tensor]:
            return [torch.from_numpy(o) for o in sess.run(None, {name: x.numpy()})]
        return run_onnx
    if fmt == 'torchscript':
        module = torch.jit.load(str(path), map_location='cpu').eval()

        def run_ts(x: torch.Tensor) -> List[torch.Tensor]:
            with torch.no_grad():
                return list(module(x))
        return run_ts
    raise ValueError(f"format must be 'onnx' or 'torchscript', got {fmt!r}")


def _as_runner(exported, fmt: Optional[str]) -> Callable[[torch.Tensor], List[torch.Tensor]]:
    if isinstance(exported, (str, os.PathLike)):
        return load_exported(str(exported), fmt)
    if isinstance(exported, nn.Module):
        module = exported.eval()

        def run(x: torch.Tensor) -> List[torch.Tensor]:
            with torch.no_grad():
                return list(module(x))
        return run
    if callable(exported):
        return exported
    raise TypeError('exported must be a file path, an nn.Module or a callable')


def _normalise_checks(sizes: Optional[Iterable], batch: int,
                      checks: Optional[Iterable]) -> List[Check]:
    out: List[Check] = []
    for c in checks or []:
        b, h, w = (int(v) for v in c)
        out.append((b, h, w))
    for s in sizes or []:
        h, w = (int(v) for v in s)
        out.append((int(batch), h, w))
    if not out:
        raise ValueError('parity_check: give sizes=[(H, W), ...] or checks=[(B, H, W), ...]')
    for b, h, w in out:
        if min(b, h, w) < 1:
            raise ValueError(f'parity_check: bad check (batch {b}, {h} x {w})')
    return out


def parity_check(reference: nn.Module, exported, sizes: Optional[Iterable] = None,
                 batch: int = 1, checks: Optional[Iterable] = None,
                 threshold: float = EXPORT_THRESHOLD, fmt: Optional[str] = None,
                 images: Optional[Sequence[str]] = None,
                 output_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Compare ``exported`` with ``reference`` on real photographs.

    Args:
        reference: the PyTorch backbone (eager).
        exported: an exported file (``.onnx`` or a TorchScript file; ``fmt`` overrides the
            guess), an ``nn.Module`` (e.g. the folded model) or a callable ``x -> outputs``.
        sizes: ``[(H, W), ...]`` checked at ``batch``; ``checks``: ``[(B, H, W), ...]``.
        threshold: the largest accepted relative difference (see the module docstring).
        images: image files (default: matplotlib's sample photographs), cycled over the batch,
            each resized to the checked size and normalised like MMDetection (unpadded).

    Returns:
        ``dict(passed, max_rel_diff, threshold, metric, checks=[dict(batch, size, images,
        max_rel_diff, per_output, shapes, error), ...])``. A run that raises (e.g. onnxruntime
        refusing a shape) is a failed check with ``error`` set.
    """
    plan = _normalise_checks(sizes, batch, checks)
    run = _as_runner(exported, fmt)
    reference = reference.eval()
    results = []
    for b, h, w in plan:
        x, used = image_batch((h, w), b, images)
        with torch.no_grad():
            ref = list(reference(x))
        names = list(output_names) if output_names else [f'out{i}' for i in range(len(ref))]
        entry: Dict[str, Any] = dict(batch=b, size=[h, w], images=used, error=None)
        t0 = time.perf_counter()
        try:
            outs = list(run(x))
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            entry.update(max_rel_diff=None, per_output={}, shapes={},
                         error=f'{type(exc).__name__}: {str(exc).strip().splitlines()[0]}')
            results.append(entry)
            continue
        entry['run_s'] = round(time.perf_counter() - t0, 4)
        if len(outs) != len(ref):
            entry.update(max_rel_diff=None, per_output={}, shapes={},
                         error=f'{len(outs)} outputs, expected {len(ref)}')
            results.append(entry)
            continue
        per = {n: rel_diff(o, r) for n, o, r in zip(names, outs, ref)}
        entry['per_output'] = per
        entry['shapes'] = {n: list(o.shape) for n, o in zip(names, outs)}
        entry['max_rel_diff'] = max(per.values())
        results.append(entry)
    worst = [c['max_rel_diff'] for c in results]
    ok = all(v is not None and v <= threshold for v in worst)
    finite = [v for v in worst if v is not None]
    return dict(passed=bool(ok), max_rel_diff=max(finite) if finite else None,
                threshold=threshold, metric=PARITY_METRIC, checks=results)
