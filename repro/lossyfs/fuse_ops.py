"""The thin pyfuse3 adapter: FUSE requests in, VolatileDisk calls out, typed errors to errnos.

Deliberate omissions: no lock handlers (the kernel then keeps POSIX byte-range locks itself,
which is right on one machine), no xattrs or links.

The kernel's writeback cache is on and no file is direct_io: write() lands in the kernel's page
cache of this mount and reaches the daemon as page-sized-or-larger WRITE requests only when the
kernel writes back -- at fsync/fdatasync (the kernel writes the file's dirty pages back, then
sends FSYNC), on close (FLUSH), on its own writeback, or when the daemon drains it (syncfs, see
daemon.py) before each seeded background writeback step. A commit thus costs a few requests
instead of one per write() (SQLite writes each WAL frame as two). This changes nothing a power
cut can observe: the kernel's dirty pages of this mount are as volatile as the daemon's (at the
cut the daemon stops answering, so none of them can reach the backing directory), fsync still
persists exactly the file's dirty pages (all of them now in the daemon when FSYNC arrives), and
the drain keeps every written page a candidate for the seeded writeback. The kernel owns i_size
and mtime of regular files in this mode (it sends SETATTR for truncates and mtime updates), which
is consistent because every change goes through this one kernel.

With a `TraceWriter` every change that reaches the disk model is also recorded (trace.py),
after the disk accepted it: the cost when not recording is one `is None` test per request.

After the power cut no request is ever answered: the machine is off, so nothing the application
does after that instant can complete -- in particular it cannot acknowledge a commit. Answering
with EIO instead would let the application keep running and observe a "success" that a real
power loss never shows: SQLite treats a failure to open the directory it is about to fsync after
unlinking a rollback journal as "no directory fsync possible" and reports the COMMIT as done, so
a commit whose journal unlink the cut reverted would be acknowledged after the cut and then
rolled back by the hot journal on restart. The machine is killed after the cut anyway; its
processes wait on these requests until then. With the writeback cache a write() needs no request
of its own, so the cut also invalidates the kernel's cached attributes of every inode
(`invalidate_attrs`): the kernel then asks GETATTR before the next write() to any file, and that
request is never answered either.
"""

from __future__ import annotations

import errno
import functools
import os
import stat as stat_mod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pyfuse3
import trio

from repro.lossyfs.disk import ROOT_INO, VolatileDisk
from repro.lossyfs.errors import LossyFsError
from repro.lossyfs.model import NodeStat
from repro.lossyfs.trace import TraceWriter

# Every change goes through this kernel, so its cached attributes and entries never go stale
# (after the cut no call is answered at all); long timeouts save a getattr/lookup per operation.
_TIMEOUT_S = 300.0


@contextmanager
def _errnos() -> Iterator[None]:
    try:
        yield
    except LossyFsError as exc:
        raise pyfuse3.FUSEError(exc.errno) from exc
    except OSError as exc:
        raise pyfuse3.FUSEError(exc.errno or errno.EIO) from exc


_R = TypeVar("_R")


def _powered(handler: Callable[..., Awaitable[_R]]) -> Callable[..., Awaitable[_R]]:
    """Run the handler while the power is on; after the cut, never answer (the machine is off).

    Handlers do not await, so the cut falls between requests: a request either completed (and
    was answered) before the cut, or arrives after it and hangs until the machine is killed.
    """

    @functools.wraps(handler)
    async def wrapper(self: "LossyOperations", *args: Any) -> _R:
        if self._disk.is_cut:
            await trio.sleep_forever()
        return await handler(self, *args)

    return wrapper


