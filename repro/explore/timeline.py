"""A recorded trace as crash points: at each, what is durable, what is still volatile, what was acknowledged.

One forward pass over the trace (repro/lossyfs/trace.py) applies the sync rules of models.py and
records, for every crash point, the un-synced data operations, the directory-entry changes not
yet durable under lazy directories, and where the ledger stood (from the workload's marks:
``ready <index>`` after READY -- every operation up to that index was done before, by an earlier
run on the same store -- and ``ack <index>`` after each acknowledged operation). Crash points start at
the ``ready`` mark: before it the store had not opened, so nothing was promised. Operations after
a ``cut`` never reached the disk and are left out.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass

from repro.lossyfs.trace import (
    Create,
    Cut,
    Fsync,
    FsyncDir,
    Initial,
    Mark,
    Mkdir,
    Op,
    Rename,
    Rmdir,
    Stop,
    TraceError,
    TraceReader,
    Truncate,
    Unlink,
    Write,
)
from repro.explore.models import SECTOR_SIZE, VOLATILE_SUFFIXES, Dirs, DirSync

READY_MARK = "ready"
ACK_MARK = "ack "
DataOp = Write | Truncate
EntryOp = Create | Rename | Unlink
# The ways entry changes commit other than at once: lazy or ordered, directory fsyncs kept or skipped.
ENTRY_COMMITS = tuple((d, s) for d in (Dirs.LAZY, Dirs.ORDERED) for s in (DirSync.KEPT, DirSync.SKIPPED))


@dataclass(frozen=True)
class CrashPoint:
    """The power fails right after one operation (and the marks that follow it)."""

    index: int
    pos: int  # the operations ops[:pos] happened
    last_op: int  # position of the operation it follows (the ready mark, for the first)
    unsynced: tuple[int, ...]  # positions of un-synced data operations of named files (-shm aside), trace order
    pending: tuple[int, ...]  # positions of entry changes not durable under lazy directories, log order
    committed_entries: int  # entry changes durable under lazy directories (a prefix of the entry log)
    acked: int  # ledger index of the last "ack" mark before it (0: none yet)
    next_ack: int | None  # ledger index of the first "ack" mark after it
    wal_sync_ack: int  # the last ack before the last fsync of a -wal file (0: none)
    dir_sync_ack: int  # the last ack before the last directory fsync (0: none)
    logged: int = 0  # entry changes logged so far (the entry log's length at this point)
    # per way entries commit (ENTRY_COMMITS): (entry changes durable, the last ack before that commit)
    commits: tuple[tuple[int, int], ...] = ()

    def committed(self, dirs: Dirs, dirsync: DirSync) -> tuple[int, int]:
        """Entry changes durable under ``dirs`` (with or without directory fsyncs) and the last ack
        before the commit that made them durable."""
        return self.commits[ENTRY_COMMITS.index((dirs, dirsync))]


def sectors(write: Write) -> int:
    """How many 512-byte sectors (aligned to file offsets) the write touches."""
    if not write.length:
        return 0
    return (write.offset + write.length - 1) // SECTOR_SIZE - write.offset // SECTOR_SIZE + 1


def parent(path: str) -> str:
    return os.path.dirname(path)


def touches(op: EntryOp, directory: str) -> bool:
    if isinstance(op, Rename):
        return parent(op.src) == directory or parent(op.dst) == directory
    return parent(op.path) == directory


def apply_entry(names: dict[str, int], op: EntryOp) -> None:
    """One directory-entry change applied to a namespace (path -> ino)."""
    if isinstance(op, Create):
        names[op.path] = op.ino
    elif isinstance(op, Unlink):
        names.pop(op.path, None)
    else:
        prefix = op.src + "/"
        for path in [p for p in names if p == op.src or p.startswith(prefix)]:
            names[op.dst + path[len(op.src):]] = names.pop(path)


class Timeline:
    """The trace's operations and crash points, with what each fsync made durable."""

    def __init__(self, reader: TraceReader) -> None:
        ops: list[Op] = []
        for op in reader.ops():
            if isinstance(op, Cut):
                break
            ops.append(op)
        self.ops: tuple[Op, ...] = tuple(ops)
        self.initial: Initial = reader.initial
        self.page_size = reader.header.page_size
        marks = [(i, op.label) for i, op in enumerate(self.ops) if isinstance(op, Mark)]
        ready = [(i, label) for i, label in marks if label.split(" ")[0] == READY_MARK]
        if not ready:
            raise TraceError(f"{reader.path}: no '{READY_MARK}' mark: not recorded with the workload's marks "
                             "(LAB_MARK_SOCKET)")
        self.ready_pos, label = ready[0]
        try:
            self.ready_index = int(label.split(" ", 1)[1]) if " " in label else 0
        except ValueError:
            raise TraceError(f"{reader.path}: mark {label!r} is not 'ready <index>'") from None
        self._acks: list[tuple[int, int]] = []  # (position, ledger index)
        for i, label in marks:
            if label.startswith(ACK_MARK):
                try:
                    self._acks.append((i, int(label[len(ACK_MARK):])))
                except ValueError:
                    raise TraceError(f"{reader.path}: mark {label!r} is not 'ack <index>'") from None
        self.entry_log: tuple[int, ...] = tuple(i for i, op in enumerate(self.ops) if isinstance(op, EntryOp))
        self._entry_ops: tuple[EntryOp, ...] = tuple(op for op in self.ops if isinstance(op, EntryOp))
        # pos of an fsync/stop -> the data operations it made durable, in trace order
        self.durable_at: dict[int, tuple[int, ...]] = {}
        # pos of an fsyncdir/mkdir/rmdir/stop -> entry changes durable after it (lazy directories)
        self.entries_at: dict[int, int] = {}
        self.points: tuple[CrashPoint, ...] = self._walk()

    def _walk(self) -> tuple[CrashPoint, ...]:
        ops = self.ops
        disk = [i for i, op in enumerate(ops) if not isinstance(op, Mark)]
        starts = [i for i in disk if i > self.ready_pos] + [len(ops)]
        wanted = set(starts)
        unsynced: dict[int, list[int]] = {}
        names = {f.path: f.ino for f in self.initial.files}
        sizes = {f.ino: len(f.data) for f in self.initial.files}
        grows: set[int] = set()
        logged = 0
        acked = wal_sync = self.ready_index
        # per ENTRY_COMMITS: [entry changes durable, the last ack before the commit]
        commits = [[0, self.ready_index] for _ in ENTRY_COMMITS]
        last_disk = -1
        points: list[CrashPoint] = []
        for pos in range(len(ops) + 1):
            if pos in wanted:
                named = {ino for path, ino in names.items() if not path.endswith(VOLATILE_SUFFIXES)}
                volatile = tuple(sorted(p for ino, ps in unsynced.items() if ino in named for p in ps))
                committed, dir_sync = commits[0]  # lazy entries, directory fsyncs kept
                pending = self.entry_log[committed:logged]
                after = last_disk if last_disk > self.ready_pos else self.ready_pos  # the first: right after READY
                points.append(CrashPoint(len(points), pos, after, volatile, pending, committed, acked,
                                         self._next_ack(pos), wal_sync, dir_sync, logged,
                                         tuple((c, a) for c, a in commits)))
            if pos == len(ops):
                break
            op = ops[pos]
            if isinstance(op, Mark):
                if op.label.startswith(ACK_MARK):
                    acked = int(op.label[len(ACK_MARK):])
                continue
            last_disk = pos
            if isinstance(op, Write):
                unsynced.setdefault(op.ino, []).append(pos)
                if op.offset + op.length > sizes.get(op.ino, 0):
                    grows.add(pos)
                    sizes[op.ino] = op.offset + op.length
            elif isinstance(op, Truncate):
                unsynced.setdefault(op.ino, []).append(pos)
                sizes[op.ino] = op.size
            elif isinstance(op, (Create, Rename, Unlink)):
                if isinstance(op, Create):
                    sizes[op.ino] = 0
                apply_entry(names, op)
                logged += 1
            elif isinstance(op, Fsync):
                self.durable_at[pos] = tuple(unsynced.pop(op.ino, ()))
                if op.path.endswith("-wal"):
                    wal_sync = acked
                self._commit(commits, logged, acked, Dirs.ORDERED, None)
            elif isinstance(op, FsyncDir):
                touching = [n for n, e in enumerate(self._entry_ops[:logged]) if touches(e, op.path)]
                upto = touching[-1] + 1 if touching else 0
                self._commit(commits, upto, acked, Dirs.LAZY, DirSync.KEPT)
                self._commit(commits, logged, acked, Dirs.ORDERED, DirSync.KEPT)
                self.entries_at[pos] = commits[0][0]
            elif isinstance(op, (Mkdir, Rmdir)):
                for c in commits:
                    c[0] = logged
                self.entries_at[pos] = logged
            elif isinstance(op, Stop) and op.synced:
                self.durable_at[pos] = tuple(sorted(p for ps in unsynced.values() for p in ps))
                unsynced.clear()
                self._commit(commits, logged, acked, None, None)
                self.entries_at[pos] = logged
                wal_sync = acked
        self.grows: frozenset[int] = frozenset(grows)  # writes that grew their file (positions)
        return tuple(points)

    @staticmethod
    def _commit(commits: list[list[int]], upto: int, acked: int, dirs: Dirs | None, dirsync: DirSync | None) -> None:
        """Entry changes up to ``upto`` become durable for the ways of committing that match."""
        for (d, s), c in zip(ENTRY_COMMITS, commits):
            if (dirs is None or d is dirs) and (dirsync is None or s is dirsync):
                c[0] = max(c[0], upto)
                c[1] = acked

    def ack_before(self, pos: int) -> int:
        """The ledger index of the last ``ack`` mark before ``pos`` (the ready index: none yet): the operation
        in flight at ``pos`` is the next one."""
        i = bisect.bisect_left(self._acks, (pos, -1))
        return self._acks[i - 1][1] if i else self.ready_index

    def _next_ack(self, pos: int) -> int | None:
        i = bisect.bisect_left(self._acks, (pos, -1))
        return self._acks[i][1] if i < len(self._acks) else None

    def data_op(self, pos: int) -> Write | Truncate:
        op = self.ops[pos]
        if not isinstance(op, (Write, Truncate)):
            raise TraceError(f"operation at {pos} is a {op.OP}, not a write or truncate")
        return op

    def in_flight(self, point: CrashPoint) -> Write | None:
        """The write the crash may tear: the operation the crash point follows, if an un-synced write."""
        if point.last_op < 0 or point.last_op not in point.unsynced:
            return None
        op = self.ops[point.last_op]
        return op if isinstance(op, Write) else None

    def describe(self, pos: int) -> str:
        """One operation, as a report names it: ``seq 17 write state.db-wal 4096@8192``."""
        op = self.ops[pos]
        if isinstance(op, Write):
            return f"seq {op.seq} write {op.path} {op.length}@{op.offset}"
        if isinstance(op, Truncate):
            return f"seq {op.seq} truncate {op.path} to {op.size}"
        if isinstance(op, Rename):
            return f"seq {op.seq} rename {op.src} -> {op.dst}"
        if isinstance(op, Fsync):
            return f"seq {op.seq} {'fdatasync' if op.datasync else 'fsync'} {op.path}"
        if isinstance(op, FsyncDir):
            return f"seq {op.seq} fsyncdir {op.path or '/'}"
        if isinstance(op, Mark):
            return f"seq {op.seq} mark {op.label}"
        if isinstance(op, Stop):
            return f"seq {op.seq} stop ({'synced' if op.synced else 'after the cut'})"
        return f"seq {op.seq} {op.OP} {getattr(op, 'path', '')}".rstrip()
