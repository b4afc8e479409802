"""Models: key modules (``keys``) and backbones (``backbones``)."""
from .backbones import (ManifoldKeyWindowMSA, ManifoldQKV, SwinTransformerMKey,
                        load_pretrained, official_from_mmdet)
from .keys import (KEY_ORDERS, KEY_TYPES, FoldedKey, FoldedKeyTensors, KUAKey, LinearKey,
                   ManifoldKey, SimpleKey, SpatialKey, VanillaKey, build_key, fold_backbone,
                   fold_key, set_key_order)

__all__ = [
    'KEY_ORDERS', 'KEY_TYPES', 'ManifoldKey', 'LinearKey', 'SpatialKey', 'KUAKey', 'SimpleKey',
    'VanillaKey', 'FoldedKey', 'FoldedKeyTensors', 'build_key', 'fold_key', 'fold_backbone',
    'set_key_order', 'SwinTransformerMKey', 'ManifoldKeyWindowMSA', 'ManifoldQKV',
    'load_pretrained', 'official_from_mmdet'
]
