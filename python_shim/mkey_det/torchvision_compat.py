"""Lets mmpretrain import when torchvision's compiled ops cannot load next to this torch.

mmpretrain 1.2.0 imports torchvision at module import (its transforms wrap torchvision's). PyPI's
Linux torchvision wheel is a CUDA build: next to the CPU torch of our CPU machines its ``_C``
extension does not load (it links ``libtorch_cuda.so``), torchvision then carries on without its ops
(``torchvision.extension._has_ops() == False``), but its ``_meta_registrations`` registers fake
kernels for ``torchvision::nms`` and ``torchvision::qnms`` unconditionally, which raises
``RuntimeError: operator torchvision::nms does not exist`` and aborts the import.

What this does, and only when torchvision is installed and its ``_C`` fails to load: define the
*schemas* of those two operators (no kernels), so the import gets past the registration. Nothing
else changes: torchvision still reports ``_has_ops() == False``, and calling ``torchvision.ops.nms``
fails as it would (no kernel). Nothing in mkey-det calls torchvision's ops (mmcv has its own nms and
RoIAlign); mmpretrain uses torchvision's pure-Python transforms. Where torchvision's ops load (a GPU
machine with a matching CUDA torch and torchvision) this does nothing.

Importing ``mkey_det`` applies it. So that a script which imports mmdet's models (and through them
mmpretrain and torchvision) *before* ``mkey_det`` works too, ``scripts/setup-python.sh`` puts a
``.pth`` line in the venv that loads this file alone (not the package) at interpreter start and
calls :func:`install_import_hook`: the fix then runs right before the first ``import torchvision``,
whoever imports it (the hook costs a ``find_spec`` at start-up; torch is imported only then).
"""
from __future__ import annotations

import glob
import importlib.abc
import importlib.util
import os
import sys

#: The operators ``torchvision/_meta_registrations.py`` registers fake kernels for without checking
#: that torchvision's ops loaded (torchvision 0.28); the schemas are those of torchvision's C++.
UNGUARDED_SCHEMAS = (
    'nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
    'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor',
)

_library = None  # the torch.library.Library holding the schemas: they live as long as it does
#: What :func:`make_torchvision_importable` found: 'absent', 'ops', 'already-imported',
#: 'schemas-defined' (see the module docstring).
state = None


def _extension_path() -> str | None:
    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = glob.glob(os.path.join(folder, '_C*.so')) + glob.glob(os.path.join(folder, '_C*.pyd'))
        if found:
            return found[0]
    return ''


def make_torchvision_importable() -> str:
    """Apply the narrow fix described above if needed; returns :data:`state`. Idempotent."""
    global _library, state
    if state is not None:
        return state
    if 'torchvision' in sys.modules:
        state = 'already-imported'
        return state
    path = _extension_path()
    if path is None:
        state = 'absent'
        return state
    import torch
    try:
        if not path:
            raise OSError('no _C extension in the torchvision package')
        torch.ops.load_library(path)
        state = 'ops'
    except (OSError, RuntimeError):
        _library = torch.library.Library('torchvision', 'FRAGMENT')
        for schema in UNGUARDED_SCHEMAS:
            name = schema.split('(', 1)[0]
            if not torch._C._dispatch_has_kernel(f'torchvision::{name}') and \
                    not _has_schema(f'torchvision::{name}'):
                _library.define(schema)
        state = 'schemas-defined'
    return state


def _has_schema(qualname: str) -> bool:
    import torch
    try:
        torch._C._get_schema(qualname, '')
        return True
    except RuntimeError:
        return False


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs :func:`make_torchvision_importable` when ``torchvision`` is first imported, then
    steps aside (it finds nothing itself)."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ARG002
        if fullname == 'torchvision':
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            make_torchvision_importable()
        return None


def install_import_hook() -> None:
    """Apply the fix right before the first ``import torchvision`` (idempotent)."""
    if 'torchvision' in sys.modules or any(type(f).__name__ == '_BeforeTorchvision'
                                           for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _BeforeTorchvision())
