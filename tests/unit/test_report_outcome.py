"""--fail-on: a measured regression or a bug hunt that found nothing exits 1, fails in JUnit, and leads report.md."""

from __future__ import annotations

import dataclasses
import pathlib
import xml.etree.ElementTree as ET

import pytest

from repro.cli import main
from repro.errors import ExitCode
from repro.oracle.verdicts import Verdict
from repro.report.junit import junit_element
from repro.report.markdown import render_markdown
from repro.report.outcome import outcome
from repro.report.records import FailOn, RunMeta, RunResult, TrialRecord
from repro.report.render import write_all
from test_report import rec


def power_loss(i: int, preset: str, verdict: Verdict) -> TrialRecord:
    sync = "2" if preset == "legacy" else "1"
    return dataclasses.replace(rec(i, verdict, faults=("power-loss",), preset=preset), synchronous=sync,
                               id=f"fly-256.power-loss.{preset}.{i}")


# What docs/findings.md reports: legacy pass 12 of 12, ns506 expected-loss 11 of 12 -- a regression (p < 0.001)
REGRESSION = tuple([power_loss(i, "legacy", Verdict.PASS) for i in range(1, 13)]
                   + [power_loss(i, "ns506", Verdict.EXPECTED_LOSS) for i in range(1, 12)]
                   + [power_loss(12, "ns506", Verdict.PASS)])


def matrix(trials: tuple[TrialRecord, ...], *fail_on: FailOn, shard: str = "") -> RunResult:
    meta = RunMeta(run_id="m", seed=5, started_at="2026-11-29T10:00:00Z",
                   command="repro matrix --faults power-loss --presets legacy,ns506 --trials 12 --seed 5",
                   compare=True, fail_on=fail_on, shard=shard, planned=24)
    return RunResult(meta, trials)


def test_a_measured_regression_passes_without_fail_on_and_fails_with_it() -> None:
    assert outcome(matrix(REGRESSION)).code is ExitCode.OK  # expected-loss is what ns506 allows
    result = outcome(matrix(REGRESSION, FailOn.REGRESSION))
    assert result.code is ExitCode.TRIAL_FAILED == 1
    assert result.comparison is not None and result.comparison.headline.startswith("regression: ns506")
    (gate,) = result.gates
    assert gate.failed and "fly-256/power-loss (worse (p<0.001))" in gate.reason
    assert outcome(matrix(REGRESSION, FailOn.REGRESSION)).code is ExitCode.TRIAL_FAILED


def test_no_regression_when_the_new_store_is_as_good() -> None:
    same = tuple(dataclasses.replace(t, verdict=Verdict.PASS, lost_acked=0) for t in REGRESSION)
    result = outcome(matrix(same, FailOn.REGRESSION))
    assert result.code is ExitCode.OK and not result.gates[0].failed
    few = REGRESSION[:2] + REGRESSION[12:14]  # 0 of 2 vs 2 of 2: not significant
    assert outcome(matrix(few, FailOn.REGRESSION)).code is ExitCode.OK


def test_junit_fails_the_regression_and_the_gate() -> None:
    root = junit_element(matrix(REGRESSION, FailOn.REGRESSION))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"hermes-lab.legacy", "hermes-lab.ns506", "hermes-lab.comparison", "hermes-lab.fail-on"}
    (row,) = suites["hermes-lab.comparison"].findall("testcase")
    assert row.get("classname") == "hermes-lab.comparison.legacy-vs-ns506" and row.get("name") == "fly-256.power-loss"
    assert row.find("failure") is not None
    (gate,) = suites["hermes-lab.fail-on"].findall("testcase")
    assert gate.get("name") == "regression" and gate.find("failure") is not None
    assert root.get("failures") == "2"
    ungated = junit_element(matrix(REGRESSION))  # the same numbers without --fail-on: reported, not failed
    assert ungated.get("failures") == "0"
    assert ungated.find("./testsuite[@name='hermes-lab.comparison']/testcase/system-out") is not None


def test_the_comparison_verdict_leads_report_md() -> None:
    md = render_markdown(matrix(REGRESSION, FailOn.REGRESSION))
    first = [line for line in md.splitlines()[1:] if line.strip()][0]
    assert first.startswith("**regression: ns506 harms data more often than legacy")
    assert "**Result: every trial as the oracle expects, but --fail-on regression:" in md
    assert "(exit 1)" in md
    assert "legacy (wal/full)" in md and "ns506 (wal/normal)" in md


