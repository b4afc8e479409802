"""A runtime switch: an attribute a module takes at construction and may change later, every
assignment checked (a manifold key's ``order``, a window attention's ``attn_impl``); the
``set_*`` functions set one on every module of a kind (:func:`~mkey_det.utils.set_on_modules`).

Standard library only.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

T = TypeVar('T')


class Switch(Generic[T]):
    """A class attribute ``name = Switch(check, default, doc)``: reading gives the value
    (``default`` until assigned), assigning stores ``check(value)`` (``check`` raises ValueError
    naming what is accepted). The value lives in ``_<name>``, which ``forward`` reads directly."""

    def __init__(self, check: Callable[[Any], T], default: T, doc: str) -> None:
        self.check = check
        self.default = default
        self.__doc__ = doc
        self.private = ''

    def __set_name__(self, owner: type, name: str) -> None:
        self.private = f'_{name}'
        setattr(owner, self.private, self.default)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(obj, self.private)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj, self.private, self.check(value))


__all__ = ['Switch']
