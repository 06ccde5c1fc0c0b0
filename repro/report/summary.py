"""Trials grouped per (profile, faults, store configuration) with verdict counts, and the one table every
report shows (terminal, report.md and report.html use the same columns and words).

Words used everywhere: a trial's verdict ``lost-acked`` counts *trials* that lost acknowledged
writes; ``writes lost`` counts the acknowledged *writes* they lost. ``harmed data`` counts trials
that corrupted the database or lost acknowledged writes whatever was promised ("reproduced in
N of M" when the fault harmed data at all).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from repro.oracle.verdicts import Verdict
from repro.report.confidence import RateBound
from repro.report.records import TrialRecord, sqlite_text
from repro.scenario.stores import OWN_SETTINGS

VERDICTS: tuple[Verdict, ...] = tuple(Verdict)
# SQLite's PRAGMA synchronous reads back as a number; the report says its name.
SYNCHRONOUS_NAMES = {"0": "off", "1": "normal", "2": "full", "3": "extra"}
# The store overrides a scenario may carry, and how the report names them.
OVERRIDES = (("journal_mode", "journal_mode"), ("synchronous", "synchronous"), ("checkpoint_mode", "checkpoint"))

WRITES_LOST = "writes lost"
OWN_SETTINGS_LABEL = "own settings"  # a store given no HERMES_STATE_* settings: its own defaults ran
HARMED_DATA = "harmed data"
FAULTS = "faults"
PROFILE_FAULTS = "profile, faults"
# The first column names the faults, and the profile too when the trials ran on more than one
# (else the title names it): one column less keeps the table readable at 80 columns.
COLUMNS = (FAULTS, "store (in force)", "verdicts", WRITES_LOST, HARMED_DATA, "as expected")


def _many_profiles(records: Iterable[TrialRecord]) -> bool:
    return len({r.profile for r in records}) > 1


def columns(records: Iterable[TrialRecord]) -> tuple[str, ...]:
    """The table's columns for these trials (every renderer shows the same)."""
    return (PROFILE_FAULTS, *COLUMNS[1:]) if _many_profiles(records) else COLUMNS


def table_title(records: Iterable[TrialRecord]) -> str:
    profiles = sorted({r.profile for r in records})
    return "crash trials" + (f" on {profiles[0]}" if len(profiles) == 1 else "")


def synchronous_name(value: str) -> str:
    return SYNCHRONOUS_NAMES.get(value.strip(), value)


def in_force(record: TrialRecord) -> str:
    """The journal mode and synchronous the store read back, by name, and the SQLite it ran on:
    ``wal/normal 3.40.1 (system)``, ``wal/full 3.51.2 assisted``."""
    pragmas = f"{record.journal_mode}/{synchronous_name(record.synchronous)}"
    return f"{pragmas} {record.sqlite_text}" if record.sqlite_version or record.sqlite != "system" else pragmas


# The pragmas read back at READY that decide durability (with the SQLite): what "the same settings" compares.
DURABILITY_PRAGMAS = ("journal_mode", "synchronous", "fullfsync", "checkpoint_fullfsync", "locking_mode")


def settings_in_force(record: TrialRecord) -> str:
    """What a trial's store had in force, read back in the machine: ``wal/normal 3.40.1 (system)`` and every other
    durability pragma that differs from SQLite's default (``fullfsync=1``), with the SQLite's source id when it was
    read (two builds of one version differ there)."""
    extra = [f"{name}={record.pragmas[name]}" for name in DURABILITY_PRAGMAS[2:]
             if record.pragmas.get(name, "") not in ("", "0", "normal")]
    source = f" [{record.sqlite_source_id[:30]}]" if record.sqlite_source_id else ""
    return " ".join([in_force(record), *extra]) + source


def config_label(record: TrialRecord) -> str:
    """The store configuration asked for: another store by its full source (path, or ref and short commit),
    then the preset ("own settings": none passed), every override by name and the SQLite unless the system's."""
    store: Mapping[str, object] = {}
    if record.scenario is not None and isinstance(record.scenario.get("store"), Mapping):
        store = record.scenario["store"]  # type: ignore[assignment]
    parts = [] if record.store == "default" else [record.store]
    parts.append(OWN_SETTINGS_LABEL if record.preset == OWN_SETTINGS else record.preset)
    parts += [f"{name}={str(store[key]).lower()}" for key, name in OVERRIDES if store.get(key)]
    if record.sqlite != "system":
        parts.append(f"sqlite={record.sqlite}")
    return " ".join(parts)


def start_labels(records: Iterable[TrialRecord]) -> list[str]:
    """What the trials' disks started with, each distinct start once, without the timings (none when empty)."""
    return list(dict.fromkeys(r.start.split("; restored in")[0] for r in records if r.start))


@dataclass(frozen=True)
class GroupKey:
    """One row of the table: a profile, a fault combination (with hazards) and a store configuration."""

    profile: str
    faults: str
    config: str


