"""What the restarted machine saw in the database, carried out as one JSON record (stdlib only).

The probe measures these facts inside the machine and prints them as one ``PROBE`` line
(repro.protocol); the host reads them back with :func:`parse_probe_output`. The codec
(repro/verify/codec.py) is driven by the dataclass fields, so a new fact is one field here plus the
code in ``probe.py``/``sandbox.py`` that measures it: a dataclass becomes a JSON object keyed by
field name, except a :class:`Row` (one of thousands in a damaged file), which becomes an array in
field order to keep the line compact.
"""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass
from typing import Iterable, Sequence

from repro.errors import MachineOutputError
from repro.protocol import ProtocolError, Tag, format_line, frame, parse_line
from repro.verify.codec import CodecError, Row, decode, encode

# Version 2: keys are the field names (version 1 had hand-picked ones).
PROBE_FORMAT = 2
PROBE_SOURCE = "probe"  # the frame source of the probe's record (repro/verify/probe.py opens its channel so)
MAX_MESSAGES = 50  # per check: keep the PROBE line compact when a file is badly damaged


class ProbeError(MachineOutputError):
    """PROBE output that is missing or cannot be parsed (the lab's fault, not the store's)."""


class CheckStatus(str, enum.Enum):
    """How a check ended: passed, found problems, could not run, or does not apply."""

    OK = "ok"
    FAILED = "failed"
    ERROR = "error"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Check:
    """One check's status and what it said (problem list, or the error that stopped it)."""

    status: CheckStatus
    messages: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is CheckStatus.OK

    @property
    def bad(self) -> bool:
        """The check ran into damage: it failed, or raised while reading the file."""
        return self.status in (CheckStatus.FAILED, CheckStatus.ERROR)


UNAVAILABLE = Check(CheckStatus.UNAVAILABLE)


@dataclass(frozen=True)
class FileInfo(Row):
    """A database file or sidecar as found before anything opened it."""

    name: str
    size: int


@dataclass(frozen=True)
class MessageRow(Row):
    """One message row: its id, session and the sha256 hex of its content."""

    id: int
    session_id: str | None
    sha: str


@dataclass(frozen=True)
class SessionRow(Row):
    """One session row: the counters the diff compares with the ledger."""

    id: str
    message_count: int | None
    input_tokens: int | None
    output_tokens: int | None
    end_reason: str | None


@dataclass(frozen=True)
class StoreFacts:
    """What the store under test did when the restarted machine opened the file."""

    opened: bool
    error: str | None = None
    attempted: bool = True
    module: str | None = None
    journal_mode: str | None = None
    synchronous: int | None = None
    busy_timeout: int | None = None
    foreign_keys: int | None = None
    doctor: Check = UNAVAILABLE
    healed: str | None = None  # the store repaired the file while opening it (what it said)

    @property
    def import_failed(self) -> bool:
        """The store package itself could not be imported (a lab problem)."""
        return self.error is not None and self.error.startswith(("ModuleNotFoundError", "ImportError"))


NOT_TRIED = StoreFacts(opened=False, attempted=False)


@dataclass(frozen=True)
class ChangedSession(Row):
    """A session of the starting database whose digest differs now: its row digest now ("" if gone)."""

    id: str
    row: str


@dataclass(frozen=True)
class Preexisting:
    """The rows the trial started with, checked against the baseline (repro/verify/baseline.py).

    ``checked``: sessions of the starting database; ``changed``: those whose row or messages
    differ now; ``rows``: the messages of the changed sessions as they are now (the host counts
    what went). Rows of the starting database are left out of ``ProbeFacts.messages``/``sessions``,
    which hold only what the trial may have written."""

    checked: int
    changed: tuple[ChangedSession, ...] = ()
    rows: tuple[MessageRow, ...] = ()


@dataclass(frozen=True)
class ProbeFacts:
    """Everything the probe saw. ``probe_error`` is set when the probe itself broke."""

    db_path: str
    exists: bool
    files: tuple[FileInfo, ...] = ()
    sqlite_version: str = ""
    sqlite_source_id: str = ""  # the library the probe loaded: a lab build's or the image's own
    integrity: Check = UNAVAILABLE
    foreign_keys: Check = UNAVAILABLE
    fk_violations: int | None = None
    fts: Check = UNAVAILABLE
    journal_mode: str | None = None
    messages: tuple[MessageRow, ...] = ()
    messages_error: str | None = None
    sessions: tuple[SessionRow, ...] = ()
    sessions_error: str | None = None
    store: StoreFacts = NOT_TRIED
    probe_error: str | None = None
    preexisting: Preexisting | None = None  # when the trial started from a given database

    def to_obj(self) -> dict[str, object]:
        fields = typing.cast(dict[str, object], encode(self))
        return {"format": PROBE_FORMAT, **fields}

    def to_line(self) -> str:
        """The one record the probe writes, framed."""
        return frame(PROBE_SOURCE, 1, format_line(Tag.PROBE, self.to_obj()))

    @classmethod
    def from_obj(cls, obj: object) -> ProbeFacts:
        if not isinstance(obj, dict):
            raise ProbeError("probe facts are not a JSON object")
        if obj.get("format") != PROBE_FORMAT:
            raise ProbeError(f"unsupported PROBE format {obj.get('format')!r}")
        try:
            return decode(cls, {k: v for k, v in obj.items() if k != "format"})
        except CodecError as exc:
            raise ProbeError(str(exc)) from None


def parse_probe_output(lines: Iterable[str]) -> ProbeFacts:
    """The facts from the probe's output: its one PROBE record (source "probe"); ProbeError if none or several."""
    try:
        found = [line for line in map(parse_line, lines)
                 if line is not None and line.tag is Tag.PROBE and line.source == PROBE_SOURCE]
    except ProtocolError as exc:
        raise ProbeError(str(exc)) from exc
    if len(found) != 1:
        raise ProbeError(f"{len(found)} PROBE records in the probe's output (one was expected; a torn one is none)")
    return ProbeFacts.from_obj(dict(found[0].payload))


# -- helpers for the code that measures facts ------------------------------------------------


def describe_error(exc: BaseException) -> str:
    """How a fact records an error: ``Type: message``."""
    return f"{type(exc).__name__}: {exc}"


def capped(items: Sequence[str]) -> tuple[str, ...]:
    """At most MAX_MESSAGES messages, then one saying how many more there were."""
    if len(items) <= MAX_MESSAGES:
        return tuple(items)
    return tuple(items[:MAX_MESSAGES]) + (f"... {len(items) - MAX_MESSAGES} more",)


def int_or_none(value: object) -> int | None:
    """An integer read from SQLite or a store (a numeric string too); None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None
