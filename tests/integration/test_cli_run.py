"""The CLI end to end: reports on disk, artifacts of a failing trial, replay, and Ctrl-C cleanup."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from repro import engine

pytestmark = pytest.mark.docker
REPRO = [sys.executable, "-m", "repro.cli"]


def test_run_writes_reports_and_keeps_artifacts_of_a_positive_control(lab_image: str, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([*REPRO, "run", "--fault", "sigkill@on-write", "--journal-mode", "off",
                           "--message-size", "20k:200k", "--trials", "4", "--seed", "31", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # a corrupt OFF trial is what the oracle expects
    report = json.loads((out / "report.json").read_text())
    trials = report["trials"]
    assert len(trials) == 4
    for key in ("id", "profile", "faults", "preset", "journal_mode", "synchronous", "seed", "verdict",
                "integrity", "acked", "lost_acked", "phantom", "indeterminate", "oom_killed",
                "exit_code", "duration_s"):
        assert key in trials[0]
    assert ET.parse(out / "junit.xml").getroot().iter("testcase")
    assert "seed 31" in proc.stderr
    failing = [t for t in trials if t["verdict"] != "pass"]
    for trial in failing:
        kept = pathlib.Path(trial["artifacts_dir"])
        assert (kept / "state.db").is_file() and (kept / "ledger.jsonl").is_file()
        assert (kept / "machine.log").is_file() and "repro run" in (kept / "replay.sh").read_text()
    # the replay of any trial runs the same scenario with the same seed
    replay = subprocess.run([*REPRO, "replay", str(out), trials[0]["id"]], capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert "--seed 31" in replay.stderr
    (replayed,) = [json.loads(p.read_text()) for p in (out / "replays").glob("*/report.json")]
    assert [t["id"] for t in replayed["trials"]] == [trials[0]["id"]]
    assert replayed["trials"][0]["schedule"] == trials[0]["schedule"]  # same seed, same fault schedule


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
