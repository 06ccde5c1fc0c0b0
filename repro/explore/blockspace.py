"""The crash states of a block-level trace (``--fs``): which 4 KB blocks written since the last flush reach the disk.

A trace recorded with ``--fs`` (repro/scenario/filesystems.py) holds what a kernel filesystem sent
its block device: writes to the loop device's backing image and an fsync of the image at every
flush. The states follow CrashMonkey/B3's model of a disk: everything written before the last
completed flush persists; of the blocks written since, any subset may. The trace's writes are
what the page cache of the image handed on, often several blocks merged in one request, so they
are cut into 4 KB blocks (aligned to the image) and a state picks blocks, not requests. A block
written twice since the flush is two units: a state may keep the first version and not the second.

Crash points are the file-level timeline's (repro/explore/timeline.py): after every operation
from the workload's ``ready`` mark on, with the ledger's acks placed by the marks. The models,
each a set of states per crash point, numbered in a fixed order so that ``MODEL:INDEX`` always
names the same state:

- ``block-prefix``: the first k units since the flush persisted, k = 0 .. n (in trace order);
- ``block-drop-one``: every unit since the flush persisted but one, for each of the n units;
- ``block-subset``: SUBSETS_PER_POINT subsets of the units, each unit kept with probability 1/2,
  drawn from a generator seeded by the crash point and the subset's number alone (never the
  exploration's seed), so that a state id means the same subset in every run.

A state is recovered by the kernel, not judged from the blocks: repro/explore/recover.py mounts a
copy of its image (the journal replays) and hands the files on to the usual probe and oracle.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import random
from dataclasses import dataclass

from repro.errors import ScenarioError
from repro.explore.space import Selection, select
from repro.explore.timeline import CrashPoint, Timeline
from repro.lossyfs.trace import Create, TraceError, Write

BLOCK_SIZE = 4096
SUBSETS_PER_POINT = 4
IMAGE_NAME = "fs.img"  # how the backing image's name on the lossy mount ends (lab-<run id>-fs.img: repro/machine/loops.py)


class BlockModel(str, enum.Enum):
    """Which blocks written since the last flush a block-level crash state keeps."""

    PREFIX = "block-prefix"
    DROP_ONE = "block-drop-one"
    SUBSET = "block-subset"

    @property
    def lazy_dirs(self) -> bool:
        """Always: a real filesystem makes a directory entry durable only at its next journal commit or a
        directory fsync (ext4's ordered journal commits every 5 s, or with any fsync), so SQLite's promise
        on it is the one with lazy entries -- a rollback journal's unlink without EXTRA's directory sync
        may not survive, and its last commit may roll back."""
        return True

    @classmethod
    def parse_list(cls, text: str) -> tuple[BlockModel, ...]:
        if text.strip() in ("all", "block"):
            return tuple(cls)
        models: list[BlockModel] = []
        for part in (p.strip() for p in text.split(",") if p.strip()):
            try:
                model = cls(part)
            except ValueError:
                known = ", ".join(m.value for m in cls)
                raise ScenarioError(f"{part!r} is not a block-level model; a trace recorded with --fs is explored "
                                    f"with: {known}, or all") from None
            if model not in models:
                models.append(model)
        if not models:
            raise ScenarioError("--models names no block-level model")
        return tuple(models)


@dataclass(frozen=True)
class Unit:
    """One 4 KB block of one write since the last flush: ``data`` lands at ``offset`` of the image."""

    seq: int  # the write's seq in the trace
    offset: int
    data: bytes


@dataclass(frozen=True)
class BlockState:
    """One block-level crash state: the crash point and which units since the last flush persisted."""

    model: BlockModel
    index: int
    point: CrashPoint
    kept: tuple[int, ...]  # indices into the point's units
    total: int  # units since the last flush at this point

    @property
    def state_id(self) -> str:
        return f"{self.model.value}:{self.index}"

    @property
    def dir_sync_ack(self) -> int:
        """The horizon of a lost commit (check.judge_state): a block trace has no directory fsync of its own,
        so this stays at READY's index and no lost commit is called lost beyond a sync."""
        return self.point.dir_sync_ack


def image_ino(timeline: Timeline) -> int:
    """The backing image's inode in the trace (TraceError if the trace has none: not recorded with --fs)."""
    for f in timeline.initial.files:
        if f.path.endswith(IMAGE_NAME):
            return f.ino
    for op in timeline.ops:
        if isinstance(op, Create) and op.path.endswith(IMAGE_NAME):
            return op.ino
    raise TraceError(f"the trace has no {IMAGE_NAME}: it was not recorded with --fs")


def split(write: Write) -> list[tuple[int, bytes]]:
    """A write cut at 4 KB boundaries of the image: (offset, bytes) pieces, in order."""
    pieces = []
    offset, data = write.offset, write.data
    while data:
        take = BLOCK_SIZE - offset % BLOCK_SIZE
        pieces.append((offset, data[:take]))
        offset, data = offset + take, data[take:]
    return pieces


class BlockSpace:
    """Every block model's states over one timeline, counted per crash point."""

    def __init__(self, timeline: Timeline, models: tuple[BlockModel, ...] = tuple(BlockModel)) -> None:
        self.timeline = timeline
        self.models = models
        self.ino = image_ino(timeline)
        self._units: dict[int, tuple[Unit, ...]] = {}
        self._cumulative = {m: list(itertools.accumulate(self._count(m, p) for p in timeline.points)) for m in models}

    def units(self, point: CrashPoint) -> tuple[Unit, ...]:
        """The units written to the image since its last flush, at this crash point, in trace order."""
        found = self._units.get(point.index)
        if found is None:
            writes = [op for op in (self.timeline.ops[pos] for pos in point.unsynced)
                      if isinstance(op, Write) and op.ino == self.ino]
            found = tuple(Unit(op.seq, offset, data) for op in writes for offset, data in split(op))
            if len(self._units) > 4096:
                self._units.clear()
            self._units[point.index] = found
        return found

    def _count(self, model: BlockModel, point: CrashPoint) -> int:
        n = len(self.units(point))
        if model is BlockModel.PREFIX:
            return n + 1
        if model is BlockModel.DROP_ONE:
            return n
        return SUBSETS_PER_POINT if n >= 2 else 0

    def total(self, model: BlockModel) -> int:
        cumulative = self._cumulative[model]
        return cumulative[-1] if cumulative else 0

    def spec(self, model: BlockModel, index: int) -> BlockState:
        """The state ``index`` of ``model`` (ScenarioError if there is none)."""
        if model not in self._cumulative:
            raise ScenarioError(f"model {model.value} was not explored")
        if not 0 <= index < self.total(model):
            raise ScenarioError(f"{model.value}:{index}: {model.value} has {self.total(model)} states")
        cumulative = self._cumulative[model]
        at = bisect.bisect_right(cumulative, index)
        point = self.timeline.points[at]
        local = index - (cumulative[at - 1] if at else 0)
        n = len(self.units(point))
        if model is BlockModel.PREFIX:
            kept = tuple(range(local))
        elif model is BlockModel.DROP_ONE:
            kept = tuple(i for i in range(n) if i != local)
        else:
            rng = random.Random(f"block-subset:{point.index}:{local}")
            kept = tuple(i for i in range(n) if rng.random() < 0.5)
        return BlockState(model, index, point, kept, n)

    def select(self, model: BlockModel, budget: int, seed: int) -> Selection:
        """Every state when the model has at most ``budget``, else ``budget`` of them drawn with ``seed``."""
        return select(model, self.total(model), budget, seed)  # type: ignore[arg-type]

    def describe(self, state: BlockState, limit: int = 8) -> dict[str, object]:
        """A state in words: where the crash is, what was acknowledged, which blocks since the flush it lost."""
        timeline = self.timeline
        point = state.point
        units = self.units(point)
        kept = set(state.kept)
        dropped = [f"seq {u.seq} block {u.offset // BLOCK_SIZE}" for i, u in enumerate(units) if i not in kept]
        return {
            "state": state.state_id,
            "crash_point": point.index,
            "after": timeline.describe(point.last_op) if point.last_op >= 0 else "the start",
            "acknowledged_through": point.acked,
            "blocks_since_flush": len(units),
            "persisted_blocks": len(kept),
            "dropped": dropped[:limit] + ([f"... {len(dropped) - limit} more"] if len(dropped) > limit else []),
        }
