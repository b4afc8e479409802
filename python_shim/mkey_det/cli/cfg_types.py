"""Refuses ``--cfg-options`` values that would make mmengine import or call code.

mmengine builds every ``dict(type=...)`` through its registries, and ``Registry.get`` falls back to
``get_object_from_string`` for a name it has not registered: ``type='os.system'`` imports ``os``
and calls ``os.system(**the other keys)``; an undotted name that is a module (``type='antigravity'``)
is imported, running its top-level code. ``default_scope`` and ``_scope_`` values are imported as
``<scope>.registry``. So a value that names a type or a scope is accepted only when it resolves
inside the registries without any import: a name registered in one of the scopes in play
(mmengine, mmdet, mmpretrain, mkey_det), or ``scope.Name`` with that scope's own registration.

Entry point (bridge ``config.check_type_names``): :func:`check_type_names`.
"""
from __future__ import annotations

from typing import Any, Iterator

#: Keys whose value mmengine resolves through a registry: a dict's ``type``, the Runner's
#: ``runner_type`` (built through the RUNNERS registry).
TYPE_KEYS = ('type', 'runner_type')
#: Keys whose value mmengine imports as ``<value>.registry``.
SCOPE_KEYS = ('default_scope', '_scope_')


def _registries() -> Iterator[Any]:
    """Every registry of the scopes in play (mmengine's roots and their children), populated."""
    from mmengine import registry as root_module
    from mmengine.registry import Registry

    import mkey_det  # noqa: F401  (registers the manifold-key classes, imports mmdet's registry)
    from mmdet.utils import register_all_modules as register_mmdet

    register_mmdet(init_default_scope=False)
    try:  # the classification half: mmpretrain's scope, where it is installed
        from mmpretrain.utils import register_all_modules as register_mmpretrain

        register_mmpretrain(init_default_scope=False)
        import mkey_det.models.backbones.vit_mkey  # noqa: F401
    except ImportError:
        pass
    stack = [v for v in vars(root_module).values() if isinstance(v, Registry)]
    seen: set[int] = set()
    while stack:
        reg = stack.pop()
        if id(reg) in seen:
            continue
        seen.add(id(reg))
        yield reg
        stack.extend(reg._children.values())


def registered_names() -> dict[str, set[str]]:
    """scope -> the names registered in that scope's registries (no lazy imports left to run)."""
    out: dict[str, set[str]] = {}
    for reg in _registries():
        out.setdefault(reg.scope, set()).update(reg._module_dict)
    return out


def _values(raw: str) -> list[str]:
    """The string(s) mmengine's DictAction makes of ``raw`` (quotes stripped, spaces removed)."""
    from mmengine.config import DictAction

    value = DictAction._parse_iterable(raw)
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in items if isinstance(v, str)]


def _resolves(name: str, names: dict[str, set[str]]) -> bool:
    if '.' in name:
        scope, _, rest = name.partition('.')
        return scope in names and rest in names[scope]
    return any(name in registered for registered in names.values())


def check_type_names(pairs: list[list[str]]) -> list[dict[str, str]]:
    """The ``[key, value]`` pairs whose type or scope value is not registered: ``{key, value, reason}``."""
    names: dict[str, set[str]] | None = None
    problems = []
    for key, raw in pairs:
        last = key.split('.')[-1]
        if last not in TYPE_KEYS and last not in SCOPE_KEYS:
            continue
        if names is None:
            names = registered_names()
            accepted = ', '.join(sorted(s for s in names if s))
        reason = 'scope' if last in SCOPE_KEYS else 'type'
        for value in _values(raw):
            ok = value in names if reason == 'scope' else _resolves(value, names)
            if not ok:
                problems.append({'key': key, 'value': value, 'reason': reason, 'accepted': accepted})
    return problems
