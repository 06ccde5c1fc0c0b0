"""Offline file work for repair and salvage: a private copy to work on, and an atomic swap back.

Why: anything that opens a damaged database read-write can change it (WAL recovery, a
checkpoint on close, a repair step that commits and then turns out not to help). So
`doctor --fix` and `--salvage` never open the original: they copy the database with its
-wal/-journal into a private directory beside it, work there, and only a verified result
is moved over the original (os.replace, then an fsync of the directory). Like
`backup_files`, this reads the files byte for byte and is for databases no process is
using (it refuses while this process has the database open).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .backup import SIDECARS, is_open_in_process, sidecar
from .errors import DatabaseInUseError, DatabaseNotFoundError, RepairError

# The -shm is never copied: it is rebuilt from the WAL by the first connection to the copy.
_COPIED_SIDECARS = ("-wal", "-journal")

FileStamp = tuple[str, int, int] | None  # (suffix, size, mtime_ns) or None when absent


@dataclass(frozen=True)
class Fingerprint:
    """Size and mtime of a database and its sidecars (from stat only): did anyone touch them?"""

    files: tuple[FileStamp, ...]

    @classmethod
    def of(cls, db: Path) -> Fingerprint:
        stamps: list[FileStamp] = []
        for suffix in ("", *SIDECARS):
            try:
                st = os.stat(sidecar(db, suffix) if suffix else db)
            except FileNotFoundError:
                stamps.append(None)
                continue
            stamps.append((suffix, st.st_size, st.st_mtime_ns))
        return cls(tuple(stamps))


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in *directory* durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def working_copy(db: Path) -> Iterator[Path]:
    """Yield a private copy of *db* (with its -wal/-journal) in a temporary directory beside it.

    The directory is removed on exit, whatever is left in it.
    """
    if not db.is_file():
        raise DatabaseNotFoundError(f"no such file: {db}")
    if is_open_in_process(db):
        raise DatabaseInUseError(f"{db} is open in this process; close it first (this is an offline operation)")
    workdir = Path(tempfile.mkdtemp(prefix=f".{db.name}.work-", dir=db.parent))
    try:
        copy = workdir / db.name
        shutil.copyfile(db, copy)
        for suffix in _COPIED_SIDECARS:
            side = sidecar(db, suffix)
            if side.is_file():
                shutil.copyfile(side, sidecar(copy, suffix))
        yield copy
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def as_original(text: str, work: Path, db: Path) -> str:
    """A message about the working copy *work* as one about *db*: the copy's directory is removed when the
    work is done, so a path into it would send the reader to a file that no longer exists."""
    for path in sorted({str(work.resolve()), str(work.absolute()), str(work)}, key=len, reverse=True):
        text = text.replace(path, str(db))
    return text


def swap_in(work: Path, db: Path, *, expected: Fingerprint) -> None:
    """Atomically make the closed, verified database *work* the database at *db*.

    Refuses (RepairError, nothing changed) when *db* or its sidecars changed since
    *expected* was taken, or when *work* still has a -wal/-journal of its own. The old
    sidecars are removed before the rename: an old -wal next to the new file would be
    replayed into it. The caller keeps a backup of all of them.
    """
    if Fingerprint.of(db) != expected:
        raise RepairError(f"{db} changed while it was being repaired (is another process using it?); not replaced")
    leftovers = [s for s in _COPIED_SIDECARS if sidecar(work, s).exists()]
    if leftovers:
        raise RepairError(f"the repaired copy still has {', '.join(leftovers)}; not replaced")
    fsync_file(work)
    for suffix in SIDECARS:
        try:
            os.unlink(sidecar(db, suffix))
        except FileNotFoundError:
            pass
    os.replace(work, db)
    fsync_dir(db.parent)
