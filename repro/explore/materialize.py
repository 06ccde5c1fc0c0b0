"""Crash states as directories, built incrementally: the durable files move forward with the trace.

A ``Materializer`` keeps, in its work directory, one file per inode holding what is durable at
its current position (the initial content plus every synced write and truncate). Moving to a
later crash point applies only the operations synced in between (pwrite/ftruncate of those
ranges); it never replays the trace from the start unless asked for an earlier point. A state is
then that durable content under the state's names, plus the state's own un-synced operations:
each file is cloned from the work directory with ``copy_file_range`` (a kernel-side copy; a
reflink on filesystems that share extents) and patched with the few operations the state adds.
The probe may rewrite what it opens (WAL replay, hot-journal rollback, the store's repair), so
every state gets a fresh copy and the work directory is never handed out.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from dataclasses import dataclass

from repro.explore.models import SECTOR_SIZE
from repro.explore.space import StateSpec
from repro.explore.timeline import Timeline, apply_entry
from repro.lossyfs.trace import Create, Mkdir, Rename, Rmdir, Truncate, Unlink, Write

# SQLite's shared-memory index: the first connection after a crash truncates it (os_unix.c,
# unixLockSharedMemory), so its content cannot change what any check sees.
VOLATILE_SUFFIXES = ("-shm",)


@dataclass
class Stats:
    """Bytes moved to build states: forward steps of the durable files, clones, patches."""

    advanced_bytes: int = 0
    cloned_bytes: int = 0
    patched_bytes: int = 0
    rewinds: int = 0
    states: int = 0


def _clone(src: pathlib.Path, dst: pathlib.Path) -> int:
    size = src.stat().st_size
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        done = 0
        try:
            while done < size:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), size - done)
                if n == 0:
                    break
                done += n
        except OSError:  # EXDEV, ENOSYS: copy in user space
            fin.seek(0)
            fout.seek(0)
            fout.truncate()
            shutil.copyfileobj(fin, fout, 1 << 20)
    return size


def _apply(fd: int, op: Write | Truncate, kept_sectors: int | None = None) -> int:
    """Apply one data operation to an open file; a torn write keeps its first ``kept_sectors``."""
    if isinstance(op, Truncate):
        os.ftruncate(fd, op.size)
        return 0
    data = op.data
    if kept_sectors is not None:
        end = (op.offset // SECTOR_SIZE + kept_sectors) * SECTOR_SIZE
        data = data[: max(0, end - op.offset)]
    return os.pwrite(fd, data, op.offset)


class Materializer:
    """Builds the states of one timeline in directories, moving forward through the trace."""

    def __init__(self, timeline: Timeline, work_dir: str | os.PathLike[str]) -> None:
        self.timeline = timeline
        self.work = pathlib.Path(work_dir) / "durable"
        self.stats = Stats()
        self._reset()

    def _reset(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.pos = 0
        self.names: dict[str, int] = {}
        self.dirs: set[str] = set(self.timeline.initial.dirs)
        self.durable: dict[int, int] = {}  # ino -> how many of its data operations are durable
        for f in self.timeline.initial.files:
            (self.work / str(f.ino)).write_bytes(f.data)
            self.names[f.path] = f.ino
            self.durable[f.ino] = 0
            self.stats.advanced_bytes += len(f.data)

    def advance(self, pos: int) -> None:
        """Make the work directory hold what is durable after ops[:pos] (back to the start if earlier)."""
        if pos < self.pos:
            self.stats.rewinds += 1
            self._reset()
        ops = self.timeline.ops
        for i in range(self.pos, pos):
            op = ops[i]
            if isinstance(op, Create):
                (self.work / str(op.ino)).write_bytes(b"")
                self.durable[op.ino] = 0
            if isinstance(op, (Create, Rename, Unlink)):
                apply_entry(self.names, op)
            elif isinstance(op, Mkdir):
                self.dirs.add(op.path)
            elif isinstance(op, Rmdir):
                self.dirs.discard(op.path)
            for synced in self.timeline.durable_at.get(i, ()):
                data_op = self.timeline.data_op(synced)
                fd = os.open(self.work / str(data_op.ino), os.O_WRONLY)
                try:
                    self.stats.advanced_bytes += _apply(fd, data_op)
                finally:
                    os.close(fd)
                self.durable[data_op.ino] += 1
        self.pos = pos

    def state_names(self, spec: StateSpec) -> dict[str, int]:
        """The files of the state (path -> inode): every entry change so far, or under lazy
        directories only the first ``spec.entries`` of the entry log."""
        if spec.entries is None:
            return dict(self.names)
        names = {f.path: f.ino for f in self.timeline.initial.files}
        ops = self.timeline.ops
        for pos in self.timeline.entry_log[: spec.entries]:
            op = ops[pos]
            assert isinstance(op, (Create, Rename, Unlink))
            apply_entry(names, op)
        return names

    def content_key(self, spec: StateSpec) -> tuple[object, ...]:
        """Equal for two states whose files are equal byte for byte (volatile -shm content aside)."""
        self.advance(spec.point.pos)
        overlay: dict[int, list[int]] = {}
        for pos in spec.persisted:
            overlay.setdefault(self.timeline.data_op(pos).ino, []).append(pos)
        torn = spec.torn
        key: list[object] = []
        for path, ino in sorted(self.state_names(spec).items()):
            if path.endswith(VOLATILE_SUFFIXES):
                key.append((path,))
                continue
            mine = torn if torn is not None and self.timeline.data_op(torn.pos).ino == ino else None
            key.append((path, ino, self.durable.get(ino, 0), tuple(overlay.get(ino, ())), mine))
        return tuple(key)

    def write(self, spec: StateSpec, dest: str | os.PathLike[str]) -> list[str]:
        """Write the state's files under ``dest`` (created; must not hold other files). Returns the paths."""
        self.advance(spec.point.pos)
        root = pathlib.Path(dest)
        root.mkdir(parents=True, exist_ok=True)
        for d in sorted(self.dirs):
            (root / d).mkdir(parents=True, exist_ok=True)
        overlay: dict[int, list[int]] = {}
        for pos in spec.persisted:
            overlay.setdefault(self.timeline.data_op(pos).ino, []).append(pos)
        torn = spec.torn
        written: list[str] = []
        for path, ino in sorted(self.state_names(spec).items()):
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            self.stats.cloned_bytes += _clone(self.work / str(ino), target)
            extra = overlay.get(ino, [])
            tear = torn if torn is not None and self.timeline.data_op(torn.pos).ino == ino else None
            if extra or tear is not None:
                fd = os.open(target, os.O_WRONLY)
                try:
                    for pos in extra:
                        self.stats.patched_bytes += _apply(fd, self.timeline.data_op(pos))
                    if tear is not None:
                        self.stats.patched_bytes += _apply(fd, self.timeline.data_op(tear.pos), tear.kept)
                finally:
                    os.close(fd)
            written.append(path)
        self.stats.states += 1
        return written
