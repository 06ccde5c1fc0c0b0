"""Every record a lab machine writes: its tag, its frame, how it is written and how it is parsed (stdlib only).

A machine's log is the lab's only channel out of it that survives a crash: s6 hands each
service's output to the container runtime, which keeps it after the machine dies. The
processes that import the store write their records on a descriptor of their own
(repro/channel.py); what the store prints arrives only inside ``OUTPUT`` records. Every
record is one line, framed with its source, its sequence number within that source and
the length of its body::

    @gateway/17/58 LEDGER {"i":9,"t":"ok",...}

    LAB BOOT {"services": "...", "disk_entries": N}   PID 1 started (docker/lab-init; source "boot")
    READY {"journal_mode": "wal", ...}    the store is open; the pragmas in force
    LEDGER {"i": 17, "t": "ok", ...}      one operation event (repro/ledger.py)
    EVENT {"kind": "disk-full", ...}      something a service did (``kind`` names it)
    OUTPUT {"text": "..."}                what the store printed (capped; repro/channel.py)
    AGENT {"fired": true, "acks": 40}     the fault agent's report
    FINISH {"service": "...", ...}        an s6 service ended (docker/s6/*/finish; source "finish-<service>")
    PROBE {...}                           the restarted machine's facts
    STORE CHECK {"ok": true, ...}         a foreign store imported and opened (repro/verify/importcheck.py)
    GROWN {"bytes": ..., ...}             a starting database grown to its size (repro/workload/grow.py)
    LOSSYFS READY {...}                   the power-loss filesystem (READY, CUT, STOPPED)

A line counts only if its frame starts the line and its body is exactly as long as the
frame says: bytes glued before or after a record make it damaged, never a different record,
and the sequence numbers show which record is missing (repro/verify/crosscheck.py).
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

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
    OUTPUT = "OUTPUT"


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
    READ_FAILED = "read-failed"  # a reopen (explore --recovery) could not read the store's counts


class LossyKind(str, enum.Enum):
    """The second word of a LOSSYFS line."""

    READY = "READY"
    CUT = "CUT"
    STOPPED = "STOPPED"


class ProtocolError(MachineOutputError):
    """A framed record whose payload is not a JSON object."""


class Damage(str, enum.Enum):
    """Why a line that starts with a frame is not a record."""

    TORN = "torn"          # shorter than its frame says: cut by a crash (only ever a source's last)
    LONGER = "longer"      # longer than its frame says: other bytes were glued on
    UNREADABLE = "unreadable"  # the right length, but no tag and JSON object in it


@dataclass(frozen=True)
class Line:
    """One parsed machine record."""

    tag: Tag
    payload: Mapping[str, object]
    sub: str = ""  # LOSSYFS lines: READY, CUT or STOPPED
    source: str = ""  # who wrote it (the frame's source)
    seq: int = 0      # its number within that source, from 1

    @property
    def kind(self) -> str:
        """An EVENT's kind (empty for other tags)."""
        return str(self.payload.get("kind", "")) if self.tag is Tag.EVENT else ""

    def is_event(self, kind: EventKind) -> bool:
        return self.tag is Tag.EVENT and self.kind == kind.value

    def is_finish(self, service: str) -> bool:
        """s6's record that ``service`` ended: written by its finish script as source ``finish-<service>``, once
        (a FINISH the store writes on its own channel carries its channel's source, and is not this)."""
        return (self.tag is Tag.FINISH and self.payload.get("service") == service
                and self.source == f"finish-{service}" and self.seq == 1)

    def is_lossy(self, kind: LossyKind) -> bool:
        return self.tag is Tag.LOSSYFS and self.sub == kind.value


def format_line(tag: Tag, payload: Mapping[str, object], sub: str = "") -> str:
    """The body of a record, without frame or newline (compact, key-sorted JSON)."""
    head = f"{tag.value} {sub}" if sub else tag.value
    return f"{head} {json.dumps(payload, separators=(',', ':'), sort_keys=True)}"


SOURCE = re.compile(r"[a-z][a-z0-9-]{0,39}")
_FRAME = re.compile(r"@([a-z][a-z0-9-]{0,39})/([1-9][0-9]{0,11})/([0-9]{1,9}) ")


def frame(source: str, seq: int, body: str) -> str:
    """``@source/seq/length body``: the length in bytes of the UTF-8 body."""
    return f"@{source}/{seq}/{len(body.encode('utf-8'))} {body}"


@dataclass(frozen=True)
class Framed:
    """What one line of a machine's log holds: a record, a damaged record, or nothing of the lab's."""

    line: Line | None = None
    source: str = ""
    seq: int = 0
    damage: Damage | None = None


def read_frame(raw: str) -> Framed:
    """The frame at the start of ``raw`` and the record in it (``Framed()`` for a line that is not the lab's)."""
    text = raw.rstrip("\r\n")
    match = _FRAME.match(text)
    if match is None:
        return Framed()
    source, seq, length = match.group(1), int(match.group(2)), int(match.group(3))
    body = text[match.end():].encode("utf-8", "surrogateescape")
    if len(body) != length:
        return Framed(source=source, seq=seq, damage=Damage.TORN if len(body) < length else Damage.LONGER)
    line = _parse_body(body.decode("utf-8", "replace"), source, seq)
    return Framed(line=line, source=source, seq=seq, damage=None if line is not None else Damage.UNREADABLE)


_TAGS = sorted(Tag, key=lambda t: -len(t.value))  # longest first: "LAB BOOT" before anything shorter


def _parse_body(body: str, source: str, seq: int) -> Line | None:
    tag = next((t for t in _TAGS if body.startswith(t.value + " ")), None)
    if tag is None:
        return None
    rest = body[len(tag.value) + 1:]
    sub = ""
    if tag is Tag.LOSSYFS:
        sub, _, rest = rest.partition(" ")
    try:
        payload = json.loads(rest)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(payload, dict):
        raise ProtocolError(f"{tag.value} record without a JSON object: {rest[:80]}")
    return Line(tag, payload, sub, source, seq)


def parse_line(raw: str) -> Line | None:
    """The record on ``raw``, or None: not the lab's, or damaged (repro/verify/crosscheck.py counts those)."""
    return read_frame(raw).line


def parse_all(lines: Iterable[str]) -> list[Line]:
    """Every tagged line of some output, in order."""
    return [line for line in map(parse_line, lines) if line is not None]


def store_output(lines: Iterable[str]) -> str:
    """What the store printed, from the OUTPUT records of a log: ``source: text`` per piece, and
    where the cap was reached, how much was dropped (the artifact ``store.log``)."""
    parts: list[str] = []
    for line in parse_all(lines):
        if line.tag is not Tag.OUTPUT:
            continue
        if "text" in line.payload:
            parts.append(str(line.payload["text"]))
        elif "capped" in line.payload:
            parts.append(f"\n[{line.source}: output capped at {line.payload['capped']} bytes]\n")
        elif "dropped" in line.payload:
            parts.append(f"\n[{line.source}: {line.payload['dropped']} bytes dropped]\n")
    return "".join(parts)
