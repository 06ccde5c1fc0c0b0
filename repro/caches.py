"""The lab's file caches -- what an entry is in each, its size and last use -- and which entries `repro clean --caches` removes.

Every cache lives under one root (``$HERMES_LAB_CACHE``, default ``~/.cache/hermes-lab``;
repro.sqlite.build.cache_root) and has a fixed layout:

  sqlite/<version>-<hash>[-assisted]/   a SQLite build (repro/sqlite/build.py)
  sqlite/sources/better-sqlite3-<v>/    the amalgamation it was built from (repro/sqlite/sources.py)
  initial/db-<hash>/, grown-<hash>/     a starting database, copied or grown (repro/startdb/)
  stores/<commit>/                      a git ref's tree (repro/source/refs.py)
  repos/<hash>.git/                     the mirror of a store repository reached by URL
  wheels/<hash>/                        a store's wheelhouse (repro/source/wheels.py)

An entry is made in a temporary directory beside it and renamed into place; such a partial
directory is left behind only by a process that died building it. Only names of this layout
are ever removed: anything else under the root is not the lab's and is left alone, as are the
lock files of the SQLite builds and the registry's probe record. An entry's last use is its
directory's mtime, which the lab sets whenever a run uses the entry (``touch``).

A cache the lab cannot write is never a traceback: a root that is a file, or a directory it may not
write into, is the setting's fault (CacheSettingError, exit 2: a read-only cache still serves the
entries it holds); a full disk or an I/O error is the lab's (CacheError, exit 3).
"""

from __future__ import annotations

import enum
import errno
import os
import pathlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterable

from repro.errors import CacheError, LabError, ScenarioError, shown

# What makes a cache unwritable by its setting (a file in the way, no permission, a read-only mount).
_SETTING_ERRNOS = frozenset({errno.ENOTDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS})
# A partial directory younger than this may be a build in progress (growing 300 MB takes minutes).
PARTIAL_AGE_S = 24 * 3600


class EntryKind(str, enum.Enum):
    """What a cache entry is (the name `repro clean --caches` and `repro doctor` print)."""

    SQLITE_BUILD = "sqlite build"
    SQLITE_SOURCE = "sqlite source"
    START_DB = "starting database"
    STORE_TREE = "store tree"
    STORE_MIRROR = "store mirror"
    WHEELS = "wheels"
    PARTIAL = "partial"  # left by a build that did not finish


_HEX = "[0-9a-f]"
_TMP = "[a-z0-9_]{8}"  # what tempfile.mkdtemp adds to its prefix: a look-alike of the user's is not matched
# (directory under the root, entry name pattern, kind); the first that matches decides.
_LAYOUT: tuple[tuple[str, re.Pattern[str], EntryKind], ...] = (
    ("sqlite", re.compile(rf"\d+\.\d+\.\d+-{_HEX}{{12}}(-assisted)?"), EntryKind.SQLITE_BUILD),
    ("sqlite", re.compile(rf"\.build-{_TMP}"), EntryKind.PARTIAL),
    ("sqlite/sources", re.compile(r"better-sqlite3-\d+\.\d+\.\d+.*"), EntryKind.SQLITE_SOURCE),
    ("initial", re.compile(rf"(db|grown)-{_HEX}{{24}}"), EntryKind.START_DB),
    ("initial", re.compile(rf"(from-db|grown|baseline)-{_TMP}"), EntryKind.PARTIAL),
    ("stores", re.compile(rf"{_HEX}{{40}}|{_HEX}{{64}}"), EntryKind.STORE_TREE),
    ("stores", re.compile(rf"{_HEX}{{12}}-{_TMP}"), EntryKind.PARTIAL),
    ("repos", re.compile(rf"{_HEX}{{20}}\.git"), EntryKind.STORE_MIRROR),
    ("repos", re.compile(rf"mirror-{_TMP}"), EntryKind.PARTIAL),
    ("wheels", re.compile(rf"{_HEX}{{24}}"), EntryKind.WHEELS),
    ("wheels", re.compile(rf"{_HEX}{{24}}-{_TMP}"), EntryKind.PARTIAL),
)
# Directories of the layout that hold entries (or other such directories), not entries themselves.
# Which run made which entry: one file per run id, a line per entry made (relative to the root), so that
# `repro clean --caches --run ID` removes what that run added (entries stay shared by content until then).
MADE_BY = "made-by"
_CONTAINERS = frozenset(d for d, _, _ in _LAYOUT) | {"", MADE_BY}


