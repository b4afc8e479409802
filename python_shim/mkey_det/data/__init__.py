"""Datasets mkey-det ships: the synthetic shapes demo datasets, detection (:mod:`.demo`) and
classification (:mod:`.demo_cls`); no mmdet or mmpretrain imports here, so they are fast.

Names are loaded lazily (PEP 562) so ``python -m mkey_det.data.demo`` (or ``.demo_cls``) runs without
runpy's "found in sys.modules" warning.
"""
from __future__ import annotations

import importlib
from typing import Any

_FROM = {
    'DEFAULT_SPEC': 'demo',
    'DEMO_CLASSES': 'demo',
    'DemoSpec': 'demo',
    'ensure_demo_dataset': 'demo',
    'generate_demo_dataset': 'demo',
    'CLS_CLASSES': 'demo_cls',
    'ClsDemoSpec': 'demo_cls',
    'DEFAULT_CLS_SPEC': 'demo_cls',
    'ensure_demo_cls_dataset': 'demo_cls',
    'generate_demo_cls_dataset': 'demo_cls',
}
__all__ = list(_FROM)


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is not None:
        return getattr(importlib.import_module(f'.{module}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
