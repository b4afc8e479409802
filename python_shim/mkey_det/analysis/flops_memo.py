"""The backbone FLOP count of a run's ``start`` event, remembered from one run to the next.

The progress hook counts the backbone's FLOPs at the start of every run and every resume (the
report's FLOPs column): mmengine's FlopAnalyzer traces a copy of it at 224 x 224, 1.5-2 s of CPU
on a 2-core machine, for the same few architectures again and again (a sweep's cells, a test
suite's tiny runs). The count depends only on the backbone's structure and on the code that runs
it, so it is kept under a digest of exactly those:

* every module of the backbone: its class, its simple attributes (ints, floats, strings, bools,
  tuples of them: widths, heads, window, key type, charts, CB mode, key order...) and ``repr``;
* the input size and the counting settings (the paper's key order, the eager attention);
* the mkey_det sources (every ``.py`` of the package: any edit counts again) and the versions of
  torch, mmengine, MMDetection and mmpretrain, whose classes the backbones build on.

One JSON file per digest under ``$MKEY_CACHE_DIR/backbone-flops/``; the CLI sets that variable for
the processes it starts (src/core/run/supervise.ts: the demo datasets' cache folder). Without it
(a config run by MMDetection's own tools), nothing is remembered and every start counts.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional, Tuple

import torch.nn as nn

from ..utils import write_json_replacing

#: Bump when what is counted changes without a source change (never so far).
MEMO_VERSION = 1
#: What the hook counts in: fixed, so part of every digest.
COUNTING = dict(key_order='paper', attn_impl='eager')
_SIMPLE = (bool, int, float, str, type(None))


def memo_dir() -> Optional[Path]:
    """``$MKEY_CACHE_DIR/backbone-flops``, or None when the variable is unset or empty."""
    root = os.environ.get('MKEY_CACHE_DIR', '').strip()
    return Path(root) / 'backbone-flops' if root else None


@functools.lru_cache(maxsize=1)
def _environment_digest() -> str:
    """The package's sources and the toolboxes' versions (once per process: a few ms)."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob('*.py')):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    for dist in ('torch', 'mmengine', 'mmdet', 'mmpretrain', 'mmcv'):
        try:
            h.update(f'{dist}=={metadata.version(dist)}'.encode())
        except metadata.PackageNotFoundError:
            h.update(f'{dist} absent'.encode())
    return h.hexdigest()


def _simple(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_simple(v) for v in value)
    return isinstance(value, _SIMPLE)


def structure(backbone: nn.Module) -> list:
    """Every module as ``[name, class, {simple attributes}]``, in order."""
    rows = []
    for name, module in backbone.named_modules():
        attrs = {k: v for k, v in sorted(vars(module).items()) if not k.startswith('_') and k != 'training' and _simple(v)}
        rows.append([name, f'{type(module).__module__}.{type(module).__qualname__}', attrs])
    return rows


def memo_key(backbone: nn.Module, size: Tuple[int, int]) -> str:
    """The digest the count of ``backbone`` at ``size`` (height, width) is kept under."""
    h = hashlib.sha256()
    h.update(json.dumps(dict(version=MEMO_VERSION, counting=COUNTING, size=list(size),
                             environment=_environment_digest()), sort_keys=True).encode())
    h.update(json.dumps(structure(backbone), default=repr).encode())
    h.update(repr(backbone).encode())
    return h.hexdigest()


def counted_once(backbone: nn.Module, size: Tuple[int, int], count: Callable[[], int]) -> int:
    """The FLOPs of ``backbone`` at ``size``: the count kept for it, else ``count()``, then kept.
    Without a memo folder, ``count()`` and nothing else (no digest is taken)."""
    if memo_dir() is None:
        return count()
    key = memo_key(backbone, size)
    flops = recall(key)
    if flops is None:
        flops = count()
        remember(key, flops)
    return flops


def recall(key: str) -> Optional[int]:
    """The count kept under ``key``; None when there is none (or no memo folder, or a bad file)."""
    folder = memo_dir()
    if folder is None:
        return None
    try:
        with open(folder / f'{key}.json', encoding='utf-8') as f:
            flops = json.load(f).get('flops')
    except (OSError, ValueError, AttributeError):
        return None
    return flops if isinstance(flops, int) and not isinstance(flops, bool) and flops > 0 else None


def remember(key: str, flops: int) -> None:
    """Keeps ``flops`` under ``key``, written whole or not at all (a process reading beside it never
    sees half a file). A folder that cannot be written is no error: the next start counts again."""
    folder = memo_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_replacing(folder / f'{key}.json', dict(flops=int(flops)))
    except OSError:
        pass
