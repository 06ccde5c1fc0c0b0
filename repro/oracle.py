"""What SQLite promises for a (journal mode, synchronous, fault class), and the verdict of a trial.

The promise table is FIELD-NOTES section 1 (sqlite.org pragma, wal, atomiccommit,
howtocorrupt). Verdicts: ``pass``, ``corrupt``, ``lost-acked``, ``expected-loss`` (loss
the configuration allows, with its count) and ``error`` (the lab failed: never the
store's fault, never a pass). ``promised_safe`` says whether the configuration promised
anything at all, so a failure of a positive control (journal OFF, synchronous OFF under
power loss) is reported as what it is *and* as expected.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from repro.ledger import Ledger
from repro.probe import ProbeFacts
from repro.verify import Verification, compare


class OracleError(ValueError):
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


class FaultClass(str, enum.Enum):
    """A killed process keeps its writes in the page cache; a power cut loses what was not fsynced."""

    PROCESS_CRASH = "process-crash"
    POWER_LOSS = "power-loss"


FAULT_CLASSES: Mapping[str, FaultClass] = {
    "sigint": FaultClass.PROCESS_CRASH,
    "sigterm": FaultClass.PROCESS_CRASH,
    "sigkill": FaultClass.PROCESS_CRASH,
    "sigkill-machine": FaultClass.PROCESS_CRASH,  # the whole machine killed: its page cache lives on
    "oom": FaultClass.PROCESS_CRASH,
    "disk-fill": FaultClass.PROCESS_CRASH,
    "disk-fill-clear": FaultClass.PROCESS_CRASH,
    "power-loss": FaultClass.POWER_LOSS,
}


def fault_class(faults: Iterable[str]) -> FaultClass:
    """The strongest class among composed faults (power loss beats a process crash).

    Any other signal name (``sigquit``, ``sighup``...) kills processes only: a process crash.
    """
    classes = set()
    for name in faults:
        key = name.strip().lower()
        if key in FAULT_CLASSES:
            classes.add(FAULT_CLASSES[key])
        elif key.startswith("sig") and key[3:].isalpha():
            classes.add(FaultClass.PROCESS_CRASH)
        else:
            raise OracleError(f"unknown fault {name!r}")
    return FaultClass.POWER_LOSS if FaultClass.POWER_LOSS in classes else FaultClass.PROCESS_CRASH


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
    """What SQLite promises for one configuration under one fault class."""

    consistent: bool
    loss: LossBound
    reason: str

    @property
    def promised_safe(self) -> bool:
        """The configuration promised something: no corruption and at most a bounded loss."""
        return self.consistent and self.loss is not LossBound.ANY


_ROLLBACK = (JournalMode.DELETE, JournalMode.TRUNCATE, JournalMode.PERSIST)


def promise(config: StoreConfig, faults: FaultClass, *, lazy_dirs: bool = False,
            locks_dropped: bool = False) -> Promise:
    """The promise table of FIELD-NOTES section 1; ``lazy_dirs``: directory entries need a dir fsync;
    ``locks_dropped``: the application closed a descriptor of its live database, which cancels the
    process's POSIX locks -- SQLite's guarantees rest on those locks, so it promises nothing."""
    mode, sync = config.journal_mode, config.synchronous
    if locks_dropped:
        return Promise(False, LossBound.ANY, "the application closed a descriptor of its live database: its "
                                             "POSIX locks are gone (howtocorrupt 2.2), SQLite promises nothing")
    if mode in (JournalMode.OFF, JournalMode.MEMORY):
        return Promise(False, LossBound.ANY, f"journal_mode={mode.value}: a crash mid-write can corrupt")
    if faults is FaultClass.PROCESS_CRASH:
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


class Verdict(str, enum.Enum):
    PASS = "pass"
    CORRUPT = "corrupt"
    LOST_ACKED = "lost-acked"
    EXPECTED_LOSS = "expected-loss"
    ERROR = "error"


@dataclass(frozen=True)
class Judgement:
    """A verdict, whether the oracle expected it, and why."""

    verdict: Verdict
    expected: bool
    promised_safe: bool
    reason: str
    promise: Promise | None = None
    verification: Verification | None = None

    @property
    def lost_acked(self) -> int:
        return 0 if self.verification is None else self.verification.lost_acked


def is_expected(verdict: Verdict, promise: Promise) -> bool:
    """Does the verdict stay inside the promise? An error never does."""
    if verdict in (Verdict.PASS, Verdict.EXPECTED_LOSS):
        return True
    if verdict is Verdict.CORRUPT:
        return not promise.consistent
    if verdict is Verdict.LOST_ACKED:
        return promise.loss is LossBound.ANY
    return False


def lab_error(reason: str) -> Judgement:
    return Judgement(Verdict.ERROR, expected=False, promised_safe=False, reason=reason)


def judge(
    ledger: Ledger | None,
    facts: ProbeFacts | None,
    faults: Sequence[str],
    *,
    config: StoreConfig | None = None,
    lazy_dirs: bool = False,
    locks_dropped: bool = False,
    error: str | None = None,
) -> Judgement:
    """The verdict of one trial.

    ``config`` defaults to the READY facts (what was in force, which can differ from what
    was asked: WAL falls back to DELETE on some FUSE mounts). ``error`` is a lab failure
    the caller saw (engine error, timeout...). An unknown fault name is a lab error too.
    """
    if error:
        return lab_error(error)
    if ledger is None:
        return lab_error("no ledger")
    if not ledger.ready:
        return lab_error("the workload never reported READY")
    if facts is None:
        return lab_error("no probe output")
    if facts.probe_error:
        return lab_error(f"the probe failed: {facts.probe_error}")
    if facts.store.import_failed:
        return lab_error(f"the store could not be imported: {facts.store.error}")
    try:
        fclass = fault_class(faults)
        cfg = config if config is not None else StoreConfig.from_ready(ledger.ready)
    except OracleError as exc:
        return lab_error(str(exc))
    prom = promise(cfg, fclass, lazy_dirs=lazy_dirs, locks_dropped=locks_dropped)
    ver = compare(ledger, facts)
    verdict, reason = _verdict(ver, prom)
    return Judgement(verdict, is_expected(verdict, prom), prom.promised_safe, reason, prom, ver)


def _verdict(ver: Verification, prom: Promise) -> tuple[Verdict, str]:
    if ver.corrupt:
        return Verdict.CORRUPT, _summary(ver.problems())
    if ver.lost_acked == 0:
        return Verdict.PASS, f"{ver.acked} acknowledged writes all present"
    count = f"{ver.lost_acked} of {ver.acked} acknowledged writes lost"
    if prom.loss is LossBound.LAST_COMMITS:
        if ver.loss_is_suffix:
            return Verdict.EXPECTED_LOSS, f"{count} (the last commits; {prom.reason})"
        return Verdict.LOST_ACKED, f"{count}, not only the last commits ({prom.reason})"
    return Verdict.LOST_ACKED, f"{count}: {_summary(ver.problems())}"


def _summary(lines: tuple[str, ...], limit: int = 3) -> str:
    shown = "; ".join(lines[:limit])
    return shown + (f"; +{len(lines) - limit} more" if len(lines) > limit else "")
