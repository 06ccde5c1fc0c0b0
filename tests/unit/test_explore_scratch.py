"""The scratch space is the run's (issue #20 item 6): a checker's work directory goes when the worker ends at
the end of its input, when it fails, and when it is stopped with SIGTERM; a checker that never starts
leaves none. The worker runs here as the sandbox runs it (``python3 -m repro.explore.worker``), on the
host, on a trace a real SQLite wrote (test_explore_support)."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from repro.explore.check import Checker
from repro.explore.models import PersistenceModel as M
from repro.explore.tracedir import TraceDir
from repro.explore.wire import Reader, frame
from test_explore_support import recorded_run

ROOT = pathlib.Path(__file__).resolve().parents[2]


def worker(trace: TraceDir, scratch: pathlib.Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "repro.explore.worker", str(trace.path), "--models", "prefix",
                             "--scratch", str(scratch), "--no-images"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def hello(proc: subprocess.Popen[bytes]) -> Reader:
    assert proc.stdout is not None
    stdout = proc.stdout
    records = Reader(lambda n: os.read(stdout.fileno(), n))
    assert "ready" in records.next()
    return records


@pytest.mark.parametrize("ending", ["end of input", "a failure", "SIGTERM"])
def test_a_worker_leaves_nothing_in_its_scratch_however_it_ends(ending: str, tmp_path: pathlib.Path) -> None:
    trace = recorded_run(tmp_path / "rec", commits=4)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = worker(trace, scratch)
    assert proc.stdin is not None
    records = hello(proc)
    assert [p.name for p in scratch.iterdir()][0].startswith("repro-explore-")  # it is there while it works
    if ending == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
        want = 128 + signal.SIGTERM
    else:
        index = 2 if ending == "end of input" else 10**6  # no such state: the checker fails
        proc.stdin.write(frame(0, {"batch": [["prefix", index]]}))
        proc.stdin.flush()
        reply = records.next()
        assert ("results" in reply) == (ending == "end of input"), reply
        want = 0 if ending == "end of input" else 3
    proc.stdin.close()
    assert proc.wait(timeout=60) == want
    assert list(scratch.iterdir()) == []


def test_a_checker_that_cannot_start_leaves_no_scratch(tmp_path: pathlib.Path) -> None:
    trace = recorded_run(tmp_path / "rec", commits=2)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    blob = next(trace.path.glob("*.blobs"))  # the initial files' bytes are gone: the work directory cannot be made
    blob.rename(blob.with_name("gone"))
    with pytest.raises(Exception):
        Checker(trace, (M.PREFIX,), str(scratch))
    assert list(scratch.iterdir()) == []
