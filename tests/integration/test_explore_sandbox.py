"""The explore sandbox on a real engine: the states of a trace are checked in one container with no network,
no Docker socket, no privilege and uid 1000, never on the host -- even when the trace's recording.json
names a store of its own -- and the container goes with the run however the run ends.

The traces here are made on the host without a machine (tests/unit/test_explore_support.py), so these
tests need an engine but no FUSE; `repro` runs as a user runs it: the console script beside this
Python, from a folder outside the checkout, with no PYTHONPATH.
"""

from __future__ import annotations

import json
import gc
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "unit"))  # the unit tests' trace helpers

from test_explore_support import recorded_run  # noqa: E402

from repro.errors import ExitCode  # noqa: E402
from repro.explore.check import ViolationKind  # noqa: E402
from repro.explore.models import PRESETS, PersistenceModel as M  # noqa: E402
from repro.explore.report import write_all  # noqa: E402
from repro.explore.runner import explore  # noqa: E402
from repro.explore.sandbox import INPUTS_DIR, ROLE, UPLOAD_DIR, Sandbox  # noqa: E402
from repro.explore.tracedir import META_FILE, TraceDir  # noqa: E402
from repro.machine import engine  # noqa: E402
from repro.machine.labels import ROLE_LABEL  # noqa: E402
from repro.machine.owner import PID_LABEL  # noqa: E402

pytestmark = pytest.mark.docker
ROOT = pathlib.Path(__file__).resolve().parents[2]
REPRO = pathlib.Path(sys.executable).with_name("repro")  # the console script, as a user runs it
HOST_MARKER = ROOT / "tests" / "stores" / "host_marker"


def user_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell gives `repro`: no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


def repro(*args: str, cwd: pathlib.Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPRO), *args], capture_output=True, text=True, cwd=cwd, env=user_env(**env),
                          timeout=timeout)


def test_the_sandbox_has_no_network_no_socket_no_privilege_and_goes_when_closed(lab_image: str,
                                                                                tmp_path: pathlib.Path) -> None:
    trace = recorded_run(tmp_path, commits=2)
    sandbox = Sandbox(trace, image=lab_image, jobs=2).open()
    try:
        container = sandbox.container
        assert container is not None
        container.reload()
        host = container.attrs["HostConfig"]
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
        assert host["CpuShares"] == 2 * 1024  # weighed as its two checkers would be on the host
        assert container.attrs["Config"]["User"] == "1000:1000"
        assert not any("docker.sock" in str(m.get("Source", "")) for m in container.attrs["Mounts"])
        labels = container.labels
        assert labels[ROLE_LABEL] == ROLE and labels[PID_LABEL] == str(os.getpid())
        probe = ("import os, socket, pathlib\n"
                 "print(os.getuid(), os.path.exists('/var/run/docker.sock'), sorted(os.listdir('/sys/class/net')))\n"
                 f"for p in ('{INPUTS_DIR}/trace/x', '{UPLOAD_DIR}/x', '{UPLOAD_DIR}/trace/recording.json', "
                 "'/opt/lab/x', '/var/run/x', '/tmp/ok'):\n"
                 "    try:\n        open(p, 'w')\n        print('wrote', p)\n    except OSError:\n        pass\n"
                 "s = socket.socket()\ns.settimeout(2)\n"
                 "try:\n    s.connect(('1.1.1.1', 80))\n    print('network')\nexcept OSError:\n    pass\n")
        code, output = container.exec_run(["python3", "-c", probe], user="1000:1000")
        assert code == 0, output
        assert output.decode().split("\n")[0] == "1000 False ['lo']", output
        wrote = [line for line in output.decode().splitlines() if line.startswith("wrote")]
        assert wrote == ["wrote /tmp/ok"] and b"network" not in output, output  # only its scratch tmpfs
        worker = sandbox.worker((M.PREFIX,))
        assert worker.hello.uid == 1000
        # A worker's exec stream is a hijacked connection of the engine client's pool: if docker-py's wrapper
        # of it was collected, the connection went back to the pool, the next API call (a second worker's
        # start) took it, and the first worker's reads failed with EBADF mid-exploration.
        gc.collect()
        second = sandbox.worker((M.PREFIX,))
        for each in (worker, second):
            results, _ = each.check([(M.PREFIX.value, 0)])
            assert [(r.model, r.index) for r in results] == [(M.PREFIX, 0)]
    finally:
        sandbox.close()
    cli = engine.client()
    assert not cli.containers.list(all=True, filters={"id": container.id})


def test_a_clean_recording_keeps_every_promise_in_every_state(lab_image: str, tmp_path: pathlib.Path) -> None:
    run = explore(recorded_run(tmp_path), tuple(PRESETS.values()), budget=100_000, seed=1, jobs=2, image=lab_image)
    assert run.exit_code is ExitCode.OK
    assert all(m.selection.exhaustive and m.checked == m.selection.total > 0 for m in run.models)
    assert all(set(m.verdicts) == {"pass"} and m.broken == 0 for m in run.models), [m.verdicts for m in run.models]
    assert run.stats.probes < run.states  # alike states shared a probe


