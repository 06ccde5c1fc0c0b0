"""The volatile disk: a page cache over backing files that a power cut can empty, seeded to replay.

The backing directory is the disk platter: whatever is in it survives the cut, nothing else
does. Writes and truncates stay in memory, page by page (pages.py), until the file is
fsynced or a background writeback step picks them (power.py); directory-entry changes
(create, rename, unlink of regular files) go through an ordered entry log (entry_log.py)
that is applied to the backing directory at once, or -- with `lazy_dirs` -- only when a
directory fsync (or writeback) commits it. `VolatileDisk` is the one facade over those
parts and the inode table (inodes.py).

After `cut()` every call raises `PowerCut` (EIO) and nothing more is written to the backing
directory. Attributes other than size (mode, owner, times) are not modelled as lossy.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from typing import Callable

from repro.lossyfs.durable import InMemory
from repro.lossyfs.entry_log import EntryLog
from repro.lossyfs.errors import AlreadyExists, IsADirectory, NotADirectory, NotEmpty, NotFound, PowerCut
from repro.lossyfs.inodes import ROOT_INO, DirNode, FileNode, Inodes, chown
from repro.lossyfs.model import CacheOptions, CutReport, EntryChange, EntryOp, NodeStat, WritebackReport
from repro.lossyfs.pages import PageCache
from repro.lossyfs.power import PowerModel

__all__ = ["ROOT_INO", "VolatileDisk"]


class VolatileDisk:
    """A disk with a volatile write cache over `backing`; `cut()` is the power failing."""

    def __init__(self, backing: str | os.PathLike[str], options: CacheOptions | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._opts = options if options is not None else CacheOptions()
        self._clock = clock
        self._inodes = Inodes(os.fspath(backing))
        self._pages = PageCache(self._opts.page_size)
        self._log = EntryLog(self._inodes, self._opts.lazy_dirs)
        self._power = PowerModel(self._opts, self._inodes, self._pages, self._log)
        self._is_cut = False

    # ----------------------------------------------------------------- namespace

    @property
    def options(self) -> CacheOptions:
        return self._opts

    @property
    def is_cut(self) -> bool:
        return self._is_cut

    def getattr(self, ino: int) -> NodeStat:
        self._alive()
        return self._inodes.stat(ino)

    def lookup(self, parent: int, name: str) -> NodeStat:
        self._alive()
        d = self._inodes.dir(parent)
        if name == ".":
            return self._inodes.stat(d.ino)
        if name == "..":
            return self._inodes.stat(d.parent)
        return self._inodes.stat(self._inodes.entry(d, name))

    def path(self, ino: int) -> str:
        """The file's current name relative to the mount (for reports and per-file policies)."""
        self._alive()
        return self._inodes.file_path(self._inodes.file(ino))

    def dir_path(self, ino: int) -> str:
        """The directory's path relative to the mount ("" for the root)."""
        self._alive()
        return self._inodes.dir_path(self._inodes.dir(ino))

    def listdir(self, ino: int) -> list[tuple[str, NodeStat]]:
        self._alive()
        d = self._inodes.dir(ino)
        return [(name, self._inodes.stat(d.entries[name])) for name in sorted(d.entries)]

    def create(self, parent: int, name: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> NodeStat:
        self._alive()
        inodes = self._inodes
        d = inodes.dir(parent)
        if name in d.entries:
            raise AlreadyExists(name)
        f = FileNode(inodes.new_ino(), d.ino, name, InMemory(), mode, uid, gid, self._clock())
        inodes.files[f.ino] = f
        d.entries[name] = f.ino
        self._touch_dir(d)
        f.pending += 1
        self._log.append(EntryChange(EntryOp.CREATE, inodes.dir_path(d), name, f.ino))
        return inodes.stat(f.ino)

    def unlink(self, parent: int, name: str) -> None:
        self._alive()
        inodes = self._inodes
        d = inodes.dir(parent)
        f = inodes.file(inodes.entry(d, name))
        del d.entries[name]
        f.nlink = 0
        self._touch_dir(d)
        self._log.append(EntryChange(EntryOp.UNLINK, inodes.dir_path(d), name, f.ino))
        inodes.maybe_drop(f)

    def rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str,
               noreplace: bool = False) -> None:
        self._alive()
        inodes = self._inodes
        src, dst = inodes.dir(old_parent), inodes.dir(new_parent)
        ino = inodes.entry(src, old_name)
        target = dst.entries.get(new_name)
        if target == ino:
            return
        if target is not None and noreplace:
            raise AlreadyExists(new_name)
        if ino in inodes.dirs:
            self._rename_dir(src, old_name, dst, new_name, target)
            return
        if target is not None and target in inodes.dirs:
            raise IsADirectory(new_name)
        f = inodes.files[ino]
        del src.entries[old_name]
        dst.entries[new_name] = ino
        f.parent, f.name = dst.ino, new_name
        f.ctime_ns = self._clock()
        self._touch_dir(src)
        self._touch_dir(dst)
        self._log.append(EntryChange(EntryOp.RENAME, inodes.dir_path(src), old_name, ino,
                                     inodes.dir_path(dst), new_name))
        if target is not None:
            replaced = inodes.files[target]
            replaced.nlink = 0
            inodes.maybe_drop(replaced)

    def mkdir(self, parent: int, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> NodeStat:
        """Directories themselves are not lazy: mkdir commits the entry log, then is durable at once."""
        self._alive()
        inodes = self._inodes
        d = inodes.dir(parent)
        if name in d.entries:
            raise AlreadyExists(name)
        self._log.commit_all()
        path = inodes.backing_path(inodes.dir_path(d), name)
        os.mkdir(path, mode & 0o7777)
        chown(path, uid, gid)
        sub = DirNode(inodes.new_ino(), d.ino, name, mode, uid, gid, self._clock())
        inodes.dirs[sub.ino] = sub
        d.entries[name] = sub.ino
        self._touch_dir(d)
        return inodes.stat(sub.ino)

    def rmdir(self, parent: int, name: str) -> None:
        self._alive()
        inodes = self._inodes
        d = inodes.dir(parent)
        sub = inodes.dir(inodes.entry(d, name))
        if sub.entries:
            raise NotEmpty(name)
        self._log.commit_all()
        os.rmdir(inodes.backing_path(inodes.dir_path(d), name))
        del d.entries[name]
        del inodes.dirs[sub.ino]
        self._touch_dir(d)

    def forget(self, ino: int) -> None:
        """The kernel holds no more references: an unlinked file may now be dropped."""
        f = self._inodes.files.get(ino)
        if f is not None and f.nlink == 0:
            f.forgotten = True
            self._inodes.maybe_drop(f)

    def set_attrs(self, ino: int, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                  atime_ns: int | None = None, mtime_ns: int | None = None) -> NodeStat:
        """Change attributes; mode and owner go straight to the backing file (not modelled as lossy)."""
        self._alive()
        node = self._inodes.node(ino)
        now = self._clock()
        if mode is not None:
            node.mode = stat_mod.S_IFMT(node.mode) | (mode & 0o7777)
        if uid is not None:
            node.uid = uid
        if gid is not None:
            node.gid = gid
        if mode is not None or uid is not None or gid is not None:
            self._inodes.sync_owner_mode(node)
        if atime_ns is not None:
            node.atime_ns = atime_ns
        if mtime_ns is not None:
            node.mtime_ns = mtime_ns
        node.ctime_ns = now
        return self._inodes.stat(ino)

    # ----------------------------------------------------------------- data

    def read(self, ino: int, offset: int, size: int) -> bytes:
        self._alive()
        return self._pages.read(self._inodes.file(ino), offset, size)

    def write(self, ino: int, offset: int, data: bytes | bytearray | memoryview) -> int:
        self._alive()
        f = self._inodes.file(ino)
        written = self._pages.write(f, offset, data)
        f.mtime_ns = f.ctime_ns = self._clock()
        return written

    def truncate(self, ino: int, size: int) -> None:
        self._alive()
        f = self._inodes.file(ino)
        self._pages.truncate(f, size)
        f.mtime_ns = f.ctime_ns = self._clock()

    def fsync(self, ino: int) -> None:
        """fsync/fdatasync: a file persists its dirty pages and size; a directory commits its entries."""
        self._alive()
        d = self._inodes.dirs.get(ino)
        if d is not None:
            self._log.commit_dir(self._inodes.dir_path(d))
        else:
            self._pages.persist_file(self._inodes.file(ino))

    def sync_all(self) -> None:
        """What a clean shutdown does: persist every dirty page and size, commit every entry."""
        self._alive()
        for ino in sorted(self._inodes.files):
            self.fsync(ino)
        self._log.commit_all()

    def writeback(self) -> WritebackReport:
        """One step of the background flusher: a seeded random subset of dirty items, in random order."""
        self._alive()
        return self._power.writeback()

    def dirty_pages(self, ino: int) -> frozenset[int]:
        """The page indexes of `ino` not yet persisted."""
        self._alive()
        return frozenset(self._inodes.file(ino).dirty)

    def pending_entries(self) -> tuple[EntryChange, ...]:
        """Directory-entry changes not yet durable (always empty without lazy_dirs)."""
        return self._log.pending()

    def cut(self) -> CutReport:
        """Power loss: atomically discard everything not persisted; from now on every call is EIO."""
        self._alive()
        report = self._power.cut()
        self._is_cut = True
        return report

    # ----------------------------------------------------------------- internals

    def _rename_dir(self, src: DirNode, old_name: str, dst: DirNode, new_name: str, target: int | None) -> None:
        inodes = self._inodes
        if target is not None:
            if target not in inodes.dirs:
                raise NotADirectory(new_name)
            if inodes.dirs[target].entries:
                raise NotEmpty(new_name)
        self._log.commit_all()
        os.rename(inodes.backing_path(inodes.dir_path(src), old_name),
                  inodes.backing_path(inodes.dir_path(dst), new_name))
        if target is not None:
            del inodes.dirs[target]
        sub = inodes.dirs[src.entries.pop(old_name)]
        dst.entries[new_name] = sub.ino
        sub.parent, sub.name = dst.ino, new_name
        self._touch_dir(src)
        self._touch_dir(dst)

    def _alive(self) -> None:
        if self._is_cut:
            raise PowerCut("the power was cut")

    def _touch_dir(self, d: DirNode) -> None:
        d.mtime_ns = d.ctime_ns = self._clock()