@dataclass(frozen=True)
class GroupSummary:
    """Verdict counts of one group."""

    key: GroupKey
    counts: tuple[tuple[Verdict, int], ...]
    trials: int
    failed: int
    writes_lost: int
    promised_safe: bool
    preexisting_lost: int = 0  # rows the trials started with, lost or rewritten
    in_force: str = ""  # journal mode/synchronous the store read back, e.g. "wal/normal"

    def count(self, verdict: Verdict) -> int:
        return dict(self.counts).get(verdict, 0)

    @property
    def harmed(self) -> int:
        """Trials that damaged or lost data, whatever the promise (errors excluded)."""
        return sum(self.count(v) for v in (Verdict.CORRUPT, Verdict.LOST_ACKED, Verdict.EXPECTED_LOSS))

    @property
    def judged(self) -> int:
        return self.trials - self.count(Verdict.ERROR)

    @property
    def as_expected(self) -> bool:
        return self.failed == 0 and self.count(Verdict.ERROR) == 0

    @property
    def reproduced(self) -> str:
        """``reproduced in 2 of 3`` when a trial harmed data, else ''."""
        return f"reproduced in {self.harmed} of {self.judged}" if self.harmed else ""

    @property
    def rates(self) -> tuple[RateBound, ...]:
        """Each bad outcome's count and the rates it is compatible with (repro/report/confidence.py): trials that
        corrupted the database, that lost writes (lost-acked or expected-loss), and that did either; none when
        no trial was judged."""
        if not self.judged:
            return ()
        lost = self.count(Verdict.LOST_ACKED) + self.count(Verdict.EXPECTED_LOSS)
        return (RateBound("corrupt", self.count(Verdict.CORRUPT), self.judged),
                RateBound("lost writes", lost, self.judged), RateBound(HARMED_DATA, self.harmed, self.judged))

    @property
    def harmed_text(self) -> str:
        """The table's cell: ``0 of 3 (<63%)``, ``2 of 3 (9.4% to 99%)``, ``3 of 3 (>37%)``; ``-`` if none judged."""
        if not self.judged:
            return "-"
        bound = self.rates[-1]
        short = bound.range_text.replace("below ", "<").replace("above ", ">")
        return f"{self.harmed} of {self.judged} ({short})"

    @property
    def verdict_text(self) -> str:
        """The non-zero verdict counts: ``2 pass, 1 lost-acked``."""
        return ", ".join(f"{self.count(v)} {v.value}" for v in VERDICTS if self.count(v)) or "none"


def group_key(record: TrialRecord) -> GroupKey:
    return GroupKey(record.profile, record.faults_label, config_label(record))


def summarize(records: Iterable[TrialRecord],
              key: Callable[[TrialRecord], GroupKey] = group_key) -> tuple[GroupSummary, ...]:
    """One summary per group, in the order groups first appear."""
    groups: dict[GroupKey, list[TrialRecord]] = {}
    for rec in records:
        groups.setdefault(key(rec), []).append(rec)
    out = []
    for group, recs in groups.items():
        counts = Counter(r.verdict for r in recs)
        out.append(GroupSummary(
            key=group,
            counts=tuple((v, counts.get(v, 0)) for v in VERDICTS),
            trials=len(recs),
            failed=sum(1 for r in recs if r.failed),
            writes_lost=sum(r.lost_acked for r in recs),
            preexisting_lost=sum(r.lost_preexisting for r in recs),
            promised_safe=all(r.promised_safe for r in recs if not r.lab_error),
            in_force=", ".join(sorted({in_force(r) for r in recs if not r.lab_error})),
        ))
    return tuple(out)


def table_rows(records: Sequence[TrialRecord]) -> list[tuple[GroupSummary, dict[str, str]]]:
    """The cells of ``columns(records)`` for every group, by column name (plain text; each renderer
    styles them its own way)."""
    names = columns(records)
    rows: list[tuple[GroupSummary, dict[str, str]]] = []
    for g in summarize(records):
        config = f"{g.key.config} ({g.in_force})" if g.in_force else g.key.config
        harmed = g.harmed_text
        lost = f"{g.writes_lost} + {g.preexisting_lost} pre-existing" if g.preexisting_lost else str(g.writes_lost)
        first = f"{g.key.profile} {g.key.faults}" if names[0] == PROFILE_FAULTS else g.key.faults
        rows.append((g, dict(zip(names, (first, config, g.verdict_text, lost, harmed,
                                          "yes" if g.as_expected else "NO")))))
    return rows


def blind_controls(records: Iterable[TrialRecord]) -> tuple[GroupKey, ...]:
    """Groups where nothing was promised yet nothing ever went wrong: the lab may be blind there."""
    return tuple(
        g.key for g in summarize(records)
        if not g.promised_safe and g.judged > 0 and g.harmed == 0
    )
