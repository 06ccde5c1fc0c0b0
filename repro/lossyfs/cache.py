"""The volatile disk: a page cache over backing files that a power cut can empty, seeded to replay.

The backing directory is the disk platter: whatever is in it survives the cut, nothing else
does. Writes and truncates stay in memory, page by page, until the file is fsynced or a
background writeback step picks them; directory-entry changes (create, rename, unlink of
regular files) go through an ordered entry log that is applied to the backing directory at
once, or -- with `lazy_dirs` -- only when a directory fsync (or writeback) commits it.

After `cut()` every call raises `PowerCut` (EIO) and nothing more is written to the backing
directory. Attributes other than size (mode, owner, times) are not modelled as lossy.
"""

from __future__ import annotations

import os
import random
import stat as stat_mod
import time
from typing import Callable

from repro.lossyfs.errors import (
    AlreadyExists,
    IsADirectory,
    NotADirectory,
    NotEmpty,
    NotFound,
    PowerCut,
    Unsupported,
)
from repro.lossyfs.model import (
    SECTOR_SIZE,
    CacheOptions,
    CutReport,
    EntryChange,
    EntryOp,
    Kind,
    NodeStat,
    TornPage,
    WritebackReport,
)
from repro.lossyfs.store import FileStore, MemStore, Store

ROOT_INO = 1
_DIR_SIZE = 4096
_SIZE_ITEM = -1  # a writeback item that persists a file's size rather than one of its pages
_MAX_RUN = 512  # pages per vectored write (below IOV_MAX)


class _Dir:
    __slots__ = ("ino", "parent", "name", "entries", "mode", "uid", "gid", "atime_ns", "mtime_ns", "ctime_ns")

    def __init__(self, ino: int, parent: int, name: str, mode: int, uid: int, gid: int, now: int) -> None:
        self.ino = ino
        self.parent = parent
        self.name = name
        self.entries: dict[str, int] = {}
        self.mode = stat_mod.S_IFDIR | (mode & 0o7777)
        self.uid = uid
        self.gid = gid
        self.atime_ns = self.mtime_ns = self.ctime_ns = now


class _File:
    __slots__ = (
        "ino", "parent", "name", "size", "trunc_to", "dirty", "store", "nlink", "pending", "forgotten",
        "mode", "uid", "gid", "atime_ns", "mtime_ns", "ctime_ns",
    )  # fmt: skip

    def __init__(self, ino: int, parent: int, name: str, store: Store, mode: int, uid: int, gid: int, now: int) -> None:
        self.ino = ino
        self.parent = parent
        self.name = name
        self.store = store
        self.size = store.size()
        # Persisted bytes at or beyond trunc_to are dead: a shrinking truncate not yet persisted.
        self.trunc_to: int | None = None
        # page index -> full page (a bytearray, or a read-only view of a written buffer until it is
        # modified in part); bytes past `size` are zero
        self.dirty: dict[int, bytearray | memoryview] = {}
        self.nlink = 1
        self.pending = 0  # CREATE changes in the entry log that still need this inode's content
        self.forgotten = False
        self.mode = stat_mod.S_IFREG | (mode & 0o7777)
        self.uid = uid
        self.gid = gid
        self.atime_ns = self.mtime_ns = self.ctime_ns = now