def _attrs(st: NodeStat, blksize: int) -> pyfuse3.EntryAttributes:
    attr = pyfuse3.EntryAttributes()
    attr.st_ino = st.ino
    attr.generation = 0
    attr.entry_timeout = _TIMEOUT_S
    attr.attr_timeout = _TIMEOUT_S
    attr.st_mode = st.mode
    attr.st_nlink = st.nlink
    attr.st_uid = st.uid
    attr.st_gid = st.gid
    attr.st_rdev = 0
    attr.st_size = st.size
    attr.st_blksize = blksize
    attr.st_blocks = -(-st.size // 512)
    attr.st_atime_ns = st.atime_ns
    attr.st_mtime_ns = st.mtime_ns
    attr.st_ctime_ns = st.ctime_ns
    return attr


class LossyOperations(pyfuse3.Operations):
    """FUSE request handlers; each runs to completion without awaiting, so a cut falls between requests."""

    enable_writeback_cache = True

    def __init__(self, disk: VolatileDisk, backing: str, trace: TraceWriter | None = None) -> None:
        super().__init__()
        self._disk = disk
        self._backing = backing
        self._trace = trace
        self._blksize = disk.options.page_size
        self._lookups: dict[int, int] = {}

    def invalidate_attrs(self) -> int:
        """Drop the kernel's cached attributes of every inode it knows; returns how many it held.

        Called right after the cut: the next write() to any file then needs a GETATTR, which is
        never answered. Does not touch cached pages, so it never waits for writeback.
        """
        held = 0
        for ino in [ROOT_INO, *self._lookups]:
            try:
                pyfuse3.invalidate_inode(ino, attr_only=True)
                held += 1
            except OSError:  # ENOENT: the kernel has already dropped it
                pass
        return held

    def _child(self, parent: int, name: bytes) -> str:
        """The mount-relative path of `name` in directory `parent` (for the trace)."""
        base = self._disk.dir_path(parent)
        return f"{base}/{os.fsdecode(name)}" if base else os.fsdecode(name)

    def _entry(self, st: NodeStat) -> pyfuse3.EntryAttributes:
        self._lookups[st.ino] = self._lookups.get(st.ino, 0) + 1
        return _attrs(st, self._blksize)

    # --------------------------------------------------------------- namespace

    @_powered
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        with _errnos():
            return self._entry(self._disk.lookup(parent_inode, os.fsdecode(name)))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            left = self._lookups.get(ino, 0) - n
            if left > 0:
                self._lookups[ino] = left
                continue
            self._lookups.pop(ino, None)
            self._disk.forget(ino)

    @_powered
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        with _errnos():
            return _attrs(self._disk.getattr(inode), self._blksize)

    @_powered
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        with _errnos():
            if fields.update_size:
                self._disk.truncate(inode, attr.st_size)
                if self._trace is not None:
                    self._trace.truncate(inode, self._disk.path(inode), attr.st_size)
            st = self._disk.set_attrs(
                inode,
                mode=attr.st_mode if fields.update_mode else None,
                uid=attr.st_uid if fields.update_uid else None,
                gid=attr.st_gid if fields.update_gid else None,
                atime_ns=attr.st_atime_ns if fields.update_atime else None,
                mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            )
            return _attrs(st, self._blksize)

    @_powered
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if not stat_mod.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        with _errnos():
            st = self._disk.create(parent_inode, os.fsdecode(name), mode, ctx.uid, ctx.gid)
            if self._trace is not None:
                self._trace.create(st.ino, self._child(parent_inode, name))
        return self._entry(st)

    @_powered
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        with _errnos():
            st = self._disk.mkdir(parent_inode, os.fsdecode(name), mode, ctx.uid, ctx.gid)
            if self._trace is not None:
                self._trace.mkdir(self._child(parent_inode, name))
        return self._entry(st)

    @_powered
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        with _errnos():
            ino = self._disk.lookup(parent_inode, os.fsdecode(name)).ino if self._trace is not None else 0
            self._disk.unlink(parent_inode, os.fsdecode(name))
            if self._trace is not None:
                self._trace.unlink(ino, self._child(parent_inode, name))

    @_powered
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        with _errnos():
            self._disk.rmdir(parent_inode, os.fsdecode(name))
            if self._trace is not None:
                self._trace.rmdir(self._child(parent_inode, name))

    @_powered
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        with _errnos():
            ino = self._disk.lookup(parent_inode_old, os.fsdecode(name_old)).ino if self._trace is not None else 0
            self._disk.rename(parent_inode_old, os.fsdecode(name_old), parent_inode_new, os.fsdecode(name_new),
                              noreplace=bool(flags & pyfuse3.RENAME_NOREPLACE))
            if self._trace is not None:
                self._trace.rename(ino, self._child(parent_inode_old, name_old),
                                   self._child(parent_inode_new, name_new))

    @_powered
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        with _errnos():
            self._disk.getattr(inode)  # ENOENT for a stale inode
        return inode

    @_powered
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        with _errnos():
            entries = self._disk.listdir(fh)
        for index in range(start_id, len(entries)):
            name, st = entries[index]
            if not pyfuse3.readdir_reply(token, os.fsencode(name), _attrs(st, self._blksize), index + 1):
                return
            self._lookups[st.ino] = self._lookups.get(st.ino, 0) + 1

    @_powered
    async def releasedir(self, fh: int) -> None:
        return None

    @_powered
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        with _errnos():
            self._disk.fsync(fh)
            if self._trace is not None:
                self._trace.fsyncdir(self._disk.dir_path(fh))

    @_powered
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        with _errnos():
            sv = os.statvfs(self._backing)
        data = pyfuse3.StatvfsData()
        for field in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                      "f_favail", "f_namemax"):
            setattr(data, field, getattr(sv, field))
        return data

    # --------------------------------------------------------------- data

    def _file_info(self, ino: int) -> pyfuse3.FileInfo:
        # keep_cache: opening must not drop the page cache (it may hold dirty pages, and the pages
        # behind another process's -shm mapping); every change goes through this kernel anyway.
        return pyfuse3.FileInfo(fh=ino, keep_cache=True, direct_io=False)

    @_powered
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        with _errnos():
            self._disk.path(inode)  # ENOENT / EISDIR for an inode that is not a file
        return self._file_info(inode)

    @_powered
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        with _errnos():
            st = self._disk.create(parent_inode, os.fsdecode(name), mode, ctx.uid, ctx.gid)
            if self._trace is not None:
                self._trace.create(st.ino, self._child(parent_inode, name))
        return self._file_info(st.ino), self._entry(st)

    @_powered
    async def read(self, fh: int, off: int, size: int) -> bytes:
        with _errnos():
            return self._disk.read(fh, off, size)

    @_powered
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        with _errnos():
            written = self._disk.write(fh, off, buf)
            if self._trace is not None:
                self._trace.write(fh, self._disk.path(fh), off, bytes(buf))
        return written

    @_powered
    async def flush(self, fh: int) -> None:
        return None

    @_powered
    async def release(self, fh: int) -> None:
        return None

    @_powered
    async def fsync(self, fh: int, datasync: bool) -> None:
        with _errnos():
            self._disk.fsync(fh)
            if self._trace is not None:
                self._trace.fsync(fh, self._disk.path(fh), datasync)
