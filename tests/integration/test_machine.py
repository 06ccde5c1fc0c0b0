"""The machine (ConstrainedHost) behaves like a small Fly machine: limits, disk, s6, stop, OOM, ENOSPC."""

from __future__ import annotations


import pathlib
import shutil
import time

import pytest

from repro.machine.container import ConstrainedHost
from repro.protocol import EventKind, Tag
from repro.scenario import get_profile
from repro.testing import inject, verify

pytestmark = pytest.mark.docker


def _read(machine: ConstrainedHost, path: str) -> str:
    return machine.exec_checked(["cat", path]).strip()


def test_fly_256_machine_reports_its_limits_from_inside(constrained_host) -> None:
    profile = get_profile("fly-256")
    with constrained_host("fly-256") as machine:
        cgroup = "/sys/fs/cgroup/memory"
        if machine.exec_checked(["sh", "-c", f"test -d {cgroup} && echo v1 || echo v2"]).strip() == "v1":
            assert int(_read(machine, f"{cgroup}/memory.limit_in_bytes")) == profile.memory
            # memory+swap equal to memory: no swap at all
            assert int(_read(machine, f"{cgroup}/memory.memsw.limit_in_bytes")) == profile.memory
        else:
            assert int(_read(machine, "/sys/fs/cgroup/memory.max")) == profile.memory
            assert _read(machine, "/sys/fs/cgroup/memory.swap.max") == "0"
        size_kb = int(machine.exec_checked(["df", "--output=size", "-k", "/opt/data"]).split()[-1])
        assert size_kb * 1024 == profile.disk
        assert _read(machine, "/proc/1/comm") == "s6-svscan"
        # one CPU: every process of the machine on one host CPU, as in a 1-vCPU VM
        allowed = machine.exec_checked(["grep", "Cpus_allowed_list", "/proc/self/status"]).split()[-1]
        assert "," not in allowed and "-" not in allowed, allowed
        interfaces = machine.exec_checked(["ls", "/sys/class/net"]).split()
        assert interfaces == ["lo"]
        # the workload's user is not root
        assert machine.exec_checked(["id", "-u", "hermes"]).strip() == "1000"


def test_sigint_reaches_the_store_through_s6_and_it_exits_within_the_kill_timeout(constrained_host) -> None:
    with constrained_host("fly-256") as machine:
        machine.start_workload(seed=3)
        machine.wait_for_acks(50)
        down = machine.stop(signal="SIGINT")
        assert down.graceful and down.exit_code == 0
        assert down.seconds < get_profile("fly-256").kill_timeout_s
        stop_events = [l for l in machine.console.parsed() if l.is_event(EventKind.STOP_SIGNAL)]
        assert stop_events, "the workload never saw the stop signal"
        finish = [dict(l.payload) for l in machine.console.parsed() if l.is_finish("session-store")]
        assert finish == [{"service": "session-store", "exit": 0, "signal": 0}]


def test_a_leak_past_the_cap_is_oom_killed_by_the_kernel_and_the_lab_sees_it(constrained_host) -> None:
    with constrained_host("fly-256") as machine:
        machine.start_workload(seed=4)
        machine.wait_for_acks(20)
        outcome = inject(machine, "oom@acks=0")
        killed = outcome.detail["killed"]
        assert isinstance(killed, dict)
        assert killed["service"] == "session-store" and killed["signal"] == 9
        assert int(killed["kernel_oom_kills"]) >= 1
        assert outcome.oom_killed and outcome.exit_code == 137


def test_writing_past_the_disk_gives_enospc_and_files_survive_the_machine(constrained_host) -> None:
    with constrained_host("fly-256") as machine:
        machine.exec_checked(["sh", "-c", "echo before-the-crash > /opt/data/marker"], user="hermes")
        machine.start_workload(seed=2, rate=20)
        outcome = inject(machine, "disk-fill@acks=0")
        event = outcome.detail["disk"]
        assert isinstance(event, dict) and int(event["free"]) < 1 << 20
        result = machine.get_wrapped_container().exec_run(
            ["dd", "if=/dev/zero", "of=/opt/data/more", "bs=64k", "count=16"], user="hermes")
        assert result.exit_code != 0 and b"No space left on device" in result.output
        machine.kill()
        assert machine.disk.run(["cat", "/opt/data/marker"], environment={}) == (0, "before-the-crash\n")


