"""The lab's own run lifecycle under faults: nothing left running, nothing hangs, nothing overwritten, no CPU shared.

Each test runs `repro` as a subprocess with a run id of its own (HERMES_LAB_RUN_ID), so that
what it leaves behind -- or not -- is told apart from everything else on a shared engine.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from upstream_like import write_module_store

from repro.machine import engine, watchdog
from repro.machine.cpus import parse_cpuset
from repro.machine.labels import RUN_LABEL

pytestmark = pytest.mark.docker
REPRO = [str(pathlib.Path(sys.executable).with_name("repro"))]  # the console script, as a user runs it


def _env(run_id: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # what a user's shell gives `repro`
    return {**env, "HERMES_LAB_RUN_ID": run_id, **extra}


def _start(run_id: str, *args: str, cwd: pathlib.Path | None = None, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*REPRO, "run", *args], env=_env(run_id, **extra), cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _machines(cli: Any, run_id: str) -> list[dict[str, Any]]:
    return list(cli.api.containers(filters={"label": [f"{RUN_LABEL}={run_id}", "org.hermes-lab.role=machine"]}))


def _wait_until_writing(cli: Any, run_id: str, proc: subprocess.Popen[str]) -> str:
    """The id of a machine of the run whose workload is READY (mid-trial from then on)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        for row in _machines(cli, run_id):
            try:
                if b"READY" in cli.api.logs(row["Id"]):
                    return str(row["Id"])
            except Exception:  # removed meanwhile
                continue
        time.sleep(0.05)
    raise AssertionError(f"no machine of {run_id} became ready (exit {proc.poll()})")


def _time_until_gone(cli: Any, run_id: str, limit: float) -> tuple[float, tuple[list[str], list[str]]]:
    started = time.monotonic()
    while True:
        left = engine.leftovers(cli, run_id)
        if left == ([], []) or time.monotonic() - started > limit:
            return time.monotonic() - started, left
        time.sleep(0.05)


def _reaper_pids(run_id: str) -> list[int]:
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"repro.machine.reaper" in argv and run_id.encode() in argv:
                pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "SIGKILL-group"])
def test_killing_a_running_run_leaves_nothing_behind(how: str, lab_image: str, tmp_path: pathlib.Path) -> None:
    """What `timeout`, a CI cancel or systemd do mid-trial: every machine, holder and disk is gone within 10 s."""
    run_id = f"kill-{how.lower()}-{os.getpid()}"
    proc = _start(run_id, "--fault", "sigterm@acks=100000", "--rate", "200", "--trials", "3",
                  "--out", str(tmp_path / "r"))
    cli = engine.client()
    _wait_until_writing(cli, run_id, proc)
    time.sleep(1.0)  # the workload is writing
    containers, volumes = engine.leftovers(cli, run_id)
    assert len(containers) >= 2 and len(volumes) >= 1  # a machine and its disk holder, the disk
    if how == "SIGKILL-group":
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as a terminal or CI runner may
    else:
        proc.send_signal(getattr(signal, how))
    proc.communicate(timeout=30)
    took, left = _time_until_gone(cli, run_id, 10.0)
    print(f"{how}: exit {proc.returncode}, {len(containers)} container(s) and {len(volumes)} volume(s) "
          f"gone {took:.2f} s after the run's end")
    assert left == ([], []), f"{how} left {left}"
    if how == "SIGTERM":
        assert proc.returncode == 128 + signal.SIGTERM
    time.sleep(3)
    assert not _reaper_pids(run_id)  # the reaper is done too


