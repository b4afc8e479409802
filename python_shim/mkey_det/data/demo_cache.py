"""What both demo generators share (detection :mod:`.demo`, classification :mod:`.demo_cls`): the
on-disk cache, the entry points made on it and the ``python -m`` script.

Each generator owns what it draws, the fields it adds to its manifest and its summary; this module
owns the rest, once for both:

- the spec: a frozen dataclass of size/count knobs, given as the dataclass, a mapping of fields to
  change from the default, or None (:func:`as_spec`), checked by the generator's rules (:func:`require`);
- the manifest ``root/.mkey-demo.json``: the dataset's identity (generator, version, seed, spec,
  classes), the generator's own fields and every file's size, written last and atomically
  (:func:`write_manifest`), so a folder without it is never a finished dataset;
- the cache check: an intact dataset of that identity, or why not (:func:`cache_problem`);
- the lock that serialises generators of the same root across processes (:func:`generation_lock`);
- the atomic write: the dataset is written into a temporary sibling folder that is renamed into
  place only when complete (:func:`replace_atomically`), and the reuse-or-generate flow around it
  (:func:`ensure_cached`, :func:`ensure_dataset`);
- the two entry points both modules offer, made from a generator described once
  (:class:`DemoGenerator`): ``ensure_<name>(root, seed=0, spec=None, force=False)`` (reuse an intact
  dataset of this generator version, seed and spec, else generate it) and
  ``generate_<name>(root, seed=0, spec=None)`` (always generate);
- ``python -m mkey_det.data.demo[_cls]`` (:func:`script_main`).

Standard library only, so importing it stays quick.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Mapping, Sequence, TypeVar

from ..utils import write_json_replacing

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
    """Writes ``out/.mkey-demo.json`` whole or not at all (the last file written)."""
    write_json_replacing(out / MANIFEST_NAME, manifest, indent=1, sort_keys=True)


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


def _spec_diff(old: Any, new: Mapping[str, Any]) -> str:
    if not isinstance(old, dict):
        return 'no spec recorded'
    changed = [f'{k} {old.get(k)!r} -> {v!r}' for k, v in new.items() if old.get(k) != v]
    changed += [f'{k} {old[k]!r} dropped' for k in old if k not in new]
    return ', '.join(changed) or 'unchanged'


def cache_problem(root: Path, identity: Mapping[str, Any], fields: Sequence[str]) -> CacheCheck:
    """``(manifest, None)`` when ``root`` holds a complete dataset whose manifest records
    ``identity`` (generator, version, seed, spec as a dict, classes) and the generator's own
    ``fields`` (mappings), with every file it lists intact and no other file; else ``(None, why not)``."""
    if not root.exists():
        return None, 'no dataset at root yet'
    try:
        manifest = read_manifest(root)
    except (OSError, ValueError):
        return None, 'root holds no complete dataset (no readable manifest: an interrupted generation or another folder)'
    if not isinstance(manifest, dict) or manifest.get('generator') != identity['generator']:
        other = manifest.get('generator') if isinstance(manifest, dict) else None
        return None, f'root holds data of another generator ({other!r})'
    if manifest.get('version') != identity['version']:
        return None, f'cached dataset is generator version {manifest.get("version")!r}, this is version {identity["version"]}'
    if manifest.get('seed') != identity['seed']:
        return None, f'cached dataset has seed {manifest.get("seed")!r}, asked for seed {identity["seed"]}'
    if manifest.get('spec') != identity['spec']:
        return None, f'cached dataset has another spec ({_spec_diff(manifest.get("spec"), identity["spec"])})'
    if manifest.get('classes') != identity['classes']:
        return None, 'cached dataset has other classes'
    files = manifest.get('files')
    if not isinstance(files, dict) or not all(isinstance(manifest.get(k), dict) for k in fields):
        return None, 'cached manifest is malformed'
    try:
        on_disk = file_sizes(root)
    except OSError as exc:
        return None, f'cached dataset cannot be listed ({exc})'
    for rel, size in files.items():
        if on_disk.get(rel) != size:
            return None, f'cached file {rel} is missing or changed'
    for rel in on_disk:
        if rel not in files:
            return None, f'cached dataset has an unexpected file {rel}'
    return manifest, None


def ensure_dataset(
    root: str | os.PathLike[str],
    identity: Mapping[str, Any],
    fields: Sequence[str],
    write_files: Callable[[Path], dict[str, Any]],
    force: bool = False,
) -> tuple[Path, dict[str, Any], str | None]:
    """The dataset of ``identity`` at ``root`` (made absolute): ``(root, manifest, None)`` when an
    intact one is there (and not ``force``), else ``(root, manifest, why)`` after generating it:
    ``write_files(out)`` writes the files and returns the generator's own manifest ``fields``, then
    the manifest (identity, those fields, every file's size) is written last."""
    root = Path(root).expanduser().absolute()

    def write(out: Path) -> dict[str, Any]:
        out.mkdir(parents=True, exist_ok=True)
        manifest = {**identity, **write_files(out)}
        manifest['files'] = file_sizes(out)
        write_manifest(out, manifest)
        return manifest

    manifest, why = ensure_cached(root, lambda: cache_problem(root, identity, fields), write, force)
    return root, manifest, why


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


def script_main(
    argv: list[str] | None,
    module: str,
    description: str,
    ensure: Callable[..., dict[str, Any]],
    default: Any,
    sizes: Sequence[str],
    derived: Callable[[dict[str, int]], dict[str, Any]] | None = None,
    extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> int:
    """``python -m <module> --out DIR [--seed N] [--force] [--<size> N ...]``: ``ensure`` (the
    module's ``ensure_*`` function) with ``default`` changed in the integer fields ``sizes`` (and
    those ``derived`` from them), then its summary as JSON on stdout, with the seconds it took and
    ``extra(summary)``."""
    parser = argparse.ArgumentParser(prog=f'python -m {module}', description=description)
    parser.add_argument('--out', required=True, help='dataset root (created; reused when already complete)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='regenerate even when a complete dataset exists')
    for name in sizes:
        parser.add_argument(f'--{name.replace("_", "-")}', type=int, default=getattr(default, name))
    args = parser.parse_args(argv)
    given = {name: getattr(args, name) for name in sizes}
    try:
        spec = dataclasses.replace(default, **given, **(derived(given) if derived else {}))
    except ValueError as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    result = ensure(args.out, seed=args.seed, spec=spec, force=args.force)
    result['seconds'] = round(time.perf_counter() - start, 3)
    if extra is not None:
        result.update(extra(result))
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write('\n')
    return 0
