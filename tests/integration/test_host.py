"""The constrained host behaves like a small Fly machine: limits, disk, s6, stop, OOM, ENOSPC."""

from __future__ import annotations

import json

import pytest

from repro.host import ConstrainedHost
from repro.scenario import get_profile

pytestmark = pytest.mark.docker


def _read(host: ConstrainedHost, path: str) -> str:
    return host.exec_checked(["cat", path]).strip()


def test_fly_256_host_reports_its_limits_from_inside(machine) -> None:
    profile = get_profile("fly-256")
    with machine("fly-256") as host:
        cgroup = "/sys/fs/cgroup/memory"
        if host.exec_checked(["sh", "-c", f"test -d {cgroup} && echo v1 || echo v2"]).strip() == "v1":
            assert int(_read(host, f"{cgroup}/memory.limit_in_bytes")) == profile.memory
            # memory+swap equal to memory: no swap at all
            assert int(_read(host, f"{cgroup}/memory.memsw.limit_in_bytes")) == profile.memory
        else:
            assert int(_read(host, "/sys/fs/cgroup/memory.max")) == profile.memory
            assert _read(host, "/sys/fs/cgroup/memory.swap.max") == "0"
        size_kb = int(host.exec_checked(["df", "--output=size", "-k", "/opt/data"]).split()[-1])
        assert size_kb * 1024 == profile.disk
        assert _read(host, "/proc/1/comm") == "s6-svscan"
        # one CPU: every process of the machine on one host CPU, as in a 1-vCPU VM
        allowed = host.exec_checked(["grep", "Cpus_allowed_list", "/proc/self/status"]).split()[-1]
        assert "," not in allowed and "-" not in allowed, allowed
        interfaces = host.exec_checked(["ls", "/sys/class/net"]).split()
        assert interfaces == ["lo"]
        # the workload's user is not root
        assert host.exec_checked(["id", "-u", "hermes"]).strip() == "1000"


def test_sigint_reaches_the_store_through_s6_and_it_exits_within_the_kill_timeout(machine) -> None:
    with machine("fly-256") as host:
        host.start_workload(seed=3)
        host.wait_for_acks(50)
        down = host.stop(signal="SIGINT")
        assert down.graceful and down.exit_code == 0
        assert down.seconds < get_profile("fly-256").kill_timeout_s
        stop_events = [json.loads(l[6:]) for l in host.lines() if l.startswith('EVENT {"kind": "stop-signal"')]
        assert stop_events, "the workload never saw the stop signal"
        finish = [r for r in host.finish_records() if r["service"] == "session-store"]
        assert finish == [{"service": "session-store", "exit": 0, "signal": 0}]


def test_a_leak_past_the_cap_is_oom_killed_by_the_kernel_and_the_lab_sees_it(machine) -> None:
    with machine("fly-256") as host:
        host.start_workload(seed=4)
        host.wait_for_acks(20)
        killed = host.oom()
        assert killed["service"] == "session-store" and killed["signal"] == 9
        assert int(killed["kernel_oom_kills"]) >= 1  # type: ignore[call-overload]
        down = host.kill()
        assert down.oom_killed and down.exit_code == 137


def test_writing_past_the_disk_gives_enospc_and_files_survive_the_machine(machine) -> None:
    with machine("fly-256") as host:
        host.exec_checked(["sh", "-c", "echo before-the-crash > /opt/data/marker"], user="hermes")
        event = host.fill_disk()
        assert int(event["free"]) < 1 << 20  # type: ignore[call-overload]
        result = host.get_wrapped_container().exec_run(
            ["dd", "if=/dev/zero", "of=/opt/data/more", "bs=64k", "count=16"], user="hermes")
        assert result.exit_code != 0 and b"No space left on device" in result.output
        host.kill()
        restarted = ConstrainedHost("fly-256", image=host.image, disk=host.disk, role="verify")
        restarted.with_entrypoint(["cat", "/opt/data/marker"], user="1000:1000")
        with restarted:
            assert restarted.get_wrapped_container().wait(timeout=30)["StatusCode"] == 0
            assert restarted.get_wrapped_container().logs().decode().strip() == "before-the-crash"


def test_writes_fail_while_the_disk_is_full_and_resume_once_the_cache_is_cleared(machine) -> None:
    with machine("fly-256") as host:
        host.start_workload(seed=4)
        host.wait_for_acks(100)
        host.fill_disk(clear_after_ms=300)
        host.wait_for_line(lambda l: l.startswith('EVENT {"kind": "disk-cleared"'), 30, "the cache to be cleared")
        cleared_at = len(host.lines())
        acks_at_clear = host.acks()
        host.wait_for_acks(acks_at_clear + 100, timeout=30)
        full_failures = [l for l in host.lines()[:cleared_at] if '"t":"fail"' in l and "full" in l]
        assert full_failures, "no write failed while the disk was full"
        host.stop(signal="SIGTERM")
        result = host.verify(faults=("disk-fill-clear", "sigterm"))
        assert result.verdict == "pass" and result.lost_acked == 0
