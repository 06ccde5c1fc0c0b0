"""What a machine needs from the lab's side -- the store's code, a SQLite build, a starting database's baseline -- as one tar stream for the engine.

The lab never bind-mounts a path of its own filesystem into a machine: with a remote engine
(``DOCKER_HOST=ssh://...``) that path does not exist where the machine runs. Instead each
input travels through the engine's API (an archive upload, repro/machine/disk.py) into the
trial's inputs volume, which the machine mounts read-only at INPUTS_DIR. Files arrive owned
by root and readable by all, so the workload (uid 1000) can read but never change them.
"""

from __future__ import annotations

import enum
import io
import os
import pathlib
import tarfile
from dataclasses import dataclass
from typing import Protocol

from repro.errors import ScenarioError

INPUTS_DIR = "/opt/lab-inputs"
# Never sent: byte-code a machine would not use (PYTHONDONTWRITEBYTECODE, and the image's Python
# may differ), version-control metadata, editor and build litter.
SKIPPED = frozenset({"__pycache__", ".git", ".hg", ".mypy_cache", ".pytest_cache", ".tox", ".nox", ".venv", "venv",
                     "node_modules"})
MAX_INPUT_BYTES = 256 << 20  # a store or build bigger than this is a mistake in the path given


class InputError(ScenarioError):
    """An input cannot be sent to the machine (missing, unreadable, or far too big): bad input, exit 2."""


class InputKind(str, enum.Enum):
    """The inputs a machine may get, each a directory of its own under INPUTS_DIR."""

    STORE = "store"    # the store under test, when it is not the image's own
    SQLITE = "sqlite"  # a SQLite build (libsqlite3.so.0), loaded through LD_LIBRARY_PATH
    START = "start"    # the starting database's baseline, for the probe
    TRACE = "trace"    # a recorded trace, for the explore sandbox's checkers (repro/explore/sandbox.py)


@dataclass(frozen=True)
class Input:
    """A file or directory of the lab's side, and where it appears in the machine."""

    kind: InputKind
    source: pathlib.Path


def machine_path(kind: InputKind) -> str:
    """Where an input of this kind appears in the machine (and in the disk holder)."""
    return f"{INPUTS_DIR}/{kind.value}"


# Python's _sqlite3 links libsqlite3.so.0 by name: a build's directory first on LD_LIBRARY_PATH loads it.
LIBRARY_PATH_ENV = "LD_LIBRARY_PATH"


class SqliteLibrary(Protocol):
    """A SQLite build as the machine needs it, already resolved by preparation (repro/sqlite: SqliteBuild)."""

    @property
    def version(self) -> str: ...

    @property
    def assisted(self) -> bool: ...

    @property
    def lib_dir(self) -> pathlib.Path: ...

    @property
    def source_id(self) -> str: ...

    @property
    def label(self) -> str: ...


def library_environment(build: SqliteLibrary | None, lib_dir: str | None = None) -> dict[str, str]:
    """The variables a process needs to load `build` from `lib_dir` (default: where the machine's inputs
    put it); none for the image's own library."""
    return {} if build is None else {LIBRARY_PATH_ENV: lib_dir or machine_path(InputKind.SQLITE)}


def code_inputs(store_path: str | None, sqlite_dir: pathlib.Path | None) -> tuple[Input, ...]:
    """What a machine running a store needs from the lab's side: the store's code (None: the image's own)
    and a SQLite build's directory (None: the image's own library)."""
    found: list[Input] = []
    if store_path:
        found.append(Input(InputKind.STORE, pathlib.Path(store_path).resolve()))
    if sqlite_dir is not None:
        found.append(Input(InputKind.SQLITE, sqlite_dir))
    return tuple(found)


# Archives already built, by their files' (path, size, mtime): a run's trials send the same store and build,
# and reading and packing them again at every machine's start would be work on every trial's path.
_built: dict[tuple[object, ...], bytes] = {}
_BUILT_MAX = 8


def archive(inputs: tuple[Input, ...], limit: int = MAX_INPUT_BYTES) -> bytes:
    """One tar of the inputs, each under its kind's directory, root-owned and world-readable
    (b"" when there are none); InputError past ``limit`` bytes of files. A file changed since the
    last call (its size or mtime) makes a new archive."""
    if not inputs:
        return b""
    key = (limit, *((item.kind, *_entries(item)) for item in inputs))
    if key not in _built:
        if len(_built) >= _BUILT_MAX:
            _built.pop(next(iter(_built)))
        _built[key] = _pack(inputs, limit)
    return _built[key]


def _entries(item: Input) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of what an input would send; InputError if it does not exist."""
    if not item.source.exists():
        raise InputError(f"{item.kind.value}: {item.source} does not exist")
    paths = [item.source] if item.source.is_file() else _walk(item.source)
    return tuple((str(p), *((s.st_size, s.st_mtime_ns) if p.is_file() else (0, 0))) for p in paths
                 for s in (p.stat(),))


def _pack(inputs: tuple[Input, ...], limit: int) -> bytes:
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for item in inputs:
            tar.addfile(_member(item.kind.value, directory=True))
            if item.source.is_file():  # a single file goes inside its kind's directory
                entries = [(item.source, item.source.name)]
            else:
                entries = [(path, path.relative_to(item.source).as_posix()) for path in _walk(item.source)]
            for path, rel in entries:
                name = f"{item.kind.value}/{rel}"
                if path.is_dir():
                    tar.addfile(_member(name, directory=True))
                    continue
                total += path.stat().st_size  # before reading it: a stray multi-GB file is refused, not read
                if total > limit:
                    raise InputError(f"{item.kind.value}: {item.source} holds more than "
                                     f"{limit >> 20} MB; is it the right directory?")
                data = _read(path)
                tar.addfile(_member(name, directory=False, size=len(data), executable=os.access(path, os.X_OK)),
                            io.BytesIO(data))
    return buffer.getvalue()


def _walk(root: pathlib.Path) -> list[pathlib.Path]:
    """The directories and regular files under ``root``, parents first, skipping SKIPPED. Symbolic links
    are followed -- a machine gets what they point to, as the store's import would -- and a directory
    reached twice (a link loop) is listed once."""
    found: list[pathlib.Path] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = os.stat(dirpath)
        if (here.st_dev, here.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((here.st_dev, here.st_ino))
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED)
        base = pathlib.Path(dirpath)
        found += [base / d for d in dirnames]
        found += [base / f for f in sorted(filenames) if (base / f).is_file() and not f.endswith((".pyc", ".pyo"))]
    return found


def _read(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _member(name: str, *, directory: bool, size: int = 0, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory or executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.size = size
    return info
