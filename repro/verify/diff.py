"""The ledger diffed against the probe's facts: what was lost, what appeared, what is damaged (stdlib only).

``diff(ledger, facts)`` says *what happened*; the oracle says whether the configuration
allowed it. It runs on the host, and in the restarted machine for the Compose verifier.

There are one or two writers: the workload, and with the cron hazard a second process
whose ledger indices start far above the first's, so the two ledgers merge into one.
Within one writer invocation order (the ledger index) is commit order, and
``loss_is_suffix`` relies on that: the writes found in the database (acknowledged or cut
off) must all precede every lost one. Two writers have no common commit order, so that
test means nothing for them; it only matters under power loss (the one crash class that
may lose the last commits), and a scenario refuses the cron hazard there.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

from repro.ledger import Ledger, Operation, OpKind, Outcome
from repro.verify.baseline import PreexistingLoss, SessionState, preexisting_loss
from repro.verify.facts import MessageRow, ProbeFacts, SessionRow
from repro.verify.health import Health, health

__all__ = ["CounterMismatch", "Health", "LostWrite", "Phantom", "PhantomKind", "Resolution", "Verification", "diff",
           "health", "loss_is_suffix"]


class PhantomKind(str, enum.Enum):
    """What kind of row no invoked operation wrote."""

    MESSAGE = "message"
    SESSION = "session"


@dataclass(frozen=True)
class LostWrite:
    """An acknowledged write whose effect is not in the database."""

    op_index: int
    kind: OpKind
    session_id: str
    detail: str


@dataclass(frozen=True)
class Phantom:
    """A row that no ok or indeterminate operation wrote."""

    kind: PhantomKind
    key: str
    session_id: str | None
    detail: str


@dataclass(frozen=True)
class Resolution:
    """An operation cut off by the crash, read back: found, not found, or undecidable (None)."""

    op_index: int
    kind: OpKind
    found: bool | None
    detail: str


@dataclass(frozen=True)
class CounterMismatch:
    """A session field that disagrees with its own rows or with every possible history."""

    session_id: str
    field: str
    recorded: str
    expected: str


@dataclass(frozen=True)
class Verification:
    """The diff of one trial's ledger with what the restarted machine read."""

    acked: int
    lost: tuple[LostWrite, ...]
    phantoms: tuple[Phantom, ...]
    indeterminate: tuple[Resolution, ...]
    mismatches: tuple[CounterMismatch, ...]
    health: Health
    loss_is_suffix: bool
    preexisting: PreexistingLoss | None = None  # a trial that started from a given database

    @property
    def lost_acked(self) -> int:
        return len(self.lost)

    @property
    def lost_preexisting(self) -> int:
        """Rows of the starting database deleted or rewritten: lost like acknowledged writes."""
        return 0 if self.preexisting is None else self.preexisting.lost

    @property
    def phantom(self) -> int:
        return len(self.phantoms)

    @property
    def corrupt(self) -> bool:
        """Physical damage, or logical damage: phantoms or counters no history explains."""
        return self.health.damaged or bool(self.phantoms) or bool(self.mismatches)

    def problems(self) -> tuple[str, ...]:
        """Every finding as a short line, damage first."""
        lines = list(self.health.problems)
        lines += [f"phantom {p.kind.value} {p.key}: {p.detail}" for p in self.phantoms]
        lines += [f"session {m.session_id} {m.field}={m.recorded}, expected {m.expected}" for m in self.mismatches]
        lines += [self.preexisting.problem] if self.preexisting is not None and self.preexisting.lost else []
        lines += [f"lost op {w.op_index} {w.kind.value}: {w.detail}" for w in self.lost]
        return tuple(lines)


def diff(ledger: Ledger, facts: ProbeFacts, start: Mapping[str, SessionState] | None = None) -> Verification:
    """Diff every acknowledged and indeterminate write with the rows the probe read, and the rows the trial
    started with (``start``: the host's record of them, repro/verify/baseline.py) with what is left of them."""
    sessions = {s.id: s for s in facts.sessions}
    by_session: dict[str, list[MessageRow]] = defaultdict(list)
    for row in facts.messages:
        by_session[str(row.session_id)].append(row)

    lost: list[LostWrite] = []
    phantoms: list[Phantom] = []
    resolutions: list[Resolution] = []
    mismatches: list[CounterMismatch] = []

    _appends(ledger, facts.messages, lost, phantoms, resolutions)
    _creates(ledger, sessions, lost, phantoms, resolutions)
    _tokens(ledger, sessions, lost, resolutions, mismatches)
    _ends(ledger, sessions, lost, resolutions, mismatches)
    for sid, session in sorted(sessions.items()):
        rows = len(by_session.get(sid, ()))
        if session.message_count is not None and session.message_count != rows:
            mismatches.append(CounterMismatch(sid, "message_count", str(session.message_count), f"{rows} (rows)"))

    acked = ledger.acked
    return Verification(
        acked=len(acked),
        lost=tuple(sorted(lost, key=lambda w: w.op_index)),
        phantoms=tuple(phantoms),
        indeterminate=tuple(sorted(resolutions, key=lambda r: r.op_index)),
        mismatches=tuple(mismatches),
        health=health(facts),
        loss_is_suffix=loss_is_suffix(acked, lost, resolutions),
        preexisting=None if facts.preexisting is None else preexisting_loss(facts.preexisting, start),
    )


