"""The starting database onto a trial's disk, and the disk filled to a share: one tar stream uploaded through the engine.

The files travel from the lab's cache (never from the user's own path: that was copied, read-only,
once) into the disk holder's volume mount with the engine's archive upload. The engine writes
them, so their tmpfs pages are charged to the engine's memory cgroup, not to the machine's
(measured: docs/FACTS.md, section 5) -- like a real volume, they take no memory from the
machine. The filler file (``--disk-fill-to``) travels in the same stream as zeros.
"""

from __future__ import annotations

import tarfile
import time
from dataclasses import dataclass
from typing import Iterator

from repro.machine.disk import DATA_DIR
from repro.machine.container import ConstrainedHost
from repro.machine.inputs import INPUTS_DIR, Input, InputKind, archive
from repro.scenario import StartSpec
from repro.startdb.files import StartFiles, load
from repro.verify.baseline import BASELINE_FILE

FILLER = "lab-filler"
BLOCK = 4096
CHUNK = 1 << 20
UID = GID = 1000


@dataclass(frozen=True)
class Restored:
    """What the disk held when the workload started, and how long the upload took."""

    database: int  # bytes of the starting database files
    filler: int
    seconds: float
    used: int      # bytes in use on the disk, as its filesystem counts them
    size: int

    def describe(self, files: StartFiles | None) -> str:
        parts = []
        if files is not None:
            parts.append(files.describe())
        parts.append(f"restored in {self.seconds:.2f} s")
        parts.append(f"disk {100 * self.used / max(1, self.size):.0f}% full at the start "
                     f"({self.used / (1 << 20):.1f} of {self.size / (1 << 20):.0f} MB)")
        return "; ".join(parts)


def filler_size(start: StartSpec, disk: int, database: int) -> int:
    """Bytes of filler that bring the disk to ``start.fill_pct`` with the database on it (0 when none asked)."""
    if start.fill_pct is None:
        return 0
    rounded = -(-database // BLOCK) * BLOCK
    return max(0, (disk * start.fill_pct // 100 - rounded) // BLOCK * BLOCK)


def _entry(name: str, size: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.uname, info.gname = UID, GID, "hermes", "hermes"
    info.mtime = int(time.time())
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _stream(files: StartFiles | None, prefix: str, filler: int) -> Iterator[bytes]:
    """A tar of the database files under ``prefix`` (and their directory) and the filler at the disk's root."""
    if prefix:
        yield _entry(prefix.rstrip("/"), 0, directory=True)
    for name in files.names if files is not None else ():
        path = files.directory / name  # type: ignore[union-attr]
        size = path.stat().st_size
        yield _entry(prefix + name, size)
        with open(path, "rb") as src:
            while chunk := src.read(CHUNK):
                yield chunk
        if size % 512:
            yield b"\0" * (512 - size % 512)
    if filler:
        yield _entry(FILLER, filler)
        zeros = bytes(CHUNK)
        left = filler
        while left:
            step = min(left, CHUNK)
            yield zeros if step == CHUNK else bytes(step)
            left -= step
    yield b"\0" * 1024


def restore(machine: ConstrainedHost, start: StartSpec) -> Restored:
    """Upload the starting database (into the directory the workload opens it from: the lossy mount's
    backing on a power-loss machine) and the filler, before the workload starts; and the database's
    baseline into the machine's inputs, for the probe (repro/machine/restart.py)."""
    assert machine.disk is not None
    files = load(start.files) if start.files else None
    if files is not None:
        machine.disk.put(INPUTS_DIR, archive((Input(InputKind.START, files.directory / BASELINE_FILE),)))
    database = files.bytes if files is not None else 0
    filler = filler_size(start, machine.disk.size, database)
    prefix = machine.disk_db_dir[len(DATA_DIR):].strip("/")
    started = time.monotonic()
    machine.disk.put(DATA_DIR, _stream(files, f"{prefix}/" if prefix else "", filler))
    seconds = time.monotonic() - started
    used, size = machine.disk.usage()
    return Restored(database=database, filler=filler, seconds=round(seconds, 3), used=used, size=size)


def tar_bytes(files: StartFiles | None, filler: int = 0) -> bytes:
    """The whole stream at once (tests)."""
    return b"".join(_stream(files, "", filler))

