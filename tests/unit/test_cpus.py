"""CPU pinning across lab processes: a machine gets CPUs no running lab machine has, or none at all (and says why)."""

from __future__ import annotations

import threading

import pytest

from repro.machine import cpus
from repro.machine.cpus import CpuPin, choose, parse_cpuset, usage


@pytest.mark.parametrize(("text", "expected"), [
    ("", set()), ("0", {0}), ("0,1", {0, 1}), ("0-2,5", {0, 1, 2, 5}), (" 3 , 1-1 ", {1, 3}), ("x,2", {2}),
])
def test_parse_cpuset(text: str, expected: set[int]) -> None:
    assert parse_cpuset(text) == expected


def test_a_machine_gets_a_cpu_no_other_machine_has() -> None:
    assert choose(1.0, [0, 1], usage([])) == CpuPin("0")
    assert choose(1.0, [0, 1], usage(["0"])) == CpuPin("1")    # another run's machine is on CPU 0
    assert choose(1.0, [0, 1], usage(["1"])) == CpuPin("0")
    assert choose(2.0, [0, 1, 2, 3], usage(["0", "2"])) == CpuPin("1,3")
    assert choose(0.5, [4, 6], usage([""])) == CpuPin("4")      # unpinned machines hold no CPU


def test_with_every_cpu_taken_the_machine_is_unpinned_and_says_why() -> None:
    pin = choose(1.0, [0, 1], usage(["0", "1", "0-1"]))
    assert pin.cpus == "" and "2 of 2 host CPUs already run lab machines" in pin.reason
    assert pin.describe().startswith("unpinned: ") and "CPU 0: 2" in pin.reason
    assert CpuPin("1").describe() == "pinned to CPU 1"
    assert choose(2.0, [0, 1], usage(["1"])).cpus == ""  # two wanted, one free: not half-pinned


class FakeEngine:
    """What the engine reports: the cpusets of running machines; a create adds one."""

    def __init__(self) -> None:
        self.running: list[str] = []


def test_concurrent_claims_never_pick_the_same_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The choice is held until the machine exists: threads racing for CPUs each get their own."""
    engine = FakeEngine()
    monkeypatch.setattr(cpus, "engine_cpusets", lambda cli: list(engine.running))
    monkeypatch.setattr(cpus, "engine_cpus", lambda cli: [0, 1, 2, 3])
    got: list[str] = []
    barrier = threading.Barrier(6)

    def start_machine() -> None:
        barrier.wait()
        with cpus.claim(1.0, object()) as pin:  # type: ignore[arg-type]
            got.append(pin.cpus)
            engine.running.append(pin.cpus)  # the machine is created while the claim is held

    threads = [threading.Thread(target=start_machine) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pinned = [c for c in got if c]
    assert sorted(pinned) == ["0", "1", "2", "3"] and got.count("") == 2


class InfoEngine:
    """An engine's `info` (NCPU) at a base URL, counting how often it is asked."""

    def __init__(self, url: str, ncpu: int) -> None:
        self.api = type("Api", (), {"base_url": url})()
        self.ncpu = ncpu
        self.asked = 0

    def info(self) -> dict[str, object]:
        self.asked += 1
        return {"NCPU": self.ncpu}


def test_the_cpus_are_the_engines_not_this_processs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote engine with 8 CPUs pins to 0..7 whatever this process may run on; asked once per engine. A local
    socket's engine runs on this host: this process's CPU ids (a cpuset of 2-3 is not 0-1)."""
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {2, 3})
    local = InfoEngine("http+docker://localhost-unit-test", 8)
    assert cpus.engine_cpus(local) == [2, 3] and local.asked == 0  # type: ignore[arg-type]
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0})
    remote = InfoEngine("http://remote-unit-test:2375", 8)
    assert cpus.engine_cpus(remote) == list(range(8))  # type: ignore[arg-type]
    assert cpus.engine_cpus(remote) == list(range(8)) and remote.asked == 1  # type: ignore[arg-type]
    silent = InfoEngine("http://silent-unit-test:2375", 0)
    assert cpus.engine_cpus(silent) == [0]  # type: ignore[arg-type]
