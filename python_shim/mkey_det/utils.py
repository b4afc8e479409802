"""Small helpers shared across the package (the plugin, ``bench/``, ``export/`` and ``cli/``).

* :func:`json_safe`: any result as strict-JSON data (the bridge's replies, the bench protocol,
  the export sidecar).
* :func:`rel_diff`: the relative difference that parity checks compare with a threshold.
* :func:`quiet_mmengine` / :func:`silence_mmengine`: mmengine's INFO/WARNING logs off while
  building models or running its analyzers.
* :func:`set_on_modules`: one attribute set on every submodule of a kind (the runtime switches
  ``set_cb_mode``, ``set_key_order`` and ``set_attn_impl``).
* :func:`write_json_replacing`: a JSON file written whole or not at all (the export sidecar, the
  demo datasets' manifests, the FLOP memo).

torch and mmengine are imported where they are used, so :func:`json_safe` needs neither.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

if TYPE_CHECKING:
    import torch

__all__ = ['json_safe', 'rel_diff', 'quiet_mmengine', 'silence_mmengine', 'set_on_modules',
           'write_json_replacing']


def json_safe(value: Any) -> Any:
    """``value`` as data ``json.dumps(..., allow_nan=False)`` accepts.

    NaN and infinities become ``None``; dict keys become strings; tuples, lists and sets become
    lists; numpy/torch scalars become Python numbers and arrays/tensors nested lists; anything
    else becomes its ``str()``.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    item = getattr(value, 'item', None)  # numpy / torch scalars
    if callable(item) and getattr(value, 'ndim', 0) == 0:
        return json_safe(item())
    tolist = getattr(value, 'tolist', None)  # numpy arrays / torch tensors
    if callable(tolist):
        return json_safe(tolist())
    return str(value)


def rel_diff(out: Optional[torch.Tensor], ref: Optional[torch.Tensor]) -> float:
    """``max|out - ref| / max|ref|``, computed in float64 (0.0 for empty tensors).

    ``inf`` when the shapes differ or either side holds a non-finite value. ``None`` stands for a
    missing tensor (e.g. a parameter without a gradient): ``None`` against ``None`` is 0.0 (both
    agree there is nothing), ``None`` against a tensor is ``inf``.
    """
    import torch

    if out is None or ref is None:
        return float('inf') if (out is None) != (ref is None) else 0.0
    if tuple(out.shape) != tuple(ref.shape):
        return float('inf')
    a, b = out.detach().double(), ref.detach().double()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float('inf')
    if not b.numel():
        return 0.0
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-30)


def silence_mmengine(*also: str, level: int = logging.ERROR) -> Callable[[], None]:
    """Sets mmengine's loggers to ``level`` (default ERROR) and returns a function that restores
    their previous levels.

    Covers mmengine's current ``MMLogger`` instance (where ``print_log(..., 'current')`` writes:
    model init, paramwise options, the FLOP analyzer's skipped ops; one named ``'mmengine'`` is
    created when none exists yet), the standard-library logger ``'mmengine'``, and the standard
    loggers named in ``also`` (e.g. ``'fvcore'``).
    """
    from mmengine.logging import MMLogger

    loggers = [MMLogger.get_current_instance(), logging.getLogger('mmengine')]
    loggers += [logging.getLogger(name) for name in also]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)

    def restore() -> None:
        for lg, old in reversed(saved):
            lg.setLevel(old)

    return restore


@contextlib.contextmanager
def quiet_mmengine(*also: str, level: int = logging.ERROR) -> Iterator[None]:
    """:func:`silence_mmengine` for the duration of a ``with`` block."""
    restore = silence_mmengine(*also, level=level)
    try:
        yield
    finally:
        restore()


def set_on_modules(module: Any, kind: type | tuple[type, ...], name: str, value: Any) -> int:
    """Sets ``name = value`` on every submodule of ``module`` (itself included) that is a ``kind``;
    returns how many were set. The value is checked by the attribute's own setter."""
    n = 0
    for m in module.modules():
        if isinstance(m, kind):
            setattr(m, name, value)
            n += 1
    return n


def write_json_replacing(path: str | os.PathLike[str], value: Any, **dump_kwargs: Any) -> None:
    """Writes ``value`` as JSON (``json.dump(value, f, **dump_kwargs)`` and a newline) to ``path``
    through ``<path>.partial-<pid>`` renamed into place: a reader beside it sees the old file or
    the new one, never half of one. On any error the partial file is removed and the error raised."""
    tmp = f'{os.fspath(path)}.partial-{os.getpid()}'
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(value, f, **dump_kwargs)
            f.write('\n')
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
