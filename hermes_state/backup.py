"""Backups that never drop SQLite's locks: the backup API while open, file copies only offline.

Why two ways: POSIX advisory locks are per process and per file, and closing *any*
descriptor of a file cancels all of the process's locks on it. A raw copy of a database
this process has open (open() + read + close()) would silently unlock the live
connection. So:

- `backup_live(conn, dest)` uses SQLite's online backup API through the open connection:
  a consistent snapshot, safe while the store runs, but it writes a fresh database (the
  -wal is folded in, forensic bytes are not kept).
- `backup_files(path)` copies the database with its -wal and -shm byte for byte (what a
  repair needs to keep the evidence). It refuses while this process has the database
  open (a registry kept by SessionDB), and it is meant for databases no other process is
  writing (repair and `doctor --fix` are offline operations).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from .errors import DatabaseInUseError, DatabaseNotFoundError

SIDECARS = ("-wal", "-shm", "-journal")

_open_paths: Counter[str] = Counter()
_open_lock = threading.Lock()


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.fspath(path))


def register_open(path: str | os.PathLike[str]) -> None:
    """Record that this process holds a connection to *path* (SessionDB calls this)."""
    with _open_lock:
        _open_paths[_key(path)] += 1


def unregister_open(path: str | os.PathLike[str]) -> None:
    with _open_lock:
        key = _key(path)
        _open_paths[key] -= 1
        if _open_paths[key] <= 0:
            del _open_paths[key]


def is_open_in_process(path: str | os.PathLike[str]) -> bool:
    with _open_lock:
        return _open_paths.get(_key(path), 0) > 0


def sidecar(path: Path, suffix: str) -> Path:
    """The sidecar file *suffix* ("-wal", "-shm", "-journal") of database *path*."""
    return path.with_name(path.name + suffix)


def backup_files(path: str | os.PathLike[str], *, now: datetime | None = None) -> tuple[Path, ...]:
    """Copy *path* and its existing sidecars to `<name>.bak-<UTC timestamp>[-wal|-shm|-journal]`.

    The copies keep SQLite's naming, so the backup opens with its own WAL. Returns the
    paths written, the database copy first.
    """
    src = Path(path)
    if not src.is_file():
        raise DatabaseNotFoundError(f"no such file: {src}")
    if is_open_in_process(src):
        raise DatabaseInUseError(
            f"{src} is open in this process; a file copy would drop SQLite's locks (close it, or use backup_live)"
        )
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    base = src.with_name(f"{src.name}.bak-{stamp}")
    n = 1
    while base.exists():
        base = src.with_name(f"{src.name}.bak-{stamp}-{n}")
        n += 1
    written = [base]
    shutil.copyfile(src, base)
    for suffix in SIDECARS:
        side = sidecar(src, suffix)
        if side.is_file():
            target = sidecar(base, suffix)
            shutil.copyfile(side, target)
            written.append(target)
    return tuple(written)


def backup_live(conn: sqlite3.Connection, dest: str | os.PathLike[str]) -> Path:
    """Snapshot the database behind *conn* into *dest* with SQLite's online backup API."""
    target = Path(dest)
    out = sqlite3.connect(str(target))
    try:
        conn.backup(out)
    finally:
        out.close()
    return target
