"""A recorded trace on disk: the trace, its blobs, the machine's log (the ledger) and how it was recorded.

Layout of a trace directory (what `repro explore --record` and a recording trial write)::

    trace.jsonl          the lossyfs trace (repro/lossyfs/trace.py)
    trace.jsonl.blobs    its data
    machine.log          every line the machine printed: READY (the pragmas in force), the ledger
    recording.json       what the probe needs to open the store as the machine did (its
                         environment, store path, database name) and where the trace came from

Anything missing or unreadable is bad input (ScenarioError): exploration starts no machine.
recording.json is data, never something to execute: its environment is cut down to the lab's
HERMES_STATE_* settings (repro/explore/storeenv.py), and its store path is only ever uploaded into the
explore sandbox (repro/explore/sandbox.py), after ``recorded_store`` there has checked that it names a store.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from dataclasses import asdict, dataclass, field
from typing import Mapping

from repro.errors import MachineOutputError, ScenarioError, shown
from repro.ledger import Ledger, parse_lines
from repro.verify import crosscheck
from repro.lossyfs.trace import TraceError, TraceReader
from repro.explore.storeenv import store_settings
from repro.filesystems import FsSpec

TRACE_FILE = "trace.jsonl"
LOG_FILE = "machine.log"
META_FILE = "recording.json"


@dataclass(frozen=True)
class Recording:
    """How a trace was recorded, as far as checking its states needs to know."""

    store_env: Mapping[str, str] = field(default_factory=dict)  # the machine's HERMES_STATE_* (only those)
    store_path: str | None = None  # another hermes_state release, if the machine ran one
    db_name: str = "state.db"  # the database, relative to the recorded mount
    locks_dropped: bool = False  # the raw-open hazard ran: SQLite promised nothing
    source: str = ""  # e.g. "repro explore --record ..." or "trial t3 of runs/..."
    scenario: Mapping[str, object] | None = None
    fs: FsSpec | None = None  # recorded below a kernel filesystem (--fs): the trace is the block device's
    reproducible: bool = False  # recorded without the kernel's writeback cache: its shape repeats with the seed

    @property
    def block_level(self) -> bool:
        return self.fs is not None

    def to_json(self) -> str:
        obj = asdict(self)
        obj["fs"] = self.fs.to_json() if self.fs is not None else None
        return json.dumps(obj, indent=2, sort_keys=True, default=dict)

    @classmethod
    def from_json(cls, text: str) -> Recording:
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        env = obj.get("store_env", {})
        if not isinstance(env, dict):
            raise ValueError("store_env is not an object")
        return cls(store_env=store_settings(env),
                   store_path=None if obj.get("store_path") is None else str(obj["store_path"]),
                   db_name=_db_name(obj.get("db_name", "state.db")), locks_dropped=bool(obj.get("locks_dropped", False)),
                   source=str(obj.get("source", "")),
                   scenario=obj.get("scenario") if isinstance(obj.get("scenario"), dict) else None,
                   fs=None if obj.get("fs") is None else _fs(obj["fs"]),
                   reproducible=bool(obj.get("reproducible", False)))


def _fs(value: object) -> FsSpec:
    try:
        return FsSpec.from_json(value)
    except ScenarioError as exc:
        raise ValueError(f"fs: {exc}") from None


def _db_name(value: object) -> str:
    """The database's name in the recorded directory: a plain file name, nothing that leads elsewhere."""
    name = str(value)
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"db_name {shown(name)} is not a file name")
    return name


def trace_shape(reader: TraceReader) -> str:
    digest = hashlib.sha256()
    for f in reader.initial.files:
        digest.update(f"init {f.path} {f.ino} {len(f.data)}\n".encode())
    for op in reader.ops():
        fields = {k: v for k, v in vars(op).items() if k not in ("seq", "t", "data")}
        if "data" in vars(op):
            fields["length"] = len(getattr(op, "data"))
        digest.update(f"{op.OP} {sorted(fields.items())}\n".encode())
    return digest.hexdigest()[:12]


def write_recording(directory: pathlib.Path, recording: Recording, log_lines: list[str]) -> None:
    """The two files besides the trace itself: recording.json and machine.log."""
    (directory / META_FILE).write_text(recording.to_json() + "\n", encoding="utf-8")
    (directory / LOG_FILE).write_text("\n".join(log_lines) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class TraceDir:
    """A checked trace directory."""

    path: pathlib.Path
    recording: Recording

    @classmethod
    def open(cls, path: str | pathlib.Path) -> TraceDir:
        root = pathlib.Path(path)
        if not root.is_dir():
            raise ScenarioError(f"{root} is not a directory (a trace directory holds {TRACE_FILE}, {LOG_FILE}, "
                                f"{META_FILE})")
        for name in (TRACE_FILE, TRACE_FILE + ".blobs", LOG_FILE, META_FILE):
            if not (root / name).is_file():
                raise ScenarioError(f"{root} holds no {name}: not a recorded trace directory")
        try:
            recording = Recording.from_json((root / META_FILE).read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise ScenarioError(f"{root / META_FILE}: {exc}") from None
        return cls(root.resolve(), recording)

    @property
    def trace_path(self) -> pathlib.Path:
        return self.path / TRACE_FILE

    def reader(self) -> TraceReader:
        try:
            return TraceReader(self.trace_path)
        except (TraceError, OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"{self.trace_path}: {exc}") from None

    def ledger(self) -> Ledger:
        try:
            lines = (self.path / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
            ledger = parse_lines(lines)
        except (MachineOutputError, OSError) as exc:
            raise ScenarioError(f"{self.path / LOG_FILE}: {exc}") from None
        if not ledger.ready:
            older = any(line.startswith(("READY ", "LEDGER ")) for line in lines)  # unframed: before the channel
            raise ScenarioError(f"{self.path / LOG_FILE}: " + (
                "recorded by an older lab, before its records were framed: record the trace again" if older
                else "the workload never reported READY"))
        problems = crosscheck.channel_problems(lines) + crosscheck.ledger_problems(ledger, lines)
        if problems:  # a trace is evidence too: one that disagrees with itself is never explored
            raise ScenarioError(f"{self.path / LOG_FILE}: {crosscheck.disagreement(problems)}")
        return ledger

    def digest(self) -> str:
        """Names the trace in reports: sha256 of trace.jsonl, first 16 hex digits."""
        return hashlib.sha256(self.trace_path.read_bytes()).hexdigest()[:16]

    def shape(self) -> str:
        """What a state id is keyed by: sha256 of the trace's shape -- every operation's kind, file, offset and
        length and every mark, in order, without the data written or the times -- first 12 hex digits. Two
        recordings of the same shape have the same crash points and states, ``prefix:120`` the same state in
        both, though the bytes differ where the store writes timestamps."""
        return trace_shape(self.reader())

