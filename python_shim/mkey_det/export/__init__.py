"""Deployment export of manifold-key Swin backbones (ONNX, TorchScript), folding and parity.

For users who deploy with their own tools::

    from mkey_det.export import build_backbone, fold, export_onnx, export_torchscript, parity_check

    model = build_backbone('spatialk', num_charts=8, checkpoint='epoch_36.pth')  # or your own
    folded = fold(model)                                   # same outputs, fewer params/FLOPs
    export_onnx(folded, 'spatialk.onnx', (1, 3, 800, 1216), dynamic=True)
    report = parity_check(model, 'spatialk.onnx', sizes=[(800, 1216), (333, 517)])
    assert report['passed'], report['max_rel_diff']

Any mmdet ``SwinTransformer`` / ``SwinTransformerMKey`` works; it is never modified (exports use
a size-generic copy, see :mod:`mkey_det.export.swin_export`). ``mkey-det export`` is the CLI of
the same functions (:func:`~mkey_det.export.backbone.export_backbone`).
"""
from .core import (DEFAULT_OPSET, EXPORT_THRESHOLD, FOLD_THRESHOLD, build_backbone,
                   count_params, export_onnx, export_torchscript, fold, load_exported,
                   parity_check, randomize_weights, rel_diff)
from .images import image_batch, preprocess, read_image, sample_image_paths
from .swin_export import prepare_for_export

__all__ = [
    'build_backbone', 'fold', 'export_onnx', 'export_torchscript', 'parity_check',
    'load_exported', 'rel_diff', 'count_params', 'randomize_weights', 'prepare_for_export',
    'preprocess', 'read_image', 'image_batch', 'sample_image_paths', 'DEFAULT_OPSET',
    'EXPORT_THRESHOLD', 'FOLD_THRESHOLD'
]
