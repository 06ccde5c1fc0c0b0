"""Exploration end to end on traces recorded without FUSE: the clean run keeps its promises, a disk
that lies about fsync is caught, a state is reproduced exactly, reports and bad input."""

from __future__ import annotations

import pathlib

import pytest

from repro.cli import main
from repro.errors import ExitCode, ScenarioError
from repro.explore.check import Checker, ChunkStats, ViolationKind, judge_state, ledger_at
from repro.explore.models import PRESETS, PersistenceModel as M
from repro.explore.space import StateSpec
from repro.explore.timeline import CrashPoint
from repro.ledger import Outcome
from repro.oracle.promises import StoreConfig
from repro.oracle.verdicts import Verdict
from repro.verify.probe import collect
from test_explore_support import recorded_run
from test_verify_support import FakeWorkload


@pytest.fixture(autouse=True)
def _store_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HERMES_STATE_PRESET", "HERMES_STATE_JOURNAL_MODE", "HERMES_STATE_SYNCHRONOUS"):
        monkeypatch.delenv(name, raising=False)


def point(acked: int, next_ack: int | None, wal_sync_ack: int = 0) -> CrashPoint:
    return CrashPoint(0, 0, 0, (), (), 0, acked, next_ack, wal_sync_ack, 0)


def test_the_ledger_at_a_crash_point(tmp_path: pathlib.Path) -> None:
    w = FakeWorkload(tmp_path / "state.db")
    w.create_session("s1")                 # 1
    w.append("s1", "a")                    # 2
    w.append("s1", "b", outcome="fail")    # 3: rolled back, whatever the crash
    w.append("s1", "c")                    # 4
    w.append("s1", "d")                    # 5
    full = w.ledger()
    w.close()
    cut = ledger_at(full, point(acked=2, next_ack=4))
    assert [(op.index, op.outcome) for op in cut.operations] == [
        (1, Outcome.OK), (2, Outcome.OK), (3, Outcome.FAIL), (4, Outcome.INFO)]  # 5 not invoked yet
    assert not cut.operations[3].result and cut.ready == full.ready


def test_a_loss_before_the_last_wal_sync_breaks_the_promise(tmp_path: pathlib.Path) -> None:
    """WAL + NORMAL may lose the commits since the last WAL sync -- not one acknowledged before it."""
    w = FakeWorkload(tmp_path / "state.db", synchronous=1)
    w.create_session("s1")
    for n in range(5):
        w.append("s1", f"m{n}")  # ledger 2..6
    ledger = w.ledger()
    w.sql("DELETE FROM messages WHERE id >= 4")  # commits 5 and 6 rolled back, consistently
    w.sql("UPDATE sessions SET message_count = 3")
    w.close()
    facts = collect(tmp_path / "state.db", open_store=False)
    config = StoreConfig.parse("wal", 1)
    for horizon, kind in ((4, None), (5, ViolationKind.LOST_BEYOND_SYNC), (6, ViolationKind.LOST_BEYOND_SYNC)):
        spec = StateSpec(M.PREFIX, 0, point(6, None, wal_sync_ack=horizon), (), ())
        result = judge_state(spec, facts, ledger, config, False, 9, True)
        assert result.verdict is Verdict.EXPECTED_LOSS and result.lost == (5, 6)
        assert result.kind is kind, (horizon, result)
    spec = StateSpec(M.PREFIX, 0, point(6, None, wal_sync_ack=6), (), ())
    full = judge_state(spec, facts, ledger, StoreConfig.parse("wal", 2), False, 9, True)
    assert full.kind is ViolationKind.LOST_ACKED  # FULL allows no loss at all


