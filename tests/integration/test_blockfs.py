"""Block-level crash states below a real kernel filesystem (--fs): recorded through a loop device over lossyfs,
each state recovered by the kernel (the journal replays) and judged as any trial. Small seeded recordings,
one per configuration per session; the long campaigns are in bench/ and docs/findings.md."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from typing import Callable

import pytest

from repro.errors import ExitCode
from repro.explore.blockspace import BlockModel
from repro.explore.check import ViolationKind
from repro.explore.configs import CONFIGURATIONS as CONFIGS
from repro.explore.models import PersistenceModel
from repro.explore.record import record
from repro.explore.runner import Exploration, explore
from repro.explore.tracedir import TraceDir
from repro.filesystems import FsSpec, parse
from repro.machine import engine, loops
from repro.oracle.verdicts import Verdict
from repro.scenario import WorkloadSpec, get_profile

_NO_FUSE = not pathlib.Path("/dev/fuse").exists() and not os.environ.get("CI")
pytestmark = [pytest.mark.docker, pytest.mark.fuse,
              pytest.mark.skipif(_NO_FUSE, reason="recording needs /dev/fuse on the engine's host")]
REPRO = pathlib.Path(sys.executable).with_name("repro")
SEED = 5151
OPS = 24
WORKLOAD = WorkloadSpec(sizes="200:2k")


@pytest.fixture(scope="session")
def recorded_fs(lab_image: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], TraceDir]:
    """Record each (configuration, filesystem) once per session, below the kernel filesystem."""
    traces: dict[tuple[str, str], TraceDir] = {}

    def get(name: str, fs: str = "ext4") -> TraceDir:
        if (name, fs) not in traces:
            dest = tmp_path_factory.mktemp(f"{name}-{fs.replace(':', '-')}") / "trace"
            dest.mkdir()
            devices = loops.require_devices(str(engine.client().api.base_url), 1)
            traces[name, fs] = record(profile=get_profile("fly-256"), store=CONFIGS[name], workload=WORKLOAD, ops=OPS,
                                      seed=SEED, dest=dest, image=lab_image, source=f"tests {name} {fs}",
                                      fs=parse(fs), loops=devices)
        return traces[name, fs]

    return get


def _explore(trace: TraceDir, budget: int, models: tuple[BlockModel, ...] = tuple(BlockModel)) -> Exploration:
    run = explore(trace, models, budget=budget, seed=SEED, jobs=2)
    assert not any(m.verdicts.get(Verdict.ERROR.value) for m in run.models), [m.first_violation for m in run.models]
    return run


def _summary(run: Exploration) -> str:
    return "\n".join(f"{m.model.value}: {m.checked}/{m.selection.total} {m.verdicts} {m.violations} "
                     f"first={m.first_violation}" for m in run.models)


def test_wal_full_on_ext4_keeps_every_promise_in_every_block_state_checked(
        recorded_fs: Callable[[str, str], TraceDir]) -> None:
    trace = recorded_fs("wal-full", "ext4")
    assert trace.recording.fs == FsSpec.from_json(parse("ext4").to_json())
    run = _explore(trace, budget=250)
    assert (run.config.journal_mode.value, int(run.config.synchronous)) == ("wal", 2)
    assert run.states >= 500 and run.exit_code is ExitCode.OK, _summary(run)
    assert all(set(m.verdicts) == {"pass"} for m in run.models), _summary(run)
    assert run.stats.probes >= 1


def test_a_disk_that_ignores_flushes_breaks_wal_full(recorded_fs: Callable[[str, str], TraceDir]) -> None:
    """Known bad for the test above: ext4 with nobarrier never asks for a flush, so nothing is ordered."""
    run = _explore(recorded_fs("wal-full", "ext4:nobarrier"), budget=120)
    assert run.exit_code is ExitCode.TRIAL_FAILED, _summary(run)
    assert sum(m.broken for m in run.models) > 0, _summary(run)


def test_journal_off_leaves_corrupt_states_on_ext4_as_the_file_level_models_find(
        recorded_fs: Callable[[str, str], TraceDir], lab_image: str, tmp_path: pathlib.Path) -> None:
    block = _explore(recorded_fs("journal-off", "ext4"), budget=120)
    corrupt = sum(m.verdicts.get(Verdict.CORRUPT.value, 0) for m in block.models)
    assert corrupt > 0, _summary(block)
    assert block.exit_code is ExitCode.OK  # nothing was promised: findings, not broken promises
    dest = tmp_path / "trace"
    dest.mkdir()
    files = record(profile=get_profile("fly-256"), store=CONFIGS["journal-off"], workload=WORKLOAD, ops=OPS,
                   seed=SEED, dest=dest, image=lab_image, source="tests journal-off file level")
    file_level = explore(files, PersistenceModel.parse_list("all"), budget=300, seed=SEED, jobs=2)
    assert sum(m.verdicts.get(Verdict.CORRUPT.value, 0) for m in file_level.models) > 0, _summary(file_level)


def test_wal_normal_on_ext4_never_corrupts_and_loses_only_what_it_may(
        recorded_fs: Callable[[str, str], TraceDir]) -> None:
    run = _explore(recorded_fs("wal-normal", "ext4"), budget=150)
    assert (run.config.journal_mode.value, int(run.config.synchronous)) == ("wal", 1)
    assert not any(m.verdicts.get(Verdict.CORRUPT.value) for m in run.models), _summary(run)
    assert all(m.broken == 0 for m in run.models), _summary(run)


def test_the_cli_explores_a_block_trace_and_writes_out_one_state_image(
        recorded_fs: Callable[[str, str], TraceDir], tmp_path: pathlib.Path) -> None:
    trace = recorded_fs("wal-full", "ext4:nobarrier")
    out = tmp_path / "reports"
    done = subprocess.run([str(REPRO), "explore", str(trace.path), "--models", "block-drop-one", "--budget", "40",
                           "--seed", "3", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode in (ExitCode.OK, ExitCode.TRIAL_FAILED), done.stderr[-2000:]
    state = tmp_path / "state"
    shown = subprocess.run([str(REPRO), "explore", str(trace.path), "--materialize", "block-drop-one:0", "--out",
                            str(state)], capture_output=True, text=True, timeout=600)
    assert shown.returncode == 0, shown.stderr[-2000:]
    image = state / "state.img"
    assert image.stat().st_size == get_profile("fly-256").disk
    assert image.stat().st_blocks * 512 < image.stat().st_size  # sparse: only what the filesystem wrote
    assert "fs: ext4:nobarrier" in shown.stdout and "verdict: " in shown.stdout


def _bound(device: str) -> bool:
    return (pathlib.Path("/sys/block") / pathlib.Path(device).name / "loop").exists()


@pytest.mark.parametrize("first", ["the lossyfs daemon", "the store and the holder"])
def test_a_machine_killed_while_its_filesystem_is_mounted_comes_down_and_leaves_no_loop_device(
        first: str, lab_image: str) -> None:
    """By construction, not by timeout: the filesystem's mount namespace never holds the lossyfs daemon
    (docker/lab-blockfs). With the daemon killed first the filesystem's last writes fail; with it killed last
    they reach it -- either way the machine dies at once and autoclear detaches the loop device."""
    from repro.machine.container import ConstrainedHost

    devices = loops.require_devices(str(engine.client().api.base_url), 1)
    machine = ConstrainedHost("fly-256", preset="durable", image=lab_image, fuse=True, record=True, fs=parse("ext4"),
                              loops=devices)
    try:
        machine.start()
        machine.start_workload(seed=1, ops=10_000, rate=0.0)
        machine.wait_for_acks(20)
        used = machine.loop_device
        assert used in devices and _bound(used), (used, devices)
        victims = "repro.lossyfs" if first == "the lossyfs daemon" else "repro.workload|sleep infinity"
        machine.exec_checked(["pkill", "-KILL", "-f", victims])
        time.sleep(0.5)
        started = time.monotonic()
        report = machine.kill()
        assert time.monotonic() - started < 20 and report.signal == "SIGKILL"
    finally:
        machine.remove()
    deadline = time.monotonic() + 20
    while _bound(used) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _bound(used), f"{used} is still bound after its machine died"


def test_an_image_without_the_filesystem_s_mkfs_is_refused_before_any_machine(lab_image: str) -> None:
    from repro.errors import ScenarioError
    from repro.explore.command import require_programs
    from repro.machine.labels import BASE_IMAGE

    require_programs(lab_image, (parse("ext4"), parse("xfs"), parse("btrfs")))
    if not engine.image_present(engine.client(), BASE_IMAGE):
        pytest.skip(f"no {BASE_IMAGE} on the engine")
    with pytest.raises(ScenarioError, match="has no .*mkfs.xfs"):
        require_programs(BASE_IMAGE, (parse("xfs"),))


def test_a_power_loss_trial_on_ext4_is_recovered_by_the_kernel_and_judged(tmp_path: pathlib.Path) -> None:
    """`repro run --fs`: the store on ext4 over the lossy filesystem, the power cut, the kernel's recovery at
    restart; WAL + FULL keeps every acknowledged write, and the trial says what the kernel recovered."""
    import json

    out = tmp_path / "run"
    done = subprocess.run([str(REPRO), "run", "--fs", "ext4", "--preset", "durable", "--trials", "2", "--seed", "3",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == ExitCode.OK, done.stdout[-2000:] + done.stderr[-2000:]
    trials = json.loads((out / "report.json").read_text())["trials"]
    assert [t["profile"] for t in trials] == ["fly-256+ext4", "fly-256+ext4"]
    assert all(t["verdict"] == "pass" and "the kernel recovered" in t["detail"] for t in trials), trials
    assert all(t["scenario"]["profile"]["fs"] == "ext4" for t in trials)


def test_the_test_api_puts_a_store_on_btrfs_and_verify_lets_the_kernel_recover_it(lab_image: str) -> None:
    from repro.testing import ConstrainedHost, inject, verify

    with ConstrainedHost("fly-1g", fs="btrfs", preset="durable", image=lab_image) as machine:
        assert machine.fuse and machine.fs is not None and machine.fs.kind.value == "btrfs"
        machine.start_workload(seed=5)
        machine.wait_for_acks(50)
        inject(machine, "power-loss")
        result = verify(machine)
        assert result.verdict == "pass" and result.integrity == "ok", result


def test_in_a_block_sandbox_only_the_recoverers_hold_a_capability_and_the_states_are_root_s(
        recorded_fs: Callable[[str, str], TraceDir]) -> None:
    """What the store under test could reach in a block-level exploration's sandbox: as uid 1000 no capability,
    no loop device, and no way to make or change a directory where the recoverers leave the states."""
    from repro.explore.sandbox import RECOVERED_ROOT, Sandbox

    trace = recorded_fs("wal-full", "ext4")
    with Sandbox(trace, jobs=1, loops=loops.require_devices(str(engine.client().api.base_url), 1)) as sandbox:
        container = sandbox.container
        assert container is not None
        script = (f"grep CapEff /proc/self/status; mkdir {RECOVERED_ROOT}/x 2>&1; "
                  f"cat {sandbox.loops[0]} 2>&1 | head -c 80; touch /tmp/mine && echo tmp-ok")
        out = container.exec_run(["sh", "-c", script], user="1000:1000").output.decode()
        assert "CapEff:\t0000000000000000" in out and "Permission denied" in out and "tmp-ok" in out, out
        assert out.count("Permission denied") >= 2, out  # the states' directory and the loop device
        root = container.exec_run(["sh", "-c", "grep CapEff /proc/self/status"], user="0:0").output.decode()
        assert "CapEff:\t0000000000200000" in root, root  # CAP_SYS_ADMIN only, for the recoverers' mounts


def test_the_ext4_models_show_every_class_of_outcome_ext4_showed(lab_image: str, tmp_path: pathlib.Path) -> None:
    """`--models ext4` is checked against the kernel: the campaign's workload (docs/findings.md, seed 11, 40
    operations) on journal OFF and DELETE + FULL, recorded on lossyfs and below ext4. What ext4's states show
    (corruption without a journal; the rolled-back last commit of DELETE + FULL) the ext4 models show too."""
    import json

    out = tmp_path / "compare"
    done = subprocess.run([str(REPRO), "explore", "--compare-models", "--configs", "journal-off,delete-full",
                           "--filesystems", "ext4", "--ops", "40", "--seed", "11", "--budget", "150",
                           "--image", lab_image, "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["config"]: row for row in json.loads((out / "compare.json").read_text())["rows"]}
    for row in rows.values():
        assert row["preset_misses"] == [] and row["presets"][0]["name"] == "ext4 preset's models", row
    ext4 = {name: row["sides"][1]["outcomes"] for name, row in rows.items()}
    assert "corrupt" in ext4["journal-off"] and "expected-loss" in ext4["delete-full"], ext4  # not a vacuous check
    assert "corrupt" in rows["journal-off"]["presets"][0]["outcomes"]
    assert "expected-loss" in rows["delete-full"]["presets"][0]["outcomes"]
