"""The power model: which volatile state a writeback step persists, and what a cut keeps, drops or tears.

Every random choice comes from one generator seeded by `CacheOptions.seed`, so a run with
the same requests and the same writeback steps persists and loses the same things.
"""

from __future__ import annotations

import random

from repro.lossyfs.durable import BackingFile
from repro.lossyfs.entry_log import EntryLog
from repro.lossyfs.inodes import FileNode, Inodes
from repro.lossyfs.model import SECTOR_SIZE, CacheOptions, CutReport, TornPage, WritebackReport
from repro.lossyfs.pages import PageCache

_SIZE_ITEM = -1  # a writeback item that persists a file's size rather than one of its pages


class PowerModel:
    """The background flusher and the power cut over one mount's volatile state."""

    def __init__(self, options: CacheOptions, inodes: Inodes, pages: PageCache, log: EntryLog) -> None:
        self._opts = options
        self._rng = random.Random(options.seed)
        self._inodes = inodes
        self._pages = pages
        self._log = log

    def writeback(self) -> WritebackReport:
        """One step of the background flusher: a seeded random subset of dirty items, in random order."""
        rng, rate, pages = self._rng, self._opts.writeback_rate, self._pages
        files = self._inodes.files
        items: list[tuple[FileNode, int]] = []
        for ino in sorted(files):
            f = files[ino]
            items.extend((f, p) for p in sorted(f.dirty) if rng.random() < rate)
            if pages.size_dirty(f) and rng.random() < rate:
                items.append((f, _SIZE_ITEM))
        rng.shuffle(items)
        n_pages = sizes = 0
        for f, p in items:
            if p == _SIZE_ITEM:
                pages.persist_size(f)
                sizes += 1
            else:
                pages.persist_page(f, p)
                n_pages += 1
        entries = 0
        if len(self._log) and rng.random() < rate:
            entries = rng.randint(1, len(self._log))
            self._log.commit(entries)
        return WritebackReport(pages_written=n_pages, sizes_written=sizes, entries_committed=entries)

    def cut(self) -> CutReport:
        """Power loss: tear the page in flight (if enabled), then discard everything not persisted."""
        torn = self._tear() if self._opts.torn_writes else ()
        files, pages = self._inodes.files, self._pages
        n_pages = nbytes = sizes = 0
        affected: list[str] = []
        for ino in sorted(files):
            f = files[ino]
            lost = bool(f.dirty)
            n_pages += len(f.dirty)
            nbytes += sum(pages.valid(f, p) for p in f.dirty)
            if pages.size_dirty(f):
                sizes += 1
                lost = True
            if lost:
                affected.append(self._inodes.file_path(f))
        reverted = self._log.drop()
        for f in files.values():
            f.durable.close()
            f.dirty.clear()
        files.clear()
        return CutReport(pages_dropped=n_pages, bytes_dropped=nbytes, sizes_dropped=sizes,
                         files_affected=tuple(affected), entries_reverted=reverted, torn=torn)

    def _tear(self) -> tuple[TornPage, ...]:
        """The page in flight at the cut reaches the disk only in part, at sector granularity."""
        files, pages = self._inodes.files, self._pages
        candidates = [
            (f, p)
            for ino in sorted(files)
            if isinstance((f := files[ino]).durable, BackingFile) and f.nlink
            for p in sorted(f.dirty)
            if pages.valid(f, p) > SECTOR_SIZE
        ]
        if not candidates:
            return ()
        f, p = self._rng.choice(candidates)
        valid = pages.valid(f, p)
        total = -(-valid // SECTOR_SIZE)
        sectors = tuple(sorted(self._rng.sample(range(total), self._rng.randint(1, total - 1))))
        pages.apply_trunc(f)
        page = memoryview(f.dirty[p])  # stays dirty: counted as dropped, its write never completed
        base = p * pages.page_size
        for s in sectors:
            lo, hi = s * SECTOR_SIZE, min((s + 1) * SECTOR_SIZE, valid)
            f.durable.pwrite(base + lo, page[lo:hi])
        return (TornPage(path=self._inodes.file_path(f), page=p, sectors_written=sectors, sectors_total=total),)
