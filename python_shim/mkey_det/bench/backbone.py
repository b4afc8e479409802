"""``backbone`` suite: inference latency of Swin-T and SpatialK (8 charts), four runtimes.

At batch 1, 224x224 and 800x1216, in one interleaved comparison per size (every runtime of both
models timed once per round; ratios to Swin-T eager):

* ``eager``: PyTorch eager (``torch.no_grad``). Swin-T: mmdet's Swin; SpatialK: ``order='fast'``
  (the default) and ``eager_paper`` (Algorithm 1's order),
* ``folded``: SpatialK after :func:`~mkey_det.models.keys.fold_backbone`,
* ``torchscript``: ``torch.jit.trace`` (through ``mkey_det.export.core.export_torchscript``,
  the export module's size-generic rewrite; the folded SpatialK), loaded back with
  ``torch.jit.load``,
* ``onnx``: ``mkey_det.export.core.export_onnx`` (opset 17, fixed shape; the folded SpatialK);
  written here and run by the Node side in onnxruntime-node (``runOnnx``, the export module's
  runner) after this process ends: the ``onnx_jobs`` of the result.

Achieved GFLOP/s = 2 x fvcore FLOPs (fvcore counts multiply-adds) / median latency, against the
machine's float32 ``torch.mm`` GFLOP/s measured in the same run (``machine.matmul_peak``, 2 n^3
FLOPs per call). The FLOPs of a runtime are those of the computation it runs (paper / fast /
folded count).
"""
from __future__ import annotations

import copy
import os
import time
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn as nn

from .common import Emitter, Plan, compare, matmul_peak, rel_diff
from .params import _quiet

CHARTS = 8
FULL_SIZES = ((224, 224), (800, 1216))
QUICK_SIZES = ((224, 224), )


def _build(key_type: str, seed: int = 0) -> nn.Module:
    """Swin-T with random (seeded, keys perturbed) weights, eval mode, order 'paper'."""
    try:
        from ..export.core import build_backbone
        return build_backbone(key_type, CHARTS, seed=seed, randomize=True)
    except ImportError:
        from ..analysis import build_swin_t
        torch.manual_seed(seed)
        return build_swin_t(key_type, CHARTS, 'paper', 0)


def _flops(model: nn.Module, h: int, w: int) -> Optional[int]:
    from ..analysis import count_complexity
    with _quiet():
        return int(count_complexity(model, h, w)['flops'])


def _runner(module: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def run():
        with torch.no_grad():
            return module(x)
    return run


def _torchscript(model: nn.Module, path: str, shape) -> Dict[str, Any]:
    """Trace ``model`` and load it back: ``dict(module, how)`` or ``dict(unavailable=reason)``."""
    try:
        from ..export.core import export_torchscript
        export_torchscript(model, path, shape)
        how = 'mkey_det.export.core.export_torchscript (torch.jit.trace of the export rewrite)'
    except ImportError as exc:
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, (torch.randn(shape), ), check_trace=False,
                                         strict=False)
            traced.save(path)
            how = f'torch.jit.trace (export module unavailable: {exc})'
        except Exception as exc2:  # noqa: BLE001
            return dict(unavailable=f'{type(exc2).__name__}: {exc2}')
    except Exception as exc:  # noqa: BLE001
        return dict(unavailable=f'{type(exc).__name__}: {str(exc).splitlines()[0]}')
    return dict(module=torch.jit.load(path, map_location='cpu').eval(), how=how)


def _onnx(model: nn.Module, path: str, shape) -> Dict[str, Any]:
    try:
        from ..export.core import export_onnx
    except ImportError as exc:
        return dict(unavailable=f'export module not importable: {exc}')
    try:
        export_onnx(model, path, shape, dynamic=False)
    except Exception as exc:  # noqa: BLE001
        return dict(unavailable=f'export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}')
    return dict(path=os.path.abspath(path))


def _onnx_parity(path: str, x: torch.Tensor, ref: List[torch.Tensor]) -> Optional[float]:
    """max rel diff of onnxruntime (Python) against the eager outputs on the timing input."""
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
        outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        return max(rel_diff(torch.from_numpy(o), r) for o, r in zip(outs, ref))
    except Exception:  # noqa: BLE001 - parity is informative here, the Node run is the timing
        return None


