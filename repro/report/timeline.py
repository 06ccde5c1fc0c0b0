"""What happened in a trial over time, compact enough to keep in report.json for every trial.

The machine's lines carry no clock of their own; the engine stamps every line it keeps, so the
timeline is read from the machine's log with those stamps (``docker logs --timestamps``): the
acknowledged and failed writes as they came, the services' events (disk full, stop signal,
power cut, a writer's store unusable, the workload's end), the faults at the acknowledged write
they fired after, and the acknowledgement time of every write the restarted machine found lost.
Series are sampled down to at most MAX_POINTS points, so a passing trial costs a few hundred bytes.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from repro.errors import LabError
from repro.ledger import OpKind
from repro.protocol import EventKind, LossyKind, Tag, parse_line

MAX_POINTS = 48
MAX_LOST = 200


class MarkKind(str, enum.Enum):
    """A moment worth a vertical line on the timeline."""

    FAULT = "fault"
    DISK_FULL = "disk-full"
    DISK_CLEARED = "disk-cleared"
    STOP = "stop"
    POWER_CUT = "power-cut"
    LEAK = "leak"
    END = "end"  # the workload ended (its s6 finish line)
    STORE_UNUSABLE = "store-unusable"  # a writer's store refused every write: it only probes from here
    STORE_RECOVERED = "store-recovered"  # ... and took a write again


@dataclass(frozen=True)
class Mark:
    t: float  # seconds since the store was open (its READY line)
    kind: MarkKind
    label: str


Series = tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class Timeline:
    """A trial over time: cumulative acknowledged and failed writes, marks, lost writes, the files at the crash."""

    acked: Series
    failed: Series
    marks: tuple[Mark, ...]
    lost: tuple[float, ...]  # when each lost write had been acknowledged (the first MAX_LOST)
    lost_total: int
    duration: float
    files: tuple[tuple[str, int], ...] = ()  # the database files as the crash left them (name, bytes)

    def to_dict(self) -> dict[str, object]:
        return {"acked": [list(p) for p in self.acked], "failed": [list(p) for p in self.failed],
                "marks": [{"t": m.t, "kind": m.kind.value, "label": m.label} for m in self.marks],
                "lost": list(self.lost), "lost_total": self.lost_total, "duration": self.duration,
                "files": [list(f) for f in self.files]}

    @classmethod
    def from_dict(cls, data: object) -> Timeline:
        if not isinstance(data, Mapping):
            raise ValueError("timeline is not an object")
        try:
            marks = tuple(Mark(float(m["t"]), MarkKind(str(m["kind"])), str(m["label"]))
                          for m in _list(data.get("marks", [])))
            return cls(acked=_series(data.get("acked", [])), failed=_series(data.get("failed", [])), marks=marks,
                       lost=tuple(float(t) for t in _list(data.get("lost", []))),
                       lost_total=int(data.get("lost_total", 0)), duration=float(data.get("duration", 0.0)),
                       files=tuple((str(n), int(s)) for n, s in _list(data.get("files", []))))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad timeline: {exc}") from exc


def _list(value: object) -> list:  # type: ignore[type-arg]
    if not isinstance(value, list):
        raise ValueError(f"expected a list in the timeline, got {value!r}")
    return value


def _series(value: object) -> Series:
    return tuple((float(t), int(n)) for t, n in _list(value))


def sample(points: Sequence[tuple[float, int]], limit: int = MAX_POINTS) -> Series:
    """At most ``limit`` points, evenly spread over the series, always keeping the first and last."""
    if len(points) <= limit:
        return tuple(points)
    step = (len(points) - 1) / (limit - 1)
    return tuple(points[round(i * step)] for i in range(limit))


def split_stamp(line: str) -> tuple[float | None, str]:
    """``2026-11-29T10:00:00.123456789Z text`` -> (POSIX seconds, text); (None, line) without a stamp."""
    stamp, sep, text = line.partition(" ")
    if not sep or not stamp.endswith("Z") or "T" not in stamp:
        return None, line
    whole, _, frac = stamp[:-1].partition(".")
    try:
        moment = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None, line
    return moment.timestamp() + (float(f"0.{frac}") if frac.isdigit() else 0.0), text


_EVENT_MARKS = {EventKind.DISK_FULL.value: (MarkKind.DISK_FULL, "disk full"),
                EventKind.DISK_CLEARED.value: (MarkKind.DISK_CLEARED, "disk cleared"),
                EventKind.STOP_SIGNAL.value: (MarkKind.STOP, "stop signal"),
                EventKind.LEAK_STARTED.value: (MarkKind.LEAK, "memory leak starts")}
_STORE_MARKS = {EventKind.STORE_UNUSABLE.value: (MarkKind.STORE_UNUSABLE, "store unusable"),
                EventKind.STORE_RECOVERED.value: (MarkKind.STORE_RECOVERED, "store usable again")}


def build_timeline(stamped: Iterable[str], *, faults: Sequence[tuple[str, int, float | None]] = (),
                   lost_ops: Sequence[int] = (), files: Sequence[tuple[str, int]] = ()) -> Timeline | None:
    """The timeline of one machine's timestamped log; ``faults`` are (name, acknowledged writes when it fired,
    when it fired in POSIX seconds or None), ``lost_ops`` the ledger indices of lost writes. None when the log
    has no stamps."""
    start: float | None = None
    writes: dict[int, bool] = {}  # ledger index -> is a write
    acked: list[tuple[float, int]] = []
    failed: list[tuple[float, int]] = []
    ack_time: dict[int, float] = {}
    marks: list[Mark] = []
    last = 0.0
    for raw in stamped:
        moment, text = split_stamp(raw)
        try:
            line = parse_line(text) if moment is not None else None
        except LabError:
            continue
        if line is None or moment is None:
            continue
        if line.tag is Tag.READY and start is None:
            start = moment
        if start is None:
            continue
        t = round(moment - start, 3)
        last = max(last, t)
        if line.tag is Tag.LEDGER:
            index, kind = line.payload.get("i"), line.payload.get("t")
            if not isinstance(index, int):
                continue
            if kind == "invoke":
                writes[index] = line.payload.get("op") != OpKind.SEARCH.value
            elif kind == "ok" and writes.get(index):
                acked.append((t, len(acked) + 1))
                ack_time[index] = t
            elif kind == "fail" and writes.get(index):
                failed.append((t, len(failed) + 1))
        elif line.tag is Tag.EVENT and line.kind in _EVENT_MARKS:
            kind_, label = _EVENT_MARKS[line.kind]
            marks.append(Mark(t, kind_, label))
        elif line.tag is Tag.EVENT and line.kind in _STORE_MARKS:  # one per writer: say whose store
            kind_, label = _STORE_MARKS[line.kind]
            marks.append(Mark(t, kind_, f"{label} ({line.payload.get('role', 'gateway')})"))
        elif line.is_lossy(LossyKind.CUT):
            marks.append(Mark(t, MarkKind.POWER_CUT, "power cut"))
        elif line.is_finish("session-store"):
            signal = line.payload.get("signal")
            marks.append(Mark(t, MarkKind.END, f"workload ended (signal {signal})" if signal not in (None, 0)
                              else f"workload exited {line.payload.get('exit')}"))
    if start is None:
        return None
    for name, acks, fired_at in faults:  # when the agent fired; else just after its trigger's acknowledged write
        if fired_at is not None:
            at = round(max(0.0, fired_at - start), 3)
        else:
            at = acked[min(acks, len(acked)) - 1][0] if acks > 0 and acked else 0.0
        marks.append(Mark(at, MarkKind.FAULT, f"{name} (fired after ack {acks})" if acks > 0 else name))
    lost = sorted(ack_time[i] for i in lost_ops if i in ack_time)
    return Timeline(acked=sample([(0.0, 0), *acked]), failed=sample(failed), marks=tuple(sorted(marks, key=lambda m: m.t)),
                    lost=tuple(lost[:MAX_LOST]), lost_total=len(lost_ops), duration=last, files=tuple(files))