def test_writes_fail_while_the_disk_is_full_and_resume_once_the_cache_is_cleared(constrained_host) -> None:
    with constrained_host("fly-256") as machine:
        machine.start_workload(seed=4)
        machine.wait_for_acks(100)
        inject(machine, "disk-fill-clear@acks=0")  # returns once the cache was cleared
        cleared_at = len(machine.console.parsed())
        machine.wait_for_acks(machine.console.acks() + 100, timeout=30)
        full_failures = [l for l in machine.console.parsed()[:cleared_at]
                         if l.tag is Tag.LEDGER and l.payload.get("t") == "fail" and "full" in str(l.payload.get("err"))]
        assert full_failures, "no write failed while the disk was full"
        machine.stop(signal="SIGTERM")
        result = verify(machine, faults=("disk-fill-clear", "sigterm"))
        assert result.verdict == "pass" and result.lost_acked == 0


def test_a_kept_disk_serves_the_next_trial_empty_on_the_same_cpus(constrained_host, tmp_path: pathlib.Path) -> None:
    """A run's pool hands the first machine's disk to the second: one container started instead of two, the
    disk emptied by the second machine as it boots (its boot line says 0 entries), the holder's CPUs kept."""
    from repro.machine import engine
    from repro.machine.pool import DiskKey, DiskPool

    with DiskPool(max_idle=2) as pool:
        for _ in range(60):  # other runs' machines (the suite's other workers) may hold every CPU for a while, and
            first = constrained_host("fly-256", pool=pool).start()  # the pool keeps only a pinned machine's disk
            if first.pin.cpus:
                break
            first.remove()
            time.sleep(1.0)
        assert first.pin.cpus, f"no CPU was free for a minute: {first.pin.describe()}"
        made = pool.made
        first.exec_checked(["sh", "-c", "echo before > /opt/data/marker && mkdir -p /opt/data/npm/x"], user="hermes")
        first.start_workload(seed=5)
        first.wait_for_acks(50)
        assert verify(first, ("sigkill-machine",)).verdict == "pass"
        volume, holder, pin = first.disk.volume_name, first.disk.holder.id, first.pin
        first.remove(keep_disk=True)
        assert pool.take(DiskKey.of(get_profile("fly-512"), first.image, b"")) is None  # another machine's limits
        second = constrained_host("fly-256", pool=pool).start()
        assert second.reused_disk and (second.disk.volume_name, second.disk.holder.id) == (volume, holder)
        assert second.pin == pin and pool.made == made + 1 and pool.reused == 1
        boot = next(line.payload for line in second.console.parsed() if line.tag is Tag.BOOT)
        assert boot["disk_entries"] == 0
        assert second.exec_checked(["sh", "-c", "ls -A /opt/data | wc -l"]).strip() == "0"
        second.start_workload(seed=6)
        second.wait_for_acks(50)
        result = verify(second, ("sigkill-machine",))  # the probe runs in the same holder, on this trial's files
        assert result.verdict == "pass" and result.facts.exists and result.lost_acked == 0
        second.remove(keep_disk=True)
        store = tmp_path / "store"
        shutil.copytree(pathlib.Path(__file__).resolve().parents[2] / "hermes_state", store / "hermes_state")
        other = constrained_host("fly-256", pool=pool, store_path=str(store))  # other inputs: a disk of its own
        other.start()
        assert not other.reused_disk and other.disk.volume_name != volume
        other.remove(keep_disk=True)
        assert pool.evict_oldest()  # the oldest idle disk -- the first one -- goes, freeing its CPU
        assert not [v for v in engine.client().volumes.list() if v.name == volume]
        assert pool.take(DiskKey.of(first.profile, first.image, b"")) is None
    cli = engine.client()
    assert not [c for c in cli.containers.list(all=True) if c.id == holder]  # the pool removed it with the run
    assert not [v for v in cli.volumes.list() if v.name == volume]
