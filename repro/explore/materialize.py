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

import contextlib
import hashlib
import os
import pathlib
import shutil
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

from repro.explore.models import GARBAGE, SECTOR_SIZE, Appends
from repro.explore.space import StateSpec
from repro.explore.timeline import Timeline, apply_entry
from repro.lossyfs.trace import Create, Mkdir, Rename, Rmdir, Truncate, Unlink, Write


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


def _digests(data: bytes, page_size: int) -> list[bytes]:
    view = memoryview(data)
    return [hashlib.sha1(view[i:i + page_size]).digest() for i in range(0, len(data), page_size)]


class Piece(NamedTuple):  # a tuple, not a frozen dataclass: states make thousands of them a second
    """One change a state makes to a file beyond its durable content, applied in trace order: bytes
    written at an offset, a truncate, or a grow (the size reaches ``end`` with ``fill`` bytes, the
    data not: appends=zeros/garbage)."""

    pos: int  # the trace operation it comes from
    offset: int = 0
    data: bytes = b""
    truncate: int | None = None
    grow: int | None = None  # the end the file grows to (where it is shorter)
    fill: int = 0

    @property
    def low(self) -> int:
        """The lowest offset it may change."""
        if self.truncate is not None:
            return self.truncate
        return self.grow if self.grow is not None else self.offset


def _torn_pieces(op: Write, pos: int, kept: tuple[int, ...]) -> list[Piece]:
    """A torn write's kept sectors (counted from its first sector, aligned to file offsets), as runs."""
    first = op.offset // SECTOR_SIZE
    runs: list[list[int]] = []  # consecutive kept sectors, each run sliced once
    for sector in kept:
        if runs and runs[-1][1] == sector:
            runs[-1][1] = sector + 1
        else:
            runs.append([sector, sector + 1])
    pieces: list[Piece] = []
    for start, end in runs:
        lo = max(op.offset, (first + start) * SECTOR_SIZE)
        hi = min(op.offset + len(op.data), (first + end) * SECTOR_SIZE)
        if lo < hi:
            pieces.append(Piece(pos, lo, op.data[lo - op.offset:hi - op.offset]))
    return pieces


def _apply(fd: int, piece: Piece) -> int:
    """Apply one piece to an open file."""
    if piece.truncate is not None:
        os.ftruncate(fd, piece.truncate)
        return 0
    if piece.grow is not None:
        size = os.fstat(fd).st_size
        if piece.grow <= size:
            return 0
        return os.pwrite(fd, bytes([piece.fill]) * (piece.grow - size), size)
    return os.pwrite(fd, piece.data, piece.offset)


def _piece(op: Write | Truncate, pos: int) -> Piece:
    if isinstance(op, Truncate):
        return Piece(pos, truncate=op.size)
    return Piece(pos, op.offset, op.data)