class VolatileDisk:
    """A disk with a volatile write cache over `backing`; `cut()` is the power failing."""

    def __init__(self, backing: str | os.PathLike[str], options: CacheOptions | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._backing = os.fspath(backing)
        self._opts = options if options is not None else CacheOptions()
        self._ps = self._opts.page_size
        self._rng = random.Random(self._opts.seed)
        self._clock = clock
        self._next_ino = ROOT_INO
        self._dirs: dict[int, _Dir] = {}
        self._files: dict[int, _File] = {}
        self._log: list[EntryChange] = []
        self._is_cut = False
        self._load()

    # ----------------------------------------------------------------- namespace

    @property
    def options(self) -> CacheOptions:
        return self._opts

    @property
    def is_cut(self) -> bool:
        return self._is_cut

    def getattr(self, ino: int) -> NodeStat:
        self._alive()
        return self._stat(ino)

    def lookup(self, parent: int, name: str) -> NodeStat:
        self._alive()
        d = self._dir(parent)
        if name == ".":
            return self._stat(d.ino)
        if name == "..":
            return self._stat(d.parent)
        ino = d.entries.get(name)
        if ino is None:
            raise NotFound(name)
        return self._stat(ino)

    def path(self, ino: int) -> str:
        """The file's current name relative to the mount (for reports and per-file policies)."""
        self._alive()
        return self._file_path(self._file(ino))

    def listdir(self, ino: int) -> list[tuple[str, NodeStat]]:
        self._alive()
        d = self._dir(ino)
        return [(name, self._stat(d.entries[name])) for name in sorted(d.entries)]

    def create(self, parent: int, name: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> NodeStat:
        self._alive()
        d = self._dir(parent)
        if name in d.entries:
            raise AlreadyExists(name)
        f = _File(self._new_ino(), d.ino, name, MemStore(), mode, uid, gid, self._clock())
        self._files[f.ino] = f
        d.entries[name] = f.ino
        self._touch_dir(d)
        f.pending += 1
        self._log_change(EntryChange(EntryOp.CREATE, self._dir_path(d), name, f.ino))
        return self._stat(f.ino)

    def unlink(self, parent: int, name: str) -> None:
        self._alive()
        d = self._dir(parent)
        f = self._file(self._entry(d, name))
        del d.entries[name]
        f.nlink = 0
        self._touch_dir(d)
        self._log_change(EntryChange(EntryOp.UNLINK, self._dir_path(d), name, f.ino))
        self._maybe_drop(f)

    def rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str,
               noreplace: bool = False) -> None:
        self._alive()
        src, dst = self._dir(old_parent), self._dir(new_parent)
        ino = self._entry(src, old_name)
        target = dst.entries.get(new_name)
        if target == ino:
            return
        if target is not None and noreplace:
            raise AlreadyExists(new_name)
        if ino in self._dirs:
            self._rename_dir(src, old_name, dst, new_name, target)
            return
        if target is not None and target in self._dirs:
            raise IsADirectory(new_name)
        f = self._files[ino]
        del src.entries[old_name]
        dst.entries[new_name] = ino
        f.parent, f.name = dst.ino, new_name
        f.ctime_ns = self._clock()
        self._touch_dir(src)
        self._touch_dir(dst)
        self._log_change(EntryChange(EntryOp.RENAME, self._dir_path(src), old_name, ino,
                                     self._dir_path(dst), new_name))
        if target is not None:
            replaced = self._files[target]
            replaced.nlink = 0
            self._maybe_drop(replaced)

    def mkdir(self, parent: int, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> NodeStat:
        """Directories themselves are not lazy: mkdir commits the entry log, then is durable at once."""
        self._alive()
        d = self._dir(parent)
        if name in d.entries:
            raise AlreadyExists(name)
        self._commit(len(self._log))
        path = self._path(self._dir_path(d), name)
        os.mkdir(path, mode & 0o7777)
        _chown(path, uid, gid)
        sub = _Dir(self._new_ino(), d.ino, name, mode, uid, gid, self._clock())
        self._dirs[sub.ino] = sub
        d.entries[name] = sub.ino
        self._touch_dir(d)
        return self._stat(sub.ino)

    def rmdir(self, parent: int, name: str) -> None:
        self._alive()
        d = self._dir(parent)
        sub = self._dir(self._entry(d, name))
        if sub.entries:
            raise NotEmpty(name)
        self._commit(len(self._log))
        os.rmdir(self._path(self._dir_path(d), name))
        del d.entries[name]
        del self._dirs[sub.ino]
        self._touch_dir(d)

    def forget(self, ino: int) -> None:
        """The kernel holds no more references: an unlinked file may now be dropped."""
        f = self._files.get(ino)
        if f is not None and f.nlink == 0:
            f.forgotten = True
            self._maybe_drop(f)

    def set_attrs(self, ino: int, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                  atime_ns: int | None = None, mtime_ns: int | None = None) -> NodeStat:
        """Change attributes; mode and owner go straight to the backing file (not modelled as lossy)."""
        self._alive()
        node = self._node(ino)
        now = self._clock()
        if mode is not None:
            node.mode = stat_mod.S_IFMT(node.mode) | (mode & 0o7777)
        if uid is not None:
            node.uid = uid
        if gid is not None:
            node.gid = gid
        if mode is not None or uid is not None or gid is not None:
            self._sync_owner_mode(node)
        if atime_ns is not None:
            node.atime_ns = atime_ns
        if mtime_ns is not None:
            node.mtime_ns = mtime_ns
        node.ctime_ns = now
        return self._stat(ino)

    # ----------------------------------------------------------------- data

    def read(self, ino: int, offset: int, size: int) -> bytes:
        self._alive()
        f = self._file(ino)
        end = min(offset + size, f.size)
        if offset >= end:
            return b""
        buf = bytearray(end - offset)
        clip = self._persisted_clip(f)
        if offset < clip:
            data = f.store.pread(offset, min(end, clip) - offset)
            buf[: len(data)] = data
        if f.dirty:
            ps = self._ps
            for p in range(offset // ps, (end - 1) // ps + 1):
                page = f.dirty.get(p)
                if page is not None:
                    start, stop = max(offset, p * ps), min(end, (p + 1) * ps)
                    buf[start - offset : stop - offset] = page[start - p * ps : stop - p * ps]
        return bytes(buf)

    def write(self, ino: int, offset: int, data: bytes | bytearray | memoryview) -> int:
        self._alive()
        f = self._file(ino)
        ps = self._ps
        view = memoryview(data)
        # Whole pages of an immutable buffer are kept as views of it (no copy); any other buffer
        # may change after the call, so its pages are copied.
        shared = type(data) is bytes
        total = len(view)
        end = offset + total
        dirty = f.dirty
        p, in_page = divmod(offset, ps)
        done = 0
        while done < total:
            n = min(ps - in_page, total - done)
            if n == ps:  # a whole page: no need to read what it replaces
                dirty[p] = view[done : done + ps] if shared else bytearray(view[done : done + ps])
            else:
                page = dirty.get(p)
                if page is None:
                    page = dirty[p] = self._base_page(f, p)
                elif type(page) is not bytearray:
                    page = dirty[p] = bytearray(page)
                page[in_page : in_page + n] = view[done : done + n]
            done += n
            p += 1
            in_page = 0
        if end > f.size:
            f.size = end
        f.mtime_ns = f.ctime_ns = self._clock()
        return total

    def truncate(self, ino: int, size: int) -> None:
        self._alive()
        f = self._file(ino)
        if size < f.size:
            ps = self._ps
            for p in [p for p in f.dirty if p * ps >= size]:
                del f.dirty[p]
            last, in_page = divmod(size, ps)
            page = f.dirty.get(last)
            if in_page and page is not None:
                if type(page) is not bytearray:
                    page = f.dirty[last] = bytearray(page)
                page[in_page:] = bytes(ps - in_page)
            f.trunc_to = size if f.trunc_to is None else min(f.trunc_to, size)
        f.size = size
        f.mtime_ns = f.ctime_ns = self._clock()

    def fsync(self, ino: int) -> None:
        """fsync/fdatasync: a file persists its dirty pages and size; a directory commits its entries."""
        self._alive()
        if ino in self._dirs:
            path = self._dir_path(self._dirs[ino])
            last = max((i for i, c in enumerate(self._log) if c.touches(path)), default=-1)
            self._commit(last + 1)
            return
        f = self._file(ino)
        self._apply_trunc(f)
        self._write_pages(f, sorted(f.dirty))
        f.dirty.clear()
        if f.store.size() != f.size:
            f.store.truncate(f.size)

    def sync_all(self) -> None:
        """What a clean shutdown does: persist every dirty page and size, commit every entry."""
        self._alive()
        for ino in sorted(self._files):
            self.fsync(ino)
        self._commit(len(self._log))

    def writeback(self) -> WritebackReport:
        """One step of the background flusher: a seeded random subset of dirty items, in random order."""
        self._alive()
        rng, rate = self._rng, self._opts.writeback_rate
        items: list[tuple[_File, int]] = []
        for ino in sorted(self._files):
            f = self._files[ino]
            items.extend((f, p) for p in sorted(f.dirty) if rng.random() < rate)
            if self._size_dirty(f) and rng.random() < rate:
                items.append((f, _SIZE_ITEM))
        rng.shuffle(items)
        pages = sizes = 0
        for f, p in items:
            if p == _SIZE_ITEM:
                self._persist_size(f)
                sizes += 1
            else:
                self._persist_page(f, p)
                pages += 1
        entries = 0
        if self._log and rng.random() < rate:
            entries = rng.randint(1, len(self._log))
            self._commit(entries)
        return WritebackReport(pages_written=pages, sizes_written=sizes, entries_committed=entries)

    def dirty_pages(self, ino: int) -> frozenset[int]:
        """The page indexes of `ino` not yet persisted."""
        self._alive()
        return frozenset(self._file(ino).dirty)

    def pending_entries(self) -> tuple[EntryChange, ...]:
        """Directory-entry changes not yet durable (always empty without lazy_dirs)."""
        return tuple(self._log)

    def cut(self) -> CutReport:
        """Power loss: atomically discard everything not persisted; from now on every call is EIO."""
        self._alive()
        torn = self._tear() if self._opts.torn_writes else ()
        pages = nbytes = sizes = 0
        affected: list[str] = []
        for ino in sorted(self._files):
            f = self._files[ino]
            lost = bool(f.dirty)
            pages += len(f.dirty)
            nbytes += sum(self._valid(f, p) for p in f.dirty)
            if self._size_dirty(f):
                sizes += 1
                lost = True
            if lost:
                affected.append(self._file_path(f))
        reverted = tuple(c.describe() for c in self._log)
        self._is_cut = True
        for f in self._files.values():
            f.store.close()
            f.dirty.clear()
        self._files.clear()
        self._log.clear()
        return CutReport(pages_dropped=pages, bytes_dropped=nbytes, sizes_dropped=sizes,
                         files_affected=tuple(affected), entries_reverted=reverted, torn=torn)

    # ----------------------------------------------------------------- internals: persistence

    def _persisted_clip(self, f: _File) -> int:
        size = f.store.size()
        return size if f.trunc_to is None else min(size, f.trunc_to)

    def _base_page(self, f: _File, p: int) -> bytearray:
        ps = self._ps
        page = bytearray(ps)
        start = p * ps
        clip = self._persisted_clip(f)
        if start < clip:
            data = f.store.pread(start, min(ps, clip - start))
            page[: len(data)] = data
        return page

    def _valid(self, f: _File, p: int) -> int:
        return min(self._ps, f.size - p * self._ps)

    def _size_dirty(self, f: _File) -> bool:
        return f.trunc_to is not None or f.store.size() != f.size

    def _apply_trunc(self, f: _File) -> None:
        # A pending shrink reaches the disk no later than any page persisted after it.
        if f.trunc_to is not None:
            if f.trunc_to < f.store.size():
                f.store.truncate(f.trunc_to)
            f.trunc_to = None

    def _write_page(self, f: _File, p: int, page: bytearray | memoryview) -> None:
        f.store.pwrite(p * self._ps, memoryview(page)[: self._valid(f, p)])

    def _write_pages(self, f: _File, pages: list[int]) -> None:
        """Persist dirty pages `pages` (ascending, still in f.dirty): one vectored write per contiguous run."""
        ps, dirty = self._ps, f.dirty
        i, n = 0, len(pages)
        while i < n:
            j = i + 1
            while j < n and j - i < _MAX_RUN and pages[j] == pages[j - 1] + 1:
                j += 1
            bufs: list[bytearray | memoryview] = [dirty[p] for p in pages[i:j]]
            last = pages[j - 1]
            valid = self._valid(f, last)
            if valid < ps:  # only the file's last page is partial, and it ends its run
                bufs[-1] = memoryview(bufs[-1])[:valid]
            f.store.pwritev(pages[i] * ps, bufs)
            i = j

    def _persist_page(self, f: _File, p: int) -> None:
        self._apply_trunc(f)
        self._write_page(f, p, f.dirty.pop(p))

    def _persist_size(self, f: _File) -> None:
        self._apply_trunc(f)
        if f.store.size() != f.size:
            f.store.truncate(f.size)

    def _tear(self) -> tuple[TornPage, ...]:
        """The page in flight at the cut reaches the disk only in part, at sector granularity."""
        candidates = [
            (f, p)
            for ino in sorted(self._files)
            if isinstance((f := self._files[ino]).store, FileStore) and f.nlink
            for p in sorted(f.dirty)
            if self._valid(f, p) > SECTOR_SIZE
        ]
        if not candidates:
            return ()
        f, p = self._rng.choice(candidates)
        valid = self._valid(f, p)
        total = -(-valid // SECTOR_SIZE)
        sectors = tuple(sorted(self._rng.sample(range(total), self._rng.randint(1, total - 1))))
        self._apply_trunc(f)
        page = memoryview(f.dirty[p])  # stays dirty: counted as dropped, its write never completed
        base = p * self._ps
        for s in sectors:
            lo, hi = s * SECTOR_SIZE, min((s + 1) * SECTOR_SIZE, valid)
            f.store.pwrite(base + lo, page[lo:hi])
        return (TornPage(path=self._file_path(f), page=p, sectors_written=sectors, sectors_total=total),)

    # ----------------------------------------------------------------- internals: entry log

    def _log_change(self, change: EntryChange) -> None:
        self._log.append(change)
        if not self._opts.lazy_dirs:
            self._commit(len(self._log))

    def _commit(self, count: int) -> None:
        """Apply the first `count` logged entry changes to the backing directory, in order."""
        done, self._log = self._log[:count], self._log[count:]
        for change in done:
            old = self._path(change.dir_path, change.name)
            if change.op is EntryOp.CREATE:
                self._materialize(self._files[change.ino], old)
            elif change.op is EntryOp.UNLINK:
                os.unlink(old)
            else:
                os.rename(old, self._path(change.new_dir_path, change.new_name))

    def _materialize(self, f: _File, path: str) -> None:
        """A created file's entry becomes durable: its content so far moves from memory to a file."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, f.mode & 0o7777)
        _fchown(fd, f.uid, f.gid)
        store = FileStore(fd)
        if f.store.size():
            store.pwrite(0, f.store.pread(0, f.store.size()))
        f.store.close()
        f.store = store
        f.pending -= 1
        self._maybe_drop(f)

    def _rename_dir(self, src: _Dir, old_name: str, dst: _Dir, new_name: str, target: int | None) -> None:
        if target is not None:
            if target not in self._dirs:
                raise NotADirectory(new_name)
            if self._dirs[target].entries:
                raise NotEmpty(new_name)
        self._commit(len(self._log))
        os.rename(self._path(self._dir_path(src), old_name), self._path(self._dir_path(dst), new_name))
        if target is not None:
            del self._dirs[target]
        sub = self._dirs[src.entries.pop(old_name)]
        dst.entries[new_name] = sub.ino
        sub.parent, sub.name = dst.ino, new_name
        self._touch_dir(src)
        self._touch_dir(dst)

    def _maybe_drop(self, f: _File) -> None:
        if f.nlink == 0 and f.pending == 0 and f.forgotten:
            f.store.close()
            del self._files[f.ino]

    # ----------------------------------------------------------------- internals: lookup and paths

    def _alive(self) -> None:
        if self._is_cut:
            raise PowerCut("the power was cut")

    def _new_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def _node(self, ino: int) -> _Dir | _File:
        node = self._dirs.get(ino) or self._files.get(ino)
        if node is None:
            raise NotFound(f"inode {ino}")
        return node

    def _dir(self, ino: int) -> _Dir:
        d = self._dirs.get(ino)
        if d is None:
            raise NotADirectory(f"inode {ino}") if ino in self._files else NotFound(f"inode {ino}")
        return d

    def _file(self, ino: int) -> _File:
        f = self._files.get(ino)
        if f is None:
            raise IsADirectory(f"inode {ino}") if ino in self._dirs else NotFound(f"inode {ino}")
        return f

    def _entry(self, d: _Dir, name: str) -> int:
        ino = d.entries.get(name)
        if ino is None:
            raise NotFound(name)
        return ino

    def _dir_path(self, d: _Dir) -> str:
        parts: list[str] = []
        while d.ino != ROOT_INO:
            parts.append(d.name)
            d = self._dirs[d.parent]
        return "/".join(reversed(parts))

    def _file_path(self, f: _File) -> str:
        if not f.nlink:
            return f"{f.name} (unlinked)"
        d = self._dir_path(self._dirs[f.parent])
        return f"{d}/{f.name}" if d else f.name

    def _path(self, dir_path: str, name: str) -> str:
        return os.path.join(self._backing, dir_path, name)

    def _touch_dir(self, d: _Dir) -> None:
        d.mtime_ns = d.ctime_ns = self._clock()

    def _stat(self, ino: int) -> NodeStat:
        node = self._node(ino)
        if isinstance(node, _Dir):
            kind, size, nlink = Kind.DIR, _DIR_SIZE, 2
        else:
            kind, size, nlink = Kind.FILE, node.size, node.nlink
        return NodeStat(ino=ino, kind=kind, size=size, mode=node.mode, uid=node.uid, gid=node.gid, nlink=nlink,
                        atime_ns=node.atime_ns, mtime_ns=node.mtime_ns, ctime_ns=node.ctime_ns)

    def _sync_owner_mode(self, node: _Dir | _File) -> None:
        if isinstance(node, _Dir):
            path = os.path.join(self._backing, self._dir_path(node))
            os.chmod(path, node.mode & 0o7777)
            _chown(path, node.uid, node.gid)
        elif isinstance(node.store, FileStore):
            os.fchmod(node.store.fd, node.mode & 0o7777)
            _fchown(node.store.fd, node.uid, node.gid)

    def _load(self) -> None:
        try:
            st = os.stat(self._backing)
        except FileNotFoundError as exc:
            raise NotFound(f"backing directory {self._backing}") from exc
        if not stat_mod.S_ISDIR(st.st_mode):
            raise NotADirectory(self._backing)
        root = _Dir(self._new_ino(), ROOT_INO, "", st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
        self._dirs[root.ino] = root
        self._load_dir(root, self._backing)

    def _load_dir(self, d: _Dir, path: str) -> None:
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            if stat_mod.S_ISDIR(st.st_mode):
                sub = _Dir(self._new_ino(), d.ino, entry.name, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
                self._dirs[sub.ino] = sub
                d.entries[entry.name] = sub.ino
                self._load_dir(sub, entry.path)
            elif stat_mod.S_ISREG(st.st_mode):
                fd = os.open(entry.path, os.O_RDWR | os.O_CLOEXEC)
                f = _File(self._new_ino(), d.ino, entry.name, FileStore(fd), st.st_mode, st.st_uid, st.st_gid,
                          st.st_mtime_ns)
                self._files[f.ino] = f
                d.entries[entry.name] = f.ino
            else:
                raise Unsupported(f"backing entry is neither a file nor a directory: {entry.path}")


def _chown(path: str, uid: int, gid: int) -> None:
    # Only root can give files away; elsewhere (unit tests as a user) ownership stays the caller's.
    if os.geteuid() == 0:
        os.chown(path, uid, gid)


def _fchown(fd: int, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        os.fchown(fd, uid, gid)
