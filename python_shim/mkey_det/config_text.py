"""Formats a config's text once per process, not once per checkpoint.

mmengine 0.10.7's ``Config.pretty_text`` builds the config as Python source and formats it with
yapf (``FormatCode``), and a run asks for it again and again with the config unchanged: the log at
start, ``dump_config``, the runtime-info hook, and every checkpoint (``meta['cfg']``). yapf takes
0.4 s of CPU per call for a Mask R-CNN config on a 2-core CPU machine (``time.process_time``), and a
tiny run of 4 iterations and 2 checkpoints asked six times: five of them are answered here.

``FormatCode`` is a pure function of its source text and style, so this keeps its last few results
keyed by exactly those arguments: the same text comes back for the same input, and a config that
changed is formatted anew. Importing ``mkey_det`` applies it (idempotent).
"""
from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Callable

#: Distinct configs a process formats (a run: one; a bridge session: a few).
CACHE_SIZE = 8


def memoizing(format_code: Callable[..., Any], size: int = CACHE_SIZE) -> Callable[..., Any]:
    """``format_code`` with its last ``size`` results kept, keyed by all of its arguments."""
    results: OrderedDict[str, Any] = OrderedDict()

    def cached(*args: Any, **kwargs: Any) -> Any:
        key = json.dumps([args, kwargs], sort_keys=True, default=repr)
        if key in results:
            results.move_to_end(key)
            return results[key]
        value = format_code(*args, **kwargs)  # an error propagates and is not kept
        results[key] = value
        if len(results) > size:
            results.popitem(last=False)
        return value

    cached.__wrapped__ = format_code  # type: ignore[attr-defined]
    return cached


def memoize_config_formatting() -> None:
    """Puts :func:`memoizing` around the ``FormatCode`` that ``mmengine.config.config`` calls."""
    from mmengine.config import config as mm_config

    if not hasattr(mm_config.FormatCode, '__wrapped__'):
        mm_config.FormatCode = memoizing(mm_config.FormatCode)
