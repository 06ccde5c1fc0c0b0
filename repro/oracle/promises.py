"""What SQLite promises for a (journal mode, synchronous, crash class) (stdlib only).

The promise table is docs/FACTS.md section 1 (sqlite.org pragma, wal, atomiccommit,
howtocorrupt). ``promised_safe`` says whether the configuration promised anything at all,
so a failure of a positive control (journal OFF, synchronous OFF under power loss) is
reported as what it is *and* as expected.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Mapping

from repro.errors import LabError


class OracleError(LabError, ValueError):
    """An unknown journal mode, synchronous level or fault name."""


class JournalMode(str, enum.Enum):
    DELETE = "delete"
    TRUNCATE = "truncate"
    PERSIST = "persist"
    MEMORY = "memory"
    WAL = "wal"
    OFF = "off"

    @classmethod
    def parse(cls, value: object) -> JournalMode:
        try:
            return cls(str(value).strip().lower())
        except ValueError as exc:
            raise OracleError(f"unknown journal mode {value!r}") from exc


class Synchronous(int, enum.Enum):
    OFF = 0
    NORMAL = 1
    FULL = 2
    EXTRA = 3

    @classmethod
    def parse(cls, value: object) -> Synchronous:
        """0-3 or a name (case-insensitive)."""
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError as exc:
                raise OracleError(f"unknown synchronous level {value!r}") from exc
        text = str(value).strip()
        if text.isdigit():
            return cls.parse(int(text))
        try:
            return cls[text.upper()]
        except KeyError as exc:
            raise OracleError(f"unknown synchronous level {value!r}") from exc


class CrashClass(str, enum.Enum):
    """A killed process keeps its writes in the page cache; a power cut loses what was not fsynced."""

    PROCESS = "process"
    POWER_LOSS = "power-loss"


# The crash class of every fault the runner knows (repro/faults is the source of truth: a
# test there checks that this table names exactly its faults). A copy, because the Compose
# verifier judges inside the machine, where only the standard library is.
FAULT_CRASH_CLASSES: Mapping[str, CrashClass] = {
    "sigint": CrashClass.PROCESS,
    "sigterm": CrashClass.PROCESS,
    "sigkill": CrashClass.PROCESS,
    "sigkill-machine": CrashClass.PROCESS,  # the whole machine killed: its page cache lives on
    "oom": CrashClass.PROCESS,
    "disk-fill": CrashClass.PROCESS,
    "disk-fill-clear": CrashClass.PROCESS,
    "power-loss": CrashClass.POWER_LOSS,
    "clean-stop": CrashClass.PROCESS,  # no crash at all: the control; no class promises less than a process crash
}


def crash_class_of(fault_names: Iterable[str]) -> CrashClass:
    """The strongest class among composed faults (power loss beats a process crash).

    Any other signal name (``sigquit``, ``sighup``...: a machine's stop signal) kills
    processes only: a process crash. OracleError for anything else.
    """
    classes = set()
    for name in fault_names:
        key = name.strip().lower()
        if key in FAULT_CRASH_CLASSES:
            classes.add(FAULT_CRASH_CLASSES[key])
        elif key.startswith("sig") and key[3:].isalpha():
            classes.add(CrashClass.PROCESS)
        else:
            raise OracleError(f"unknown fault {name!r}")
    return CrashClass.POWER_LOSS if CrashClass.POWER_LOSS in classes else CrashClass.PROCESS


class LossBound(str, enum.Enum):
    """How many acknowledged writes a configuration may lose."""

    NONE = "none"
    LAST_COMMITS = "last-commits"  # a rolled-back tail of the commit order, nothing before it
    ANY = "any"


@dataclass(frozen=True)
class StoreConfig:
    """The journal mode and synchronous level actually in force during the workload."""

    journal_mode: JournalMode
    synchronous: Synchronous

    @classmethod
    def parse(cls, journal_mode: object, synchronous: object) -> StoreConfig:
        return cls(JournalMode.parse(journal_mode), Synchronous.parse(synchronous))

    @classmethod
    def from_ready(cls, ready: Mapping[str, object]) -> StoreConfig:
        """From the workload's READY facts (the pragmas read from the store's connection)."""
        if "journal_mode" not in ready or "synchronous" not in ready:
            raise OracleError("READY facts lack journal_mode/synchronous")
        return cls.parse(ready["journal_mode"], ready["synchronous"])


@dataclass(frozen=True)
class Promise:
    """What SQLite promises for one configuration under one crash class."""

    consistent: bool
    loss: LossBound
    reason: str

    @property
    def promised_safe(self) -> bool:
        """The configuration promised something: no corruption and at most a bounded loss."""
        return self.consistent and self.loss is not LossBound.ANY


def promise(config: StoreConfig, crash: CrashClass, *, lazy_dirs: bool = False,
            locks_dropped: bool = False) -> Promise:
    """The promise table of docs/FACTS.md section 1; ``lazy_dirs``: directory entries need a dir fsync;
    ``locks_dropped``: the application closed a descriptor of its live database, which cancels the
    process's POSIX locks -- SQLite's guarantees rest on those locks, so it promises nothing."""
    mode, sync = config.journal_mode, config.synchronous
    if locks_dropped:
        return Promise(False, LossBound.ANY, "the application closed a descriptor of its live database: its "
                                             "POSIX locks are gone (howtocorrupt 2.2), SQLite promises nothing")
    if mode in (JournalMode.OFF, JournalMode.MEMORY):
        return Promise(False, LossBound.ANY, f"journal_mode={mode.value}: a crash mid-write can corrupt")
    if crash is CrashClass.PROCESS:
        return Promise(True, LossBound.NONE, "durable across application crashes whatever synchronous is")
    if sync is Synchronous.OFF:
        return Promise(False, LossBound.ANY, "synchronous=OFF: power loss may corrupt")
    if mode is JournalMode.WAL:
        if sync is Synchronous.NORMAL:
            return Promise(True, LossBound.LAST_COMMITS, "WAL+NORMAL: never corrupt, the last commits may roll back")
        return Promise(True, LossBound.NONE, f"WAL+{sync.name}: consistent and durable")
    if sync is Synchronous.NORMAL:
        return Promise(False, LossBound.ANY, f"{mode.value}+NORMAL: a small chance of corruption on power loss")
    if mode is JournalMode.DELETE and sync is Synchronous.FULL and lazy_dirs:
        return Promise(True, LossBound.LAST_COMMITS,
                       "DELETE+FULL, lazy directory entries: the journal unlink may not survive, the last commit may roll back")
    return Promise(True, LossBound.NONE, f"{mode.value}+{sync.name}: consistent and durable")
