"""The CLI end to end: reports on disk, artifacts of a failing trial, replay, and Ctrl-C cleanup."""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from repro.machine import engine

pytestmark = pytest.mark.docker
REPRO = [str(pathlib.Path(sys.executable).with_name("repro"))]  # the console script, as a user runs it


def test_run_writes_reports_and_keeps_artifacts_of_a_positive_control(lab_image: str, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([*REPRO, "run", "--fault", "sigkill@on-write", "--journal-mode", "off",
                           "--message-size", "20k:200k", "--trials", "6", "--seed", "31", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # a corrupt OFF trial is what the oracle expects
    report = json.loads((out / "report.json").read_text())
    trials = report["trials"]
    assert len(trials) == 6
    for key in ("id", "profile", "faults", "preset", "journal_mode", "synchronous", "seed", "verdict",
                "integrity", "acked", "lost_acked", "phantom", "indeterminate", "oom_killed",
                "exit_code", "duration_s"):
        assert key in trials[0]
    cases = list(ET.parse(out / "junit.xml").getroot().iter("testcase"))
    assert sorted(c.get("name") for c in cases) == sorted(t["id"] for t in trials)
    assert "seed 31" in proc.stderr
    # journal_mode=OFF killed inside a large commit corrupts (measured: 12 of 20 trials); six
    # trials that all pass would mean the checks are blind
    failing = [t for t in trials if t["verdict"] != "pass"]
    assert failing, [t["detail"] for t in trials]
    for trial in failing:
        kept = pathlib.Path(trial["artifacts_dir"])
        assert (kept / "state.db").is_file() and (kept / "ledger.jsonl").is_file()
        assert (kept / "machine.log").is_file()
        assert shlex.join(["repro", "replay", str(out), trial["id"]]) in (kept / "replay.sh").read_text()
    # report.md stands alone: every trial that harmed data, expected or not, with its evidence and replay
    md = (out / "report.md").read_text()
    harmed = md.split("## Trials that harmed data", 1)[1]
    harmed_trials = [t for t in trials if t["verdict"] in ("corrupt", "lost-acked", "expected-loss")]
    judged = [t for t in trials if t["verdict"] != "error"]
    assert harmed_trials
    for trial in harmed_trials:
        assert f"### {trial['id']}: {trial['verdict']}" in harmed
        assert f"artifacts: `{trial['artifacts_dir']}`" in harmed
        assert shlex.join(["repro", "replay", str(out), trial["id"]]) in harmed
    assert "journal_mode=off" in md  # the override, by name
    assert f"reproduced in {len(harmed_trials)} of {len(judged)}" in md
    assert (out / "report.html").is_file() and "<svg" in (out / "report.html").read_text()
    # the replay of a trial (the last one: its number is above the default --trials) runs the
    # scenario stored in report.json, with the same seed
    last = trials[-1]
    replay = subprocess.run([*REPRO, "replay", str(out), last["id"]], capture_output=True, text=True, timeout=120)
    assert replay.returncode in (0, 1), replay.stderr
    assert f"replaying {last['id']} (seed 31)" in replay.stderr
    (replayed,) = [json.loads(p.read_text()) for p in (out / "replays").glob("*/report.json")]
    assert [t["id"] for t in replayed["trials"]] == [last["id"]]
    assert replayed["trials"][0]["schedule"] == last["schedule"]  # same seed, same fault schedule
    assert replayed["trials"][0]["scenario"] == last["scenario"]


def test_ctrl_c_leaves_nothing_behind(lab_image: str, tmp_path: pathlib.Path) -> None:
    run_id = f"ctrlc-{os.getpid()}"
    env = {**os.environ, "HERMES_LAB_RUN_ID": run_id}
    proc = subprocess.Popen([*REPRO, "run", "--fault", "sigterm", "--trials", "20", "--out", str(tmp_path / "r")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli = engine.client()
    deadline = time.monotonic() + 60
    while not engine.leftovers(cli, run_id)[0]:  # wait until a machine of this run exists
        assert time.monotonic() < deadline and proc.poll() is None, "no machine ever started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert engine.leftovers(cli, run_id) == ([], [])
