"""Every phase of a trial has a deadline; a phase past it ends as a DeadlineError naming the phase. Replay is runnable and says what changed."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import time

import pytest

from repro.errors import DeadlineError, ScenarioError
from repro.machine.watchdog import Watchdog
from repro.oracle.verdicts import Verdict
from repro.phases import Phase, deadline_overrides, phase_deadlines
from repro.pipeline import PHASES
from repro.report.comparison import replay_lines
from repro.scenario import FaultSpec, Scenario, WorkloadSpec, get_profile, replay_script
from test_report import rec


def scenario(*faults: str, **workload: object) -> Scenario:
    return Scenario(get_profile("fly-256"), tuple(FaultSpec.parse(f) for f in faults), seed=1, trial_id="t1",
                    workload=WorkloadSpec(**workload))  # type: ignore[arg-type]


def test_every_phase_has_a_deadline_derived_from_the_scenario() -> None:
    plain = phase_deadlines(scenario("sigterm"), {})
    assert set(plain) == {*PHASES, Phase.RECORD} and all(0 < s < 600 for s in plain.values())
    # a slow shutdown, a later trigger and a second fault each make the waits longer
    assert phase_deadlines(scenario("sigterm", linger_ms=8000), {})[Phase.STOP] == plain[Phase.STOP] + 8
    assert phase_deadlines(scenario("sigterm@random=30000"), {})[Phase.FAULTS] == pytest.approx(
        plain[Phase.FAULTS] + 30)
    assert phase_deadlines(scenario("disk-fill", "sigterm"), {})[Phase.FAULTS] > 1.8 * plain[Phase.FAULTS]
    assert phase_deadlines(scenario("sigterm"), {Phase.FAULTS: 5.0})[Phase.FAULTS] == 5.0


def test_deadline_overrides_parse_and_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    assert deadline_overrides("faults=8, restart=60.5") == {Phase.FAULTS: 8.0, Phase.RESTART: 60.5}
    monkeypatch.setenv("HERMES_LAB_DEADLINES", "boot=3")
    assert deadline_overrides() == {Phase.BOOT: 3.0}
    for bad in ("fault=8", "faults", "faults=0", "faults=nan", "faults=-1", "faults=" + "9" * 400):
        with pytest.raises(ScenarioError, match="HERMES_LAB_DEADLINES") as caught:
            deadline_overrides(bad)
        assert len(str(caught.value)) < 400


def test_a_phase_past_its_deadline_is_a_deadline_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # the removal finds no engine: still an error
    dog = Watchdog("t1")
    started = time.monotonic()
    with pytest.raises(DeadlineError, match="the faults phase passed its 0.2 s deadline"):
        with dog.phase("faults", 0.2):
            time.sleep(1.0)  # a wait the watchdog cannot interrupt, like a frozen machine's exec
    assert time.monotonic() - started < 5
    with pytest.raises(DeadlineError):  # whatever the phase raised once its machine was pulled away
        with Watchdog("t2").phase("stop", 0.1):
            time.sleep(0.5)
            raise ConnectionError("the container went away")
    with Watchdog("t3").phase("boot", 5.0):  # within the deadline: nothing happens
        pass


def test_replay_shows_original_and_replayed_figures_and_says_when_they_differ() -> None:
    original = dataclasses.replace(rec(1, Verdict.LOST_ACKED, expected=False), acked=301, lost_acked=1)
    same = replay_lines(original, original, "process")
    assert same[0] == "original: verdict lost-acked, acked 301, lost_acked 1, integrity ok"
    assert "same verdict and figures" in same and any("approximate" in line and "timing" in line for line in same)
    replayed = dataclasses.replace(original, verdict=Verdict.PASS, lost_acked=0, acked=290)
    lines = replay_lines(original, replayed, "process")
    assert lines[1] == "replay:   verdict pass, acked 290, lost_acked 0, integrity ok"
    assert "DIFFERENT: verdict, acked, lost_acked" in lines
    assert "no record" in replay_lines(original, None, "power-loss")[1]


def test_replay_sh_runs_from_its_own_directory_without_repro_on_path(tmp_path: pathlib.Path) -> None:
    """The script names the interpreter and the lab by absolute paths: here the run has no report,
    so the lab itself answers (exit 2, one line), which a bare `repro` not on PATH never would (127)."""
    trial = tmp_path / "run" / "trials" / "t1"
    trial.mkdir(parents=True)
    (trial / "replay.sh").write_text(replay_script(tmp_path / "run", "t1"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    proc = subprocess.run(["sh", "replay.sh"], cwd=trial, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("repro: error: ") and "report.json does not exist" in proc.stderr


def test_each_phase_is_recorded_with_its_time_and_the_error_that_ended_it() -> None:
    """Phases run from a table; each records (name, seconds, error) like pytest's CallInfo, and the
    record carries them through report.json."""
    import dataclasses

    from repro.pipeline import PHASE_STEPS, _called
    from repro.report.records import PhaseCall, TrialRecord
    from test_report import rec

    assert [p for p, _ in PHASE_STEPS] == list(PHASES) and all(callable(step) for _, step in PHASE_STEPS)
    calls: list[PhaseCall] = []
    with _called(Phase.BOOT, calls):
        pass
    with pytest.raises(ValueError), _called(Phase.WORKLOAD, calls):
        raise ValueError("no READY line\nmore")
    assert [(c.name, c.error) for c in calls] == [("boot", ""), ("workload", "ValueError: no READY line")]
    assert all(c.seconds >= 0 for c in calls)
    from repro.oracle.verdicts import Verdict

    record = dataclasses.replace(rec(1, Verdict.ERROR), phases=tuple(calls))
    assert TrialRecord.from_json(record.to_json()).phases == tuple(calls)
    assert record.to_dict()["phases"][1] == {"name": "workload", "seconds": calls[1].seconds,  # type: ignore[index]
                                             "error": "ValueError: no READY line"}
