"""Entry points that the Node CLI calls through pythonia (JSPyBridge): short calls. Long or
crash-prone work runs as a worker process instead (src/python/worker.ts: ``python -m module``,
JSON lines on stdout).

Every call goes through :func:`call`, which

* looks the entry up by name in ``ENTRIES`` (nothing the user typed is evaluated as code),
* passes the arguments as one JSON object string,
* keeps Python's stdout off Node's stdout (it is redirected to stderr) so ``--json`` output stays
  clean,
* and returns a JSON string ``{"ok": true, "value": ...}`` or
  ``{"ok": false, "error": {"type", "message", "traceback"}}``. Values are made JSON-safe first
  (:func:`mkey_det.utils.json_safe`): NaN and infinities become ``null`` (a raw NaN crashes
  pythonia's Node side), numpy and torch scalars become Python numbers.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import sys
import traceback
from typing import Any, Callable

from ..utils import json_safe

#: name -> "module:function": every entry the Node side calls, and only those. Node's side of the
#: same list, with the schema of each entry's arguments and reply, is src/python/entries.ts
#: (test/bridge.test.ts holds the two equal): an entry added here is added there too.
ENTRIES: dict[str, str] = {
    'selftest.echo': 'mkey_det.cli.bridge:_selftest_echo',
    'selftest.raise': 'mkey_det.cli.bridge:_selftest_raise',
    'selftest.nan': 'mkey_det.cli.bridge:_selftest_nan',
    'selftest.pid': 'mkey_det.cli.bridge:_selftest_pid',
    'selftest.sleep': 'mkey_det.cli.bridge:_selftest_sleep',
    'selftest.entries': 'mkey_det.cli.bridge:_selftest_entries',
    'runs.preflight': 'mkey_det.cli.runs:preflight',
    'runs.check_checkpoint': 'mkey_det.cli.runs:check_checkpoint',
    'config.summary': 'mkey_det.cli.runs:load_config_summary',
    'config.user_config': 'mkey_det.cli.runs:user_config_text',
    'config.base_values': 'mkey_det.cli.runs:base_config_values',
    'config.check_type_names': 'mkey_det.cli.cfg_types:check_type_names',
    'data.ensure_demo': 'mkey_det.data.demo:ensure_demo_dataset',
    'data.ensure_demo_cls': 'mkey_det.data.demo_cls:ensure_demo_cls_dataset',
    'export.backbone': 'mkey_det.export.backbone:export_backbone',
    'export.reference_outputs': 'mkey_det.export.backbone:reference_outputs',
    'export.sample_images': 'mkey_det.export.images:sample_image_paths',
    'analyze.qk': 'mkey_det.cli.analyze:qk',
    'analyze.attention': 'mkey_det.cli.analyze:attention',
}


def _resolve(name: str) -> Callable[..., Any]:
    if name not in ENTRIES:
        raise KeyError(f'unknown bridge entry {name!r} (known: {", ".join(sorted(ENTRIES))})')
    module_name, func_name = ENTRIES[name].split(':')
    return getattr(importlib.import_module(module_name), func_name)


def call(name: str, args_json: str = '{}') -> str:
    """Runs entry ``name`` with keyword arguments decoded from ``args_json``; never raises."""
    try:
        kwargs = json.loads(args_json) if args_json else {}
        if not isinstance(kwargs, dict):
            raise TypeError('bridge arguments must be a JSON object')
        with contextlib.redirect_stdout(sys.stderr):
            value = _resolve(name)(**kwargs)
        return json.dumps({'ok': True, 'value': json_safe(value)}, allow_nan=False)
    except BaseException as exc:  # noqa: BLE001 - everything must come back as data
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not isinstance(exc, SystemExit):
            raise
        return json.dumps(
            {
                'ok': False,
                'error': {
                    'type': type(exc).__name__,
                    'message': str(exc),
                    'traceback': traceback.format_exc(),
                },
            }
        )


def _selftest_echo(**kwargs: Any) -> Any:
    return kwargs


def _selftest_raise(message: str = 'boom') -> None:
    raise ValueError(message)


def _selftest_nan() -> dict[str, Any]:
    return {'nan': float('nan'), 'inf': float('inf'), 'ok': 1.5}


def _selftest_pid() -> int:
    import os

    return os.getpid()


def _selftest_sleep(seconds: float = 1.0) -> float:
    import time

    time.sleep(seconds)
    return seconds


def _selftest_entries() -> list[str]:
    """The names in ``ENTRIES``, sorted: the Node side checks its own list against them."""
    return sorted(ENTRIES)