def _write_image(path: str, h: int, w: int, seed: int = 0) -> str:
    """A synthetic h x w PNG for the onnxruntime-node run (its input is exactly h x w)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return os.path.abspath(path)


def run(emitter: Emitter, device: torch.device, quick: bool = False,
        work_dir: str = '.', machine: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    from ..models.keys import fold_backbone, set_key_order
    sizes = QUICK_SIZES if quick else FULL_SIZES
    # computing the reference outputs runs every runtime once: that is the warm-up
    plan = Plan(warmup=0, min_repeats=2, max_repeats=3, budget_s=1.0) if quick else \
        Plan(warmup=0, min_repeats=3, max_repeats=10, budget_s=40.0)
    runtimes = ['swin-t/eager', 'swin-t/torchscript', 'spatialk/eager_paper', 'spatialk/eager',
                'spatialk/folded', 'spatialk/torchscript']
    # total: the PyTorch rows here, then two onnx rows per size that the Node side adds
    emitter.start(str(device), quick, len(sizes) * (len(runtimes) + 2), dict(
        sizes=[list(s) for s in sizes], batch=1, charts=CHARTS, runtimes=runtimes,
        onnx='run by the Node side (onnxruntime-node) after this process', timing=plan.describe()))
    peak_before = (machine or {}).get('matmul_peak') or matmul_peak(device)
    rows: List[Dict[str, Any]] = []
    onnx_jobs: List[Dict[str, Any]] = []
    for h, w in sizes:
        size = f'{h}x{w}'
        shape = (1, 3, h, w)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
        swin = _build('linear').to(device)
        mk = _build('spatialk').to(device)
        t0 = time.perf_counter()
        flops = {'swin-t/eager': _flops(swin, h, w), 'spatialk/eager_paper': _flops(mk, h, w)}
        set_key_order(mk, 'fast')
        flops['spatialk/eager'] = _flops(mk, h, w)
        folded = fold_backbone(copy.deepcopy(mk)).eval()
        flops['spatialk/folded'] = _flops(folded, h, w)
        flops['swin-t/torchscript'] = flops['swin-t/onnx'] = flops['swin-t/eager']
        flops['spatialk/torchscript'] = flops['spatialk/onnx'] = flops['spatialk/folded']
        count_s = time.perf_counter() - t0
        mk_paper = copy.deepcopy(mk)
        set_key_order(mk_paper, 'paper')
        modules: Dict[str, nn.Module] = {'swin-t/eager': swin, 'spatialk/eager_paper': mk_paper,
                                         'spatialk/eager': mk, 'spatialk/folded': folded}
        notes: Dict[str, str] = {}
        unavailable: Dict[str, str] = {}
        if device.type == 'cpu':
            for name, src in (('swin-t', swin), ('spatialk', folded)):
                ts = _torchscript(src, os.path.join(work_dir, f'{name}-{size}.pt'), shape)
                if 'module' in ts:
                    modules[f'{name}/torchscript'] = ts['module']
                    notes[f'{name}/torchscript'] = ts['how']
                else:
                    unavailable[f'{name}/torchscript'] = ts['unavailable']
        else:
            for name in ('swin-t', 'spatialk'):
                unavailable[f'{name}/torchscript'] = 'measured on CPU only'
        with torch.no_grad():
            ref = {n: [o.detach() for o in m(x)] for n, m in modules.items()}
        def reference(n: str) -> List[torch.Tensor]:
            return ref['swin-t/eager' if n.startswith('swin-t') else 'spatialk/eager_paper']

        parity = {n: max(rel_diff(o, r) for o, r in zip(ref[n], reference(n))) for n in modules}
        impls = {n: _runner(modules[n], x) for n in runtimes if n in modules}
        timing = compare(impls, device, plan, baseline='swin-t/eager')
        peak = peak_before['gflops_median']
        for n in runtimes:
            model, rt = n.split('/')
            row: Dict[str, Any] = dict(size=size, height=h, width=w, batch=1, model=model,
                                       runtime=rt, name=n, flops=flops.get(n), parity=parity.get(n),
                                       note=notes.get(n))
            if n in timing['times']:
                t = timing['times'][n]
                gf = 2 * flops[n] / t['median'] / 1e9 if flops.get(n) else None
                row.update(latency=t, repeats=timing['repeats'], gflops=gf,
                           fraction_of_matmul_peak=gf / peak if gf else None,
                           ratio_to_swin_t_eager=(1.0 if n == 'swin-t/eager' else
                                                  1.0 / timing['ratios'][n]['median_ratio']),
                           ratio_spread=(None if n == 'swin-t/eager' else dict(
                               min=1.0 / timing['ratios'][n]['round_max'],
                               max=1.0 / timing['ratios'][n]['round_min'])))
                line = (f'{size} {n}: {t["median"] * 1e3:.1f} ms (IQR {t["iqr"] * 1e3:.1f}, '
                        f'n={t["n"]}), {row["ratio_to_swin_t_eager"]:.2f}x Swin-T eager, '
                        f'{gf:.1f} GFLOP/s = {100 * gf / peak:.0f}% of mm peak')
            else:
                row.update(unavailable=unavailable.get(n, 'not measured'))
                line = f'{size} {n}: unavailable: {row["unavailable"]}'
            rows.append(emitter.measure(f'{size}/{n}', line, row))
        # ONNX: exported here, run by the Node side
        for name, src in (('swin-t', swin), ('spatialk', folded)):
            key = f'{name}/onnx'
            job: Dict[str, Any] = dict(size=size, height=h, width=w, batch=1, model=name,
                                       runtime='onnx', name=key, flops=flops[key])
            if device.type != 'cpu':
                job['unavailable'] = 'onnxruntime-node runs on the CPU only'
            else:
                exp = _onnx(src, os.path.join(work_dir, f'{name}-{size}.onnx'), shape)
                if 'path' in exp:
                    image = _write_image(os.path.join(work_dir, f'input-{size}.png'), h, w)
                    src_ref = ref['swin-t/eager' if name == 'swin-t' else 'spatialk/folded']
                    job.update(model_path=exp['path'], image=image,
                               parity=_onnx_parity(exp['path'], x.cpu(), src_ref))
                else:
                    job['unavailable'] = exp['unavailable']
            onnx_jobs.append(job)
        rows[-1]['count_s'] = count_s
        del swin, mk, mk_paper, folded, modules, impls, ref  # free before the next size
    peak_after = matmul_peak(device)
    return dict(rows=rows, onnx_jobs=onnx_jobs, matmul_peak_before=peak_before,
                matmul_peak_after=peak_after, charts=CHARTS, timing=plan.describe(),
                flops_convention='GFLOP/s = 2 x fvcore multiply-adds / latency')
