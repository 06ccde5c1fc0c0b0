"""Ctrl-C: the first one ends a run in order (the CLI waits for its cleanup); a second one ends the process in under a second."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# A command whose orderly end waits on a worker thread, as `repro run --jobs 2` waits for its running trials
# (ThreadPoolExecutor's shutdown, the interpreter's join of its workers at exit) and on the engine's cleanup.
SLOW_END = textwrap.dedent("""
    import sys, threading, time
    from repro import cli, commands

    def run(args, argv):
        ended = threading.Event()
        worker = threading.Thread(target=lambda: (time.sleep(60), ended.set()))  # a trial slow to end
        worker.start()
        try:
            print("ready", flush=True)  # inside the try: a signal right after it still reaches the cleanup
            ended.wait()
        finally:
            print("cleaning up", flush=True)
            ended.wait()
        return 0

    commands.run = run
    sys.exit(cli.main(["run", "--fault", "sigkill"]))
""")


def _start() -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_END], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


@pytest.mark.parametrize(("first", "second"), [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT),
                                               (signal.SIGINT, signal.SIGTERM)])
def test_a_second_interrupt_ends_the_process_in_under_a_second(first: signal.Signals,
                                                               second: signal.Signals) -> None:
    proc = _start()
    try:
        proc.send_signal(first)
        assert proc.stdout is not None and proc.stdout.readline() == "cleaning up\n"  # the orderly end began
        time.sleep(0.3)
        assert proc.poll() is None  # ... and waits for its worker
        sent = time.monotonic()
        proc.send_signal(second)
        proc.wait(timeout=5)
        took = time.monotonic() - sent
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
    assert took < 1.0, f"the second interrupt took {took:.2f} s"
    assert proc.returncode == 128 + second
    assert "Traceback" not in err and "interrupted again: exiting now" in err
    assert len(err.strip().splitlines()) == 1, err


def test_one_interrupt_is_still_an_orderly_end() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_END.replace("time.sleep(60)", "time.sleep(1.5)")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert "cleaning up" in out  # the cleanup ran to its end
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip() == "repro: interrupted; the run's containers and volumes were removed"
