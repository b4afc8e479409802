"""The on-disk cache both demo generators share (detection :mod:`.demo`, classification :mod:`.demo_cls`).

Each generator owns what it draws and how it checks its own manifest; this module owns the rest,
once for both:

- the spec: a frozen dataclass of size/count knobs, given as the dataclass, a mapping of fields to
  change from the default, or None (:func:`as_spec`);
- the manifest ``root/.mkey-demo.json`` (generator, version, seed, spec, file sizes), written last
  and atomically (:func:`write_manifest`), so a folder without it is never a finished dataset;
- the lock that serialises generators of the same root across processes (:func:`generation_lock`);
- the atomic write: the dataset is written into a temporary sibling folder that is renamed into
  place only when complete (:func:`replace_atomically`), and the reuse-or-generate flow around it
  (:func:`ensure_cached`, :func:`regenerate`).

Standard library only, so importing it stays quick.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

#: Manifest file of a generated dataset, written last.
MANIFEST_NAME = '.mkey-demo.json'

S = TypeVar('S')

#: ``(manifest, None)`` for an intact cache, else ``(None, why not)`` (the reason may be None).
CacheCheck = tuple[dict[str, Any] | None, str | None]


def as_spec(spec: S | Mapping[str, Any] | None, default: S) -> S:
    """``spec`` as a spec dataclass: ``default`` for None, the fields of a mapping replaced in ``default``."""
    if spec is None:
        return default
    if isinstance(spec, type(default)):
        return spec
    return dataclasses.replace(default, **dict(spec))  # type: ignore[type-var]


def file_sizes(root: Path) -> dict[str, int]:
    """Size of every file under ``root`` by its POSIX relative path, sorted, the manifest left out."""
    return {
        p.relative_to(root).as_posix(): p.stat().st_size
        for p in sorted(root.rglob('*'))
        if p.is_file() and p.name != MANIFEST_NAME
    }


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Writes ``out/.mkey-demo.json`` through a ``.part`` file renamed into place (the last file written)."""
    tmp = out / (MANIFEST_NAME + '.part')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(tmp, out / MANIFEST_NAME)


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a generated dataset (raises OSError/ValueError when there is none)."""
    with open(Path(root) / MANIFEST_NAME, encoding='utf-8') as f:
        return json.load(f)


@contextlib.contextmanager
def generation_lock(root: Path) -> Iterator[None]:
    """Serialises generators of the same ``root`` across processes (a no-op where fcntl is missing)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(root.parent / f'.{root.name}.lock', 'a+') as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def replace_atomically(root: Path, write: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Runs ``write(tmp)`` on a temporary sibling of ``root`` and renames it into place; returns
    what ``write`` returned (the manifest). The caller holds :func:`generation_lock`."""
    parent = root.parent
    # leftovers of interrupted generations (we hold the lock, so nobody else is writing them)
    for stale in list(parent.glob(f'.{root.name}.tmp-*')) + list(parent.glob(f'.{root.name}.old-*')):
        shutil.rmtree(stale, ignore_errors=True)
    tag = f'{os.getpid()}-{uuid.uuid4().hex[:8]}'
    tmp = parent / f'.{root.name}.tmp-{tag}'
    try:
        manifest = write(tmp)
        if root.is_symlink() or root.is_file():
            root.unlink()
        if root.exists():
            old = parent / f'.{root.name}.old-{tag}'
            os.rename(root, old)
            os.rename(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def regenerate(root: Path, write: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """(Re)generates ``root`` unconditionally, under the lock; returns the new manifest."""
    with generation_lock(root):
        return replace_atomically(root, write)


def ensure_cached(
    root: Path, check: Callable[[], CacheCheck], write: Callable[[Path], dict[str, Any]], force: bool = False
) -> tuple[dict[str, Any], str | None]:
    """``(manifest, None)`` when ``check()`` finds an intact dataset at ``root`` (and not ``force``),
    else generates it and returns ``(manifest, why)``: ``'forced'``, or ``check``'s reason (``'regenerated'``
    when it gave none)."""
    if not force:
        manifest, _ = check()
        if manifest is not None:
            return manifest, None
    with generation_lock(root):
        # another process may have finished it while we waited for the lock
        if force:
            return replace_atomically(root, write), 'forced'
        manifest, reason = check()
        if manifest is not None:
            return manifest, None
        return replace_atomically(root, write), reason or 'regenerated'
