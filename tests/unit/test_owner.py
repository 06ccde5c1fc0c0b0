"""Who owns a lab object and whether that owner lives, decided from labels alone; what `repro clean` removes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from repro.machine.owner import (BOOT_LABEL, PID_LABEL, PIDNS_LABEL, RUN_LABEL, START_LABEL, HostView, Liveness,
                                 Owner, current, liveness, parse_stat, process_start)
from repro.machine.reaper import LabObject, group_runs, plan_clean

BOOT, NS = "boot-a", "pid:[1]"


def host(processes: dict[int, tuple[int, str]]) -> HostView:
    """A host whose /proc holds exactly these pids: pid -> (start ticks, state)."""
    return HostView(boot_id=BOOT, pid_ns=NS, process=processes.get)


def owner_labels(run: str, pid: int, start: int, boot: str = BOOT, ns: str = NS) -> dict[str, str]:
    return {"org.hermes-lab": "1", RUN_LABEL: run, PID_LABEL: str(pid), START_LABEL: str(start),
            BOOT_LABEL: boot, PIDNS_LABEL: ns}


@pytest.mark.parametrize(("labels", "processes", "expected"), [
    (owner_labels("r", 10, 500), {10: (500, "S")}, Liveness.ALIVE),
    (owner_labels("r", 10, 500), {10: (500, "R")}, Liveness.ALIVE),
    (owner_labels("r", 10, 500), {}, Liveness.GONE),                         # the pid is gone
    (owner_labels("r", 10, 500), {10: (500, "Z")}, Liveness.GONE),           # dead, not yet waited for
    (owner_labels("r", 10, 500), {10: (777, "S")}, Liveness.GONE),           # the pid was reused
    (owner_labels("r", 10, 500, boot="boot-b"), {10: (500, "S")}, Liveness.OTHER_BOOT),
    (owner_labels("r", 10, 500, ns="pid:[2]"), {}, Liveness.FOREIGN),        # a lab in a container
    ({"org.hermes-lab": "1", RUN_LABEL: "old"}, {}, Liveness.UNKNOWN),       # an older lab: no owner
    ({"org.hermes-lab": "1"}, {}, Liveness.UNKNOWN),                         # Compose
    ({**owner_labels("r", 10, 500), PID_LABEL: "ten"}, {10: (500, "S")}, Liveness.UNKNOWN),
])
def test_liveness_from_labels(labels: dict[str, str], processes: dict[int, tuple[int, str]],
                              expected: Liveness) -> None:
    assert liveness(Owner.from_labels(labels), host(processes)) is expected
    assert expected.stale == (expected in (Liveness.GONE, Liveness.OTHER_BOOT))


def test_this_process_is_alive_and_a_dead_child_is_gone() -> None:
    """The real /proc: our own labels say alive; a child's say gone once it died (even unreaped)."""
    here = HostView.here()
    me = current("r")
    assert Owner.from_labels(me.labels()) == me
    assert liveness(me, here) is Liveness.ALIVE
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    found = process_start(child.pid)
    assert found is not None
    theirs = Owner("r", child.pid, found[0], me.boot_id, me.pid_ns)
    deadline = time.monotonic() + 10
    while liveness(theirs, here) is Liveness.ALIVE:  # a zombie until waited for: already gone
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.wait()
    assert liveness(theirs, here) is Liveness.GONE
    assert liveness(Owner("r", os.getpid(), me.start + 1, me.boot_id, me.pid_ns), here) is Liveness.GONE


def test_stat_with_spaces_and_parentheses_in_the_name() -> None:
    fields = " ".join(str(n) for n in range(4, 22))  # fields 4..21, then the start time (22)
    assert parse_stat(f"123 (a (b) c) S {fields} 98765 0 0") == (98765, "S")
    assert parse_stat("123 (x) Z") is None  # truncated: no start time
    assert process_start(2**22 + 12345) is None  # above pid_max: no such process


