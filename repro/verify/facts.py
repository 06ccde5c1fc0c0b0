"""What the restarted machine saw in the database, and the one JSON codec that carries it out (stdlib only).

The probe measures these facts inside the machine and prints them as one ``PROBE`` line
(repro.protocol); the host reads them back with :func:`parse_probe_output`. The codec is
driven by the dataclass fields, so a new fact is one field here plus the code in
``probe.py``/``sandbox.py`` that measures it: a dataclass becomes a JSON object keyed by
field name, except a :class:`Row` (one of thousands in a damaged file), which becomes an
array in field order to keep the line compact. The report's trial records (repro/report/records.py)
use the same codec, so a per-trial column is one field there too.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence, TypeVar

from repro.errors import MachineOutputError
from repro.protocol import ProtocolError, Tag, format_line, frame, parse_line

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


class Row:
    """Marks a fact carried as a JSON array in field order (many per file)."""


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
        return decode(cls, {k: v for k, v in obj.items() if k != "format"})


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


# -- the field-driven codec ---------------------------------------------------------------

_T = TypeVar("_T")


def encode(value: object) -> object:
    """A fact as plain JSON values: dataclass -> object (a Row -> array), enum -> its value, tuple -> array,
    mapping -> object."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [encode(getattr(value, f.name)) for f in dataclasses.fields(value)]
        if isinstance(value, Row):
            return items
        return {f.name: item for f, item in zip(dataclasses.fields(value), items)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def decode(cls: type[_T], obj: object) -> _T:
    """The inverse of :func:`encode` for the dataclass ``cls``; ProbeError when ``obj`` does not fit."""
    return typing.cast(_T, _decode(cls, obj, cls.__name__))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(hint: Any, obj: object, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if obj is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]  # only `X | None` is used
        return _decode(inner, obj, where)
    if origin is tuple:
        args, values = typing.get_args(hint), _expect(list, obj, where)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(values))
        if len(values) != len(args):  # tuple[X, Y]: a pair
            raise ProbeError(f"{where}: {len(values)} values for a tuple of {len(args)}")
        return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, values)))
    if origin in (dict, collections.abc.Mapping):
        _, value_hint = typing.get_args(hint)  # keys are strings, as JSON's
        return {k: _decode(value_hint, v, f"{where}.{k}") for k, v in _expect(dict, obj, where).items()}
    if hint is object:  # any JSON value, carried as it is (a trial's scenario)
        return obj
    if hint is float:
        return float(_expect((int, float), obj, where))  # type: ignore[arg-type]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _decode_dataclass(hint, obj, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(obj)
        except ValueError:
            raise ProbeError(f"{where}: unknown {hint.__name__} {obj!r}") from None
    if hint in (str, int, bool):
        return _expect(hint, obj, where)
    raise TypeError(f"no codec for {hint!r} at {where}")  # a fact of a type the codec does not know


def _decode_dataclass(cls: type, obj: object, where: str) -> object:
    fields = dataclasses.fields(cls)
    hints = _hints(cls)
    if issubclass(cls, Row):
        values = _expect(list, obj, where)
        if len(values) != len(fields):
            raise ProbeError(f"{where}: {len(values)} values for {len(fields)} fields")
        pairs: Sequence[tuple[dataclasses.Field[Any], object]] = list(zip(fields, values))
    else:
        data = _expect(dict, obj, where)
        missing = [f.name for f in fields if f.name not in data and _no_default(f)]
        if missing:
            raise ProbeError(f"{where}: missing {', '.join(missing)}")
        pairs = [(f, data[f.name]) for f in fields if f.name in data]
    kwargs = {f.name: _decode(hints[f.name], v, f"{where}.{f.name}") for f, v in pairs}
    return cls(**kwargs)


def _no_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _expect(kind: type[_T], obj: object, where: str) -> _T:
    # bool is an int in Python, not in the facts
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(obj, kind) or (int in kinds and isinstance(obj, bool)):
        raise ProbeError(f"{where}: expected {' or '.join(k.__name__ for k in kinds)}, got {obj!r}"[:200])
    return obj


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
