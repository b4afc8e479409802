"""Key factory and the switch of the computation order."""
from __future__ import annotations

import torch.nn as nn

from .base import ManifoldKey, check_int, check_noise, check_order
from .kua import KUAKey
from .linear import LinearKey
from .simplek import SimpleKey
from .spatialk import SpatialKey
from .vanillak import VanillaKey

#: key types accepted by :func:`build_key` and the backbone's ``key_type``.
KEY_TYPES = ('linear', 'spatialk', 'kua', 'simplek', 'vanillak')
MANIFOLD_KEYS = {
    'spatialk': SpatialKey,
    'kua': KUAKey,
    'simplek': SimpleKey,
    'vanillak': VanillaKey,
}


def check_key_type(key_type) -> str:
    """Return ``key_type`` if it is one of :data:`KEY_TYPES`; else raise ValueError."""
    if not isinstance(key_type, str) or key_type not in KEY_TYPES:
        raise ValueError(f'key_type must be one of {KEY_TYPES}, got {key_type!r}')
    return key_type


def build_key(key_type: str, dim: int, num_tokens: int, num_charts: int = 8,
              order: str = 'fast', chart_noise: float = 0.1) -> nn.Module:
    """Build a key ``(B', N, C) -> (B', N, C)``.

    Args:
        key_type: one of :data:`KEY_TYPES`.
        dim: C. num_tokens: N (``window_size ** 2``). num_charts: H, an int >= 1
            (validated for ``'linear'`` too, where it is unused).
        order: ``'paper'`` or ``'fast'`` (manifold keys).
        chart_noise: relative std of the zero-sum chart perturbation at init.
    """
    check_key_type(key_type)
    check_int('dim', dim)
    check_int('num_tokens', num_tokens)
    check_int('num_charts', num_charts)
    check_order(order)
    check_noise(chart_noise)
    if key_type == 'linear':
        return LinearKey(dim, num_tokens)
    return MANIFOLD_KEYS[key_type](dim, num_tokens, num_charts, order=order,
                                   chart_noise=chart_noise)


def set_key_order(module: nn.Module, order: str) -> int:
    """Set ``order`` (``'paper'`` | ``'fast'``) on every manifold key inside ``module``.

    Returns the number of keys changed.
    """
    check_order(order)
    n = 0
    for m in module.modules():
        if isinstance(m, ManifoldKey):
            m.order = order
            n += 1
    return n
