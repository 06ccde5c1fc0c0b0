"""The crash states of a trace under each persistence model, numbered: (trace, model, index) is one exact state.

States are numbered crash point by crash point, and within a crash point in a fixed order
(models.py says which states each model has), so an index always names the same state: the
report's first violation can be materialised again (``--materialize MODEL:INDEX``), and a
sample is a seeded choice of indices.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import sys
from dataclasses import dataclass

from repro.errors import ScenarioError
from repro.explore.models import PRESETS, Appends, Data, Dirs, PersistenceModel
from repro.explore.timeline import CrashPoint, Timeline, sectors
from repro.lossyfs.trace import Write


@dataclass(frozen=True)
class Torn:
    """A write that reached the disk only as ``kept`` of its ``total`` sectors: the first ones, or
    those of ``mask`` (bit b: the write's sector b) under data=torn-any."""

    pos: int
    kept: int
    total: int
    mask: int | None = None

    def sectors_kept(self) -> tuple[int, ...]:
        """The kept sectors, counted from the write's first."""
        if self.mask is None:
            return tuple(range(self.kept))
        return tuple(b for b in range(self.total) if self.mask >> b & 1)


@dataclass(frozen=True)
class StateSpec:
    """One crash state: the crash point and which of its un-synced operations reached the disk."""

    model: PersistenceModel
    index: int
    point: CrashPoint
    persisted: tuple[int, ...]  # un-synced data operations that reached the disk (trace positions)
    dropped: tuple[int, ...]  # un-synced data operations that did not (a torn one is neither)
    torn: Torn | None = None
    entries: int | None = None  # entries not at once: entry changes durable (None: every one so far)
    grown: Appends | None = None  # appends=zeros/garbage: dropped writes that grew their file left it grown

    @property
    def state_id(self) -> str:
        return format_state_id(self.model, self.index)

    @property
    def dir_sync_ack(self) -> int:
        """The last ack before the last commit of directory entries, as the model commits them."""
        if self.model.dirs is Dirs.AT_ONCE:
            return self.point.dir_sync_ack
        return self.point.committed(self.model.dirs, self.model.dirsync)[1]


def format_state_id(model: PersistenceModel, index: int) -> str:
    return f"{model.value}:{index}"


def parse_state_id(text: str) -> tuple[PersistenceModel, int]:
    """``prefix:120`` -> (PREFIX, 120); ``data=prefix+dirs=lazy:7`` for a model of parts."""
    name, sep, number = text.strip().rpartition(":")
    try:
        model = PersistenceModel.parse(name) if sep else None
    except ScenarioError:
        model = None
    if not sep or model is None or not (number.isascii() and number.isdigit()):
        raise ScenarioError(f"a state is MODEL:INDEX (e.g. prefix:120), not {text!r}")
    return model, int(number)


@dataclass(frozen=True)
class Selection:
    """The states of one model to check: all of them, or a seeded sample."""

    model: PersistenceModel
    total: int
    indices: tuple[int, ...]
    exhaustive: bool
    seed: int


def unrank_combination(n: int, k: int, rank: int) -> tuple[int, ...]:
    """The ``rank``-th k-subset of range(n) in itertools.combinations order."""
    out: list[int] = []
    start = 0
    for slot in range(k, 0, -1):
        for x in range(start, n):
            below = math.comb(n - x - 1, slot - 1)  # subsets whose next element is x
            if rank < below:
                out.append(x)
                start = x + 1
                break
            rank -= below
    return tuple(out)


class StateSpace:
    """Every model's states over one timeline, counted per crash point."""

    def __init__(self, timeline: Timeline, models: tuple[PersistenceModel, ...] = tuple(PRESETS.values())) -> None:
        self.timeline = timeline
        self.models = models
        self._cumulative: dict[PersistenceModel, list[int]] = {}
        for model in models:
            counts = [self._count(model, p) for p in timeline.points]
            self._cumulative[model] = list(itertools.accumulate(counts))

    def total(self, model: PersistenceModel) -> int:
        cumulative = self._cumulative[model]
        return cumulative[-1] if cumulative else 0

    def _writes(self, point: CrashPoint) -> list[int]:
        ops = self.timeline.ops
        return [p for p in point.unsynced if isinstance(ops[p], Write)]

    def _radix(self, model: PersistenceModel, point: CrashPoint) -> tuple[int, int, int]:
        """How many choices each part has at the crash point: data, appends, dirs."""
        return self._data_count(model, point), self._appends_count(model, point), self._dirs_count(model, point)

    def _count(self, model: PersistenceModel, point: CrashPoint) -> int:
        data, appends, dirs = self._radix(model, point)
        return data * appends * dirs

    def _data_count(self, model: PersistenceModel, point: CrashPoint) -> int:
        if model.data is Data.SYNCED:
            return 1
        if model.data is Data.PREFIX:
            return len(point.unsynced) + 1
        if model.data is Data.DROP:
            writes = len(self._writes(point))
            return sum(math.comb(writes, k) for k in range(1, model.drop + 1))
        write = self.timeline.in_flight(point)
        if write is None:
            return 0
        if model.data is Data.TORN:
            return max(0, sectors(write) - 1)
        return max(0, 2 ** sectors(write) - 2)

    def _appends_count(self, model: PersistenceModel, point: CrashPoint) -> int:
        if model.appends is Appends.WITH_DATA:
            return 1
        return 2 if any(p in self.timeline.grows for p in point.unsynced) else 1

    def _dirs_count(self, model: PersistenceModel, point: CrashPoint) -> int:
        if model.dirs is Dirs.AT_ONCE:
            return 1
        committed, _ = point.committed(model.dirs, model.dirsync)
        return point.logged - committed + 1

    def spec(self, model: PersistenceModel, index: int) -> StateSpec:
        """The state ``index`` of ``model`` (ScenarioError if there is none)."""
        if model not in self._cumulative:
            raise ScenarioError(f"model {model.value} was not explored")
        cumulative = self._cumulative[model]
        if not 0 <= index < self.total(model):
            raise ScenarioError(f"{format_state_id(model, index)}: {model.value} has {self.total(model)} states "
                                f"(0..{self.total(model) - 1})")
        at = bisect.bisect_right(cumulative, index)
        point = self.timeline.points[at]
        local = index - (cumulative[at - 1] if at else 0)
        n_data, n_appends, _ = self._radix(model, point)
        data_i, rest = local % n_data, local // n_data
        appends_i, dirs_i = rest % n_appends, rest // n_appends
        persisted, dropped, torn = self._data(model, point, data_i)
        entries = None if model.dirs is Dirs.AT_ONCE else point.committed(model.dirs, model.dirsync)[0] + dirs_i
        grown = model.appends if appends_i else None
        return StateSpec(model, index, point, persisted, dropped, torn, entries, grown)

    def choices(self, model: PersistenceModel, index: int) -> tuple[CrashPoint, tuple[int, int, int], tuple[int, int, int]]:
        """The state's crash point, each part's choice (data, appends, dirs) and how many each part has there."""
        cumulative = self._cumulative[model]
        at = bisect.bisect_right(cumulative, index)
        point = self.timeline.points[at]
        local = index - (cumulative[at - 1] if at else 0)
        radix = self._radix(model, point)
        data_i, rest = local % radix[0], local // radix[0]
        return point, (data_i, rest % radix[1], rest // radix[1]), radix

    def index_of(self, model: PersistenceModel, point: CrashPoint, choice: tuple[int, int, int]) -> int:
        """The index of the state of ``model`` at ``point`` with these part choices (data, appends, dirs)."""
        radix = self._radix(model, point)
        base = self._cumulative[model][point.index - 1] if point.index else 0
        return base + (choice[2] * radix[1] + choice[1]) * radix[0] + choice[0]

    def _data(self, model: PersistenceModel, point: CrashPoint,
              local: int) -> tuple[tuple[int, ...], tuple[int, ...], Torn | None]:
        """The data part's ``local``-th choice: persisted, dropped, torn."""
        volatile = point.unsynced
        if model.data is Data.SYNCED:
            return (), volatile, None
        if model.data is Data.PREFIX:
            return volatile[:local], volatile[local:], None
        if model.data is Data.DROP:
            writes = self._writes(point)
            size = 1
            while local >= math.comb(len(writes), size):
                local -= math.comb(len(writes), size)
                size += 1
            drop = {writes[i] for i in unrank_combination(len(writes), size, local)}
            return tuple(p for p in volatile if p not in drop), tuple(sorted(drop)), None
        write = self.timeline.in_flight(point)
        assert write is not None
        before = tuple(p for p in volatile if p != point.last_op)
        total = sectors(write)
        if model.data is Data.TORN:
            return before, (), Torn(point.last_op, local + 1, total)
        mask = local + 1
        return before, (), Torn(point.last_op, bin(mask).count("1"), total, mask)

    def select(self, model: PersistenceModel, budget: int, seed: int) -> Selection:
        """Every state when the model has at most ``budget``, else ``budget`` of them drawn with ``seed``."""
        return select(model, self.total(model), budget, seed)


def select(model: PersistenceModel, total: int, budget: int, seed: int) -> Selection:
    """Every one of a model's ``total`` states when there are at most ``budget``, else ``budget`` of them drawn
    with ``seed`` (the file-level and the block-level spaces alike)."""
    if total <= budget:
        return Selection(model, total, tuple(range(total)), True, seed)
    rng = random.Random(f"{seed}:{model.value}")
    if total <= sys.maxsize:
        return Selection(model, total, tuple(sorted(rng.sample(range(total), budget))), False, seed)
    chosen: set[int] = set()  # a space past a machine word (torn-any of a large write): drawn one by one
    while len(chosen) < budget:
        chosen.add(rng.randrange(total))
    return Selection(model, total, tuple(sorted(chosen)), False, seed)
