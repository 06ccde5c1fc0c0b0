"""The explore worker's channel: framed, sequenced records between the lab and a checker in the sandbox (stdlib only).

The lab sends a worker one request per batch of states and reads one reply per batch. A record
is ``EXPL <seq> <length>\\n`` followed by ``length`` bytes of JSON: bytes from anyone else can
neither merge with a record nor be taken for one, and a record out of sequence is refused. The
worker keeps this channel on a descriptor of its own (repro/explore/worker.py): whatever the
store under test prints goes to its stderr, never here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, BinaryIO, Callable, Mapping

from repro.errors import LabError, ScenarioError
from repro.explore.check import ChunkStats, StateResult
from repro.explore.models import PersistenceModel
from repro.explore.blockspace import BlockModel
from repro.oracle.verdicts import Verdict

MAGIC = b"EXPL"
MAX_RECORD = 64 << 20  # a batch's results are a few hundred KB; anything near this is not a record


class WireError(LabError):
    """The channel broke: a record that is not one, out of sequence, or cut off. Never a verdict."""


class ChannelClosed(WireError):
    """The channel ended between two records: the other side is done (or gone)."""


def frame(seq: int, payload: object) -> bytes:
    """One record: header and JSON body."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return b"%s %d %d\n" % (MAGIC, seq, len(body)) + body


@dataclass
class Reader:
    """Reads records in sequence from a byte source (``read(n)`` returning up to n bytes, b"" at the end)."""

    read: Callable[[int], bytes]
    seq: int = 0
    _buffer: bytes = b""

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.read(max(65536, n - len(self._buffer)))
            if not chunk:
                raise WireError(f"the channel ended inside a record ({len(self._buffer)} of {n} bytes)"
                                if self._buffer else "the channel ended")
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _line(self) -> bytes:
        while b"\n" not in self._buffer[:64]:
            if len(self._buffer) >= 64:
                raise WireError(f"not a record header: {self._buffer[:40]!r}")
            chunk = self.read(65536)
            if not chunk:
                if not self._buffer:
                    raise ChannelClosed("the channel ended")
                raise WireError(f"the channel ended inside a header: {self._buffer[:40]!r}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def next(self) -> Any:
        """The next record's JSON value; WireError if it is not the next record in sequence."""
        parts = self._line().split(b" ")
        if len(parts) != 3 or parts[0] != MAGIC or not parts[1].isdigit() or not parts[2].isdigit():
            raise WireError(f"not a record header: {b' '.join(parts)[:40]!r}")
        seq, length = int(parts[1]), int(parts[2])
        if seq != self.seq:
            raise WireError(f"record {seq} where {self.seq} was due")
        if length > MAX_RECORD:
            raise WireError(f"a record of {length} bytes")
        body = self._take(length)
        self.seq += 1
        try:
            return json.loads(body)
        except ValueError as exc:
            raise WireError(f"record {seq} is not JSON: {exc}") from None


@dataclass
class Writer:
    """Writes records in sequence to a binary stream."""

    stream: BinaryIO
    seq: int = 0

    def send(self, payload: object) -> None:
        self.stream.write(frame(self.seq, payload))
        self.stream.flush()
        self.seq += 1


def model_named(name: str) -> PersistenceModel | BlockModel:
    """A file-level or a block-level persistence model by its name (ValueError for neither)."""
    if name.startswith("block-"):
        return BlockModel(name)
    return PersistenceModel.parse(name)


def result_to_json(result: StateResult) -> dict[str, object]:
    out: dict[str, object] = {f.name: getattr(result, f.name) for f in fields(result)}
    out["model"], out["verdict"] = result.model.value, result.verdict.value
    out["lost"], out["beyond_sync"], out["regressed"] = list(result.lost), list(result.beyond_sync), list(result.regressed)
    return out


def result_from_json(data: Mapping[str, Any]) -> StateResult:
    """A result as the worker sent it; WireError for anything not shaped like one."""
    try:
        return StateResult(
            model=model_named(str(data["model"])), index=int(data["index"]), point=int(data["point"]),
            seq=int(data["seq"]), verdict=Verdict(data["verdict"]), expected=bool(data["expected"]),
            acked=int(data["acked"]), lost=tuple(int(i) for i in data["lost"]),
            beyond_sync=tuple(int(i) for i in data["beyond_sync"]), reason=str(data["reason"]),
            probed=bool(data["probed"]), regressed=tuple(int(i) for i in data.get("regressed", ())))
    except (KeyError, TypeError, ValueError, ScenarioError) as exc:
        raise WireError(f"a result the lab cannot read: {type(exc).__name__}: {exc}") from None


def stats_to_json(stats: ChunkStats) -> dict[str, object]:
    return {f.name: getattr(stats, f.name) for f in fields(stats)}


def stats_from_json(data: Mapping[str, Any]) -> ChunkStats:
    try:
        return ChunkStats(**{f.name: type(getattr(ChunkStats(), f.name))(data[f.name]) for f in fields(ChunkStats)})
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"batch statistics the lab cannot read: {type(exc).__name__}: {exc}") from None
