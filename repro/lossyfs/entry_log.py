"""The directory-entry log: create, rename and unlink of files, durable in order when committed.

Without lazy directories every change is committed (applied to the backing directory) at
once; with them a change stays pending until a directory fsync, a writeback step or a
directory operation commits a prefix of the log. A created file's content lives in memory
until its CREATE is committed (it would be an orphan if the power went first).
"""

from __future__ import annotations

import os

from repro.lossyfs.durable import BackingFile
from repro.lossyfs.inodes import FileNode, Inodes, fchown
from repro.lossyfs.model import EntryChange, EntryOp


class EntryLog:
    """The ordered directory-entry changes not yet durable."""

    def __init__(self, inodes: Inodes, lazy: bool) -> None:
        self._inodes = inodes
        self._lazy = lazy
        self._log: list[EntryChange] = []

    def __len__(self) -> int:
        return len(self._log)

    def pending(self) -> tuple[EntryChange, ...]:
        return tuple(self._log)

    def append(self, change: EntryChange) -> None:
        self._log.append(change)
        if not self._lazy:
            self.commit(len(self._log))

    def commit_all(self) -> None:
        self.commit(len(self._log))

    def commit_dir(self, dir_path: str) -> None:
        """A directory fsync: commit the log up to the last change that touches `dir_path`."""
        last = max((i for i, c in enumerate(self._log) if c.touches(dir_path)), default=-1)
        self.commit(last + 1)

    def commit(self, count: int) -> None:
        """Apply the first `count` logged entry changes to the backing directory, in order."""
        done, self._log = self._log[:count], self._log[count:]
        for change in done:
            old = self._inodes.backing_path(change.dir_path, change.name)
            if change.op is EntryOp.CREATE:
                self._materialize(self._inodes.files[change.ino], old)
            elif change.op is EntryOp.UNLINK:
                os.unlink(old)
            else:
                os.rename(old, self._inodes.backing_path(change.new_dir_path, change.new_name))

    def drop(self) -> tuple[str, ...]:
        """The power is cut: every pending change is reverted; their descriptions."""
        reverted = tuple(c.describe() for c in self._log)
        self._log.clear()
        return reverted

    def _materialize(self, f: FileNode, path: str) -> None:
        """A created file's entry becomes durable: its content so far moves from memory to a file."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, f.mode & 0o7777)
        fchown(fd, f.uid, f.gid)
        durable = BackingFile(fd)
        if f.durable.size():
            durable.pwrite(0, f.durable.pread(0, f.durable.size()))
        f.durable.close()
        f.durable = durable
        f.pending -= 1
        self._inodes.maybe_drop(f)
