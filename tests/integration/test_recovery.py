"""Crash during recovery against real machines: WAL + FULL's reopens make nothing worse, and a store whose
repair empties a table between two commits -- which no first-level state shows -- is caught at the second
level, with the state that shows it written out by the command the report prints."""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import subprocess
import sys

import pytest

from upstream_like import write_module_store

_NO_FUSE = not pathlib.Path("/dev/fuse").exists() and not os.environ.get("CI")
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_NO_FUSE, reason="recording needs /dev/fuse on the engine's host")]
REPRO = pathlib.Path(sys.executable).with_name("repro")  # the console script, as a user runs it


def _explore(tmp_path: pathlib.Path, lab_image: str, *args: str, budget: int = 200, deadlines: str = "",
             ) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if deadlines:
        env["HERMES_LAB_DEADLINES"] = deadlines
    done = subprocess.run([str(REPRO), "explore", "--record", "--ops", "20", "--seed", "3", "--reproducible",
                           "--message-size", "200:2k", "--budget", str(budget), "--image", lab_image, "--out", str(out),
                           *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    report = json.loads((out / "explore.json").read_text()) if (out / "explore.json").is_file() else {}
    return done, report


def test_wal_full_reopens_make_nothing_worse(lab_image: str, tmp_path: pathlib.Path) -> None:
    done, report = _explore(tmp_path, lab_image, "--preset", "durable", "--recovery", "2", "--models", "prefix,torn")
    assert done.returncode == 0, done.stderr[-3000:]
    levels = report["recovery"]
    assert len(levels) == 2 and all(level["made_worse"] == 0 and level["errors"] == 0 for level in levels), levels
    for level in levels:
        assert level["ops"] > 0 and 1 < level["checked"] <= level["states_total"]  # a reopen writes: a checkpoint
        assert level["completed_reopen"] == "pass" and level["completed_reopen_worse"] is None
        first = json.loads((pathlib.Path(level["trace"]) / "first.json").read_text())
        assert first["state"] == level["first_state"] and first["verdict"] == level["first_verdict"] == "pass"


def test_a_repair_that_empties_a_table_between_two_commits_is_caught_at_the_second_level(
        lab_image: str, tmp_path: pathlib.Path) -> None:
    store = write_module_store(tmp_path / "store", rebuild_on_open=True)
    done, report = _explore(tmp_path, lab_image, "--store-path", str(store), "--recovery", "3", "--models", "prefix")
    assert done.returncode == 1, done.stderr[-3000:]
    assert all(m["broken_promises"] == 0 for m in report["models"]), "the first level shows nothing"
    worse = [w for level in report["recovery"] for w in level["worse"]]
    assert worse and all("message row(s) the interrupted state held" in w["how"] for w in worse), report["recovery"]
    # only a crash in between: the completed reopen (always judged, sampled or not) kept every row
    assert all(level["completed_reopen"] and not level["completed_reopen_worse"] for level in report["recovery"])
    # the state the report names, written out and judged again where its first state was
    argv = shlex.split(worse[0]["materialize"].replace("DIR", str(tmp_path / "state")))
    again = subprocess.run([str(REPRO), *argv[1:], "--image", lab_image], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    about = json.loads((tmp_path / "state" / "state.json").read_text())
    assert about["verdict"] in ("corrupt", "lost-acked") and about["lost"], about


def test_a_store_whose_open_deletes_a_row_is_worse_with_no_second_crash_and_says_so(
        lab_image: str, tmp_path: pathlib.Path) -> None:
    """A release that deletes the oldest message whenever it opens a database: the completed reopen lost a row
    the state held -- the store's own doing, not a crash's -- and the report says that."""
    store = write_module_store(tmp_path / "store", drop_oldest_on_open=True)
    done, report = _explore(tmp_path, lab_image, "--store-path", str(store), "--recovery", "2", "--models", "prefix",
                            budget=20)
    assert done.returncode == 1, done.stderr[-3000:]
    dropped = [level for level in report["recovery"] if level["completed_reopen_worse"]]
    assert dropped and all("lost 1 message row(s) the interrupted state held" in level["completed_reopen_worse"]
                           for level in dropped), report["recovery"]
    assert "the store's own doing" in (tmp_path / "out" / "explore.md").read_text()


def test_a_store_that_forges_its_end_in_the_reopen_is_still_recorded_to_its_end(
        lab_image: str, tmp_path: pathlib.Path) -> None:
    """A store that writes a CLOSED event and a FINISH of its own while it opens, then deletes a row 3 s later:
    the lab waits for the process's end from s6's finish script (its own source), not the store's word, so the
    deletion is in the reopen's trace and the completed reopen is worse. (Waiting for CLOSED, or for any FINISH,
    the machine was stopped before the deletion: a false pass.)"""
    store = write_module_store(tmp_path / "store", forge_end_on_reopen=True)
    done, report = _explore(tmp_path, lab_image, "--store-path", str(store), "--recovery", "1", "--models", "prefix",
                            budget=20)
    assert done.returncode == 1, done.stderr[-3000:]
    (level,) = report["recovery"]
    assert level["error"] is None and "lost 1 message row(s) the interrupted state held" in (
        level["completed_reopen_worse"] or ""), level


def test_a_store_that_hangs_on_reopen_is_an_error_of_its_row_and_the_reports_are_still_written(
        lab_image: str, tmp_path: pathlib.Path) -> None:
    """A release that hangs when it opens a database holding messages: each reopen passes the workload phase's
    deadline (5 s here) and is an error of its own, with the reason; the first level is still reported."""
    store = write_module_store(tmp_path / "store", hang_on_reopen=True)
    done, report = _explore(tmp_path, lab_image, "--store-path", str(store), "--recovery", "1", "--models", "prefix",
                            budget=20, deadlines="workload=5")
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["models"][0]["checked"] > 0 and report["models"][0]["verdicts"]["pass"] > 0
    hung = [level for level in report["recovery"] if level["error"]]
    assert len(hung) == len(report["recovery"]) == 1 and all("timed out after 5 s waiting for the store's reopen" in level["error"] for level in hung)
    assert all(level["errors"] == 1 and level["checked"] == 0 for level in hung)
