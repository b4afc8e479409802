"""The key-variant manifest: the registry (:mod:`.registry`) as data for the TypeScript side.

    python -m mkey_det.models.keys.manifest [--import MODULE_OR_FILE ...] [--format ts|json]
                                            [--out PATH | --check PATH]

(``scripts/gen-key-variants.sh`` writes ``src/core/key-variants.generated.ts`` with it.)
``--import`` first imports a module (``pkg.mod``) or a ``.py`` file (its folder is put on
``sys.path`` and it is imported by its stem), so variants registered outside ``mkey_det`` appear
too. ``--out -`` (default) prints; ``--check PATH`` compares with PATH and exits 1 when it differs.

Each entry: ``keyType``, ``label`` (the paper's name), ``usesCharts``, ``manifold``,
``backbone`` (the CLI name, ``swin-t-<keyType>``; ``swin-t`` for the linear key),
``backboneLabel`` (``+ <label>``; ``Swin-T``) and ``pythonModule`` (where the class is
registered), in display order.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

#: repository path of the generated TypeScript file (relative to the repository root)
TS_PATH = 'src/core/key-variants.generated.ts'
REGENERATE = 'scripts/gen-key-variants.sh'


def import_variant_module(name: str) -> None:
    """Import a module by dotted name, or a ``.py`` file by path (its folder on ``sys.path``)."""
    if name.endswith('.py') or os.sep in name:
        path = os.path.abspath(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{name}: no such file')
        folder, stem = os.path.split(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        importlib.import_module(os.path.splitext(stem)[0])
    else:
        importlib.import_module(name)


def manifest(imports: Sequence[str] = ()) -> List[Dict[str, Any]]:
    """The manifest entries of every registered key type, after importing ``imports``."""
    from . import KEYS  # the package import registers every variant module of models/keys/
    for name in imports:
        import_variant_module(name)
    return [
        dict(keyType=s.key_type, label=s.label, usesCharts=s.uses_charts, manifold=s.manifold,
             backbone=s.backbone_name, backboneLabel=s.backbone_label, pythonModule=s.module)
        for s in KEYS.specs()
    ]


def _ts_value(v: Any) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, str):
        # single-quoted TS string (the project's style); json.dumps escapes the rest
        inner = json.dumps(v)[1:-1].replace('\\"', '"').replace("'", "\\'")
        return f"'{inner}'"
    raise TypeError(f'manifest value {v!r} has no TypeScript form here')


def render_ts(entries: List[Dict[str, Any]]) -> str:
    """The TypeScript module: a const array of the entries (``as const``: literal types)."""
    lines = [
        '// Generated from the Python key registry (python_shim/mkey_det/models/keys/registry.py)',
        '// by `python -m mkey_det.models.keys.manifest`. Do not edit: run',
        f'// `bash {REGENERATE}` after adding or changing a key variant',
        '// (test/key-variants.test.ts fails while this file is stale).',
        '',
        'export const KEY_VARIANT_MANIFEST = [',
    ]
    for e in entries:
        fields = ', '.join(f'{k}: {_ts_value(v)}' for k, v in e.items())
        lines.append(f'  {{ {fields} }},')
    lines += ['] as const;', '']
    return '\n'.join(lines)


def render(entries: List[Dict[str, Any]], fmt: str) -> str:
    if fmt == 'json':
        return json.dumps(entries, indent=2) + '\n'
    return render_ts(entries)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m mkey_det.models.keys.manifest',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--import', dest='imports', action='append', default=[],
                        metavar='MODULE_OR_FILE',
                        help='import this module or .py file first (repeatable)')
    parser.add_argument('--format', choices=('ts', 'json'), default='ts')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--out', default='-', help="write here ('-': stdout, the default)")
    group.add_argument('--check', default=None, metavar='PATH',
                       help='compare with PATH instead of writing; exit 1 when it differs')
    args = parser.parse_args(argv)
    try:
        text = render(manifest(args.imports), args.format)
    except (ImportError, FileNotFoundError) as exc:
        print(f'error: --import: {exc}', file=sys.stderr)
        return 2
    if args.check is not None:
        try:
            with open(args.check, encoding='utf-8') as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print(f'{args.check} is stale: run `bash {REGENERATE}`', file=sys.stderr)
            return 1
        return 0
    if args.out == '-':
        sys.stdout.write(text)
    else:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
