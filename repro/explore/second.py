"""Crash during recovery, as data: which crash states are reopened, where a reopen's states are judged, and
what makes one of them worse than the state whose reopen it interrupted.

A *first-level* state is a crash state of the recorded workload. Reopening it is work of its own -- SQLite
rolls back a hot journal or replays the WAL, the store repairs what it finds, the last close checkpoints --
and a power cut can interrupt that too. The reopen is recorded on lossyfs (repro/explore/reopen.py) with the
first-level state as the trace's initial files; the crash states of that trace are the *second level*.

A second-level state is judged where the first-level state was: the same ledger, the acks around the same
crash point, the same sync horizons and lazy entries (``JudgedAt``, written to the reopen's trace directory
as first.json), because no acknowledged write happened in between. It is *worse* when it breaks a promise
the first-level state kept, is corrupt where that was not, or lacks a message row the first-level state
held (``StateResult.regressed``): a crash in the middle of recovery must never cost what the crash before
it left.
"""

from __future__ import annotations

import json
import pathlib
import random
from dataclasses import dataclass
from typing import Callable, Sequence

from repro.errors import ScenarioError
from repro.explore.check import JudgedAt, StateResult
from repro.oracle.verdicts import Verdict

FIRST_FILE = "first.json"
DEFAULT_REOPENS = 8


FINDING = "finding"  # corrupt, or acknowledged writes lost
ALLOWED_LOSS = "allowed loss"  # acknowledged writes lost as the configuration allows
SAMPLED = "sampled"  # kept its promise with nothing lost: a seeded sample fills the rest


