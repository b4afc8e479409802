"""Key modules: ``(B', N, C) -> (B', N, C)``, one variant per module."""
from .base import KEY_ORDERS, ManifoldKey, context_broadcast, from_charts, to_charts
from .builder import KEY_TYPES, MANIFOLD_KEYS, build_key, check_key_type, set_key_order
from .folded import FoldedKey, FoldedKeyTensors, fold_backbone, fold_key, folded_forward
from .kua import KUAKey
from .linear import LinearKey
from .simplek import SimpleKey
from .spatialk import SpatialKey
from .vanillak import VanillaKey

__all__ = [
    'KEY_ORDERS', 'KEY_TYPES', 'MANIFOLD_KEYS', 'ManifoldKey', 'LinearKey', 'SpatialKey',
    'KUAKey', 'SimpleKey', 'VanillaKey', 'FoldedKey', 'FoldedKeyTensors', 'build_key',
    'check_key_type', 'set_key_order', 'fold_key', 'fold_backbone', 'folded_forward',
    'to_charts', 'from_charts', 'context_broadcast'
]
