"""Findings as orderings (issue #20 item 4): each finding shrunk to the fewest operations whose persistence, or
lack of it, produces it, said as "Y must persist before X", and states grouped by that sentence.

A finding is shrunk along its own model's axis at its own crash point, the other parts' choices kept:
under ``data=prefix`` the shortest persisted prefix that still gives the same verdict names X, the
operation whose persistence is needed (its last), and the shortest longer prefix that no longer does
names Y, the earliest operation whose persistence repairs it; under ``dirs`` not at once the most entry
changes durable with the same verdict name the first missing one (Y), X being the first data operation
made durable after it; under ``data=drop-K`` a single dropped write that still gives the verdict is Y.
Other states (synced-only, torn) are not shrunk: their sentence is what the state is. Allowed losses
(WAL + NORMAL's tail) are said too, unshrunk: "acknowledged append_message lives only in the un-synced
write state.db-wal". The sibling
states are checked as any state is (the model and an index), in the sandbox. Only a seeded choice of
at most ``limit`` findings per model is shrunk; the sentence groups them without sequence numbers
(files and operation kinds; the example adds sequence numbers and the ledger operation in flight), so states of one cause read as one finding.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from repro.explore.check import StateResult
from repro.explore.models import Data, Dirs, PersistenceModel
from repro.explore.space import StateSpace, StateSpec
from repro.explore.timeline import CrashPoint, Timeline
from repro.lossyfs.trace import Fsync, Rename, Truncate, Write
from repro.ledger import Ledger
from repro.oracle.verdicts import Verdict

MAX_SIBLINGS = 64
Check = Callable[[list[tuple[str, int]]], list[StateResult]]


@dataclass(frozen=True)
class Ordering:
    """One cause: the sentence, how many of the shrunk findings it explains, and the first of them."""

    model: str
    sentence: str  # without sequence numbers: what groups states
    states: int
    example: str  # a state id
    detail: str  # the example's sentence, with its operations' sequence numbers


def is_finding(result: StateResult) -> bool:
    return result.verdict in (Verdict.CORRUPT, Verdict.LOST_ACKED) or bool(result.beyond_sync)


def is_allowed_loss(result: StateResult) -> bool:
    """A loss the configuration allows (WAL + NORMAL's tail): notable, said but not shrunk."""
    return result.verdict is Verdict.EXPECTED_LOSS and bool(result.lost) and not result.beyond_sync


class Explainer:
    """Shrinks findings of one exploration and words them."""

    def __init__(self, space: StateSpace, ledger: Ledger) -> None:
        self.space = space
        self.timeline: Timeline = space.timeline
        self.kinds = {op.index: op.kind.value for op in ledger.operations}

    def siblings(self, spec: StateSpec) -> list[int]:
        """The states along the finding's axis at its crash point (itself included), nearest first."""
        point, (data_i, app_i, dirs_i), radix = self.space.choices(spec.model, spec.index)
        if spec.model.data is Data.PREFIX or spec.model.dirs is not Dirs.AT_ONCE:
            axes: list[tuple[list[tuple[int, int, int]], int]] = []
            if spec.model.data is Data.PREFIX:
                axes.append(([(d, app_i, dirs_i) for d in range(radix[0])], data_i))
            if spec.model.dirs is not Dirs.AT_ONCE:  # with both: the entries axis at the state's own prefix
                axes.append(([(data_i, app_i, e) for e in range(radix[2])], dirs_i))
            found: set[int] = set()
            for axis, here in axes:
                near = sorted(range(len(axis)), key=lambda n: abs(n - here))[:MAX_SIBLINGS]
                found.update(self.space.index_of(spec.model, point, axis[n]) for n in near)
            return sorted(found)
        if spec.model.data is Data.DROP:
            writes = [p for p in point.unsynced if isinstance(self.timeline.ops[p], Write)]
            return [spec.index] + [self.space.index_of(spec.model, point, (writes.index(p), app_i, dirs_i))
                                   for p in spec.dropped if len(spec.dropped) > 1]
        return [spec.index]

    def op(self, pos: int | None, numbered: bool) -> str:
        """An operation in a sentence: its kind and file; numbered, its sequence number and the ledger operation
        in flight when it happened too (the grouped sentence leaves both out)."""
        if pos is None:
            return "the crash"
        op = self.timeline.ops[pos]
        kind = "truncate" if isinstance(op, Truncate) else op.OP
        if not numbered:
            return f"{kind} {self.path(pos)}"
        ledger = self.kinds.get(self.timeline.ack_before(pos) + 1, "no ledger operation")
        return f"{kind} {self.path(pos)} (seq {op.seq}, {ledger})"

    def path(self, pos: int) -> str:
        """The file an operation names (a rename: where it goes)."""
        op = self.timeline.ops[pos]
        return str(op.dst if isinstance(op, Rename) else getattr(op, "path", "?"))

    def sentence(self, spec: StateSpec, verdicts: dict[int, Verdict], verdict: Verdict,
                 numbered: bool) -> str:
        """What the shrunk finding says (see the module docstring)."""
        point, (data_i, app_i, dirs_i), radix = self.space.choices(spec.model, spec.index)
        same = lambda choice: verdicts.get(self.space.index_of(spec.model, point, choice)) is verdict  # noqa: E731
        what = "corrupt" if verdict is Verdict.CORRUPT else "acknowledged writes lost"
        if spec.model.data is Data.PREFIX:
            low = data_i
            while low > 0 and same((low - 1, app_i, dirs_i)):
                low -= 1
            if low == 0 and spec.model.dirs is not Dirs.AT_ONCE:
                return self._entries(spec, same, what, numbered)  # no un-synced data needed: the entries' doing
            if low == 0:
                return f"{what} with no un-synced operation persisted: a sync is missing before {self.op(point.last_op, numbered)}"
            x = point.unsynced[low - 1]
            high = next((d for d in range(data_i + 1, radix[0]) if not same((d, app_i, dirs_i))), None)
            y = point.unsynced[high - 1] if high is not None else None
            if y is None:
                return f"{what}: {self.op(x, numbered)} persisted before its fsync, and nothing later repairs it"
            return f"{what}: {self.op(y, numbered)} must persist before {self.op(x, numbered)}"
        if spec.model.dirs is not Dirs.AT_ONCE:
            return self._entries(spec, same, what, numbered)
        if spec.model.data is Data.DROP:
            alone = [p for p in spec.dropped if len(spec.dropped) == 1 or same(
                (self._writes(point).index(p), app_i, dirs_i))]
            y = alone[0] if alone else spec.dropped[0]
            after = next((p for p in spec.persisted if p > y), None)
            return f"{what}: {self.op(y, numbered)} must persist before {self.op(after, numbered)}"
        if spec.torn is not None:
            return f"{what}: {self.op(spec.torn.pos, numbered)} must reach the disk whole"
        return f"{what} with only synced data: a sync is missing before {self.op(point.last_op, numbered)}"

    def _entries(self, spec: StateSpec, same: Callable[[tuple[int, int, int]], bool], what: str,
                 numbered: bool) -> str:
        """Along the entries axis: the first entry change whose absence gives the verdict, and what of another
        file was made durable after it."""
        point, (data_i, app_i, dirs_i), radix = self.space.choices(spec.model, spec.index)
        high = dirs_i
        while high + 1 < radix[2] and same((data_i, app_i, high + 1)):
            high += 1
        committed = point.committed(spec.model.dirs, spec.model.dirsync)[0]
        if high + 1 >= radix[2]:
            return f"{what} with every directory entry change durable"
        entry = self.timeline.entry_log[committed + high]
        named = self.path(entry)  # the entry's file: what is made durable of another file matters
        later = next((p for k in range(entry + 1, point.pos) for p in self.timeline.durable_at.get(k, ())
                      if isinstance(self.timeline.ops[k], Fsync)
                      and getattr(self.timeline.ops[p], "path", "") != named), None)
        return f"{what}: {self.op(entry, numbered)} must persist before {self.op(later, numbered)}"

    def loss(self, spec: StateSpec, lost: Sequence[int], numbered: bool) -> str:
        """An allowed loss in words (no shrinking: the state says it): the first lost acknowledged operation and
        the un-synced writes of it the crash dropped."""
        first = min(lost)
        dropped = [p for p in spec.dropped if self.timeline.ack_before(p) + 1 == first]
        kind = self.kinds.get(first, "operation")
        which = f"{kind} {first}" if numbered else kind
        if not dropped and spec.entries is not None and spec.entries < spec.point.logged:
            missing = self.timeline.entry_log[spec.entries]
            return f"allowed loss: acknowledged {which} rolled back, {self.op(missing, numbered)} not durable"
        if not dropped:
            return f"allowed loss: acknowledged {which} not durable at the crash"
        return f"allowed loss: acknowledged {which} lives only in the un-synced {self.op(dropped[0], numbered)}"

    def _writes(self, point: CrashPoint) -> list[int]:
        return [p for p in point.unsynced if isinstance(self.timeline.ops[p], Write)]


def explain(space: StateSpace, ledger: Ledger, results: Sequence[StateResult], check: Check, *, limit: int,
            seed: int) -> tuple[Ordering, ...]:
    """Shrink up to ``limit`` findings per model (drawn with ``seed``), check their siblings with ``check``,
    and group them by sentence, most states first."""
    explainer = Explainer(space, ledger)
    chosen: list[StateResult] = []
    for model in space.models:
        for kind, pick in (("findings", is_finding), ("losses", is_allowed_loss)):
            found = [r for r in results if r.model == model and pick(r)]
            rng = random.Random(f"{seed}:orderings:{kind}:{model.value}")
            chosen += found if len(found) <= limit else sorted(rng.sample(found, limit), key=lambda r: r.index)
    if not chosen:
        return ()
    known = {(r.model.value, r.index): r.verdict for r in results}
    wanted = sorted({(r.model.value, i) for r in chosen if is_finding(r)
                     for i in explainer.siblings(space.spec(_file(r), r.index))} - set(known))
    for result in check(wanted) if wanted else []:
        known[(result.model.value, result.index)] = result.verdict
    groups: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], tuple[str, str]] = {}
    for r in chosen:
        spec = space.spec(_file(r), r.index)
        if is_allowed_loss(r):
            key = (r.model.value, explainer.loss(spec, r.lost, numbered=False))
            said = explainer.loss(spec, r.lost, numbered=True)
        else:
            verdicts = {i: v for (m, i), v in known.items() if m == r.model.value}
            key = (r.model.value, explainer.sentence(spec, verdicts, r.verdict, numbered=False))
            said = explainer.sentence(spec, verdicts, r.verdict, numbered=True)
        groups[key] += 1
        first.setdefault(key, (spec.state_id, said))
    return tuple(Ordering(model, sentence, n, *first[(model, sentence)])
                 for (model, sentence), n in groups.most_common())


def _file(result: StateResult) -> PersistenceModel:
    """A result's model, which here is always a file-level one (block-level states are not shrunk)."""
    assert isinstance(result.model, PersistenceModel), result.model
    return result.model