def test_states_that_share_a_probe_get_the_verdict_their_own_probe_gives(tmp_path: pathlib.Path) -> None:
    trace = recorded_run(tmp_path, lying_fsync_from=8)
    shared, alone = Checker(trace, tuple(PRESETS.values())), Checker(trace, tuple(PRESETS.values()), images=False)
    try:
        stats = ChunkStats()
        for model in PRESETS.values():
            for index in range(shared.space.total(model)):
                a, b = shared.check(model, index, stats), alone.check(model, index, stats)
                assert (a.verdict, a.lost, a.reason) == (b.verdict, b.lost, b.reason), (model, index)
    finally:
        shared.close()
        alone.close()


@pytest.mark.parametrize(("argv", "words"), [
    (["explore"], ("TRACE_DIR", "--record")),
    (["explore", ".", "--record"], ("not both",)),
    (["explore", "no/such/dir"], ("not a directory",)),
    (["explore", "."], ("trace.jsonl",)),
    (["explore", ".", "--models", "prefix,sorted"], ("unknown persistence model", "torn")),
    (["explore", ".", "--budget", "0"], ("--budget",)),
    (["explore", ".", "--shrink", "-1"], ("--shrink must be from 0",)),
    (["explore", ".", "--materialize", "prefix:1"], ("--out",)),
    (["explore", "--record", "--preset", "fast"], ("unknown preset",)),
    (["explore", "--record", "--ops", "0"], ("--ops",)),
    (["explore", "--record", "--ops", "10001"], ("--ops must be from 1 to 10,000",)),
    (["explore", "--record", "--rate", "-1"], ("--rate must be from 0",)),
    (["explore", "--record", "--rate", "nan"], ("--rate must be from 0",)),
    (["explore", "--record", "--rate", "1e9"], ("--rate must be from 0",)),
    (["explore", "--record", "--jobs", "65"], ("--jobs must be from 1 to 64",)),
    (["explore", "--record", "--jobs", "0"], ("--jobs must be from 1 to 64",)),
    (["explore", "--record", "--fs", "zfs"], ("unknown filesystem 'zfs'", "ext4, xfs, btrfs")),
    (["explore", "--record", "--fs", "xfs"], ("--fs xfs needs a disk of at least 300 MB", "64 MB")),
    (["explore", "--record", "--fs", "xfs:nobarrier"], ("XFS has no nobarrier",)),
    (["explore", "--record", "--fs", "ext4:data=fast"], ("data=fast",)),
    (["explore", ".", "--fs", "ext4"], ("--fs is how a trace is recorded",)),
    (["explore", "--record", "--fs", "ext4", "--models", "prefix"], ("not a block-level model",)),
    (["explore", "--record", "--models", "block-prefix"], ("recorded with --fs",)),
    (["explore", ".", "--models", "block-sorted"], ("not a block-level model", "block-drop-one")),
    (["explore", ".", "--recovery", "-1"], ("--recovery must be from 0 to 100",)),
    (["explore", "--record", "--recovery", "101"], ("--recovery must be from 0 to 100",)),
    (["explore", "--record", "--fs", "ext4", "--recovery", "2"], ("--recovery", "not with --fs")),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], words: tuple[str, ...], tmp_path: pathlib.Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # nothing may reach an engine
    assert main(argv) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_a_bad_state_id_is_bad_input(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = recorded_run(tmp_path, commits=3)
    for state in ("prefix", "prefix:100000", "nope:1"):
        assert main(["explore", str(trace.path), "--materialize", state, "--out", str(tmp_path / "o")]) == 2
    assert "MODEL:INDEX" in capsys.readouterr().err


def test_a_power_loss_trial_asks_for_its_trace_and_replays_with_it() -> None:
    from repro.scenario import FaultSpec, Scenario, get_profile, scenario_from_dict, scenario_to_dict
    from repro.workload.config import WorkloadConfig

    scenario = Scenario(get_profile("fly-256"), (FaultSpec.parse("power-loss:record,lazy-dirs@acks=9"),), seed=3)
    assert scenario.records and scenario.lossy_args == "--lazy-dirs"  # recording is the machine's, not a flag
    assert scenario_from_dict(scenario_to_dict(scenario)).records
    plain = Scenario(get_profile("fly-256"), (FaultSpec.parse("power-loss"),))
    assert not plain.records
    with pytest.raises(Exception, match="record"):
        FaultSpec.parse("sigkill:record")
    marked = WorkloadConfig.from_env({"LAB_MARK_SOCKET": "/run/lab/marks.sock"})
    assert marked.mark_socket == "/run/lab/marks.sock" and WorkloadConfig.from_env({}).mark_socket == ""
    assert WorkloadConfig.from_env(marked.to_env()) == marked


def _no_engine(monkeypatch: pytest.MonkeyPatch, where: pathlib.Path) -> None:
    monkeypatch.chdir(where)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # nothing may reach an engine


def test_explore_refuses_a_used_out_without_force_before_any_engine(tmp_path: pathlib.Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    trace = recorded_run(tmp_path / "rec", commits=2)
    _no_engine(monkeypatch, tmp_path)
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    assert main(["explore", str(trace.path), "--out", str(used)]) == ExitCode.BAD_INPUT
    assert "is not empty" in capsys.readouterr().err
    assert main(["explore", str(trace.path), "--out", str(used), "--force"]) == ExitCode.BAD_INPUT
    assert "holds no lab report" in capsys.readouterr().err  # --force deletes only the lab's own reports
    assert (used / "notes.txt").read_text() == "mine"
    # known bad for the refusals above: an empty --out passes them and only then needs the engine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["explore", str(trace.path), "--out", str(empty)]) == ExitCode.LAB_FAILED
    assert "no Docker engine answers" in capsys.readouterr().err


def test_explore_force_never_goes_through_a_symbolic_link(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    trace = recorded_run(tmp_path / "rec", commits=2)
    _no_engine(monkeypatch, tmp_path)
    real = tmp_path / "real"
    real.mkdir()
    (real / "report.json").write_text('{"run": 1, "trials": [], "format": 1}')
    link = tmp_path / "link"
    link.symlink_to(real)
    assert main(["explore", str(trace.path), "--out", str(link), "--force"]) == ExitCode.BAD_INPUT
    assert "is a symbolic link" in capsys.readouterr().err
    assert (real / "report.json").exists()


def test_explore_never_writes_its_reports_where_its_trace_is_read_from(tmp_path: pathlib.Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`explore runs/x/trace --out runs/x --force` would have --force delete the trace it is about to read."""
    run_dir = tmp_path / "runs" / "x"
    trace = recorded_run(run_dir, commits=2)
    (run_dir / "explore.json").write_text("{}")
    (run_dir / ".repro-run").write_text("old 1\n")  # an earlier exploration's report directory
    _no_engine(monkeypatch, tmp_path)
    assert main(["explore", str(trace.path), "--out", str(run_dir), "--force"]) == ExitCode.BAD_INPUT
    assert "is inside --out" in capsys.readouterr().err
    assert (trace.path / "trace.jsonl").is_file()
    assert main(["explore", str(trace.path), "--out", str(tmp_path / "elsewhere")]) == ExitCode.LAB_FAILED  # known good
    assert "no Docker engine answers" in capsys.readouterr().err


def test_a_trace_whose_log_disagrees_with_itself_or_predates_the_frames_is_refused(tmp_path: pathlib.Path) -> None:
    """A trace's machine.log is evidence too: a missing record, or a log of a lab before its records were
    framed, is a clear error -- never states judged against a partial ledger."""
    trace = recorded_run(tmp_path / "a", commits=3)
    assert trace.ledger().acked  # the known-good case
    log = trace.path / "machine.log"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:3] + lines[4:]) + "\n")  # one gateway record gone
    with pytest.raises(ScenarioError, match=r"disagrees with itself: gateway: record\(s\) 3 of"):
        trace.ledger()
    log.write_text("\n".join(line.partition(" ")[2] for line in lines) + "\n")  # the frames stripped
    with pytest.raises(ScenarioError, match="older lab"):
        trace.ledger()