class Materializer:
    """Builds the states of one timeline in directories, moving forward through the trace."""

    def __init__(self, timeline: Timeline, work_dir: str | os.PathLike[str]) -> None:
        self.timeline = timeline
        self.work = pathlib.Path(work_dir) / "durable"
        self.stats = Stats()
        self._page_digests: dict[int, tuple[tuple[int, int, int], list[bytes]]] = {}
        self._overlays: tuple[StateSpec | None, dict[int, list[Piece]]] = (None, {})
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
                    self.stats.advanced_bytes += _apply(fd, _piece(data_op, synced))
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
        """Equal for two states whose files are equal byte for byte."""
        self.advance(spec.point.pos)
        mine: dict[int, list[object]] = {}  # the state's own operations per file, by position (no bytes touched)
        for pos in spec.persisted:
            mine.setdefault(self.timeline.data_op(pos).ino, []).append(pos)
        if spec.torn is not None:
            torn = spec.torn
            mine.setdefault(self.timeline.data_op(torn.pos).ino, []).append(("torn", torn.pos, torn.kept, torn.mask))
        if spec.grown is not None:
            for pos in spec.dropped:
                if pos in self.timeline.grows:
                    mine.setdefault(self.timeline.data_op(pos).ino, []).append(("grown", pos, spec.grown.value))
        key: list[object] = []
        for path, ino in sorted(self.state_names(spec).items()):
            key.append((path, ino, self.durable.get(ino, 0), tuple(mine.get(ino, ()))))
        return tuple(key)

    def _overlay(self, spec: StateSpec, ino: int) -> list[Piece]:
        """The state's own changes to one file, in trace order."""
        if self._overlays[0] is not spec:
            found: list[tuple[int, int, list[Piece]]] = []  # (trace position, ino, pieces)
            for pos in spec.persisted:
                op = self.timeline.data_op(pos)
                found.append((pos, op.ino, [_piece(op, pos)]))
            if spec.torn is not None:
                torn = self.timeline.data_op(spec.torn.pos)
                assert isinstance(torn, Write)
                found.append((spec.torn.pos, torn.ino, _torn_pieces(torn, spec.torn.pos, spec.torn.sectors_kept())))
            if spec.grown is not None:
                fill = GARBAGE if spec.grown is Appends.GARBAGE else 0
                for pos in spec.dropped:
                    op = self.timeline.data_op(pos)
                    if pos in self.timeline.grows and isinstance(op, Write):
                        found.append((pos, op.ino, [Piece(pos, grow=op.offset + op.length, fill=fill)]))
            if spec.grown is not None:  # persisted ops, then the torn one, are in trace order already
                found.sort(key=lambda f: f[0])
            by_ino: dict[int, list[Piece]] = {}
            for _, owner, pieces in found:
                by_ino.setdefault(owner, []).extend(pieces)
            self._overlays = (spec, by_ino)
        return self._overlays[1].get(ino, [])

    def durable_size(self, ino: int) -> int:
        return (self.work / str(ino)).stat().st_size

    def read_durable(self, ino: int, offset: int, size: int) -> bytes:
        with open(self.work / str(ino), "rb") as f:
            f.seek(offset)
            return f.read(size)

    def size(self, spec: StateSpec, ino: int) -> int:
        """One file's size in the state."""
        self.advance(spec.point.pos)
        size = self.durable_size(ino)
        for piece in self._overlay(spec, ino):
            if piece.truncate is not None:
                size = piece.truncate
            elif piece.grow is not None:
                size = max(size, piece.grow)
            else:
                size = max(size, piece.offset + len(piece.data))
        return size

    def first_change(self, spec: StateSpec, ino: int) -> int | None:
        """The lowest offset at which the state's own operations may change the file (None: they do not)."""
        return min((piece.low for piece in self._overlay(spec, ino)), default=None)

    def read(self, spec: StateSpec, ino: int, offset: int, size: int) -> bytes:
        """Bytes of one file of the state, without writing it: the durable bytes with the state's
        own operations applied to that range (short at the end of the file)."""
        with self._reader(spec, ino) as read:
            return read(offset, size)

    @contextlib.contextmanager
    def _reader(self, spec: StateSpec, ino: int) -> Iterator[Callable[[int, int], bytes]]:
        """``read(offset, size)`` over one file of the state, the durable file opened once."""
        self.advance(spec.point.pos)
        overlay = self._overlay(spec, ino)
        with open(self.work / str(ino), "rb") as durable:
            base = os.fstat(durable.fileno()).st_size

            def read(offset: int, size: int) -> bytes:
                buf = bytearray(os.pread(durable.fileno(), size, offset))
                buf.extend(bytes(size - len(buf)))
                length = base
                for piece in overlay:
                    if piece.truncate is not None:
                        if piece.truncate < offset + size:
                            cut = max(0, piece.truncate - offset)
                            buf[cut:] = bytes(size - cut)
                        length = piece.truncate
                        continue
                    if piece.grow is not None:
                        lo, hi = max(length, offset), min(piece.grow, offset + size)
                        if lo < hi:
                            buf[lo - offset:hi - offset] = bytes([piece.fill]) * (hi - lo)
                        length = max(length, piece.grow)
                        continue
                    data = piece.data
                    lo, hi = max(piece.offset, offset), min(piece.offset + len(data), offset + size)
                    if lo < hi:
                        buf[lo - offset:hi - offset] = data[lo - piece.offset:hi - piece.offset]
                    length = max(length, piece.offset + len(data))
                return bytes(buf[: max(0, min(size, length - offset))])

            yield read

    def page_digests(self, spec: StateSpec, ino: int, page_size: int) -> list[bytes]:
        """A sha1 per page of one file of the state: the durable content's, kept between states,
        with the pages the state's own operations touch computed again."""
        self.advance(spec.point.pos)
        key = (ino, self.durable.get(ino, 0), page_size)  # an inode's durable content is its synced-op count
        cached = self._page_digests.get(ino)
        if cached is None or cached[0] != key:
            cached = (key, _digests((self.work / str(ino)).read_bytes(), page_size))
            self._page_digests[ino] = cached
        overlay = self._overlay(spec, ino)
        if not overlay:
            return cached[1]
        size = self.size(spec, ino)
        pages = -(-size // page_size)
        digests = list(cached[1][:pages]) + [b""] * max(0, pages - len(cached[1]))
        touched: set[int] = set()
        length = self.durable_size(ino)
        for piece in overlay:
            if piece.truncate is not None:
                lo, hi, length = min(length, piece.truncate), max(length, piece.truncate), piece.truncate
            elif piece.grow is not None:
                lo, hi, length = length, max(length, piece.grow), max(length, piece.grow)
            else:
                end = piece.offset + len(piece.data)
                lo, hi, length = min(piece.offset, length), end, max(length, end)
            touched.update(range(lo // page_size, -(-hi // page_size) if hi > lo else lo // page_size + 1))
        touched.add(pages - 1)  # the last page may be partial now
        wanted = sorted(p for p in touched if 0 <= p < pages)
        runs: list[list[int]] = []
        for page in wanted:  # contiguous runs of touched pages, each read once
            if runs and runs[-1][-1] == page - 1:
                runs[-1].append(page)
            else:
                runs.append([page])
        with self._reader(spec, ino) as read:
            for run in runs:
                span = memoryview(read(run[0] * page_size, len(run) * page_size))
                for n, page in enumerate(run):
                    digests[page] = hashlib.sha1(span[n * page_size:(n + 1) * page_size]).digest()
        return digests

    def write(self, spec: StateSpec, dest: str | os.PathLike[str]) -> list[str]:
        """Write the state's files under ``dest`` (created; must not hold other files). Returns the paths."""
        self.advance(spec.point.pos)
        root = pathlib.Path(dest)
        root.mkdir(parents=True, exist_ok=True)
        for d in sorted(self.dirs):
            (root / d).mkdir(parents=True, exist_ok=True)
        written: list[str] = []
        for path, ino in sorted(self.state_names(spec).items()):
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            self.stats.cloned_bytes += _clone(self.work / str(ino), target)
            pieces = self._overlay(spec, ino)
            if pieces:
                fd = os.open(target, os.O_WRONLY)
                try:
                    for piece in pieces:
                        self.stats.patched_bytes += _apply(fd, piece)
                finally:
                    os.close(fd)
            written.append(path)
        self.stats.states += 1
        return written