@dataclass(frozen=True)
class FirstLevel:
    """The state whose reopen a trace records: its id, why it was chosen, where it is judged, its verdict."""

    state: str  # as reports print it: MODEL:INDEX@<shape>
    reason: str  # FINDING, ALLOWED_LOSS or SAMPLED
    at: JudgedAt
    verdict: str
    kind: str | None  # the promise it broke (ViolationKind value), if any
    lost: tuple[int, ...]

    def to_json(self) -> str:
        at = self.at
        return json.dumps({"state": self.state, "reason": self.reason, "verdict": self.verdict, "kind": self.kind,
                           "lost": list(self.lost),
                           "at": {"acked": at.acked, "next_ack": at.next_ack, "wal_sync_ack": at.wal_sync_ack,
                                  "dir_sync_ack": at.dir_sync_ack, "lazy_dirs": at.lazy_dirs}}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FirstLevel:
        try:
            obj = json.loads(text)
            at = obj["at"]
            nxt = at["next_ack"]
            return cls(state=str(obj["state"]), reason=str(obj["reason"]), verdict=str(obj["verdict"]),
                       kind=None if obj["kind"] is None else str(obj["kind"]),
                       lost=tuple(int(i) for i in obj["lost"]),
                       at=JudgedAt(int(at["acked"]), None if nxt is None else int(nxt), int(at["wal_sync_ack"]),
                                   int(at["dir_sync_ack"]), bool(at["lazy_dirs"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ScenarioError(f"{FIRST_FILE}: not a first-level state: {type(exc).__name__}: {exc}") from None

    @classmethod
    def of(cls, result: StateResult, state: str, reason: str, at: JudgedAt) -> FirstLevel:
        return cls(state, reason, at, result.verdict.value, result.kind.value if result.kind else None, result.lost)


def read_first(trace_dir: pathlib.Path) -> FirstLevel | None:
    """The first-level state a reopen's trace directory starts from; None for a workload's own trace."""
    path = trace_dir / FIRST_FILE
    if not path.is_file():
        return None
    try:
        return FirstLevel.from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror}") from None


def reason_for(result: StateResult) -> str:
    if result.verdict in (Verdict.CORRUPT, Verdict.LOST_ACKED) or result.kind is not None:
        return FINDING
    return ALLOWED_LOSS if result.lost else SAMPLED


def choose(results: Sequence[StateResult], count: int, seed: int) -> list[tuple[StateResult, str]]:
    """Up to ``count`` first-level states to reopen: findings first, then allowed losses, then a seeded sample of
    the rest -- each group drawn with ``seed`` when it has more than the places left. States a lab error left
    unjudged are never chosen."""
    rng = random.Random(f"{seed}:reopen")
    groups: dict[str, list[StateResult]] = {FINDING: [], ALLOWED_LOSS: [], SAMPLED: []}
    for r in sorted(results, key=lambda r: (r.model.value, r.index)):
        if r.verdict is not Verdict.ERROR:
            groups[reason_for(r)].append(r)
    chosen: list[tuple[StateResult, str]] = []
    for reason in (FINDING, ALLOWED_LOSS, SAMPLED):
        left = count - len(chosen)
        if left <= 0:
            break
        group = groups[reason]
        picked = group if len(group) <= left else [group[i] for i in sorted(rng.sample(range(len(group)), left))]
        chosen += [(r, reason) for r in picked]
    return chosen


def worse(first: FirstLevel, result: StateResult) -> str | None:
    """How a second-level state is worse than its first-level state (None: it is not)."""
    if result.verdict is Verdict.ERROR:
        return None  # a lab error, counted apart
    if result.regressed:
        shown = ", ".join(map(str, result.regressed[:5])) + (" ..." if len(result.regressed) > 5 else "")
        return f"lost {len(result.regressed)} message row(s) the interrupted state held (ids {shown})"
    if result.kind is not None and first.kind is None:
        return f"{result.kind.value} where the interrupted state kept its promise ({first.verdict}): {result.reason}"
    if result.verdict is Verdict.CORRUPT and first.verdict != Verdict.CORRUPT.value:
        return f"corrupt where the interrupted state was {first.verdict}: {result.reason}"
    return None


@dataclass(frozen=True)
class SecondLevel:
    """One first-level state's reopen: its trace, the states of a crash during it, and those that made it worse."""

    first: FirstLevel
    trace: str  # the reopen's trace directory
    shape: str
    ops: int  # operations the reopen sent to the filesystem
    crash_points: int
    states_total: int
    checked: int
    verdicts: dict[str, int]
    worse: tuple[tuple[str, str], ...]  # (state ref, how it is worse)
    completed_worse: str | None  # the completed reopen (its last crash point) is itself worse: the store's doing
    errors: int
    seconds: float  # checking the reopen's states (the sandbox's start included)
    record_seconds: float = 0.0  # recording the reopen: a machine's start, the store's reopen, its stop
    completed: str | None = None  # the completed reopen's verdict (its last crash point: no second crash)
    error: str | None = None  # the reopen could not be recorded or checked (the lab's failure, or the store hung)

    @classmethod
    def failed(cls, first: FirstLevel, trace: str, error: str, seconds: float) -> SecondLevel:
        """A reopen that could not be recorded or checked: an error of this level, never a verdict."""
        return cls(first=first, trace=trace, shape="", ops=0, crash_points=0, states_total=0, checked=0,
                   verdicts={}, worse=(), completed_worse=None, errors=1, seconds=0.0, record_seconds=seconds,
                   error=error)

    @property
    def made_worse(self) -> int:
        return len(self.worse)

    @property
    def is_worse(self) -> bool:
        """A state of the reopen, or the completed reopen itself, is worse than the state it reopened."""
        return bool(self.worse) or self.completed_worse is not None

    @property
    def rate(self) -> float:
        """Second-level states checked per second (each costs one materialisation more than a first-level one:
        the reopen's initial files are the first-level state)."""
        return self.checked / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        f = self.first
        return {"first_state": f.state, "chosen_as": f.reason, "first_verdict": f.verdict, "first_kind": f.kind,
                "first_lost": list(f.lost), "trace": self.trace, "shape": self.shape, "ops": self.ops,
                "crash_points": self.crash_points, "states_total": self.states_total, "checked": self.checked,
                "verdicts": self.verdicts, "made_worse": self.made_worse,
                "worse": [{"state": s, "how": how,
                           "materialize": f"repro explore {self.trace} --materialize {s} --out DIR"}
                          for s, how in self.worse],
                "completed_reopen": self.completed, "completed_reopen_worse": self.completed_worse,
                "errors": self.errors, "error": self.error,
                "seconds": round(self.seconds, 3), "states_per_second": round(self.rate, 1),
                "record_seconds": round(self.record_seconds, 3)}

    def sentence(self) -> str:
        if self.error is not None:
            return f"the reopen could not be explored: {self.error}"
        if self.errors:
            return f"{self.errors} state(s) could not be judged (a lab error)"
        if not self.worse:
            if self.completed_worse is not None:
                return f"the completed reopen, with no crash, {self.completed_worse}: the store's own doing"
            return f"no crash during its reopen made it worse ({self.checked} of {self.states_total} states checked)"
        state, how = self.worse[0]
        own = (" -- the completed reopen does it too, with no crash: the store's own doing"
               if self.completed_worse is not None else "")
        return f"{self.made_worse} of {self.checked} states worse; e.g. {state}: {how}{own}"


def summarize(first: FirstLevel, results: Sequence[StateResult], completed: StateResult | None,
              chosen: set[tuple[str, int]], state_id: Callable[[StateResult], str],
              ) -> tuple[dict[str, int], tuple[tuple[str, str], ...], str | None, str | None, int]:
    """A reopen's results as its level reports them: the verdicts and worse states of those ``chosen`` (the
    selection), the completed reopen's verdict and how it is worse (``completed``: its last crash point,
    always checked, chosen or not), and the states a lab error left unjudged."""
    mine = [r for r in results if (r.model.value, r.index) in chosen]
    verdicts: dict[str, int] = {}
    for r in mine:
        verdicts[r.verdict.value] = verdicts.get(r.verdict.value, 0) + 1
    found = tuple((state_id(r), how) for r in mine if (how := worse(first, r)) is not None)
    errors = sum(1 for r in results if r.verdict is Verdict.ERROR)
    if completed is None:
        return verdicts, found, None, None, errors
    return verdicts, found, completed.verdict.value, worse(first, completed), errors
