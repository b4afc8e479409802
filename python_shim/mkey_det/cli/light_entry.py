"""One bridge entry that needs no model, in a process that never imports the models:

    python .../mkey_det/cli/light_entry.py NAME ARGS_JSON        (by file path)

``import mkey_det`` registers the manifold-key backbones in MMDetection and mmpretrain, so it
imports torch and both toolboxes: about 9 s of CPU on a 2-core machine before a bridge answers
anything. The demo datasets' entries (``data.ensure_demo``, ``data.ensure_demo_cls``: numpy and
OpenCV only) are asked before every ``--data demo`` command (``config``, ``train``, ``pretrain``,
``bench``); here they answer in about a second. The package's folder is put in ``sys.modules`` as
a bare package (its ``__init__`` not run), so ``mkey_det.data`` and ``mkey_det.cli.bridge`` load
alone; anything that would import a model fails here instead of quietly loading the stack.

The entry is looked up in the bridge's ``ENTRIES`` (the one list of entry points) and runs through
its ``call`` (arguments as JSON, stdout kept clean); only entries of ``LIGHT_MODULES`` are taken.
The reply is written as the worker protocol's lines (src/python/worker.ts): ``{"event": "result",
"result": ...}``, or ``{"event": "error", "message": ..., "exit_code": 1}`` with the traceback on
stderr.
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

#: Modules whose entries run here: they import neither torch nor a toolbox.
LIGHT_MODULES = ('mkey_det.data.',)


def load_package_without_models() -> None:
    """``mkey_det`` as a bare package over its folder: submodules import, ``__init__`` does not run."""
    folder = Path(__file__).resolve().parents[1]
    package = types.ModuleType('mkey_det')
    package.__path__ = [str(folder)]
    package.__file__ = str(folder / '__init__.py')
    sys.modules['mkey_det'] = package


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print('usage: light_entry.py NAME ARGS_JSON', file=sys.stderr)
        return 2
    name, args_json = argv
    load_package_without_models()
    from mkey_det.cli.bridge import ENTRIES, call

    target = ENTRIES.get(name, '')
    if not target.startswith(LIGHT_MODULES):
        print(json.dumps({'event': 'error', 'exit_code': 1,
                          'message': f'{name!r} is not an entry that runs without the models '
                                     f'(those of {", ".join(LIGHT_MODULES)})'}))
        return 1
    reply = json.loads(call(name, args_json))
    if reply['ok']:
        print(json.dumps({'event': 'result', 'result': reply['value']}))
        return 0
    error = reply['error']
    print(error.get('traceback', ''), file=sys.stderr)
    print(json.dumps({'event': 'error', 'exit_code': 1, 'message': f"{error['type']}: {error['message']}"}))
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
