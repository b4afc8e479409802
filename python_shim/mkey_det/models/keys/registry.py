"""The key registry: every key variant, with what the rest of the project needs to know about it.

In the style of MMDetection's registries (``MODELS = Registry('model')``,
``@MODELS.register_module()``): a key class registers itself where it is defined::

    @register_key('spatialk', label='SpatialK', display_order=10, table1=(61, 10.4),
                  literal='mkey_det.bench.literal:LiteralSpatialK', fold_when_cheaper=True)
    class SpatialKey(ManifoldKey):
        ...

and everything that lists the variants derives from :data:`KEYS`:
``KEY_TYPES``/``MANIFOLD_KEYS``/:func:`~.builder.build_key` (:mod:`.builder`), the backbone's
``key_type`` check, :mod:`mkey_det.analysis`, the bench suites and the TypeScript side
(``src/core/key-variants.generated.ts``, written by :mod:`.manifest`).

Every module of this package is imported by the package's ``__init__`` (see
``_import_variant_modules`` there), so a new variant module under ``models/keys/`` registers
itself without editing any list. A variant defined elsewhere (a plugin, a test) registers when
its module is imported (``custom_imports`` in an MMDetection config, ``--import`` of the manifest
generator).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Tuple, Type

import torch.nn as nn

from .base import ManifoldKey

#: a key type becomes part of a CLI name (``swin-t-<type>``), a config value and a TS literal
_KEY_TYPE_RE = re.compile(r'^[a-z][a-z0-9_]*$')
_LITERAL_RE = re.compile(r'^[A-Za-z_][\w.]*:[A-Za-z_]\w*$')

#: the backbone's name and row label when the key is the stock linear one
BASE_BACKBONE = ('swin-t', 'Swin-T')


@dataclass(frozen=True)
class KeySpec:
    """One registered key variant.

    Attributes:
        key_type: the type name (``'spatialk'``): ``build_key``'s and ``SwinTransformerMKey``'s
            ``key_type``, and the CLI backbone ``swin-t-<key_type>``.
        cls: the key class, ``cls(dim, num_tokens, num_charts, order=..., chart_noise=...)`` for
            a manifold key (a :class:`~.base.ManifoldKey`), ``cls(dim, num_tokens)`` otherwise.
        label: the name the paper prints (``'SpatialK'``); the backbone's row label is
            ``'+ <label>'`` (``'Swin-T'`` for a non-manifold key).
        uses_charts: whether ``num_charts`` / ``--charts`` applies.
        display_order: position in every list (tables, CLI choices); ties by type name.
        literal: ``'module:Class'`` of an independent transcription of the variant used by the
            ``module`` bench suite and the literal-comparison tests (see
            :mod:`mkey_det.bench.literal`): ``Class(dim, num_tokens, num_charts)`` with the same
            parameter names as the key and a ``param_names`` tuple. None: no transcription.
        table1: the paper's Table 1 (Swin-T, 8 charts, 224x224): (params [M], FLOPs [G]), or None.
        fold_when_cheaper: ``order='fast'`` folds only when that saves work (``T > FOLD_RATIO *
            C``; variants with an aggregation ``Linear(H*C, C)``, whose paper order costs twice
            the folded one); False: ``'fast'`` always runs the folded form (same cost as the
            paper order). Read by the bench cost model.
    """
    key_type: str
    cls: Type[nn.Module]
    label: str
    uses_charts: bool
    display_order: int
    literal: Optional[str] = None
    table1: Optional[Tuple[float, float]] = None
    fold_when_cheaper: bool = False

    @property
    def manifold(self) -> bool:
        """Whether the key is a manifold key (a :class:`~.base.ManifoldKey`)."""
        return issubclass(self.cls, ManifoldKey)

    @property
    def module(self) -> str:
        """The Python module that defines (and registers) the key class."""
        return self.cls.__module__

    @property
    def backbone_name(self) -> str:
        """CLI backbone name: ``'swin-t'`` (non-manifold key) or ``'swin-t-<key_type>'``."""
        return f'{BASE_BACKBONE[0]}-{self.key_type}' if self.manifold else BASE_BACKBONE[0]

    @property
    def backbone_label(self) -> str:
        """Row label: ``'Swin-T'`` (non-manifold key) or ``'+ <label>'``."""
        return f'+ {self.label}' if self.manifold else BASE_BACKBONE[1]


class KeyRegistry:
    """Key type name -> :class:`KeySpec` (a small registry in mmengine's style)."""

    def __init__(self, name: str):
        self.name = name
        self._specs: Dict[str, KeySpec] = {}

    def register_module(self, key_type: str, *, label: str, uses_charts: Optional[bool] = None,
                        display_order: int = 1000, literal: Optional[str] = None,
                        table1: Optional[Tuple[float, float]] = None,
                        fold_when_cheaper: bool = False,
                        force: bool = False) -> Callable[[type], type]:
        """Class decorator: register the class under ``key_type`` (see :class:`KeySpec` for the
        fields; ``uses_charts`` defaults to whether the class is a manifold key). Sets the
        class's ``key_type`` attribute. ``force``: replace an existing registration."""
        if not isinstance(key_type, str) or not _KEY_TYPE_RE.match(key_type):
            raise ValueError(f'{self.name}: key_type must match {_KEY_TYPE_RE.pattern} (it '
                             f'becomes a CLI name and a config value), got {key_type!r}')
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f'{self.name} {key_type!r}: label must be a non-empty string')
        if literal is not None and (not isinstance(literal, str) or not _LITERAL_RE.match(literal)):
            raise ValueError(f"{self.name} {key_type!r}: literal must be 'module:Class', "
                             f'got {literal!r}')
        if table1 is not None:
            if len(table1) != 2 or not all(isinstance(v, (int, float)) for v in table1):
                raise ValueError(f'{self.name} {key_type!r}: table1 must be (params_M, flops_G), '
                                 f'got {table1!r}')
            table1 = tuple(table1)

        def decorator(cls: type) -> type:
            if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                raise TypeError(f'{self.name} {key_type!r}: {cls!r} is not an nn.Module class')
            if key_type in self._specs and not force and self._specs[key_type].cls is not cls:
                raise KeyError(f'{self.name} {key_type!r} is already registered by '
                               f'{self._specs[key_type].cls.__qualname__} '
                               f'({self._specs[key_type].module})')
            charts = issubclass(cls, ManifoldKey) if uses_charts is None else bool(uses_charts)
            cls.key_type = key_type
            self._specs[key_type] = KeySpec(key_type, cls, label, charts, int(display_order),
                                            literal, table1, bool(fold_when_cheaper))
            return cls

        return decorator

    def unregister(self, key_type: str) -> KeySpec:
        """Remove a registration (tests that register a toy variant); returns its spec."""
        return self._specs.pop(key_type)

    def get(self, key_type: str) -> KeySpec:
        """The spec of ``key_type``; ValueError naming the registered types otherwise."""
        spec = self._specs.get(key_type) if isinstance(key_type, str) else None
        if spec is None:
            raise ValueError(f'key_type must be one of {self.key_types()}, got {key_type!r}')
        return spec

    def specs(self) -> Tuple[KeySpec, ...]:
        """Every spec, in display order (ties by type name)."""
        return tuple(sorted(self._specs.values(), key=lambda s: (s.display_order, s.key_type)))

    def key_types(self) -> Tuple[str, ...]:
        """Every registered key type, in display order."""
        return tuple(s.key_type for s in self.specs())

    def manifold_specs(self) -> Tuple[KeySpec, ...]:
        """The manifold keys' specs, in display order."""
        return tuple(s for s in self.specs() if s.manifold)

    def __contains__(self, key_type) -> bool:
        return isinstance(key_type, str) and key_type in self._specs

    def __iter__(self) -> Iterator[KeySpec]:
        return iter(self.specs())

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f'KeyRegistry(name={self.name!r}, items={list(self.key_types())})'


#: the registry of every key variant
KEYS = KeyRegistry('manifold key')
#: ``@register_key('name', label='Label', ...)``: see :meth:`KeyRegistry.register_module`
register_key = KEYS.register_module


def key_spec(key_type: str) -> KeySpec:
    """The :class:`KeySpec` of ``key_type`` (ValueError naming the registered types)."""
    return KEYS.get(key_type)


def key_types() -> Tuple[str, ...]:
    """Every registered key type, in display order (live: includes plugins imported later)."""
    return KEYS.key_types()


def manifold_key_types() -> Tuple[str, ...]:
    """The registered manifold key types, in display order (live)."""
    return tuple(s.key_type for s in KEYS.manifold_specs())