def test_fail_on_reproduced_fails_a_bug_hunt_that_found_nothing() -> None:
    hunt = (rec(1, Verdict.PASS, preset="off", promised_safe=False), rec(2, Verdict.PASS, preset="off",
                                                                        promised_safe=False))
    meta = RunMeta(run_id="h", seed=1, started_at="x", command="repro run", fail_on=(FailOn.REPRODUCED,))
    result = outcome(RunResult(meta, hunt))
    assert result.code is ExitCode.TRIAL_FAILED and "not reproduced: none of 2" in result.result
    found = hunt + (rec(3, Verdict.CORRUPT, preset="off", promised_safe=False),)
    result = outcome(RunResult(meta, found))
    assert result.code is ExitCode.OK and "reproduced in 1 of 3" in result.gates[0].reason
    cases = junit_element(RunResult(meta, hunt)).findall("./testsuite[@name='hermes-lab.fail-on']/testcase")
    assert [c.get("name") for c in cases] == ["reproduced"] and cases[0].find("failure") is not None


def test_a_lab_error_stays_exit_3_whatever_the_gates() -> None:
    broken = REGRESSION + (dataclasses.replace(power_loss(13, "ns506", Verdict.ERROR), expected=False),)
    assert outcome(matrix(broken, FailOn.REGRESSION)).code is ExitCode.LAB_FAILED


def test_repro_report_re_renders_and_merge_gates_from_the_cli(tmp_path: pathlib.Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    write_all(run_dir, matrix(REGRESSION))
    (run_dir / "report.md").unlink()
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == ExitCode.OK
    assert (run_dir / "report.md").read_text() == render_markdown(matrix(REGRESSION))
    assert "<svg" in (run_dir / "report.html").read_text()
    # the CLI path of --fail-on regression: two shards of the regression matrix, merged with the gate
    shards = [tmp_path / "s1", tmp_path / "s2"]
    for n, shard in enumerate(shards, start=1):
        part = REGRESSION[n - 1::2]
        write_all(shard, matrix(part, shard=f"{n}/2"))
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "ok")]) == ExitCode.OK
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "gated"), "--fail-on", "regression"]) == 1
    junit = ET.parse(tmp_path / "gated" / "junit.xml").getroot()
    assert junit.get("failures") == "2"
    out = capsys.readouterr().out
    assert "--fail-on regression: FAIL" in out


def test_repro_report_gates_a_finished_run_again(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`repro report DIR --fail-on C`: the run judged again with C (replacing its own gates, in every report), the
    exit the run would have had; a gate the report cannot answer is bad input, and nothing is rewritten."""
    import json

    run_dir = tmp_path / "run"
    write_all(run_dir, matrix(REGRESSION))
    assert main(["report", str(run_dir), "--fail-on", "regression"]) == ExitCode.TRIAL_FAILED
    assert "--fail-on regression: FAIL" in capsys.readouterr().out
    data = json.loads((run_dir / "report.json").read_text())
    assert data["run"]["fail_on"] == ["regression"] and data["exit_code"] == 1
    assert ET.parse(run_dir / "junit.xml").getroot().get("failures") == "2"
    assert "**Result: every trial as the oracle expects, but --fail-on regression:" in (run_dir / "report.md").read_text()
    assert main(["report", str(run_dir), "--fail-on", "reproduced"]) == ExitCode.OK  # replaced, not added
    assert json.loads((run_dir / "report.json").read_text())["run"]["fail_on"] == ["reproduced"]

    single = tmp_path / "single"
    write_all(single, RunResult(RunMeta(run_id="s", seed=1, started_at="x", command="repro run"), REGRESSION[:3]))
    before = (single / "report.json").read_bytes()
    for condition in ("regression", "inconclusive", "bogus", ""):
        assert main(["report", str(single), "--fail-on", condition]) == ExitCode.BAD_INPUT
        assert (single / "report.json").read_bytes() == before
    hunt = tmp_path / "hunt"  # two SQLites side by side: compared, but `repro hunt` takes no regression gate
    write_all(hunt, dataclasses.replace(matrix(REGRESSION), meta=dataclasses.replace(
        matrix(REGRESSION).meta, command="repro hunt --sqlites 3.51.2,3.53.2")))
    assert main(["report", str(hunt), "--fail-on", "regression"]) == ExitCode.BAD_INPUT
    assert "needs the report of a `repro matrix` of exactly two stores" in capsys.readouterr().err
