"""Keeps mmengine 0.10.7's checkpoints loadable under torch >= 2.6 without turning the safe loader off.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls ``torch.load``
without the argument, and its checkpoints carry, besides tensors, the runner's message hub
(``HistoryBuffer`` objects holding numpy arrays) and numpy scalars in ``meta``: the safe unpickler
refuses them (``Unsupported global ... HistoryBuffer``), so ``tools/test.py`` and ``--resume`` fail.

Instead of ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (which accepts any pickle, i.e. runs arbitrary
code from a checkpoint file), this allow-lists exactly the classes those checkpoints need with
``torch.serialization.add_safe_globals``. Importing ``mkey_det`` applies it.
"""
from __future__ import annotations

import importlib
from typing import Any

_applied = False


def mmengine_checkpoint_globals() -> list[Any]:
    """The non-tensor classes an mmengine 0.10.7 checkpoint pickles (mmengine, numpy, builtins)."""
    import numpy as np

    found: list[Any] = []

    def add(module: str, name: str) -> None:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass

    add('mmengine.logging.history_buffer', 'HistoryBuffer')
    # HistoryBuffer keeps bound methods (self.min, self.mean, ...) in a dict, which pickle stores as
    # getattr(buffer, 'min'). Allowing getattr does not let a file call anything new: the safe
    # unpickler still calls only allow-listed callables (REDUCE/NEWOBJ are checked), getattr merely
    # reads an attribute of an object that was itself built from allow-listed classes.
    found.append(getattr)
    add('mmengine.config.config', 'ConfigDict')
    # numpy arrays and scalars, under numpy 2's and numpy 1's module names
    for mod in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        add(mod, '_reconstruct')
        add(mod, 'scalar')
    found.extend([np.ndarray, np.dtype])
    for name in dir(np.dtypes):  # Float64DType, Int64DType, ...: what np.dtype pickles as
        if name.endswith('DType'):
            found.append(getattr(np.dtypes, name))
    return found


def allow_mmengine_checkpoints() -> None:
    """Registers :func:`mmengine_checkpoint_globals` with torch's safe loader (idempotent)."""
    global _applied
    if _applied:
        return
    import torch

    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 has no safe loader default to work around
        add_safe_globals(mmengine_checkpoint_globals())
    _applied = True
