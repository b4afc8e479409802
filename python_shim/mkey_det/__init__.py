"""mkey_det: manifold-key Swin backbones registered into MMDetection.

Importing the package registers ``SwinTransformerMKey`` in ``mmdet.registry.MODELS`` (use
``custom_imports=dict(imports=['mkey_det'])`` in a config).
"""
# First of all: mmdet imports mmpretrain when it is installed, and mmpretrain imports torchvision,
# whose import fails next to a CPU torch unless two operator schemas exist (see torchvision_compat).
from .torchvision_compat import make_torchvision_importable

make_torchvision_importable()

from .models import (KEY_ORDERS, KEY_TYPES, FoldedKey, FoldedKeyTensors, KUAKey, LinearKey,
                     ManifoldKey, ManifoldKeyWindowMSA, ManifoldQKV, SimpleKey, SpatialKey,
                     SwinTransformerMKey, VanillaKey, build_key, fold_backbone, fold_key,
                     load_pretrained, official_from_mmdet, set_key_order)

from . import engine  # noqa: F401,E402  (registers MkeyProgressHook, MkeyTF32Hook in mmdet's HOOKS)
from .compat import allow_mmengine_checkpoints
from .config_text import memoize_config_formatting
from .engine import allow_bf16_mmcv_ops

# mmengine 0.10.7 + torch >= 2.6: make its checkpoints loadable with the safe loader (see compat.py).
allow_mmengine_checkpoints()
# mmcv 2.1.0 has no bfloat16 RoIAlign (nor CPU nms): --amp bf16 needs a float32 detour (see engine/).
allow_bf16_mmcv_ops()
# mmengine formats the same config with yapf at start and at every checkpoint (see config_text.py).
memoize_config_formatting()

__version__ = '0.1.0'

__all__ = [
    'KEY_ORDERS', 'KEY_TYPES', 'ManifoldKey', 'LinearKey', 'SpatialKey', 'KUAKey', 'SimpleKey',
    'VanillaKey', 'FoldedKey', 'FoldedKeyTensors', 'build_key', 'fold_key', 'fold_backbone',
    'set_key_order', 'SwinTransformerMKey', 'ManifoldKeyWindowMSA', 'ManifoldQKV',
    'load_pretrained', 'official_from_mmdet', '__version__'
]