class _Orphan:
    """A run whose reaper was killed mid-trial, the run itself stopped (SIGSTOP): alive, so that no other lab run on
    the engine (the suite's other worker) reaps its objects, until the test lets it die."""

    def __init__(self, run_id: str, proc: subprocess.Popen[str], left: tuple[list[str], list[str]]) -> None:
        self.run_id, self.proc, self.left = run_id, proc, left

    def die(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # a stopped process dies at once
            self.proc.communicate(timeout=30)


def _orphans(run_ids: list[str], tmp_path: pathlib.Path, made: list[_Orphan]) -> list[_Orphan]:
    """Runs killed mid-trial with their reapers, started together (a run's start reaps the dead runs before it),
    each held alive and stopped until its ``die``; appended to ``made`` so the test can end them whatever happens."""
    procs = [_start(run_id, "--fault", "sigterm@acks=100000", "--rate", "200", "--trials", "2",
                    "--out", str(tmp_path / run_id)) for run_id in run_ids]
    cli = engine.client()
    orphans = []
    for run_id, proc in zip(run_ids, procs):
        made.append(_Orphan(run_id, proc, ([], [])))
        _wait_until_writing(cli, run_id, proc)
    for run_id, proc in zip(run_ids, procs):
        reapers = _reaper_pids(run_id)
        assert len(reapers) == 1
        os.kill(reapers[0], signal.SIGKILL)
        os.kill(proc.pid, signal.SIGSTOP)
    time.sleep(1)
    for run_id, proc in zip(run_ids, procs):
        left = engine.leftovers(cli, run_id)
        assert left[0] and left[1], f"{run_id}: a machine and its disk volume, left while the run is stopped: {left}"
        orphans.append(_Orphan(run_id, proc, left))
    made += orphans
    return orphans


def test_a_run_whose_reaper_died_too_is_reaped_by_clean_run_or_the_next_run(lab_image: str,
                                                                            tmp_path: pathlib.Path) -> None:
    """The fallbacks: `repro clean --run ID` removes exactly that run's; the owner labels alone say a
    run is dead, and the next run's start removes it. Another lab run on the same engine (the suite's other
    worker) may start in the moment between an orphan's death and the command's start and reap it first; that
    proves nothing about the command, so the step is tried again on a new orphan."""
    cli = engine.client()
    made: list[_Orphan] = []
    attempts = 3
    try:
        second = _orphans([f"orphan-b-{os.getpid()}"], tmp_path, made)[0]  # alive all along: nobody may touch it
        for attempt in range(attempts):
            (first,) = _orphans([f"orphan-a-{os.getpid()}-{attempt}"], tmp_path, made)
            first.die()
            clean = subprocess.run([*REPRO, "clean", "--run", first.run_id], env=_env(f"clean-{os.getpid()}"),
                                   capture_output=True, text=True, timeout=60)
            assert clean.returncode == 0, clean.stderr
            assert engine.leftovers(cli, first.run_id) == ([], [])
            said = clean.stdout.strip()  # (an anonymous volume goes with its container: not counted apart)
            if said.startswith(f"removed {len(first.left[0])} container(s)"):
                assert said.endswith(f"of run '{first.run_id}'")
                break
        else:
            pytest.fail(f"{attempts} times another run reaped the orphan before `clean --run` could: {said}")
        assert engine.leftovers(cli, second.run_id) == second.left  # exactly that run's
        started = time.monotonic()
        for attempt in range(attempts):
            if attempt:
                (second,) = _orphans([f"orphan-b-{os.getpid()}-{attempt}"], tmp_path, made)
            second.die()
            nxt = subprocess.run([*REPRO, "run", "--fault", "sigterm@acks=20", "--trials", "1", "--out",
                                  str(tmp_path / f"n{attempt}")], env=_env(f"next-{os.getpid()}-{attempt}"),
                                 capture_output=True, text=True, timeout=180)
            assert nxt.returncode == 0, nxt.stderr
            assert engine.leftovers(cli, second.run_id) == ([], [])
            if second.run_id in nxt.stderr and "dead run" in nxt.stderr:
                break
        else:
            pytest.fail(f"{attempts} times another run reaped the orphan while this one started: {nxt.stderr[-2000:]}")
        print(f"orphans {second.left} reaped by the next run's start (its whole run took "
              f"{time.monotonic() - started:.1f} s)")
    finally:
        for orphan in made:
            orphan.die()
        for orphan in made:
            subprocess.run([*REPRO, "clean", "--run", orphan.run_id], env=_env(f"clean-{os.getpid()}"),
                           capture_output=True, text=True, timeout=60)


def test_a_paused_machine_ends_as_error_within_its_deadline(lab_image: str, tmp_path: pathlib.Path) -> None:
    """`docker pause` after READY freezes the fault agent mid-exec; the watchdog ends the trial, the run goes on."""
    run_id = f"pause-{os.getpid()}"
    out = tmp_path / "r"
    proc = _start(run_id, "--fault", "sigterm@acks=200", "--rate", "100", "--trials", "2", "--out", str(out),
                  HERMES_LAB_DEADLINES="faults=10")
    cli = engine.client()
    machine = _wait_until_writing(cli, run_id, proc)
    time.sleep(1.0)  # the agent is waiting for its 200th ack (2 s at 100/s)
    cli.api.pause(machine)
    paused = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    first, second = json.loads((out / "report.json").read_text())["trials"]
    assert first["verdict"] == "error"
    assert first["detail"].startswith("faults: DeadlineError: the faults phase passed its 10 s deadline"), first
    assert first["duration_s"] < 10 + 20  # the deadline, then the removal and the record
    assert second["verdict"] == "pass", second["detail"]  # the run went on
    print(f"paused machine: error after {first['duration_s']:.1f} s; run ended {time.monotonic() - paused:.1f} s "
          "after the pause")
    assert engine.leftovers(cli, run_id) == ([], [])


def test_a_paused_restarted_machine_ends_as_error_within_its_deadline(lab_image: str, tmp_path: pathlib.Path) -> None:
    """`docker pause` of the disk's holder -- the restarted machine -- while the probe runs in it freezes the
    verify step; the watchdog removes the frozen holder at the restart phase's deadline and the run goes on.
    The pause lands in the second trial, whose disk (and holder) the first trial made and left to it, so the
    holder carries the first trial's label. (The store lingers 3 s when the probe imports it, so that the pause
    lands inside the probe.)"""
    store = write_module_store(tmp_path / "store")
    module = store / "hermes_state.py"
    module.write_text(module.read_text() + "\nimport sys, time\nif sys.argv[0].endswith('probe.py'):\n"
                      "    time.sleep(3)\n")
    os.chmod(tmp_path, 0o755)
    run_id = f"pause-holder-{os.getpid()}"
    out = tmp_path / "r"
    proc = _start(run_id, "--fault", "sigkill@acks=50", "--trials", "3", "--store-path", str(store), "--out", str(out),
                  HERMES_LAB_DEADLINES="restart=12")
    cli = engine.client()
    deadline = time.monotonic() + 120
    probes, showing = 0, False  # probes seen, each counted when it first shows: the second trial's is the second
    paused = None
    while paused is None and time.monotonic() < deadline and proc.poll() is None:
        running = False
        for row in cli.api.containers(filters={"label": [f"{RUN_LABEL}={run_id}", "org.hermes-lab.role=disk-holder"]}):
            try:
                running = any("repro.verify.probe" in " ".join(p) for p in cli.api.top(row["Id"])["Processes"])
            except Exception:  # not running (yet), or removed meanwhile
                continue
            if running and probes == 1 and not showing:
                cli.api.pause(row["Id"])
                paused = time.monotonic()
            break
        probes += int(running and not showing)
        showing = running
        time.sleep(0.05)
    assert paused is not None, "the second trial's probe was never seen running"
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    first, second, third = json.loads((out / "report.json").read_text())["trials"]
    assert first["verdict"] == "pass", first["detail"]
    assert second["verdict"] == "error"
    assert second["detail"].startswith("restart: DeadlineError: the restart phase passed its 12 s deadline"), second
    # the paused holder goes at the deadline with the machines, not a grace later (was 39.9 s: 12 + GRACE_S + removal)
    assert second["duration_s"] < 12 + watchdog.GRACE_S, second["duration_s"]
    assert third["verdict"] == "pass", third["detail"]  # the run went on
    print(f"paused restarted machine (a kept disk's holder): error after {second['duration_s']:.1f} s")
    assert engine.leftovers(cli, run_id) == ([], [])


def test_two_same_second_runs_write_two_report_directories(lab_image: str, tmp_path: pathlib.Path) -> None:
    """Same seed, same run id (one environment), started together with the default --out."""
    run_id = f"twin-{os.getpid()}"
    args = ("--fault", "sigterm@acks=30", "--trials", "1", "--seed", "11")
    procs = [_start(run_id, *args, cwd=tmp_path) for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    dirs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert len(dirs) == 2, dirs
    assert (tmp_path / "runs" / ".gitignore").read_text().splitlines()[-1] == "*"  # made once, by one of them
    for path in dirs:
        assert run_id in path.name
        report = json.loads((path / "report.json").read_text())
        assert [t["seed"] for t in report["trials"]] == [11]
    said = [next(line for line in err.splitlines() if " out " in line) for _, err in results]
    assert said[0] != said[1]
    assert engine.leftovers(engine.client(), run_id) == ([], [])


def test_two_concurrent_runs_never_pin_two_machines_to_one_cpu(lab_image: str, tmp_path: pathlib.Path) -> None:
    """Sampled while both run: no two running machines share a CPU; each record says pinned or why not."""
    ids = [f"cpu-a-{os.getpid()}", f"cpu-b-{os.getpid()}"]
    cli = engine.client()
    clashes: list[str] = []
    samples = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            taken: dict[int, str] = {}
            for run_id in ids:
                for row in cli.api.containers(filters={"label": f"{RUN_LABEL}={run_id}"}):
                    if (row.get("Labels") or {}).get("org.hermes-lab.role") not in ("machine",):
                        continue
                    try:
                        cpuset = cli.api.inspect_container(row["Id"])["HostConfig"]["CpusetCpus"] or ""
                    except Exception:
                        continue
                    for cpu in parse_cpuset(cpuset):
                        if cpu in taken:
                            clashes.append(f"CPU {cpu}: {taken[cpu]} and {run_id}/{row['Id'][:12]}")
                        taken[cpu] = f"{run_id}/{row['Id'][:12]}"
            samples[0] += 1
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    procs = [_start(run_id, "--fault", "sigterm@acks=150", "--rate", "150", "--trials", "3",
                    "--out", str(tmp_path / run_id)) for run_id in ids]
    results = [p.communicate(timeout=300) for p in procs]
    stop.set()
    sampler.join()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert samples[0] > 20
    assert not clashes, clashes[:5]
    pins = [t["cpus"] for run_id in ids for t in json.loads((tmp_path / run_id / "report.json").read_text())["trials"]]
    assert all(p.startswith("pinned to CPU ") or p.startswith("unpinned: ") for p in pins), pins
    print(f"{samples[0]} samples, no shared CPU; pins: {pins}")
    for run_id in ids:
        assert engine.leftovers(cli, run_id) == ([], [])


def test_replay_sh_runs_from_its_own_directory(lab_image: str, tmp_path: pathlib.Path) -> None:
    """A trial that did not pass (here: an error, a trigger that never comes within a short deadline)
    keeps replay.sh; `cd` there and `sh replay.sh` with nothing but /usr/bin:/bin on PATH."""
    run_id = f"replay-{os.getpid()}"
    out = tmp_path / "r"
    deadlines = {"HERMES_LAB_DEADLINES": "faults=3"}
    first = subprocess.run([*REPRO, "run", "--fault", "sigterm@acks=1000000", "--trials", "1", "--seed", "5",
                            "--out", str(out)], env=_env(run_id, **deadlines), capture_output=True, text=True,
                           timeout=180)
    assert first.returncode == 3, first.stderr
    (trial,) = json.loads((out / "report.json").read_text())["trials"]
    directory = pathlib.Path(trial["artifacts_dir"])
    env = {k: v for k, v in _env(f"{run_id}-again", **deadlines).items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    replay = subprocess.run(["sh", "replay.sh"], cwd=directory, env=env, capture_output=True, text=True, timeout=180)
    assert replay.returncode == 3, replay.stderr  # the same error again: a replay, not a shell's 127
    assert "original: verdict error" in replay.stdout and "replay:   verdict error" in replay.stdout
    assert "approximate" in replay.stdout
    (replayed,) = list((out / "replays").glob("*/report.json"))
    assert [t["id"] for t in json.loads(replayed.read_text())["trials"]] == [trial["id"]]


def test_a_missing_image_is_bad_input(lab_image: str, tmp_path: pathlib.Path) -> None:
    proc = subprocess.run([*REPRO, "run", "--image", "hermes-lab:no-such-tag", "--fault", "sigterm", "--trials", "1",
                           "--out", str(tmp_path / "r")], env=_env(f"noimage-{os.getpid()}"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--image 'hermes-lab:no-such-tag'" in proc.stderr and not (tmp_path / "r").exists()


def test_machines_have_read_only_roots_and_bounded_logs(constrained_host: Any) -> None:
    machine = constrained_host("fly-256")
    machine.start()
    machine.start_workload(seed=3)
    machine.wait_for_acks(50)
    cli = engine.client()
    holder = machine.disk.holder
    for container in (machine.get_wrapped_container(), holder):
        config = cli.api.inspect_container(container.id)["HostConfig"]
        assert config["ReadonlyRootfs"] is True
        assert config["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "25m"}}
    denied = machine.get_wrapped_container().exec_run(["sh", "-c", "echo x > /etc/x"], user="root")
    assert denied.exit_code != 0 and b"Read-only file system" in denied.output
    assert holder.exec_run(["sh", "-c", "echo x > /x"]).exit_code != 0
    from repro.testing import inject, verify

    inject(machine, "sigterm")
    result = verify(machine)  # the crash state kept by the read-only holder, the restarted machine's probe
    assert result.verdict == "pass" and result.integrity == "ok" and result.acked >= 50


@pytest.mark.parametrize("how", ["kill", "rm"])
def test_a_machine_killed_from_outside_reads_as_such(how: str, lab_image: str, tmp_path: pathlib.Path) -> None:
    """`docker kill` or `docker rm -f` of the machine while the fault waits for its trigger: the trial is an
    `error` that says the machine was killed from outside the lab -- not the fault's crash, nor a lab failure."""
    run_id = f"outside-{how}-{os.getpid()}"
    out = tmp_path / "r"
    proc = _start(run_id, "--fault", "sigterm@acks=200", "--rate", "100", "--trials", "1", "--out", str(out))
    cli = engine.client()
    machine = _wait_until_writing(cli, run_id, proc)
    time.sleep(0.5)  # the agent is waiting for its 200th ack (2 s at 100/s)
    if how == "kill":
        cli.api.kill(machine)
    else:
        cli.api.remove_container(machine, force=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    (trial,) = json.loads((out / "report.json").read_text())["trials"]
    assert trial["verdict"] == "error", trial
    assert "MachineKilledError: the machine was killed from outside the lab (SIGKILL through the engine" \
        in trial["detail"], trial["detail"]
    assert engine.leftovers(cli, run_id) == ([], [])
