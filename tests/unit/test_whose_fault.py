"""Whose fault: a failed trial is called SQLite's broken promise only when the lab can tell; the verdict and exit code never change."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from repro.errors import ExitCode
from repro.oracle.verdicts import Verdict
from repro.report.comparison import compare_runs
from repro.report.html import render_html
from repro.report.markdown import render_markdown
from repro.report.outcome import outcome
from repro.report.records import TrialRecord
from repro.report.summary import promise_text, sqlite_at_fault
from repro.report.terminal import print_outcome
from test_report import rec, run_of

FOREIGN = "/src/hermes-agent"


def lost(i: int, *, store: str = "default", acked: int = 2, preexisting: int = 0) -> TrialRecord:
    record = rec(i, Verdict.LOST_ACKED, expected=False, store=store)
    return dataclasses.replace(record, lost_acked=acked, preexisting=40 if preexisting else 0,
                               lost_preexisting=preexisting)


def texts(*trials: TrialRecord) -> str:
    run = run_of(*trials)
    console = Console(record=True, width=400)
    print_outcome(outcome(run), console)
    return render_markdown(run) + render_html(run) + console.export_text()


def test_the_labs_own_store_losing_acknowledged_writes_still_broke_sqlites_promise() -> None:
    trial = lost(1)
    assert sqlite_at_fault(trial) and promise_text(trial) == "broke SQLite's promise"
    assert outcome(run_of(trial)).result == ("a trial failed: corruption or lost acknowledged writes where SQLite "
                                             "promised none")


def test_a_foreign_store_that_lost_acknowledged_writes_is_named_not_sqlite() -> None:
    trial = lost(1, store=FOREIGN)
    assert trial.failed and not sqlite_at_fault(trial)  # the verdict stands: a failure, exit 1
    assert promise_text(trial).startswith("the store lost acknowledged writes where the configuration in force "
                                          "promises no loss")
    result = outcome(run_of(trial))
    assert result.code is ExitCode.TRIAL_FAILED
    shown = texts(trial)
    assert "SQLite's promise" not in shown and "SQLite promised" not in shown
    assert "the store lost acknowledged writes" in shown


def test_pre_existing_rows_lost_are_not_laid_at_sqlites_door() -> None:
    for store in ("default", FOREIGN):
        trial = lost(1, store=store, acked=0, preexisting=3)
        assert trial.failed and not sqlite_at_fault(trial)
        text = promise_text(trial)
        assert "lost rows that existed before it began" in text and "no crash at all" in text
        assert outcome(run_of(trial)).code is ExitCode.TRIAL_FAILED
        shown = texts(trial)
        assert "SQLite's promise" not in shown and "SQLite promised" not in shown


def test_a_comparison_names_sqlite_only_for_the_side_it_can() -> None:
    old = [lost(1), rec(2, Verdict.PASS)]
    new = [lost(3, store=FOREIGN), rec(4, Verdict.PASS, store=FOREIGN)]
    headline = compare_runs(old, new, "v1", "v2").headline
    assert "v1 broke SQLite's promise in fly-256/sigkill (1)" in headline
    assert "v2 lost or corrupted data where its configuration promised none in fly-256/sigkill (1)" in headline
