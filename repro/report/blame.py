"""Whose fault a failed trial is -- the store, the application's hazard, the configuration in force, or SQLite below its
documented promise -- as far as the lab can tell, with a matrix's no-fault control per store as the witness.

The control (fault ``clean-stop``: a clean start, the workload, Fly's ordinary stop) runs each store and
configuration on each profile with no crash at all. A loss or damage the control shows too needed no crash: it is
the store's own doing (or the application hazard's, when the trials ran one), never SQLite's. SQLite is named only
for the lab's own store (it acknowledges a write once SQLite has committed it, and deletes nothing it wrote), with
no pre-existing row among the losses (those were durable before any crash), and a control that ran clean. Without
a control (``repro run``) the sentence names the configuration's promise and says what would tell.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from repro.oracle.verdicts import Verdict
from repro.report.records import TrialRecord
from repro.report.summary import config_label
from repro.scenario import FaultName

CONTROL_FAULT = FaultName.CLEAN_STOP.value
_CONTROL_WORDS = "its no-fault control (a clean start, the workload, a clean stop)"


class Actor(str, enum.Enum):
    """Who a failed trial's harm is laid at."""

    STORE = "the store"
    HAZARD = "the application's hazard"
    CONFIGURATION = "the configuration in force"
    SQLITE = "SQLite"


def harm_kinds(record: TrialRecord) -> frozenset[str]:
    """What a trial did to the data: ``corrupt`` and/or ``lost`` (acknowledged writes or pre-existing rows)."""
    kinds = set()
    if record.verdict is Verdict.CORRUPT:
        kinds.add("corrupt")
    if record.verdict in (Verdict.LOST_ACKED, Verdict.EXPECTED_LOSS) or record.lost_preexisting:
        kinds.add("lost")
    return frozenset(kinds)


def is_control(record: TrialRecord) -> bool:
    return record.faults == (CONTROL_FAULT,)


def _key(record: TrialRecord) -> tuple[str, tuple[str, ...], str]:
    return record.profile, record.hazards, config_label(record)


@dataclass(frozen=True)
class Controls:
    """What each store's control showed, per (profile, hazards, store configuration): the kinds of harm (empty: clean)."""

    seen: Mapping[tuple[str, tuple[str, ...], str], frozenset[str]] = field(default_factory=dict)

    def of(self, record: TrialRecord) -> frozenset[str] | None:
        """The harm the control of this trial's store showed; None when no control ran for it."""
        return self.seen.get(_key(record))


NO_CONTROLS = Controls()


def controls_of(records: Iterable[TrialRecord]) -> Controls:
    seen: dict[tuple[str, tuple[str, ...], str], frozenset[str]] = {}
    for record in records:
        if is_control(record) and not record.lab_error:
            seen[_key(record)] = seen.get(_key(record), frozenset()) | harm_kinds(record)
    return Controls(seen)


def actor(record: TrialRecord, controls: Controls = NO_CONTROLS) -> Actor | None:
    """Who the failed trial's harm is laid at (None when the trial did not fail)."""
    if not record.failed:
        return None
    own = Actor.HAZARD if record.hazards else Actor.STORE
    shown = controls.of(record)
    if is_control(record) or (shown and harm_kinds(record) & shown):
        return own
    if record.store == "default" and record.lost_preexisting == 0:
        return Actor.SQLITE if shown is not None else Actor.CONFIGURATION
    return Actor.STORE if record.store != "default" else Actor.CONFIGURATION


def sqlite_at_fault(record: TrialRecord, controls: Controls = NO_CONTROLS) -> bool:
    """A failed trial the lab lays at SQLite's door (``actor``: the lab's own store, no pre-existing row lost,
    a clean control)."""
    return actor(record, controls) is Actor.SQLITE


