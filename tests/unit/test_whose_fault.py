"""Whose fault: a failed trial names its actor -- the store (its no-fault control shows the same), the application's
hazard, the configuration's promise, or SQLite below its documented promise only when the lab can tell; the verdict
and exit code never change."""

from __future__ import annotations

import dataclasses
import html
import xml.etree.ElementTree as ET

from rich.console import Console

from repro.errors import ExitCode
from repro.oracle.verdicts import Verdict
from repro.report.blame import Actor, actor, controls_of, promise_text, sqlite_at_fault
from repro.report.comparison import compare_runs
from repro.report.html import render_html
from repro.report.junit import junit_element
from repro.report.markdown import render_markdown
from repro.report.outcome import outcome
from repro.report.records import TrialRecord
from repro.report.terminal import print_outcome
from test_report import rec, run_of

FOREIGN = "/src/hermes-agent"


def lost(i: int, *, store: str = "default", acked: int = 2, preexisting: int = 0,
         faults: tuple[str, ...] = ("sigkill",)) -> TrialRecord:
    record = rec(i, Verdict.LOST_ACKED, expected=False, store=store, faults=faults)
    return dataclasses.replace(record, lost_acked=acked, preexisting=40 if preexisting else 0,
                               lost_preexisting=preexisting)


def control(i: int, *, store: str = "default", harmed: bool = False, preexisting: int = 0) -> TrialRecord:
    if harmed:
        return lost(i, store=store, acked=0 if preexisting else 2, preexisting=preexisting, faults=("clean-stop",))
    return rec(i, Verdict.PASS, store=store, faults=("clean-stop",))


def texts(*trials: TrialRecord) -> str:
    run = run_of(*trials)
    console = Console(record=True, width=400)
    print_outcome(outcome(run), console)
    junit = ET.tostring(junit_element(run), encoding="unicode")
    return render_markdown(run) + render_html(run) + console.export_text() + html.unescape(junit)


def test_the_labs_own_store_losing_writes_without_a_control_names_the_configuration_not_sqlite() -> None:
    trial = lost(1)
    assert actor(trial) is Actor.CONFIGURATION and not sqlite_at_fault(trial)
    assert promise_text(trial).startswith("lost acknowledged writes where the configuration in force promises no loss "
                                          "(no no-fault control ran")
    shown = texts(trial)
    assert "broke SQLite's promise" not in shown and "SQLite promised" not in shown
    assert outcome(run_of(trial)).code is ExitCode.TRIAL_FAILED  # the verdict stands


def test_with_a_clean_control_the_labs_own_store_losing_writes_is_sqlite_below_its_promise() -> None:
    trials = (lost(1), control(2))
    assert sqlite_at_fault(trials[0], controls_of(trials))
    assert promise_text(trials[0], controls_of(trials)).startswith("SQLite below its documented promise")
    assert "SQLite promised none (SQLite below its documented promise" in outcome(run_of(*trials)).result


def test_a_store_that_deletes_a_row_on_open_is_its_own_doing_by_its_control() -> None:
    """The known-bad case: the control (no crash at all) loses a pre-existing row as the faulted trials do."""
    trials = (lost(1, store=FOREIGN, acked=0, preexisting=1), control(2, store=FOREIGN, harmed=True, preexisting=1))
    controls = controls_of(trials)
    assert [actor(t, controls) for t in trials] == [Actor.STORE, Actor.STORE]
    assert promise_text(trials[0], controls).startswith("the store's own doing: its no-fault control (a clean start, "
                                                        "the workload, a clean stop) lost rows that existed before "
                                                        "it began too")
    assert promise_text(trials[1], controls).startswith("lost rows that existed before it began with no fault at all")
    result = outcome(run_of(*trials))
    assert result.code is ExitCode.TRIAL_FAILED and "the store's own doing, not SQLite's" in result.result
    shown = texts(*trials)
    assert "SQLite's promise" not in shown.replace("not SQLite's promise", "") and "SQLite promised" not in shown
    failure = ET.fromstring(ET.tostring(junit_element(run_of(*trials)))).find(".//failure")
    assert failure is not None and str(failure.text).startswith("the store's own doing: its no-fault control")


def test_a_control_that_only_lost_does_not_excuse_a_corruption() -> None:
    corrupt = rec(1, Verdict.CORRUPT, expected=False)
    trials = (corrupt, control(2, harmed=True))
    assert actor(corrupt, controls_of(trials)) is Actor.SQLITE  # the control lost writes, it never corrupted
    assert actor(trials[1], controls_of(trials)) is Actor.STORE


def test_a_hazard_that_harms_the_control_is_named() -> None:
    trials = tuple(dataclasses.replace(t, hazards=("cron=1",)) for t in (lost(1), control(2, harmed=True)))
    controls = controls_of(trials)
    assert actor(trials[0], controls) is Actor.HAZARD
    assert promise_text(trials[0], controls).startswith("the application's hazard (cron=1)'s doing")


def test_a_foreign_store_that_lost_acknowledged_writes_is_named_not_sqlite() -> None:
    trial = lost(1, store=FOREIGN)
    assert trial.failed and not sqlite_at_fault(trial)  # the verdict stands: a failure, exit 1
    assert promise_text(trial).startswith("the store lost acknowledged writes where the configuration in force "
                                          "promises no loss")
    assert outcome(run_of(trial)).code is ExitCode.TRIAL_FAILED
    shown = texts(trial)
    assert "SQLite's promise" not in shown and "SQLite promised" not in shown
    assert "the store lost acknowledged writes" in shown


def test_pre_existing_rows_lost_are_not_laid_at_sqlites_door() -> None:
    for store in ("default", FOREIGN):
        trial = lost(1, store=store, acked=0, preexisting=3)
        assert trial.failed and not sqlite_at_fault(trial, controls_of([trial, control(2, store=store)]))
        text = promise_text(trial)
        assert "lost rows that existed before it began" in text and "no crash at all" in text
        assert outcome(run_of(trial)).code is ExitCode.TRIAL_FAILED
        shown = texts(trial)
        assert "SQLite's promise" not in shown and "SQLite promised" not in shown


def test_a_comparison_names_sqlite_or_the_store_only_for_the_side_it_can() -> None:
    old = [lost(1), rec(2, Verdict.PASS), control(5)]
    new = [lost(3, store=FOREIGN), rec(4, Verdict.PASS, store=FOREIGN)]
    headline = compare_runs(old, new, "v1", "v2").headline
    assert "v1 fell below SQLite's documented promise in fly-256/sigkill (1)" in headline
    assert "v2 lost or corrupted data where its configuration promised none in fly-256/sigkill (1)" in headline
    own = [lost(6, store=FOREIGN), control(7, store=FOREIGN, harmed=True)]
    assert "v3 lost or corrupted data on its own (its no-fault control did too" in compare_runs(old, own, "v1", "v3").headline
