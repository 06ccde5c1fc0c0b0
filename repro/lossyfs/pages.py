"""The dirty page cache: writes and truncates held in memory per file until persisted.

A file's content as the application sees it is its durable bytes (clipped by a pending
shrink), overlaid with its dirty pages. Persisting moves dirty pages (and the size) to the
durable bytes; nothing else here touches them.
"""

from __future__ import annotations

from repro.lossyfs.inodes import FileNode

_MAX_RUN = 512  # pages per vectored write (below IOV_MAX)


class PageCache:
    """Page-granular reads, writes, truncates and persistence of one mount's files."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size

    def read(self, f: FileNode, offset: int, size: int) -> bytes:
        end = min(offset + size, f.size)
        if offset >= end:
            return b""
        buf = bytearray(end - offset)
        clip = self._persisted_clip(f)
        if offset < clip:
            data = f.durable.pread(offset, min(end, clip) - offset)
            buf[: len(data)] = data
        if f.dirty:
            ps = self.page_size
            for p in range(offset // ps, (end - 1) // ps + 1):
                page = f.dirty.get(p)
                if page is not None:
                    start, stop = max(offset, p * ps), min(end, (p + 1) * ps)
                    buf[start - offset : stop - offset] = page[start - p * ps : stop - p * ps]
        return bytes(buf)

    def write(self, f: FileNode, offset: int, data: bytes | bytearray | memoryview) -> int:
        ps = self.page_size
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
        return total

    def truncate(self, f: FileNode, size: int) -> None:
        if size < f.size:
            ps = self.page_size
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

    def persist_file(self, f: FileNode) -> None:
        """What fsync/fdatasync of a file does: every dirty page and the size reach the durable bytes."""
        self.apply_trunc(f)
        self._write_pages(f, sorted(f.dirty))
        f.dirty.clear()
        if f.durable.size() != f.size:
            f.durable.truncate(f.size)

    def persist_page(self, f: FileNode, p: int) -> None:
        self.apply_trunc(f)
        f.durable.pwrite(p * self.page_size, memoryview(f.dirty.pop(p))[: self.valid(f, p)])

    def persist_size(self, f: FileNode) -> None:
        self.apply_trunc(f)
        if f.durable.size() != f.size:
            f.durable.truncate(f.size)

    def valid(self, f: FileNode, p: int) -> int:
        """How many bytes of page `p` lie within the file."""
        return min(self.page_size, f.size - p * self.page_size)

    def size_dirty(self, f: FileNode) -> bool:
        return f.trunc_to is not None or f.durable.size() != f.size

    def apply_trunc(self, f: FileNode) -> None:
        # A pending shrink reaches the disk no later than any page persisted after it.
        if f.trunc_to is not None:
            if f.trunc_to < f.durable.size():
                f.durable.truncate(f.trunc_to)
            f.trunc_to = None

    def _persisted_clip(self, f: FileNode) -> int:
        size = f.durable.size()
        return size if f.trunc_to is None else min(size, f.trunc_to)

    def _base_page(self, f: FileNode, p: int) -> bytearray:
        ps = self.page_size
        page = bytearray(ps)
        start = p * ps
        clip = self._persisted_clip(f)
        if start < clip:
            data = f.durable.pread(start, min(ps, clip - start))
            page[: len(data)] = data
        return page

    def _write_pages(self, f: FileNode, pages: list[int]) -> None:
        """Persist dirty pages `pages` (ascending, still in f.dirty): one vectored write per contiguous run."""
        ps, dirty = self.page_size, f.dirty
        i, n = 0, len(pages)
        while i < n:
            j = i + 1
            while j < n and j - i < _MAX_RUN and pages[j] == pages[j - 1] + 1:
                j += 1
            bufs: list[bytearray | memoryview] = [dirty[p] for p in pages[i:j]]
            valid = self.valid(f, pages[j - 1])
            if valid < ps:  # only the file's last page is partial, and it ends its run
                bufs[-1] = memoryview(bufs[-1])[:valid]
            f.durable.pwritev(pages[i] * ps, bufs)
            i = j
