"""Environment report for ``mkey-det doctor``; prints one JSON object on stdout.

Run as a plain script (``python .../doctor.py``) so that it works even when the ``mkey_det``
package or MMDetection cannot be imported: every probe is isolated and reports its own error.
"""
from __future__ import annotations

import importlib
import json
import platform
import sys
import traceback


def _version(module: str) -> dict:
    try:
        mod = importlib.import_module(module)
        version = getattr(mod, '__version__', None)
        if version is None:
            from importlib.metadata import version as dist_version

            version = dist_version(module)
        return {'ok': True, 'version': version}
    except Exception as exc:  # noqa: BLE001
        return {'ok': False, 'error': f'{type(exc).__name__}: {exc}'}


def _mmcv_ops() -> dict:
    """Runs the compiled ops Mask R-CNN needs (nms, roi_align forward and backward) on tiny tensors."""
    try:
        import torch
        from mmcv.ops import nms, roi_align

        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
        scores = torch.tensor([0.9, 0.8, 0.7])
        _, keep = nms(boxes, scores, iou_threshold=0.5)
        feats = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(1, 2, 16, 16).requires_grad_()
        rois = torch.tensor([[0.0, 2.0, 2.0, 10.0, 10.0]])
        out = roi_align(feats, rois, (4, 4), 1.0, 2, 'avg', True)
        out.sum().backward()
        ok = keep.tolist() == [0, 2] and tuple(out.shape) == (1, 2, 4, 4) and float(feats.grad.abs().sum()) > 0
        return {'ok': ok, 'nms_keep': keep.tolist(), 'roi_align_shape': list(out.shape)}
    except Exception as exc:  # noqa: BLE001
        return {'ok': False, 'error': f'{type(exc).__name__}: {exc}'.splitlines()[0]}


def _cuda() -> dict:
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return {'available': n > 0, 'devices': [torch.cuda.get_device_name(i) for i in range(n)],
                'torch_cuda': torch.version.cuda}
    except Exception as exc:  # noqa: BLE001
        return {'available': False, 'devices': [], 'error': str(exc)}


def _plugin() -> dict:
    try:
        import mkey_det  # noqa: F401  (registers the backbones)
        from mmdet.registry import MODELS

        return {'ok': MODELS.get('SwinTransformerMKey') is not None}
    except Exception as exc:  # noqa: BLE001
        return {'ok': False, 'error': f'{type(exc).__name__}: {exc}'.splitlines()[0],
                'traceback': traceback.format_exc()}


def main() -> None:
    report = {
        'python': {'ok': True, 'version': platform.python_version(), 'executable': sys.executable},
        'packages': {name: _version(name) for name in
                     ('torch', 'numpy', 'mmcv', 'mmengine', 'mmdet', 'pycocotools', 'onnx', 'onnxruntime')},
        'mmcv_ops': _mmcv_ops(),
        'cuda': _cuda(),
        'mkey_det': _plugin(),
    }
    json.dump(report, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
