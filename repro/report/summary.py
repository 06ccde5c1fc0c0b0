"""Trials grouped per (profile, faults, preset, store, SQLite) with verdict counts: what every table shows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from repro.oracle.verdicts import Verdict
from repro.report.records import TrialRecord, sqlite_text

VERDICTS: tuple[Verdict, ...] = tuple(Verdict)


@dataclass(frozen=True)
class GroupKey:
    """One row of the table: a profile, a fault combination, a preset (and the store, the SQLite asked for)."""

    profile: str
    faults: str
    preset: str
    store: str = "default"
    sqlite: str = "system"


@dataclass(frozen=True)
class GroupSummary:
    """Verdict counts of one group."""

    key: GroupKey
    counts: tuple[tuple[Verdict, int], ...]
    trials: int
    failed: int
    lost_acked: int
    promised_safe: bool
    pragmas: str = ""  # journal mode/synchronous in force, e.g. "wal/1" (as the store read them back)
    sqlite: str = ""  # the SQLite in force, e.g. "3.51.2 assisted" (as the workload read it)

    def count(self, verdict: Verdict) -> int:
        return dict(self.counts).get(verdict, 0)

    @property
    def harmed(self) -> int:
        """Trials that damaged or lost data, whatever the promise (errors excluded)."""
        return sum(self.count(v) for v in (Verdict.CORRUPT, Verdict.LOST_ACKED, Verdict.EXPECTED_LOSS))

    @property
    def judged(self) -> int:
        return self.trials - self.count(Verdict.ERROR)


def group_key(record: TrialRecord) -> GroupKey:
    return GroupKey(record.profile, record.faults_label, record.preset, record.store, record.sqlite)


def summarize(records: Iterable[TrialRecord]) -> tuple[GroupSummary, ...]:
    """One summary per group, in the order groups first appear."""
    groups: dict[GroupKey, list[TrialRecord]] = {}
    for rec in records:
        groups.setdefault(group_key(rec), []).append(rec)
    out = []
    for key, recs in groups.items():
        counts = Counter(r.verdict for r in recs)
        out.append(GroupSummary(
            key=key,
            counts=tuple((v, counts.get(v, 0)) for v in VERDICTS),
            trials=len(recs),
            failed=sum(1 for r in recs if r.failed),
            lost_acked=sum(r.lost_acked for r in recs),
            promised_safe=all(r.promised_safe for r in recs if not r.lab_error),
            pragmas=", ".join(sorted({f"{r.journal_mode}/{r.synchronous}" for r in recs if not r.lab_error})),
            sqlite=sqlite_text(key.sqlite, [r.sqlite_version for r in recs]),
        ))
    return tuple(out)


def blind_controls(records: Iterable[TrialRecord]) -> tuple[GroupKey, ...]:
    """Groups where nothing was promised yet nothing ever went wrong: the lab may be blind there."""
    return tuple(
        g.key for g in summarize(records)
        if not g.promised_safe and g.judged > 0 and g.harmed == 0
    )
