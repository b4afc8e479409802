"""Datasets mkey-det ships: the synthetic shapes demo dataset (no mmdet imports here, so it is fast).

Names are loaded lazily (PEP 562) so ``python -m mkey_det.data.demo`` runs without runpy's
"found in sys.modules" warning.
"""
from __future__ import annotations

from typing import Any

__all__ = ['DEFAULT_SPEC', 'DEMO_CLASSES', 'DemoSpec', 'ensure_demo_dataset', 'generate_demo_dataset']


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import demo

        return getattr(demo, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
