"""Every line a lab machine prints: its tag, how it is written and how it is parsed (stdlib only).

A machine's stdout is the lab's only channel out of it that survives a crash: s6 hands
each service's output to the container runtime, which keeps it after the machine dies.
Every line the lab acts on is ``TAG {json}`` (``LOSSYFS KIND {json}`` for the power-loss
filesystem) and goes through this module, so no other file matches string literals::

    LAB BOOT {"services": "...", "disk_entries": N}   PID 1 started (docker/lab-init)
    READY {"journal_mode": "wal", ...}    the store is open; the pragmas in force
    LEDGER {"i": 17, "t": "ok", ...}      one operation event (repro/ledger.py)
    EVENT {"kind": "disk-full", ...}      something a service did (``kind`` names it)
    AGENT {"fired": true, "acks": 40}     the fault agent's report
    FINISH {"service": "...", ...}        an s6 service ended (docker/s6/*/finish)
    PROBE {...}                           the restarted machine's facts
    STORE CHECK {"ok": true, ...}         a foreign store imported and opened (repro/verify/importcheck.py)
    GROWN {"bytes": ..., ...}             a starting database grown to its size (repro/workload/grow.py)
    LOSSYFS READY {...}                   the power-loss filesystem (READY, CUT, STOPPED)

A line is written with one ``write()``: s6 services share the machine's stdout, and a
separate write of the newline lets another service's line land in the middle.
"""

from __future__ import annotations

import enum
import json
import sys
from dataclasses import dataclass
from typing import IO, Iterable, Mapping

from repro.errors import MachineOutputError


class Tag(str, enum.Enum):
    """The first word(s) of a machine line."""

    BOOT = "LAB BOOT"
    READY = "READY"
    LEDGER = "LEDGER"
    EVENT = "EVENT"
    AGENT = "AGENT"
    FINISH = "FINISH"
    PROBE = "PROBE"
    LOSSYFS = "LOSSYFS"
    STORE_CHECK = "STORE CHECK"
    GROWN = "GROWN"


class EventKind(str, enum.Enum):
    """The ``kind`` of an EVENT line: what a service in the machine did."""

    CONFIG_ERROR = "config-error"
    STORE_OPEN_FAILED = "store-open-failed"
    WRITER_READY = "writer-ready"
    RELEASED = "released"
    STOP_SIGNAL = "stop-signal"
    LEAK_STARTED = "leak-started"
    CLOSED = "closed"
    STORE_UNUSABLE = "store-unusable"  # the workload's store refused REFUSALS_LIMIT writes in a row: it probes now
    STORE_RECOVERED = "store-recovered"  # an unusable store acknowledged a write again
    DASHBOARD_STARTED = "dashboard-started"
    DASHBOARD_ERROR = "dashboard-error"
    CHECKPOINTER_STARTED = "checkpointer-started"
    CHECKPOINTS = "checkpoints"  # the checkpointer's running count, once a second
    CHECKPOINTER_ERROR = "checkpointer-error"
    DISK_FILL_STARTED = "disk-fill-started"
    DISK_FULL = "disk-full"
    DISK_CLEARED = "disk-cleared"


class LossyKind(str, enum.Enum):
    """The second word of a LOSSYFS line."""

    READY = "READY"
    CUT = "CUT"
    STOPPED = "STOPPED"


class ProtocolError(MachineOutputError):
    """A tagged line whose payload is not a JSON object (never a torn last line: that is None)."""


@dataclass(frozen=True)
class Line:
    """One parsed machine line."""

    tag: Tag
    payload: Mapping[str, object]
    sub: str = ""  # LOSSYFS lines: READY, CUT or STOPPED

    @property
    def kind(self) -> str:
        """An EVENT's kind (empty for other tags)."""
        return str(self.payload.get("kind", "")) if self.tag is Tag.EVENT else ""

    def is_event(self, kind: EventKind) -> bool:
        return self.tag is Tag.EVENT and self.kind == kind.value

    def is_finish(self, service: str) -> bool:
        return self.tag is Tag.FINISH and self.payload.get("service") == service

    def is_lossy(self, kind: LossyKind) -> bool:
        return self.tag is Tag.LOSSYFS and self.sub == kind.value


def format_line(tag: Tag, payload: Mapping[str, object], sub: str = "") -> str:
    """The text of a line, without its newline (compact, key-sorted JSON)."""
    head = f"{tag.value} {sub}" if sub else tag.value
    return f"{head} {json.dumps(payload, separators=(',', ':'), sort_keys=True)}"


def write_line(tag: Tag, payload: Mapping[str, object], sub: str = "", stream: IO[str] | None = None) -> None:
    """Print one line and flush it, in a single write."""
    out = stream if stream is not None else sys.stdout
    out.write(format_line(tag, payload, sub) + "\n")
    out.flush()


def emit_event(kind: EventKind, **fields: object) -> None:
    """Print one ``EVENT {"kind": ...}`` line (the lab waits for some of these)."""
    write_line(Tag.EVENT, {"kind": kind.value, **fields})


# Longest tags first, so that "LAB BOOT" is not mistaken for anything shorter.
_TAGS = sorted(Tag, key=lambda t: -len(t.value))


def parse_line(raw: str) -> Line | None:
    """The tagged line in ``raw``, or None for any other output (or a line torn by a crash).

    The tag may be preceded by other text (a service's output without a newline, just
    before it); the first tag found, followed by a space, wins.
    """
    text = raw.rstrip("\r\n")
    best: tuple[int, Tag] | None = None
    for tag in _TAGS:
        pos = text.find(tag.value + " ")
        if pos != -1 and (best is None or pos < best[0]):
            best = (pos, tag)
    if best is None:
        return None
    pos, tag = best
    rest = text[pos + len(tag.value) + 1:]
    sub = ""
    if tag is Tag.LOSSYFS:
        sub, _, rest = rest.partition(" ")
    try:
        payload = json.loads(rest)
    except json.JSONDecodeError:
        return None  # torn by the crash: only ever the last line
    if not isinstance(payload, dict):
        raise ProtocolError(f"{tag.value} line without a JSON object: {rest[:80]}")
    return Line(tag, payload, sub)


def parse_all(lines: Iterable[str]) -> list[Line]:
    """Every tagged line of some output, in order."""
    return [line for line in map(parse_line, lines) if line is not None]
