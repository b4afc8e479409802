"""Key modules: ``(B', N, C) -> (B', N, C)``, one variant per module.

Every variant registers itself in :data:`~.registry.KEYS` (``@register_key``). Importing this
package imports every module in it (:func:`_import_variant_modules`), so a new variant module
needs no edit here; the lists (``KEY_TYPES``, ``MANIFOLD_KEYS``) derive from the registry.
"""
import importlib
import pkgutil

from .base import KEY_ORDERS, ManifoldKey, context_broadcast, from_charts, to_charts
from .registry import KEYS, KeySpec, key_spec, key_types, manifold_key_types, register_key

#: modules of this package that define no variant (``manifest`` runs as ``python -m``: importing
#: it here first would make runpy warn)
_NOT_VARIANTS = frozenset({'base', 'builder', 'folded', 'folded_ops', 'manifest', 'order_autotune',
                           'registry'})


def _import_variant_modules() -> None:
    """Import every other module of this package (each registers its key class)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_VARIANTS and not info.name.startswith('_'):
            importlib.import_module(f'{__name__}.{info.name}')


_import_variant_modules()

from .builder import (KEY_TYPES, MANIFOLD_KEYS, build_key, check_key_type,  # noqa: E402
                      set_key_order)
from .folded import (FoldedKey, FoldedKeyTensors, fold_backbone, fold_key,  # noqa: E402
                     folded_forward)
from .kua import KUAKey  # noqa: E402
from .order_autotune import auto_order_table, clear_auto_order_table  # noqa: E402
from .linear import LinearKey  # noqa: E402
from .simplek import SimpleKey  # noqa: E402
from .spatialk import SpatialKey  # noqa: E402
from .vanillak import VanillaKey  # noqa: E402

__all__ = [
    'KEY_ORDERS', 'KEY_TYPES', 'MANIFOLD_KEYS', 'ManifoldKey', 'LinearKey', 'SpatialKey',
    'KUAKey', 'SimpleKey', 'VanillaKey', 'FoldedKey', 'FoldedKeyTensors', 'build_key',
    'check_key_type', 'set_key_order', 'fold_key', 'fold_backbone', 'folded_forward',
    'to_charts', 'from_charts', 'context_broadcast', 'KEYS', 'KeySpec', 'register_key',
    'key_spec', 'key_types', 'manifold_key_types', 'auto_order_table', 'clear_auto_order_table'
]
