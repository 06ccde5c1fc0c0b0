"""The CLI on bad input and without an engine: one line, the right exit code, nothing left behind."""

from __future__ import annotations

import pathlib

import pytest

from repro.cli import main
from repro.results import ExitCode


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