def test_a_disk_that_ignores_fsync_is_caught_and_reported(lab_image: str, tmp_path: pathlib.Path) -> None:
    """Known bad for the test above: the same checker, on a trace whose disk lied about fsync."""
    trace = recorded_run(tmp_path, lying_fsync_from=6)
    run = explore(trace, (M.SYNCED_ONLY, M.PREFIX), budget=100_000, seed=1, jobs=1, image=lab_image)
    assert run.exit_code is ExitCode.TRIAL_FAILED
    synced = run.models[0]
    assert synced.broken > 0 and synced.violations == {"lost-acked": synced.broken}
    first = synced.first_violation
    assert first is not None and first.lost == (7,) and first.kind is ViolationKind.LOST_ACKED
    json_path, md_path, junit_path = write_all(tmp_path / "report", run)
    data = json.loads(json_path.read_text())
    assert data["result"]["exit_code"] == 1 and data["models"][0]["broken_promises"] == synced.broken
    assert data["models"][0]["first_violation"]["state"] == f"synced-only:{first.index}"
    assert f"--materialize synced-only:{first.index}" in md_path.read_text()
    failures = ET.parse(junit_path).getroot().findall(".//failure")
    assert len(failures) == 2 and "lost-acked" in failures[0].get("type", "")


def test_materialize_writes_the_same_state_every_time(lab_image: str, tmp_path: pathlib.Path) -> None:
    trace = recorded_run(tmp_path / "rec", lying_fsync_from=6)
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        done = repro("explore", str(trace.path), "--materialize", "prefix:17", "--out", str(out), "--image",
                     lab_image, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "verdict:" in done.stdout
    one, two = ({p.name: p.read_bytes() for p in out.iterdir()} for out in outs)
    assert one == two and {"state.db", "state.db-wal", "state.json"} <= set(one)
    about = json.loads(one["state.json"])
    assert about["state"] == "prefix:17" and about["verdict"] in ("pass", "lost-acked")


def _marker_store(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A copy of the host-marker store with a token of its own; the marker path it would leave here."""
    token = uuid.uuid4().hex
    store = shutil.copytree(HOST_MARKER, tmp_path / "marker-store")
    (store / "MARKER_TOKEN").write_text(token)
    for path in [store, *store.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)  # the sandbox's user reads it
    return store, pathlib.Path(f"/tmp/HOST-MARKER-{token}")


def test_a_tampered_recording_runs_its_store_only_in_the_sandbox(lab_image: str, tmp_path: pathlib.Path) -> None:
    """recording.json names a store that leaves a marker wherever it is imported (and refuses to open
    anything as root or beside the Docker socket), and an environment beyond the store's settings:
    `repro explore TRACE` checks every state with that store in the sandbox, and nothing on the host."""
    trace = recorded_run(tmp_path / "rec")
    store, marker = _marker_store(tmp_path)
    meta = trace.path / META_FILE
    data = json.loads(meta.read_text())
    data["store_path"] = str(store)
    data["store_env"] = {"PYTHONPATH": str(store), "LD_PRELOAD": "/nonexistent.so", "HERMES_STATE_PRESET": "durable"}
    meta.write_text(json.dumps(data))
    try:
        done = repro("explore", str(trace.path), "--out", str(tmp_path / "out"), "--image", lab_image, "--budget",
                     "300", cwd=tmp_path)
        assert not marker.exists(), marker.read_text()
        assert done.returncode == 0, done.stderr[-3000:]  # every state opened: the store ran as uid 1000, no socket
        report = json.loads((tmp_path / "out" / "explore.json").read_text())
        assert all(m["verdicts"]["pass"] == m["checked"] > 0 for m in report["models"]), report["models"]
        # known bad: a recording naming a directory that is no store is refused before any container
        data["store_path"] = "/etc"
        meta.write_text(json.dumps(data))
        refused = repro("explore", str(trace.path), "--out", str(tmp_path / "out2"), cwd=tmp_path)
        assert refused.returncode == ExitCode.BAD_INPUT and "no hermes_state package" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        marker.unlink(missing_ok=True)


def test_a_store_that_kills_its_checker_is_a_lab_failure_never_a_verdict(lab_image: str,
                                                                          tmp_path: pathlib.Path) -> None:
    trace = recorded_run(tmp_path / "rec", commits=3)
    store = shutil.copytree(ROOT / "tests" / "stores" / "exit_on_import", tmp_path / "store")
    for path in [store, *store.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    meta = trace.path / META_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "store_path": str(store)}))
    run_id = f"sbx{uuid.uuid4().hex[:8]}"
    done = repro("explore", str(trace.path), "--out", str(tmp_path / "out"), "--image", lab_image, cwd=tmp_path,
                 HERMES_LAB_RUN_ID=run_id)
    assert done.returncode == ExitCode.LAB_FAILED, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("repro: lab failed: a worker in the explore sandbox ended (exit 7)"), lines[-3:]
    assert not (tmp_path / "out" / "explore.json").exists()
    assert engine.leftovers(engine.client(), run_id) == ([], [])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_the_sandbox_goes_with_a_run_that_is_interrupted_or_killed(sig: signal.Signals, lab_image: str,
                                                                  tmp_path: pathlib.Path) -> None:
    trace = recorded_run(tmp_path / "rec", commits=40)
    run_id = f"sbx{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([str(REPRO), "explore", str(trace.path), "--out", str(tmp_path / "out"), "--image",
                             lab_image, "--budget", "100000"], cwd=tmp_path, env=user_env(HERMES_LAB_RUN_ID=run_id),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cli = engine.client()
    try:
        deadline = time.monotonic() + 120
        while not engine.leftovers(cli, run_id)[0]:
            assert proc.poll() is None, f"the run ended before its sandbox was seen: {proc.stderr.read() if proc.stderr else ''}"
            assert time.monotonic() < deadline, "no sandbox appeared"
            time.sleep(0.1)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60  # a killed run's reaper polls its owner
        while engine.leftovers(cli, run_id) != ([], []):
            assert time.monotonic() < deadline, f"left behind: {engine.leftovers(cli, run_id)}"
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        engine.cleanup(cli, run_id=run_id)
    assert proc.returncode != 0


def _shm_explore_dirs() -> set[str]:
    shm = pathlib.Path("/dev/shm")
    return {p.name for p in shm.iterdir() if p.name.startswith("repro-")} if shm.is_dir() else set()


@pytest.mark.parametrize("ending", ["success", "failure", "SIGINT"])
def test_an_exploration_leaves_no_scratch_on_the_host_however_it_ends(ending: str, lab_image: str,
                                                                      tmp_path: pathlib.Path) -> None:
    """Issue #20 item 6: the states are written in the sandbox's own tmpfs, never on the host; the host's temporary
    directory (TMPDIR, here one of the test's own) and /dev/shm hold nothing of the run after it, whether it
    passes, fails (a store that kills its checker) or is interrupted."""
    trace = recorded_run(tmp_path / "rec", commits=40 if ending == "SIGINT" else 6)
    if ending == "failure":
        store = shutil.copytree(ROOT / "tests" / "stores" / "exit_on_import", tmp_path / "store")
        for path in [store, *store.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        meta = trace.path / META_FILE
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "store_path": str(store)}))
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    before = _shm_explore_dirs()
    run_id = f"sbx{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([str(REPRO), "explore", str(trace.path), "--out", str(tmp_path / "out"), "--image",
                             lab_image, "--budget", "100000"], cwd=tmp_path,
                            env=user_env(HERMES_LAB_RUN_ID=run_id, TMPDIR=str(tmp)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cli = engine.client()
    try:
        if ending == "SIGINT":
            deadline = time.monotonic() + 120
            while not engine.leftovers(cli, run_id)[0]:
                assert proc.poll() is None and time.monotonic() < deadline, "no sandbox appeared"
                time.sleep(0.1)
            time.sleep(2)  # the workers are checking states
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        engine.cleanup(cli, run_id=run_id)
    want = {"success": ExitCode.OK, "failure": ExitCode.LAB_FAILED}.get(ending)
    assert want is None or code == want, proc.stderr.read() if proc.stderr else ""
    assert list(tmp.iterdir()) == []
    deadline = time.monotonic() + 10  # another run's checker on this host may come and go meanwhile; ours stays
    while _shm_explore_dirs() - before:
        assert time.monotonic() < deadline, f"left in /dev/shm: {_shm_explore_dirs() - before}"
        time.sleep(0.5)


def test_the_cli_says_its_findings_as_orderings(lab_image: str, tmp_path: pathlib.Path) -> None:
    """A disk that lied about fsync: the shrunk findings read as the missing sync, in every report."""
    trace = recorded_run(tmp_path / "rec", lying_fsync_from=6)
    done = repro("explore", str(trace.path), "--models", "synced-only,data=prefix", "--shrink", "4", "--seed", "3",
                 "--out", str(tmp_path / "out"), "--image", lab_image, cwd=tmp_path)
    assert done.returncode == ExitCode.TRIAL_FAILED, done.stderr[-2000:]
    assert "findings as orderings (8 of" in done.stdout, done.stdout[-3000:]
    orderings = json.loads((tmp_path / "out" / "explore.json").read_text())["orderings"]
    assert sum(o["states"] for o in orderings) == 8 and {o["model"] for o in orderings} == {"synced-only", "prefix"}
    assert all("a sync is missing before write state.db-wal" in o["sentence"] for o in orderings), orderings
    assert "## Findings as orderings" in (tmp_path / "out" / "explore.md").read_text()