def loss_is_suffix(acked: tuple[Operation, ...], lost: list[LostWrite], resolutions: list[Resolution]) -> bool:
    """Is what survived a prefix of the commit order, and what was lost only the tail after it?

    What survived is every acknowledged write not lost *and* every cut-off write read back
    as present (found=True): a cut-off write after a lost acknowledged one that is in the
    database means a later commit outlived an earlier one, which no rollback of the last
    commits explains. Cut-off writes not found, or undecidable, constrain nothing.
    """
    lost_indices = {w.op_index for w in lost}
    if not lost_indices:
        return True
    found = {op.index for op in acked if op.index not in lost_indices}
    found |= {r.op_index for r in resolutions if r.found is True}
    return not found or min(lost_indices) > max(found)


# -- per operation kind -----------------------------------------------------------------


def _sid(op: Operation) -> str:
    return str(op.args.get("session_id", ""))


def _of(ledger: Ledger, kind: OpKind, outcome: Outcome) -> list[Operation]:
    return [op for op in ledger.operations if op.kind is kind and op.outcome is outcome]


def _appends(ledger: Ledger, rows: tuple[MessageRow, ...], lost: list[LostWrite],
             phantoms: list[Phantom], resolutions: list[Resolution]) -> None:
    by_id = {r.id: r for r in rows}
    claimed: set[int] = set()
    pending: list[Operation] = []  # writers whose row id we do not know
    for op in _of(ledger, OpKind.APPEND_MESSAGE, Outcome.OK):
        msg_id = op.result.get("id")
        if not isinstance(msg_id, int) or isinstance(msg_id, bool):
            pending.append(op)
            continue
        row = by_id.get(msg_id)
        if row is not None and row.sha == op.args.get("sha") and row.session_id == _sid(op):
            claimed.add(row.id)
        else:
            why = "missing" if row is None else "holds other content or session"
            lost.append(LostWrite(op.index, op.kind, _sid(op), f"message {msg_id} {why}"))
    pending += _of(ledger, OpKind.APPEND_MESSAGE, Outcome.INFO)
    free: dict[tuple[str | None, str], list[int]] = defaultdict(list)
    for row in rows:
        if row.id not in claimed:
            free[(row.session_id, row.sha)].append(row.id)
    for op in sorted(pending, key=lambda o: o.index):
        ids = free.get((_sid(op), str(op.args.get("sha"))))
        found_id = ids.pop(0) if ids else None
        if found_id is not None:
            claimed.add(found_id)
        if op.outcome is Outcome.INFO:
            detail = f"message {found_id}" if found_id is not None else "no matching row"
            resolutions.append(Resolution(op.index, op.kind, found_id is not None, detail))
        elif found_id is None:
            lost.append(LostWrite(op.index, op.kind, _sid(op), "no row with its content (store returned no id)"))
    failed = {(_sid(op), str(op.args.get("sha"))): op.index for op in _of(ledger, OpKind.APPEND_MESSAGE, Outcome.FAIL)}
    for row in rows:
        if row.id in claimed:
            continue
        failed_op = failed.get((str(row.session_id), row.sha))
        detail = f"matches failed op {failed_op}" if failed_op is not None else "no invoked append wrote it"
        phantoms.append(Phantom(PhantomKind.MESSAGE, str(row.id), row.session_id, detail))


def _creates(ledger: Ledger, sessions: dict[str, SessionRow], lost: list[LostWrite],
             phantoms: list[Phantom], resolutions: list[Resolution]) -> None:
    ok = _of(ledger, OpKind.CREATE_SESSION, Outcome.OK)
    info = _of(ledger, OpKind.CREATE_SESSION, Outcome.INFO)
    for op in ok:
        if _sid(op) not in sessions:
            lost.append(LostWrite(op.index, op.kind, _sid(op), "session missing"))
    ok_ids = {_sid(op) for op in ok}
    for op in info:
        exists = _sid(op) in sessions
        found = None if exists and _sid(op) in ok_ids else exists
        resolutions.append(Resolution(op.index, op.kind, found, "session present" if exists else "session absent"))
    written = ok_ids | {_sid(op) for op in info}
    failed = {_sid(op): op.index for op in _of(ledger, OpKind.CREATE_SESSION, Outcome.FAIL)}
    for sid in sorted(set(sessions) - written):
        detail = f"matches failed op {failed[sid]}" if sid in failed else "no invoked create_session wrote it"
        phantoms.append(Phantom(PhantomKind.SESSION, sid, sid, detail))


_TOKEN_FIELDS = ("input_tokens", "output_tokens")


