"""Key factory and the switch of the computation order; the variant lists, from the registry."""
from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping, Optional, Tuple

import torch.nn as nn

from ...utils import set_on_modules
from .base import ManifoldKey, check_int, check_noise, check_order
from .registry import KEYS

#: key types accepted by :func:`build_key` and the backbone's ``key_type``, in display order:
#: the variants registered when the package was imported (every module of ``models/keys/``).
#: A plugin variant registered later (``custom_imports``) is accepted too; the live list is
#: :func:`~.registry.key_types`.
KEY_TYPES: Tuple[str, ...] = KEYS.key_types()
#: manifold key type -> class (same snapshot as :data:`KEY_TYPES`).
MANIFOLD_KEYS: Dict[str, type] = {s.key_type: s.cls for s in KEYS.manifold_specs()}


def check_key_type(key_type) -> str:
    """Return ``key_type`` if it is a registered key type; else raise ValueError."""
    KEYS.get(key_type)
    return key_type


def check_key_kwargs(key_type: str, key_kwargs: Optional[Mapping]) -> Dict[str, Any]:
    """``key_kwargs`` (a variant's own options, e.g. ``cb_mode`` of KUA / VanillaK) as a dict
    (``{}`` for None); ValueError unless it is a mapping whose keys the variant's class takes,
    for a manifold ``key_type``."""
    if key_kwargs is None:
        return {}
    if not isinstance(key_kwargs, Mapping) or not all(isinstance(k, str) for k in key_kwargs):
        raise ValueError(f'key_kwargs must be None or a dict with string keys, got {key_kwargs!r}')
    kwargs = dict(key_kwargs)
    if not kwargs:
        return kwargs
    spec = KEYS.get(key_type)
    if not spec.manifold:
        raise ValueError(f'key_kwargs {kwargs!r} need a manifold key_type, got {key_type!r}')
    params = inspect.signature(spec.cls.__init__).parameters
    own = [n for n, p in params.items() if n != 'self' and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = sorted(k for k in kwargs if k not in own or k in (
        'dim', 'num_tokens', 'num_charts', 'order', 'chart_noise'))
    if unknown:
        extra = sorted(set(own) - {'dim', 'num_tokens', 'num_charts', 'order', 'chart_noise'})
        raise ValueError(f'key_kwargs {unknown} are not options of {spec.cls.__name__} '
                         f'(key_type {key_type!r}; accepted: {extra or "none"})')
    return kwargs


def build_key(key_type: str, dim: int, num_tokens: int, num_charts: int = 8,
              order: str = 'fast', chart_noise: float = 0.1,
              key_kwargs: Optional[Mapping] = None) -> nn.Module:
    """Build a key ``(B', N, C) -> (B', N, C)``.

    Args:
        key_type: a registered key type (:data:`KEY_TYPES`, plus any plugin's).
        dim: C. num_tokens: N (``window_size ** 2``). num_charts: H, an int >= 1
            (validated for ``'linear'`` too, where it is unused).
        order: ``'paper'``, ``'fast'`` or ``'auto'`` (manifold keys; see :mod:`.base`).
        chart_noise: relative std of the zero-sum chart perturbation at init.
        key_kwargs: the variant's own options (:func:`check_key_kwargs`), e.g.
            ``dict(cb_mode='none')`` for Table 2's VanillaK without CB.
    """
    spec = KEYS.get(key_type)
    check_int('dim', dim)
    check_int('num_tokens', num_tokens)
    check_int('num_charts', num_charts)
    check_order(order)
    check_noise(chart_noise)
    kwargs = check_key_kwargs(key_type, key_kwargs)
    if not spec.manifold:
        return spec.cls(dim, num_tokens)
    return spec.cls(dim, num_tokens, num_charts, order=order, chart_noise=chart_noise, **kwargs)


def set_key_order(module: nn.Module, order: str) -> int:
    """Set ``order`` (``'paper'`` | ``'fast'`` | ``'auto'``) on every manifold key in ``module``.

    Returns the number of keys changed.
    """
    check_order(order)
    return set_on_modules(module, ManifoldKey, 'order', order)
