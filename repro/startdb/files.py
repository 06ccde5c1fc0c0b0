"""Starting databases in the lab's cache: a copy of the user's files (read, never written) and the baseline of every row in them.

A starting database lives in ``<cache>/initial/<key>/`` as ``state.db`` (with ``-wal`` and
``-shm`` when the user's had them), ``baseline.json`` (per-session digests, for the probe),
``rows.json`` (every session's message ids and hashes, for the host's count of what was lost)
and ``meta.json`` (how it was made, its size and row counts). It is made in a temporary
directory and renamed into place, so a reader never sees half of one. The baseline is taken
from a scratch copy: opening a database replays its WAL, which the cached files must not see.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from typing import Mapping

from repro.caches import cache_failure, record_made
from repro.errors import ScenarioError, shown
from repro.machine.labels import RUN_ID
from repro.startdb.recover import JOURNAL, roll_back  # a hot journal is rolled back in a sandbox
from repro.verify.baseline import BASELINE_FILE, ROWS_FILE, SessionState, rows_from_json, rows_to_json, take

DB_NAMES = ("state.db", "state.db-wal", "state.db-shm")
META_FILE = "meta.json"
CHUNK = 1 << 20


@dataclass(frozen=True)
class StartFiles:
    """A prepared starting database: where it is and what it holds."""

    directory: pathlib.Path
    bytes: int  # the database files together
    sessions: int
    messages: int
    made: str  # how: "a copy, read-only", "grown by <store> from seed 7 to 300m in 52 s"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in DB_NAMES if (self.directory / n).is_file())

    def describe(self) -> str:
        return f"{_mb(self.bytes)} ({self.sessions:,} sessions, {self.messages:,} messages; {self.made})"


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"


def initial_cache(root: pathlib.Path | None = None) -> pathlib.Path:
    from repro.sqlite.build import cache_root

    return (root if root is not None else cache_root()) / "initial"


def load(directory: str | os.PathLike[str]) -> StartFiles | None:
    """A prepared starting database, or None when ``directory`` holds none (yet)."""
    path = pathlib.Path(directory)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return StartFiles(path, int(meta["bytes"]), int(meta["sessions"]), int(meta["messages"]), str(meta["made"]))


_rows_cache: dict[str, Mapping[str, SessionState]] = {}


def start_rows(directory: str | os.PathLike[str]) -> Mapping[str, SessionState]:
    """Every session's row digest and messages at the start (read once per process: the oracle's input)."""
    key = str(directory)
    if key not in _rows_cache:
        _rows_cache[key] = rows_from_json((pathlib.Path(directory) / ROWS_FILE).read_text())
    return _rows_cache[key]


def copy_from_db(db: str, cache: pathlib.Path, *, image: str | None = None) -> StartFiles:
    """The user's database (and its -wal and -shm when present) copied into the cache, keyed by their bytes.
    The user's files are only ever opened for reading (``open(path, "rb")``). A non-empty ``-journal`` beside
    it (a transaction cut off by a crash) is copied too and handed with the database to SQLite in a sandbox
    of ``image``, which rolls it back as the user's next open would (repro/startdb/recover.py): uncommitted
    pages never become the start."""
    source = pathlib.Path(db)
    doing = f"copying --from-db {shown(str(source))}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = pathlib.Path(tempfile.mkdtemp(prefix="from-db-", dir=cache))
    except OSError as exc:
        raise cache_failure(exc, cache, doing) from None
    try:
        hasher = hashlib.sha256()
        for suffix, name in zip(("", "-wal", "-shm", "-journal"), (*DB_NAMES, JOURNAL)):
            side = source.with_name(source.name + suffix)
            if not side.is_file() or (name == JOURNAL and side.stat().st_size == 0):  # an empty one is never hot
                continue
            hasher.update(name.encode())
            _copy(side, partial / name, hasher, cache, doing)
        target = cache / f"db-{hasher.hexdigest()[:24]}"
        if load(target) is not None:
            return load(target)  # type: ignore[return-value]
        made = "a copy, read-only"
        if (partial / JOURNAL).is_file():
            if image is None:
                raise ScenarioError(f"--from-db {shown(str(source))} has a rollback journal beside it (a transaction "
                                    "cut off by a crash): the lab rolls it back in a sandbox, which needs the image")
            made += "; " + roll_back(partial, image=image, source=str(source))
        return finish(partial, target, made)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _copy(side: pathlib.Path, dest: pathlib.Path, hasher: "hashlib._Hash", cache: pathlib.Path, doing: str) -> None:
    """One of the user's files into the cache: a read error is the user's file's (ScenarioError), a write error
    the cache's (CacheError, naming the cache)."""
    try:
        src = open(side, "rb")
    except OSError as exc:
        raise ScenarioError(f"--from-db: cannot read {shown(str(side))}: {exc.strerror or exc}") from None
    with src:
        try:
            with open(dest, "wb") as dst:
                while True:
                    try:
                        chunk = src.read(CHUNK)
                    except OSError as exc:
                        raise ScenarioError(f"--from-db: cannot read {shown(str(side))}: {exc.strerror or exc}") \
                            from None
                    if not chunk:
                        break
                    hasher.update(chunk)
                    dst.write(chunk)
        except OSError as exc:  # the cache's side: opening, writing or closing (flushing) the copy
            raise cache_failure(exc, cache, doing) from None


def finish(partial: pathlib.Path, target: pathlib.Path, made: str) -> StartFiles:
    """Take the baseline of the database files in ``partial`` (from a scratch copy) and move them to ``target``;
    CacheError (naming the cache) when the cache cannot take them."""
    try:
        return _finish(partial, target, made)
    except OSError as exc:
        raise cache_failure(exc, partial.parent, f"storing the starting database ({made})") from None


def _finish(partial: pathlib.Path, target: pathlib.Path, made: str) -> StartFiles:
    with tempfile.TemporaryDirectory(prefix="baseline-", dir=partial.parent) as scratch:
        for name in DB_NAMES:
            if (partial / name).is_file():
                shutil.copyfile(partial / name, pathlib.Path(scratch) / name)
        try:
            conn = sqlite3.connect(f"file:{scratch}/state.db?mode=rw", uri=True, isolation_level=None)
            try:
                baseline, rows = take(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ScenarioError(f"the starting database ({made}) is not a session store's: {exc}") from None
    (partial / BASELINE_FILE).write_text(baseline.to_json())
    (partial / ROWS_FILE).write_text(rows_to_json(rows))
    size = sum((partial / n).stat().st_size for n in DB_NAMES if (partial / n).is_file())
    meta = {"bytes": size, "sessions": sum(1 for s in rows.values() if s.row), "messages": baseline.messages,
            "made": made}
    (partial / META_FILE).write_text(json.dumps(meta, indent=2))
    for path in [partial, *partial.iterdir()]:  # mounted read-only into the verifier (uid 1000)
        path.chmod(0o755 if path.is_dir() else 0o644)
    try:
        os.rename(partial, target)
        record_made(target.parent.parent, target, RUN_ID)  # `repro clean --caches --run ID`
    except OSError:
        if load(target) is None:  # not another run that made the same one meanwhile
            raise
    found = load(target)
    assert found is not None
    return found