def _harm(record: TrialRecord) -> str:
    if record.verdict is Verdict.CORRUPT:
        return "left a corrupt database"
    if record.lost_preexisting and not record.lost_acked:
        return "lost rows that existed before it began"
    return "lost acknowledged writes" + (" and rows that existed before the trial" if record.lost_preexisting else "")


def failure_text(record: TrialRecord, controls: Controls = NO_CONTROLS) -> str:
    """A failed trial in words, naming the actor as far as the lab can tell (``actor``)."""
    who = actor(record, controls)
    harm = _harm(record)
    hazard = f"the application's hazard ({'+'.join(record.hazards)})"
    if is_control(record):
        doer = hazard + "'s doing" if who is Actor.HAZARD else "the store's own doing"
        return f"{harm} with no fault at all (a clean start, the workload, a clean stop): {doer}, not SQLite's"
    if who in (Actor.STORE, Actor.HAZARD) and controls.of(record):
        doer = hazard + "'s doing" if who is Actor.HAZARD else "the store's own doing"
        return f"{doer}: {_CONTROL_WORDS} {harm} too, so no crash was needed (not SQLite's promise)"
    if who is Actor.SQLITE:
        return (f"SQLite below its documented promise: the lab's own store {harm} where the configuration in force "
                f"promises none, and {_CONTROL_WORDS} was clean")
    if record.lost_preexisting and not record.lost_acked and record.verdict is not Verdict.CORRUPT:
        subject = "the store" if record.store != "default" else "the trial"
        return (f"{subject} lost rows that existed before it began, where the configuration in force promises no loss: "
                "they were durable before any crash, and a store that deletes or rewrites rows loses them with no "
                "crash at all (the lab cannot tell the store's part from SQLite's)")
    promise = "no corruption" if record.verdict is Verdict.CORRUPT else "no loss"
    if record.store != "default":
        mine = "the store's own code wrote it" if record.verdict is Verdict.CORRUPT else "its acknowledgements are its own"
        return (f"the store {harm} where the configuration in force promises {promise} ({mine}: the lab cannot tell "
                f"SQLite's part; a matrix's no-fault control would)")
    return (f"{harm} where the configuration in force promises {promise} (no no-fault control ran, so the store's "
            "part is not ruled out: `repro matrix` runs one per store)")


def promise_text(record: TrialRecord, controls: Controls = NO_CONTROLS) -> str:
    """What the oracle made of a trial, in words: a broken promise (and whose), or why its harm was expected."""
    if record.lab_error:
        return "the lab failed"
    if record.failed:
        return failure_text(record, controls)
    if record.verdict is Verdict.EXPECTED_LOSS:
        return "expected: the configuration allows this loss"
    if not record.promised_safe and record.harmed:
        return ("expected: SQLite promises nothing here (the configuration in force, or the application's hazard "
                "dropped the locks)")
    return "as expected"


# How a comparison's side reads (comparison.py's headline): SQLite, the store itself, or only its configuration's promise.
BLAMED = "fell below SQLite's documented promise"
OWN_DOING = "lost or corrupted data on its own (its no-fault control did too, with no crash)"
NOT_BLAMED = "lost or corrupted data where its configuration promised none"


def side_blame(records: Sequence[TrialRecord]) -> str:
    """How a side's broken promises read: SQLite's only when every failure is (blame.actor), the store's own when its
    control showed each of them, else the configuration's promise."""
    controls = controls_of(records)
    actors = {actor(r, controls) for r in records if r.failed}
    if actors == {Actor.SQLITE}:
        return BLAMED
    if actors and actors <= {Actor.STORE, Actor.HAZARD} and all(controls.of(r) for r in records if r.failed):
        return OWN_DOING
    return NOT_BLAMED


__all__ = ["BLAMED", "CONTROL_FAULT", "NOT_BLAMED", "NO_CONTROLS", "OWN_DOING", "Actor", "Controls", "actor",
           "controls_of", "failure_text", "harm_kinds", "is_control", "promise_text", "side_blame", "sqlite_at_fault"]