OBJECTS = [
    LabObject("container", "c-alive", owner_labels("live", 10, 500)),
    LabObject("volume", "v-alive", owner_labels("live", 10, 500)),
    LabObject("container", "c-dead1", owner_labels("dead", 20, 600)),
    LabObject("container", "c-dead2", owner_labels("dead", 20, 600)),
    LabObject("volume", "v-dead", owner_labels("dead", 20, 600)),
    # the same run id in another, live process: a different owner, alive
    LabObject("container", "c-shared", owner_labels("dead", 30, 700)),
    LabObject("volume", "v-reboot", owner_labels("old-boot", 10, 500, boot="boot-b")),
    LabObject("container", "c-legacy", {"org.hermes-lab": "1", RUN_LABEL: "legacy"}),
]
PROCESSES = {10: (500, "S"), 30: (700, "S")}


def test_objects_group_by_owner() -> None:
    groups = {(g.run_id, g.owner.pid if g.owner else None): g for g in group_runs(OBJECTS, host(PROCESSES))}
    assert groups["live", 10].liveness is Liveness.ALIVE
    assert (groups["live", 10].containers, groups["live", 10].volumes) == (("c-alive",), ("v-alive",))
    assert groups["dead", 20].liveness is Liveness.GONE
    assert groups["dead", 20].containers == ("c-dead1", "c-dead2") and groups["dead", 20].volumes == ("v-dead",)
    assert groups["dead", 30].liveness is Liveness.ALIVE  # same run id, live process: never reaped
    assert groups["old-boot", 10].liveness is Liveness.OTHER_BOOT
    assert groups["legacy", None].liveness is Liveness.UNKNOWN
    assert "2 container(s), 1 volume(s), gone" in groups["dead", 20].describe()


def test_clean_stale_removes_only_dead_owners() -> None:
    plan = plan_clean(group_runs(OBJECTS, host(PROCESSES)), stale_only=True)
    assert sorted((g.run_id, g.owner.pid if g.owner else None) for g in plan.remove) == [("dead", 20), ("old-boot", 10)]
    assert not plan.everything and not plan.refused
    assert sorted(g.run_id for g in plan.kept) == ["dead", "legacy", "live"]


def test_plain_clean_refuses_while_another_run_lives() -> None:
    plan = plan_clean(group_runs(OBJECTS, host(PROCESSES)))
    assert plan.remove == () and not plan.everything
    assert sorted(g.run_id for g in plan.refused) == ["dead", "legacy", "live"]
    # nothing alive: plain clean removes the dead runs, by owner (a run starting meanwhile is safe)
    only_dead = [o for o in OBJECTS if o.labels.get(RUN_LABEL) in ("dead", "old-boot") and o.name != "c-shared"]
    plan = plan_clean(group_runs(only_dead, host(PROCESSES)))
    assert not plan.refused and not plan.everything and len(plan.remove) == 2


def test_clean_force_removes_everything() -> None:
    plan = plan_clean(group_runs(OBJECTS, host(PROCESSES)), force=True)
    assert plan.everything and not plan.refused


def test_the_reaper_wakes_when_the_owner_dies_or_its_pipe_closes() -> None:
    """``watch`` returns at once when the owner's end of the pipe closes, and within a poll when the
    owner dies while someone else still holds the pipe (a forked child)."""
    from repro.machine.reaper import POLL_S, watch

    here = HostView.here()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    found = process_start(child.pid)
    assert found is not None
    owner = Owner("r", child.pid, found[0], here.boot_id, here.pid_ns)
    read, write = os.pipe()  # this process keeps the write end: no EOF, only the pid can tell
    started = time.monotonic()
    watch(owner, read, here)
    took = time.monotonic() - started
    assert 0.3 < took < 0.5 + POLL_S + 1.0, took
    child.wait()
    me = current("r")
    os.close(write)  # EOF: the owner is gone, whatever its pid says
    started = time.monotonic()
    watch(me, read, here)
    assert time.monotonic() - started < 0.2
    os.close(read)
