"""The CLI on bad input and without an engine: one line, the right exit code, nothing left behind."""

from __future__ import annotations

import dataclasses
import pathlib
import shlex
import subprocess
import sys

import pytest

from repro.report.outcome import report_json
from repro import cli, commands
from repro.cli import build_parser, main
from repro.errors import ExitCode
from repro.oracle.verdicts import Verdict
from repro.report.outdir import ReportDir
from repro.report.records import RunMeta, RunResult, TrialRecord
from repro.scenario import Hazard, Scenario, StoreSpec, WorkloadSpec, expand, replay_command, scenario_to_dict
from test_report import rec


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """Run in an empty directory with no engine: a test that wrongly gets far cannot start a machine."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "--profile", "fly-3"], ("unknown profile", "fly-256")),
        (["run", "--fault", "nope"], ("unknown fault", "sigkill")),
        (["run", "--fault", "sigkill@whenever"], ("unknown trigger",)),
        (["run", "--fault", "sigterm@acks=²"], ("whole number",)),
        (["run", "--fault", "sigterm", "--fault", "disk-fill"], ("must come last",)),
        (["run", "--preset", "fast"], ("unknown preset", "ns506")),
        (["run", "--journal-mode", "wall"], ("unknown journal mode",)),
        (["run", "--store-path", "does/not/exist"], ("does/not/exist", "hermes_state")),
        (["run", "--trials", "0"], ("--trials",)),
        (["run", "--trials", "many"], ("--trials",)),
        (["matrix", "--profiles", "fly-256,fly-2t"], ("fly-2t",)),
        (["matrix", "--presets", ","], ("--presets", "nothing")),
        (["matrix", "--faults", " , "], ("--faults", "nothing")),
        (["matrix", "--presets", "ns506,ns506"], ("share the id",)),
        (["run", "--fault", "sigterm@acks=99999999999"], ("below",)),
        (["run", "--rate", "nan"], ("--rate", "finite")),
        (["run", "--hazard", "chaos"], ("unknown hazard", "raw-open")),
        (["run", "--out", "report.txt/sub"], ("report directory",)),
        (["run", "--json", "no/such/dir/r.json"], ("--json",)),
        (["frobnicate"], ("invalid choice",)),
        (["run", "--fault", "sigkill", "--fail-on", "regression"], ("--fail-on regression", "two stores")),
        (["matrix", "--presets", "legacy,ns506,durable", "--fail-on", "regression"], ("exactly two stores",)),
        (["matrix", "--presets", "legacy,ns506", "--fail-on", "worse"], ("--fail-on", "regression")),
        (["run", "--shard", "3/2", "--seed", "1"], ("--shard", "between 1 and N")),
        (["run", "--shard", "half", "--seed", "1"], ("--shard", "K/N")),
        (["run", "--shard", "1/2"], ("--shard needs --seed",)),
        (["run", "--fault", "sigkill", "--trials", "2", "--shard", "3/3", "--seed", "1"], ("has no trials",)),
        (["merge", "--out", "merged", "nowhere"], ("report.json", "does not exist")),
        (["report", "nowhere"], ("report.json", "does not exist")),
        # sizes that cannot fit the machine: refused up front, with the limit (not 61 s per trial, exit 3)
        (["run", "--message-size", "1:99999999999999g"], ("--message-size", "more than any machine")),
        (["run", "--message-size", "1:17m"], ("--message-size", "fly-256", "at most 16m")),
        (["matrix", "--profiles", "fly-1g", "--message-size", "1k:65m"], ("fly-1g", "at most 64m")),
        (["run", "--message-size", "1:" + "9" * 400], ("--message-size", "characters")),
        (["run", "--trials", "100000000"], ("--trials", "at most 100,000")),
        (["matrix", "--trials", "30000", "--faults", "sigkill,sigterm,oom,disk-fill"], ("150,000",)),  # + the control
        (["run", "--trials", "40000"], ("at most 100,000",)),  # the default run is 8 scenarios
        (["run", "--fault", "sigkill@acks="], ("sigkill@acks=", "no value")),
        (["run", "--fs", "zfs"], ("unknown filesystem 'zfs'",)),
        (["run", "--fs", "ext4", "--fs", "btrfs"], ("one --fs",)),
        (["run", "--fs", "xfs"], ("at least 300 MB",)),
        (["run", "--fs", "ext4", "--fault", "sigkill"], ("power-loss", "not sigkill")),
        (["run", "--fs", "ext4", "--fault", "power-loss:lazy-dirs"], ("the kernel decides",)),
        (["run", "--fault", "sigkill@acks=" + "9" * 30], ("below",)),
        (["run", "--mix", "append=nan"], ("--mix", "whole number")),
        (["run", "--mix", "append=1e3"], ("--mix", "whole number")),
        (["run", "--hazard", "cron=" + "9" * 5000], ("cron", "characters")),
        (["run", "--jobs", "100000"], ("--jobs",)),
        (["clean", "--run", "x", "--stale"], ("not allowed with",)),
        # foreign stores and starting databases: checked before any machine starts
        (["run", "--store-path", ".", "--store-ref", "r@v1"], ("give one",)),
        (["matrix", "--store-refs", "r@v1,nowhere"], ("REPO@REV", "nowhere")),
        (["run", "--store-requirements", "auto"], ("--store-requirements needs --store-path or --store-ref",)),
        (["run", "--store-ref", "r@v1", "--store-requirements", "missing.txt"], ("missing.txt", "not a file")),
        (["run", "--from-db", "missing.db"], ("--from-db", "not a file")),
        (["run", "--from-db", "report.txt", "--initial-size", "10m"], ("give one",)),
        (["run", "--initial-size", "3x"], ("--initial-size", "malformed size")),
        (["run", "--initial-size", "4k"], ("--initial-size", "at least 1m")),
        (["run", "--disk-fill-to", "100"], ("--disk-fill-to", "1 to 99")),
        (["run", "--disk-size", "1g"], ("fly-256", "more than half its memory")),
        (["run", "--profile", "fly-256", "--initial-size", "300m"], ("does not fit fly-256's 64m disk", "--disk-size")),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], words: tuple[str, ...],
                                          capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    (tmp_path / "report.txt").write_text("not a directory")
    assert main(argv) == ExitCode.BAD_INPUT == 2
    line = one_error_line(capsys)
    assert line.startswith("repro: error: ")
    for word in words:
        assert word in line
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]  # bad input is caught before anything is made


def test_error_lines_echo_user_input_capped(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["run", "--fault", "x" * 100_000], ["run", "--profile", "p" * 100_000],
                 ["run", "--trials", "7" * 100_000 + "x"], ["run", "--preset", "q" * 100_000]):
        assert main(argv) == ExitCode.BAD_INPUT
        line = one_error_line(capsys)
        assert len(line) < 700, len(line)


def test_the_mix_error_is_the_labs_own_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--mix", "append=nan"]) == ExitCode.BAD_INPUT
    assert "invalid literal" not in one_error_line(capsys)


def test_a_huge_trial_count_is_refused_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    started = time.monotonic()
    assert main(["matrix", "--trials", "99999", "--faults", "sigkill,sigterm", "--presets", "ns506,legacy"]) == 2
    assert time.monotonic() - started < 2  # no list of 400,000 scenarios is made first
    one_error_line(capsys)


def test_an_existing_out_is_refused_and_force_only_clears_a_lab_report(capsys: pytest.CaptureFixture[str],
                                                                       tmp_path: pathlib.Path) -> None:
    out = tmp_path / "old"
    out.mkdir()
    (out / "report.json").write_text('{"format": 1, "run": {}, "trials": []}')
    assert main(["run", "--fault", "sigkill", "--out", str(out)]) == ExitCode.BAD_INPUT
    assert "--force" in one_error_line(capsys)
    assert main(["run", "--fault", "sigkill", "--out", str(out), "--force"]) == ExitCode.LAB_FAILED  # no engine
    one_error_line(capsys)
    assert (out / "report.json").exists()  # nothing cleared before the engine answered
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "thesis.tex").write_text("mine")
    assert main(["run", "--fault", "sigkill", "--out", str(junk), "--force"]) == ExitCode.BAD_INPUT
    assert "even with --force" in one_error_line(capsys)
    assert (junk / "thesis.tex").read_text() == "mine"


def test_a_malformed_deadline_override_is_bad_input(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_LAB_DEADLINES", "faults=soon")
    assert main(["run", "--fault", "sigkill"]) == ExitCode.BAD_INPUT
    assert "HERMES_LAB_DEADLINES" in one_error_line(capsys)


def test_no_engine_is_exit_3_and_leaves_nothing(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    assert main(["run", "--fault", "sigkill", "--trials", "1"]) == ExitCode.LAB_FAILED == 3
    line = one_error_line(capsys)
    assert line.startswith("repro: engine: ") and "engine" in line.removeprefix("repro: engine: ")
    assert not (tmp_path / "runs").exists()  # no empty report directory
    assert list(tmp_path.iterdir()) == []


def test_no_engine_with_out_dir_creates_nothing(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    out = tmp_path / "reports"
    assert main(["run", "--fault", "sigkill", "--trials", "1", "--out", str(out)]) == 3
    one_error_line(capsys)
    assert not out.exists()


def test_replay_of_a_missing_run_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    assert main(["replay", str(tmp_path / "runs" / "nope"), "t1"]) == 2
    assert "report.json" in one_error_line(capsys)


def test_replay_of_a_run_dir_without_a_lab_report_is_exit_2(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: pathlib.Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text("{not json")
    assert main(["replay", str(run), "t1"]) == 2
    assert "not a lab report" in one_error_line(capsys)


def _report_with(run_dir: pathlib.Path, *records: TrialRecord) -> None:
    run_dir.mkdir(parents=True)
    meta = RunMeta(run_id="r", seed=99, started_at="2026-07-01T10:00:00Z", command="repro matrix")
    (run_dir / "report.json").write_text(report_json(RunResult(meta, records)))


def test_replay_runs_exactly_the_stored_trial(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    """The Scenario comes back from report.json, the one trial alone: no matrix is expanded again."""
    scenarios = expand(["fly-512"], [("disk-fill", "sigterm@acks=50")], [StoreSpec("legacy", synchronous="full")],
                       9, seed=99, workload=WorkloadSpec(rate=3.0, hazards=(Hazard.parse("raw-open=5"),)))
    records = [dataclasses.replace(rec(n, Verdict.PASS), id=s.trial_id, scenario=scenario_to_dict(s))
               for n, s in enumerate(scenarios)]
    _report_with(tmp_path / "run", *records)
    ran: list[Scenario] = []

    def fake_run(scenarios: list[Scenario], **kwargs: object) -> tuple[int, pathlib.Path]:
        ran.extend(scenarios)
        assert kwargs["seed"] == 99 and kwargs["compare"] is False
        out = kwargs["out"]
        assert isinstance(out, ReportDir) and out.path.parent == tmp_path / "run" / "replays" and not out.explicit
        return ExitCode.OK, out.path

    monkeypatch.setattr(commands, "_run_scenarios", fake_run)
    target = scenarios[-1]
    assert main(["replay", str(tmp_path / "run"), target.trial_id]) == ExitCode.OK
    assert ran == [target] and ran[0].schedule() == target.schedule()


def test_replay_needs_a_stored_scenario(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    _report_with(tmp_path / "old", rec(1, Verdict.CORRUPT, expected=False))  # an older lab stored no scenario
    assert main(["replay", str(tmp_path / "old"), "t001"]) == ExitCode.BAD_INPUT
    assert "older lab" in one_error_line(capsys)
    assert main(["replay", str(tmp_path / "old"), "t999"]) == ExitCode.BAD_INPUT
    assert "no trial 't999'" in one_error_line(capsys)


def test_the_replay_command_names_the_run_and_the_trial(tmp_path: pathlib.Path) -> None:
    command = replay_command(tmp_path / "run", "fly-256.sigkill.ns506.3")
    assert shlex.split(command) == ["repro", "replay", str(tmp_path / "run"), "fly-256.sigkill.ns506.3"]
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.command, args.run_dir, args.trial_id) == ("replay", str(tmp_path / "run"), "fly-256.sigkill.ns506.3")


def test_the_cli_imports_no_engine_client_before_a_command_needs_one() -> None:
    """`repro --help` and bad input (exit 2 before any container) import neither docker-py nor testcontainers:
    every documented command and test pays for its own startup. The known-bad case: a module that imports
    them does show up."""
    code = ("import sys, {module}; print(sorted(m for m in ('docker', 'testcontainers') if m in sys.modules))")
    light = subprocess.run([sys.executable, "-c", code.format(module="repro.cli")], capture_output=True, text=True,
                           cwd=pathlib.Path(__file__).resolve().parents[2], timeout=60)
    assert light.stdout.strip() == "[]", light.stdout + light.stderr
    heavy = subprocess.run([sys.executable, "-c", code.format(module="repro.machine.disk")], capture_output=True,
                           text=True, cwd=pathlib.Path(__file__).resolve().parents[2], timeout=60)
    assert "docker" in heavy.stdout, heavy.stdout + heavy.stderr
