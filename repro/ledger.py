"""The Jepsen-style operation ledger the workload writes and the verifier reads back.

The workload runs inside the machine under test and writes one record per event on its
evidence channel (repro/channel.py), which s6 hands to the container runtime: the ledger
therefore survives the crash of the machine, never lives on the disk under test, and never
shares a descriptor with what the store prints. Records, each framed with its source and
sequence number (repro/protocol.py)::

    @gateway/3/78 LEDGER {"i": 17, "t": "invoke", "op": "append_message", "args": {...}}
    @gateway/4/42 LEDGER {"i": 17, "t": "ok", "result": {"id": 42}}
    LEDGER {"i": 18, "t": "fail", "err": "DiskFullError: database or disk is full"}
    LEDGER {"i": 19, "t": "info", "err": "OperationalError: disk I/O error"}
    READY {"journal_mode": "wal", "synchronous": 1, ...}
    EVENT {"kind": "...", ...}

An ``ok`` record is written only after the store call returned, so an ``ok`` means the
commit was acknowledged. An ``invoke`` with neither ``ok`` nor ``fail`` is indeterminate
(Jepsen's ``info``): cut off by the crash, its effect is unknown until read back. The
workload writes ``info`` itself when a call raised an error that does not prove the write
was rolled back (an I/O error in the middle of a commit). Whether the records are all there
is checked before they are used (repro/verify/crosscheck.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from repro.errors import MachineOutputError
from repro.protocol import Line, ProtocolError, Tag, format_line, frame, parse_line


class OpKind(str, enum.Enum):
    """The store operations the workload performs."""

    CREATE_SESSION = "create_session"
    APPEND_MESSAGE = "append_message"
    UPDATE_TOKENS = "update_token_counts"
    END_SESSION = "end_session"
    SEARCH = "search_messages"

    @classmethod
    def from_mix_word(cls, word: str) -> OpKind | None:
        """The operation a ``--mix`` word names: its own name (append_message=80,...), or the short word
        earlier labs used (append=80,...; still accepted); None if neither."""
        try:
            return cls(SHORT_MIX_WORDS.get(word, word))
        except ValueError:
            return None


# The short --mix words of earlier labs, still accepted: each operation's own name is the word now.
SHORT_MIX_WORDS = {"create": OpKind.CREATE_SESSION.value, "append": OpKind.APPEND_MESSAGE.value,
                   "tokens": OpKind.UPDATE_TOKENS.value, "end": OpKind.END_SESSION.value,
                   "search": OpKind.SEARCH.value}


class Outcome(str, enum.Enum):
    """Jepsen's completion states: ok, fail, or unknown (info) when cut off."""

    OK = "ok"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True)
class Operation:
    """One store call as seen by the workload, with its completion if any.

    ``args`` holds plain JSON values:

    - create_session: session_id, source, model
    - append_message: session_id, role, sha (sha256 hex of the content), length,
      tool_calls (bool); an ok result has ``id`` (the message id the store returned)
    - update_token_counts: session_id, input_tokens, output_tokens (increments)
    - end_session: session_id, end_reason
    - search_messages: query; an ok result has ``hits``
    """

    index: int
    kind: OpKind
    args: Mapping[str, object]
    outcome: Outcome
    result: Mapping[str, object] = field(default_factory=dict)
    error: str = ""

    @property
    def acked(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def is_write(self) -> bool:
        return self.kind is not OpKind.SEARCH


@dataclass(frozen=True)
class Ledger:
    """Every operation of one trial, in invocation order, plus the workload's READY facts."""

    operations: tuple[Operation, ...]
    ready: Mapping[str, object] = field(default_factory=dict)
    events: tuple[Mapping[str, object], ...] = ()

    @property
    def acked(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.acked and op.is_write)

    @property
    def indeterminate(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.outcome is Outcome.INFO and op.is_write)

    @property
    def failed(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.outcome is Outcome.FAIL)


class LedgerError(MachineOutputError):
    """A ledger line that cannot be parsed (the lab's fault, not the store's)."""


def encode(record: Mapping[str, object], seq: int = 1, source: str = "gateway") -> str:
    """One framed ledger record (without newline), as the workload writes it."""
    return frame(source, seq, format_line(Tag.LEDGER, record))


def parse_lines(lines: Iterable[str]) -> Ledger:
    """Build a Ledger from a machine's log (repro.protocol); other lines are ignored.

    Only framed records count. A record cut short by the crash is left out here: the operation
    it belonged to stays indeterminate. That it was its source's last record, and that no other
    record is missing, is for repro/verify/crosscheck.py to say before the ledger is used.
    """
    invokes: dict[int, dict[str, object]] = {}
    completions: dict[int, dict[str, object]] = {}
    ready: dict[str, object] = {}
    events: list[dict[str, object]] = []
    for raw in lines:
        try:
            line = parse_line(raw)
        except ProtocolError as exc:
            raise LedgerError(str(exc)) from exc
        if line is None:
            continue
        record = dict(line.payload)
        if line.tag is Tag.READY:
            ready = record
        elif line.tag is Tag.EVENT:
            events.append(record)
        elif line.tag is Tag.LEDGER:
            _add(record, invokes, completions)
    operations = []
    for index in sorted(invokes):
        inv = invokes[index]
        done = completions.get(index)
        outcome = Outcome.INFO if done is None else Outcome(str(done["t"]))
        result = done.get("result", {}) if done else {}
        try:
            kind = OpKind(str(inv["op"]))
        except (KeyError, ValueError):
            raise LedgerError(f"invoke {index} names no known operation: {inv.get('op')!r}") from None
        operations.append(
            Operation(
                index=index,
                kind=kind,
                args=_mapping(inv.get("args", {})),
                outcome=outcome,
                result=dict(result) if isinstance(result, dict) else {},
                error=str(done.get("err", "")) if done else "",
            )
        )
    return Ledger(operations=tuple(operations), ready=ready, events=tuple(events))


def _mapping(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise LedgerError(f"ledger args are not an object: {value!r}")
    return {str(k): v for k, v in value.items()}


def _add(
    record: dict[str, object],
    invokes: dict[int, dict[str, object]],
    completions: dict[int, dict[str, object]],
) -> None:
    try:
        index = int(record["i"])  # type: ignore[call-overload]
        kind = record["t"]
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"ledger record without index/type: {record!r}") from exc
    if kind == "invoke":
        invokes[index] = record
    elif kind in ("ok", "fail", "info"):
        completions[index] = record
    else:
        raise LedgerError(f"unknown ledger record type {kind!r}")


def ledger_lines(lines: Sequence[str]) -> list[Line]:
    """The ledger lines of a log, for the evidence (a line the lab cannot read is left out, not fatal here)."""
    ledger: list[Line] = []
    for text in lines:
        try:
            line = parse_line(text)
        except ProtocolError:
            continue
        if line is not None and line.tag is Tag.LEDGER:
            ledger.append(line)
    return ledger
