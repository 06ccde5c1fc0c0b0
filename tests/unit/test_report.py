"""Records survive JSON, JUnit counts failures right, Markdown shows replays, comparisons stay honest."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from repro.errors import ExitCode
from repro.oracle.verdicts import Verdict, judge
from repro.report.records import ResultsError, RunMeta, RunResult, TrialRecord
from repro.report.outcome import outcome
from repro.report.markdown import render_markdown
from repro.report.render import write_all
from repro.report.summary import blind_controls, config_label, summarize
from repro.report.terminal import print_table, render_table
from repro.scenario import FaultSpec, Scenario, get_profile, scenario_from_dict, scenario_to_dict
from repro.verify.probe import collect
from test_verify_support import standard_run


def rec(i: int, verdict: Verdict, expected: bool = True, *, faults: tuple[str, ...] = ("sigkill",),
        preset: str = "ns506", promised_safe: bool = True, store: str = "default") -> TrialRecord:
    return TrialRecord(
        id=f"t{i:03d}", profile="fly-256", faults=faults, preset=preset, journal_mode="wal", synchronous="1",
        seed=1000 + i, verdict=verdict, integrity="ok" if verdict is not Verdict.CORRUPT else "failed: page 3",
        acked=40, lost_acked=2 if verdict in (Verdict.LOST_ACKED, Verdict.EXPECTED_LOSS) else 0, phantom=0,
        indeterminate=1, oom_killed=False, exit_code=137, duration_s=1.25, expected=expected,
        promised_safe=promised_safe, detail=f"detail {i} | pipes", artifacts_dir=f"runs/r/t{i:03d}",
        replay=f"repro replay runs/r t{i:03d}", store=store,
    )


def run_of(*trials: TrialRecord) -> RunResult:
    return RunResult(RunMeta(run_id="r", seed=42, started_at="2026-07-01T10:00:00Z", command="repro run"), trials)


MIXED = run_of(
    rec(1, Verdict.PASS),
    rec(2, Verdict.CORRUPT, expected=False),
    rec(3, Verdict.LOST_ACKED, expected=False, faults=("disk-fill", "sigterm")),
    rec(4, Verdict.ERROR, expected=False, promised_safe=False),
    rec(5, Verdict.EXPECTED_LOSS, faults=("power-loss",)),
    rec(6, Verdict.CORRUPT, expected=True, preset="off", promised_safe=False),
)


def test_trial_record_json_round_trip() -> None:
    scenario = Scenario(get_profile("fly-256"), (FaultSpec.parse("disk-fill"), FaultSpec.parse("sigterm")),
                        trial_id="t003")
    r = dataclasses.replace(rec(3, Verdict.LOST_ACKED, expected=False, faults=("disk-fill", "sigterm")),
                            hazards=("raw-open", "dashboard=50"), scenario=scenario_to_dict(scenario))
    assert TrialRecord.from_json(r.to_json()) == r
    back = TrialRecord.from_json(r.to_json()).scenario
    assert back is not None and scenario_from_dict(back) == scenario  # what `repro replay` runs
    assert r.faults_label == "disk-fill+sigterm with raw-open+dashboard=50"
    data = json.loads(r.to_json())
    for key in ("id", "profile", "faults", "preset", "journal_mode", "synchronous", "seed", "verdict",
                "integrity", "acked", "lost_acked", "phantom", "indeterminate", "oom_killed", "exit_code",
                "duration_s", "expected", "detail", "artifacts_dir", "replay", "scenario"):
        assert key in data
    assert data["verdict"] == "lost-acked" and data["faults"] == ["disk-fill", "sigterm"]


def test_bad_records_raise_typed_errors() -> None:
    good = json.loads(rec(1, Verdict.PASS).to_json())
    with pytest.raises(ResultsError):
        TrialRecord.from_dict({k: v for k, v in good.items() if k != "seed"})
    with pytest.raises(ResultsError):
        TrialRecord.from_dict({**good, "verdict": "fine"})
    with pytest.raises(ResultsError):
        TrialRecord.from_dict({**good, "scenario": "repro run --fault sigkill"})
    with pytest.raises(ResultsError):
        RunResult.from_json("[]")


def test_written_files_round_trip_and_junit_counts(tmp_path: pathlib.Path) -> None:
    paths = write_all(tmp_path / "out", MIXED)
    assert [p.name for p in paths] == ["report.json", "report.md", "junit.xml", "report.html"]
    back = RunResult.from_json((tmp_path / "out" / "report.json").read_text())
    assert back == MIXED
    assert json.loads((tmp_path / "out" / "report.json").read_text())["exit_code"] == 3
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 6
    failed = sorted(c.get("name") for c in cases if c.find("failure") is not None)
    errored = sorted(c.get("name") for c in cases if c.find("error") is not None)
    assert failed == ["t002", "t003"]
    assert errored == ["t004"]
    assert (root.get("failures"), root.get("errors"), root.get("tests")) == ("2", "1", "6")
    # one suite per store configuration, named without the run id: stable across runs, distinct per store
    assert sorted(s.get("name") for s in root.findall("testsuite")) == ["hermes-lab.ns506", "hermes-lab.off"]
    ns506 = next(s for s in root.findall("testsuite") if s.get("name") == "hermes-lab.ns506")
    assert (ns506.get("failures"), ns506.get("errors"), ns506.get("tests")) == ("2", "1", "5")
    assert {c.get("classname") for c in ns506.findall("testcase")} >= {"hermes-lab.ns506.fly-256.sigkill"}


def test_markdown_lists_every_trial_that_harmed_data_with_replay() -> None:
    md = render_markdown(MIXED)
    assert "exit 3" in md
    harmed = md.split("## Trials that harmed data")[1].split("## Lab errors")[0]
    for trial in ("t002", "t003", "t005", "t006"):  # broken promises, and the expected ones too
        assert f"### {trial}:" in harmed and f"repro replay runs/r {trial}" in harmed
        assert f"artifacts: `runs/r/{trial}`" in harmed
    assert "t001" not in harmed  # a pass
    assert harmed.count("(no no-fault control ran") == 2 and "SQLite's promise" not in harmed
    assert "expected: SQLite promises nothing here" in harmed  # t006, the positive control
    assert "repro replay runs/r t004" in md.split("## Lab errors")[1]
    assert "detail 2 \\| pipes" in md
    assert "wal/normal" in md and "synchronous 1" not in md and "wal/1" not in md
    assert "reproduced in 1 of 2" in md  # the sigkill/ns506 group: t001 pass, t002 corrupt (t004 is an error)


def test_groups_and_terminal_table() -> None:
    groups = {(g.key.faults, g.key.config): g for g in summarize(MIXED.trials)}
    sigkill = groups[("sigkill", "ns506")]
    assert (sigkill.count(Verdict.PASS), sigkill.count(Verdict.CORRUPT), sigkill.count(Verdict.ERROR)) == (1, 1, 1)
    assert groups[("disk-fill+sigterm", "ns506")].failed == 1
    console = Console(record=True, width=200)
    console.print(render_table(list(MIXED.trials)))
    text = console.export_text()
    assert "disk-fill+sigterm" in text and "expected-loss" in text
    assert text.count(" NO ") == 2  # sigkill/ns506 and disk-fill+sigterm
    assert "ns506 (wal/normal)" in text  # the configuration asked for, and the pragmas in force by name


def test_blind_positive_control_is_detected() -> None:
    trials = [rec(1, Verdict.PASS, preset="off", promised_safe=False), rec(2, Verdict.PASS, preset="off",
                                                                           promised_safe=False)]
    assert [k.config for k in blind_controls(trials)] == ["off"]
    assert blind_controls(trials + [rec(3, Verdict.CORRUPT, preset="off", promised_safe=False)]) == ()
    assert "positive controls that never failed" in render_markdown(run_of(*trials))
    console = Console(record=True, width=300)
    print_table(trials, console)
    text = console.export_text()
    assert "warning:" in text and "may not see this bug class" in text
    console = Console(record=True, width=300)
    print_table(trials + [rec(3, Verdict.CORRUPT, preset="off", promised_safe=False)], console)
    assert "warning:" not in console.export_text()


def test_record_trial_from_a_real_judgement(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db", synchronous=1)
    ledger = w.ledger()
    w.sql("DELETE FROM messages WHERE id = 8")
    w.sql("UPDATE sessions SET message_count = message_count - 1 WHERE id = 's2'")
    w.close()
    j = judge(ledger, collect(w.path, open_store=False), ["sigkill"])
    r = TrialRecord.judged(j, id="t1", profile="fly-256", faults=("sigkill",), preset="ns506", journal_mode="wal",
                           synchronous="1", seed=7, duration_s=1.235, replay="repro replay x t1")
    assert (r.verdict, r.acked, r.lost_acked, r.expected, r.duration_s) == (Verdict.LOST_ACKED, 18, 1, False, 1.235)
    assert r.detail == j.reason and TrialRecord.from_json(r.to_json()) == r
    assert outcome(run_of(r)).code is ExitCode.TRIAL_FAILED
    assert dataclasses.replace(r, verdict=Verdict.PASS, expected=True).failed is False


def test_a_foreign_store_is_named_by_its_source_own_settings_and_the_pragmas_in_force(tmp_path: pathlib.Path) -> None:
    """Two releases under directories with the same last name, and a ref: never one label, never a preset they
    did not run; the same words in the terminal, report.md, JUnit and the comparison."""
    old = dataclasses.replace(rec(1, Verdict.PASS, preset="own", store="/x/a/release"), synchronous="2")
    new = dataclasses.replace(rec(2, Verdict.LOST_ACKED, expected=False, preset="own", store="/x/b/release"),
                              synchronous="2", lost_acked=0, preexisting=1020, lost_preexisting=2,
                              start="from-db /beta/state.db: 0.2 MB (20 sessions, 1,000 messages; a copy, read-only)"
                                    "; restored in 0.05 s; disk 1% full at the start (0.3 of 64 MB)")
    ref = dataclasses.replace(rec(3, Verdict.PASS, preset="legacy", store="/repo@v1 (0123abc)"), synchronous="2")
    labels = [config_label(r) for r in (old, new, ref)]
    assert labels == ["/x/a/release own settings", "/x/b/release own settings", "/repo@v1 (0123abc) legacy"]
    console = Console(width=200, record=True)
    print_table([old, new], console)
    text = console.export_text()
    assert "/x/a/release own settings (wal/full)" in text and "/x/b/release own settings (wal/full)" in text
    assert "0 + 2 pre-existing" in text and "start: from-db /beta/state.db: 0.2 MB" in text
    run = dataclasses.replace(run_of(old, new), meta=dataclasses.replace(run_of().meta, compare=True))
    md = render_markdown(run)
    assert "/x/a/release own settings (wal/full)" in md and "pre-existing rows 1020, lost or rewritten 2" in md
    assert "between /x/a/release own settings (wal/full) and /x/b/release own settings (wal/full)" in md
    write_all(tmp_path, run)
    junit = (tmp_path / "junit.xml").read_text()
    assert "store=/x/b/release own settings in_force=wal/full" in junit and "lost_preexisting=2" in junit
    assert json.loads((tmp_path / "report.json").read_text())["trials"][1]["lost_preexisting"] == 2


def test_a_record_with_every_field_set_comes_back_equal_and_bad_values_are_refused() -> None:
    """report.json's trial object is the record's fields through the facts' codec: every field travels (a new
    column needs no line of JSON code), and a value of the wrong type is a ResultsError, never a wrong record."""
    from repro.report.records import PhaseCall
    from repro.report.timeline import Mark, MarkKind, Timeline

    timeline = Timeline(acked=((0.0, 0), (1.5, 40)), failed=((0.0, 0),), marks=(Mark(1.2, MarkKind.FAULT, "sigkill"),),
                        lost=(1.1,), lost_total=1, duration=1.5, files=(("state.db", 4096),))
    full = dataclasses.replace(rec(1, Verdict.LOST_ACKED, expected=False, store="/x/s"), sqlite_version="3.40.1",
                               sqlite="3.53.2",
                               sqlite_source_id="2026", checkpoints=3, schedule=("sigkill after 9 acks",),
                               hazards=("cron",), cpus="pinned to CPU 1", preexisting=5, lost_preexisting=1,
                               start="from-db", evidence={"state.db": "ab"}, scenario={"format": 3, "x": [1, None]},
                               timeline=timeline, phases=(PhaseCall("boot", 0.5), PhaseCall("judge", 1.0, "E: x")))
    defaults = [f.name for f in dataclasses.fields(full)
                if f.default is not dataclasses.MISSING and getattr(full, f.name) == f.default]
    assert not defaults, defaults
    assert TrialRecord.from_json(full.to_json()) == full
    good = json.loads(full.to_json())
    for key, bad in (("duration_s", "1.2"), ("acked", True), ("evidence", {"state.db": 3}), ("phases", [{"name": 1}]),
                     ("timeline", {**good["timeline"], "files": [["state.db"]]}), ("oom_killed", "no")):
        with pytest.raises(ResultsError):
            TrialRecord.from_dict({**good, key: bad})
    older = {k: v for k, v in good.items() if k not in ("phases", "cpus", "detail")}  # a report of an older lab
    assert TrialRecord.from_dict(older).phases == () and TrialRecord.from_dict(older).detail == ""
