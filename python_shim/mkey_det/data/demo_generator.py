"""A demo generator described once (detection :mod:`.demo`, classification :mod:`.demo_cls`), and
the two entry points both modules offer, made from that description on the shared cache
(:mod:`.demo_cache`): ``ensure_<name>(root, seed=0, spec=None, force=False)`` (reuse an intact
dataset of this generator version, seed and spec, else generate it) and
``generate_<name>(root, seed=0, spec=None)`` (always generate).

Standard library only.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

from .demo_cache import as_spec, ensure_dataset

S = TypeVar('S')

#: ``summary(root, manifest, why)``: an entry point's reply; ``why`` is None when an intact cache was reused.
Summary = Callable[[Path, dict[str, Any], str | None], dict[str, Any]]


def require(spec: Any, *rules: tuple[bool, str]) -> None:
    """A spec's checks: ValueError ``invalid <SpecClass>: <what> (<spec>)`` for the first
    ``(holds, what)`` rule that does not hold."""
    for holds, what in rules:
        if not holds:
            raise ValueError(f'invalid {type(spec).__name__}: {what} ({spec})')


@dataclasses.dataclass(frozen=True)
class DemoGenerator(Generic[S]):
    """``identity(seed, spec)``: what a dataset's manifest records of the generator (name, version,
    seed, the spec as a dict, classes; read when called, so a changed version counts at once);
    ``default``: the spec the caller's changes apply to; ``write(out, seed, spec)`` writes the files
    under ``out`` and returns the generator's own manifest ``fields``."""

    identity: Callable[[int, S], dict[str, Any]]
    default: S
    fields: tuple[str, ...]
    write: Callable[[Path, int, S], dict[str, Any]]

    def entry_points(self, module: str, dataset: str, summary: Summary, returns: str
                     ) -> tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, Any]]]:
        """``(ensure_<dataset>, generate_<dataset>)`` of ``module``, both answering
        ``summary(...)``; ``returns`` names its fields in their docstrings."""

        def ensure(root: str | os.PathLike[str], seed: int = 0, spec: S | Mapping[str, Any] | None = None,
                   force: bool = False) -> dict[str, Any]:
            spec, seed = as_spec(spec, self.default), int(seed)
            root, manifest, why = ensure_dataset(root, self.identity(seed, spec), self.fields,
                                                 lambda out: self.write(out, seed, spec), force)
            return summary(root, manifest, why)

        def generate(root: str | os.PathLike[str], seed: int = 0,
                     spec: S | Mapping[str, Any] | None = None) -> dict[str, Any]:
            return ensure(root, seed, spec, force=True)

        for fn, verb, doc in (
            (ensure, 'ensure', f'Returns ``{returns}``, generating the dataset only when ``root`` holds no '
                               'intact dataset of this generator version, seed and spec (or ``force``).'),
            (generate, 'generate', '(Re)generates the dataset at ``root`` unconditionally; returns the same '
                                   f'summary as :func:`ensure_{dataset}`.'),
        ):
            fn.__name__ = fn.__qualname__ = f'{verb}_{dataset}'
            fn.__module__ = module
            fn.__doc__ = doc
        return ensure, generate


__all__ = ['DemoGenerator', 'Summary', 'require']