class CacheSettingError(ScenarioError):
    """The cache root ($HERMES_LAB_CACHE) is a file, or a directory the lab may not write into (exit 2)."""


def cache_failure(exc: OSError, path: pathlib.Path | str, doing: str = "") -> LabError:
    """An OSError met while writing under the cache, as the typed error the CLI prints in one line: it names
    the cache (never the user's file being copied into it) and what to do; ``doing``: what the lab was
    writing, e.g. "copying --from-db". A cache the setting makes unwritable is CacheSettingError (exit 2);
    a full disk or an I/O error is CacheError (exit 3)."""
    why = exc.strerror or str(exc)
    where = f"the lab's cache at {shown(pathlib.Path(path), quote=False)}"
    during = f" while {doing}" if doing else ""
    if exc.errno in _SETTING_ERRNOS:
        return CacheSettingError(f"{where} cannot be written{during}: {why} "
                                 "(set HERMES_LAB_CACHE to a writable directory)")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheError(f"{where} is full ({why}){during}: free space there (`repro clean --caches` removes "
                          "the entries no run uses) or set HERMES_LAB_CACHE to a larger disk")
    return CacheError(f"cannot write {where}{during}: {why}")


def make_partial(parent: pathlib.Path, prefix: str) -> pathlib.Path:
    """A new temporary directory under ``parent`` (made if missing) to build an entry in, renamed into
    place once complete; CacheSettingError or CacheError, never an OSError."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as exc:
        raise cache_failure(exc, parent) from None


@dataclass(frozen=True)
class CacheEntry:
    """One directory of a cache: what it is, how many bytes it holds, when it was last used."""

    kind: EntryKind
    path: pathlib.Path
    bytes: int
    used: float  # seconds since the epoch


@dataclass(frozen=True)
class Kept:
    entry: CacheEntry
    reason: str


@dataclass(frozen=True)
class CachePlan:
    """What `repro clean --caches` removes, what it keeps and why, and what under the root is not the lab's."""

    remove: tuple[CacheEntry, ...]
    kept: tuple[Kept, ...]
    foreign: tuple[pathlib.Path, ...]


def touch(path: pathlib.Path | str) -> None:
    """Record a use of a cache entry (its directory's mtime): age-based eviction keeps what runs still use."""
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache: the entry just looks older than it is


def record_made(root: pathlib.Path, entry: pathlib.Path, run_id: str) -> None:
    """Note that run ``run_id`` made ``entry`` (best effort: a cache that refuses the note only loses the
    by-run cleanup of that entry, never the run)."""
    try:
        (root / MADE_BY).mkdir(parents=True, exist_ok=True)
        with open(root / MADE_BY / run_id, "a", encoding="utf-8") as ledger:
            ledger.write(entry.relative_to(root).as_posix() + "\n")
    except (OSError, ValueError):
        pass


def made_by(root: pathlib.Path, run_id: str) -> set[pathlib.Path]:
    """The entries run ``run_id`` made (as record_made noted them); empty for a run that made none."""
    try:
        lines = (root / MADE_BY / run_id).read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    return {root / line for line in lines if line and ".." not in line.split("/")}