def _inc(op: Operation, name: str) -> int:
    value = op.args.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _tokens(ledger: Ledger, sessions: dict[str, SessionRow], lost: list[LostWrite],
            resolutions: list[Resolution], mismatches: list[CounterMismatch]) -> None:
    ok: dict[str, list[Operation]] = defaultdict(list)
    info: dict[str, list[Operation]] = defaultdict(list)
    for op in _of(ledger, OpKind.UPDATE_TOKENS, Outcome.OK):
        ok[_sid(op)].append(op)
    for op in _of(ledger, OpKind.UPDATE_TOKENS, Outcome.INFO):
        info[_sid(op)].append(op)
    for sid in sorted(set(ok) | set(info)):
        row = sessions.get(sid)
        acked_ops, open_ops = ok.get(sid, []), info.get(sid, [])
        if row is None:
            lost += [LostWrite(op.index, op.kind, sid, "session missing") for op in acked_ops]
            resolutions += [Resolution(op.index, op.kind, False, "session absent") for op in open_ops]
            continue
        lost_here: set[int] = set()
        for name in _TOKEN_FIELDS:
            actual = getattr(row, name)
            if actual is None:
                continue
            acked_sum = sum(_inc(op, name) for op in acked_ops)
            ceiling = acked_sum + sum(_inc(op, name) for op in open_ops)
            if actual < acked_sum:
                lost_here |= _tail_covering(acked_ops, name, acked_sum - actual)
            elif actual > ceiling:
                mismatches.append(CounterMismatch(sid, name, str(actual), f"<= {ceiling} (acked + cut off)"))
        for op in acked_ops:
            if op.index in lost_here:
                lost.append(LostWrite(op.index, op.kind, sid, _token_detail(row, acked_ops)))
        resolutions += _resolve_tokens(row, acked_ops, open_ops)


def _tail_covering(ops: list[Operation], name: str, deficit: int) -> set[int]:
    """The latest acked increments that together cover the deficit (the kindest reading: a rolled-back tail)."""
    out: set[int] = set()
    for op in sorted(ops, key=lambda o: o.index, reverse=True):
        if deficit <= 0:
            break
        if _inc(op, name) > 0:
            out.add(op.index)
            deficit -= _inc(op, name)
    return out


def _token_detail(row: SessionRow, acked_ops: list[Operation]) -> str:
    want = [sum(_inc(op, n) for op in acked_ops) for n in _TOKEN_FIELDS]
    return f"tokens in={row.input_tokens} out={row.output_tokens} < acked in={want[0]} out={want[1]}"


def _resolve_tokens(row: SessionRow, acked_ops: list[Operation], open_ops: list[Operation]) -> list[Resolution]:
    if len(open_ops) != 1:
        return [Resolution(op.index, op.kind, None, "several cut-off increments") for op in open_ops]
    op = open_ops[0]
    actual = (row.input_tokens, row.output_tokens)
    base = tuple(sum(_inc(o, n) for o in acked_ops) for n in _TOKEN_FIELDS)
    applied = tuple(b + _inc(op, n) for b, n in zip(base, _TOKEN_FIELDS))
    if applied == base:
        return [Resolution(op.index, op.kind, None, "zero increment")]
    if actual == applied:
        return [Resolution(op.index, op.kind, True, "increment present")]
    if actual == base:
        return [Resolution(op.index, op.kind, False, "increment absent")]
    return [Resolution(op.index, op.kind, None, f"tokens {actual} match neither {base} nor {applied}")]


def _ends(ledger: Ledger, sessions: dict[str, SessionRow], lost: list[LostWrite],
          resolutions: list[Resolution], mismatches: list[CounterMismatch]) -> None:
    ok = _of(ledger, OpKind.END_SESSION, Outcome.OK)
    info = _of(ledger, OpKind.END_SESSION, Outcome.INFO)
    for op in ok:
        row = sessions.get(_sid(op))
        if row is None or row.end_reason is None:
            lost.append(LostWrite(op.index, op.kind, _sid(op),
                                  "session missing" if row is None else "end_reason missing"))
    ok_reasons: dict[str, set[str]] = defaultdict(set)
    for op in ok:
        ok_reasons[_sid(op)].add(str(op.args.get("end_reason")))
    for op in info:
        row = sessions.get(_sid(op))
        reason = str(op.args.get("end_reason"))
        if row is None or row.end_reason is None:
            resolutions.append(Resolution(op.index, op.kind, False, "end_reason absent"))
        elif row.end_reason == reason and reason not in ok_reasons.get(_sid(op), set()):
            resolutions.append(Resolution(op.index, op.kind, True, f"end_reason {reason!r}"))
        else:
            resolutions.append(Resolution(op.index, op.kind, None, f"end_reason {row.end_reason!r}"))
    invoked: dict[str, set[str]] = defaultdict(set)
    for op in ok + info:
        invoked[_sid(op)].add(str(op.args.get("end_reason")))
    for sid, row in sorted(sessions.items()):
        if row.end_reason is not None and row.end_reason not in invoked.get(sid, set()):
            mismatches.append(CounterMismatch(sid, "end_reason", repr(row.end_reason),
                                              "one of " + repr(sorted(invoked.get(sid, set())))))
