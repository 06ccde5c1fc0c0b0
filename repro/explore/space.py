"""The crash states of a trace under each persistence model, numbered: (trace, model, index) is one exact state.

States are numbered crash point by crash point, and within a crash point in a fixed order
(models.py says which states each model has), so an index always names the same state: the
report's first violation can be materialised again (``--materialize MODEL:INDEX``), and a
sample is a seeded choice of indices.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

from repro.errors import ScenarioError
from repro.explore.models import PersistenceModel
from repro.explore.timeline import CrashPoint, Timeline, sectors
from repro.lossyfs.trace import Write


@dataclass(frozen=True)
class Torn:
    """A write that reached the disk only as its first ``kept`` of ``total`` sectors."""

    pos: int
    kept: int
    total: int


@dataclass(frozen=True)
class StateSpec:
    """One crash state: the crash point and which of its un-synced operations reached the disk."""

    model: PersistenceModel
    index: int
    point: CrashPoint
    persisted: tuple[int, ...]  # un-synced data operations that reached the disk (trace positions)
    dropped: tuple[int, ...]  # un-synced data operations that did not (a torn one is neither)
    torn: Torn | None = None
    entries: int | None = None  # lazy directories: entry changes durable (None: every one so far)

    @property
    def state_id(self) -> str:
        return format_state_id(self.model, self.index)


def format_state_id(model: PersistenceModel, index: int) -> str:
    return f"{model.value}:{index}"


def parse_state_id(text: str) -> tuple[PersistenceModel, int]:
    """``prefix:120`` -> (PREFIX, 120)."""
    name, sep, number = text.strip().rpartition(":")
    try:
        model = PersistenceModel(name)
    except ValueError:
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


class StateSpace:
    """Every model's states over one timeline, counted per crash point."""

    def __init__(self, timeline: Timeline, models: tuple[PersistenceModel, ...] = tuple(PersistenceModel)) -> None:
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

    def _count(self, model: PersistenceModel, point: CrashPoint) -> int:
        if model is PersistenceModel.SYNCED_ONLY:
            return 1
        if model is PersistenceModel.PREFIX:
            return len(point.unsynced) + 1
        if model is PersistenceModel.REORDER_ONE:
            return len(self._writes(point))
        if model is PersistenceModel.TORN:
            write = self.timeline.in_flight(point)
            return max(0, sectors(write) - 1) if write is not None else 0
        return len(point.pending) + 1

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
        volatile = point.unsynced
        if model is PersistenceModel.SYNCED_ONLY:
            return StateSpec(model, index, point, (), volatile)
        if model is PersistenceModel.PREFIX:
            return StateSpec(model, index, point, volatile[:local], volatile[local:])
        if model is PersistenceModel.REORDER_ONE:
            drop = self._writes(point)[local]
            return StateSpec(model, index, point, tuple(p for p in volatile if p != drop), (drop,))
        if model is PersistenceModel.TORN:
            write = self.timeline.in_flight(point)
            assert write is not None
            before = tuple(p for p in volatile if p != point.last_op)
            return StateSpec(model, index, point, before, (), Torn(point.last_op, local + 1, sectors(write)))
        return StateSpec(model, index, point, (), volatile, entries=point.committed_entries + local)

    def select(self, model: PersistenceModel, budget: int, seed: int) -> Selection:
        """Every state when the model has at most ``budget``, else ``budget`` of them drawn with ``seed``."""
        total = self.total(model)
        if total <= budget:
            return Selection(model, total, tuple(range(total)), True, seed)
        rng = random.Random(f"{seed}:{model.value}")
        return Selection(model, total, tuple(sorted(rng.sample(range(total), budget))), False, seed)