def tree_bytes(path: pathlib.Path) -> int:
    """The bytes of every file under ``path`` (links not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _kind(parent: str, name: str) -> EntryKind | None:
    for directory, pattern, kind in _LAYOUT:
        if directory == parent and pattern.fullmatch(name):
            return kind
    return None


def _lab_file(parent: str, name: str) -> bool:
    """Files of the layout that are not entries and stay: lock files, the probe record and its temporaries."""
    if parent == MADE_BY:
        return re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) is not None
    if parent == "sqlite":
        return name.startswith(".") and name.endswith(".lock")
    return parent == "sqlite/sources" and name.startswith("probes.")


def scan(root: pathlib.Path) -> tuple[list[CacheEntry], list[pathlib.Path]]:
    """Every entry under the cache root, and every path there that is not the lab's (left alone)."""
    entries: list[CacheEntry] = []
    foreign: list[pathlib.Path] = []

    def walk(parent: str) -> None:
        base = root / parent if parent else root
        try:
            children = sorted(base.iterdir())
        except OSError:
            return
        for child in children:
            rel = f"{parent}/{child.name}" if parent else child.name
            if child.is_dir() and not child.is_symlink():
                kind = _kind(parent, child.name)
                if kind is not None:
                    entries.append(CacheEntry(kind, child, tree_bytes(child), child.stat().st_mtime))
                    continue
                if rel in _CONTAINERS:
                    walk(rel)
                    continue
            elif _lab_file(parent, child.name):
                continue
            foreign.append(child)

    walk("")
    return entries, foreign


def in_use(entries: Iterable[CacheEntry], mounted: Iterable[str]) -> set[pathlib.Path]:
    """The entries a container mounts (``mounted``: the host paths of every container's mounts)."""
    sources = [pathlib.Path(os.path.realpath(m)) for m in mounted]
    used: set[pathlib.Path] = set()
    for entry in entries:
        real = pathlib.Path(os.path.realpath(entry.path))
        if any(s == real or real in s.parents or s in real.parents for s in sources):
            used.add(entry.path)
    return used


def plan_caches(entries: Iterable[CacheEntry], *, now: float, used: set[pathlib.Path],
                older_than: float | None = None, foreign: Iterable[pathlib.Path] = ()) -> CachePlan:
    """Every entry, unless a container uses it, it was used within ``older_than`` seconds, or it is a
    partial directory young enough to be a build in progress."""
    remove: list[CacheEntry] = []
    kept: list[Kept] = []
    for entry in entries:
        age = now - entry.used
        if entry.path in used:
            kept.append(Kept(entry, "in use by a container"))
        elif entry.kind is EntryKind.PARTIAL and age < PARTIAL_AGE_S:
            kept.append(Kept(entry, "a build may be making it"))
        elif older_than is not None and age < older_than:
            kept.append(Kept(entry, "used recently"))
        else:
            remove.append(entry)
    return CachePlan(tuple(remove), tuple(kept), tuple(foreign))


def remove(entries: Iterable[CacheEntry]) -> list[tuple[CacheEntry, str]]:
    """Remove these entries; the ones that could not be removed, with why."""
    failed: list[tuple[CacheEntry, str]] = []
    for entry in entries:
        try:
            shutil.rmtree(entry.path)
        except FileNotFoundError:
            pass  # gone meanwhile
        except OSError as exc:
            failed.append((entry, exc.strerror or str(exc)))
    return failed


def sizes(entries: Iterable[CacheEntry]) -> dict[EntryKind, tuple[int, int]]:
    """Kind -> (entries, bytes), for `repro doctor` and the summary line."""
    out: dict[EntryKind, tuple[int, int]] = {}
    for entry in entries:
        count, size = out.get(entry.kind, (0, 0))
        out[entry.kind] = (count + 1, size + entry.bytes)
    return out


def human(size: int) -> str:
    """Bytes as the listing prints them: 2.1 GB, 43.0 MB, 12 KB."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{-(-size // 1024)} KB"
