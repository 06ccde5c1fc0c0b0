"""Nothing outlives the process that made it: a detached reaper per lab process, and the sweep of dead owners' runs.

``ensure_running`` (called whenever the lab labels a new container or volume) starts
``python -m repro.machine.reaper`` once per process, in a session of its own, so that a
terminal's Ctrl-C or a kill of the run's process group does not reach it. The reaper holds
the read end of a pipe whose write end only the owner has: when the owner dies by any signal
the kernel closes it and the reaper wakes at once (and it checks the owner's pid and start
time every POLL_S besides). It then removes the owner's containers and volumes by label and
exits; after a normal end that finds nothing. If even the reaper died, ``stale_runs`` finds
runs whose owner is gone from the labels alone, for ``repro clean --stale`` and the start of
every run.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from repro.errors import LabError
from repro.machine.owner import RUN_LABEL, HostView, Liveness, Owner, liveness

if TYPE_CHECKING:
    from docker.client import DockerClient

POLL_S = 0.5
# A create the owner asked for just before it died may still complete in the engine: sweep again.
SETTLE_S = 2.0

_lock = threading.Lock()
_running: dict[int, "subprocess.Popen[bytes]"] = {}  # owner pid -> its reaper


def ensure_running(owner: Owner) -> None:
    """Start this process's reaper unless it is running (again after a fork, or if it died)."""
    with _lock:
        proc = _running.get(owner.pid)
        if proc is not None and proc.poll() is None:
            return
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        try:
            _running[owner.pid] = subprocess.Popen(
                [sys.executable, "-m", "repro.machine.reaper", "--run", owner.run_id, "--pid", str(owner.pid),
                 "--start", str(owner.start), "--boot-id", owner.boot_id, "--pid-ns", owner.pid_ns],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, env=env, cwd="/")
        except OSError as exc:  # no machine may start that nothing would remove
            raise LabError(f"cannot start the run's reaper ({sys.executable}): {exc.strerror}") from None


def watch(owner: Owner, fd: int, host: HostView) -> None:
    """Return once the owner is gone: its end of the pipe closed, or its pid dead or reused."""
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready and not os.read(fd, 4096):
            return  # EOF: the kernel closed the owner's descriptors
        if liveness(owner, host) is not Liveness.ALIVE:
            return


def reap(owner: Owner, attempts: int = 5) -> tuple[int, int]:
    """Remove the owner's containers and volumes; (containers, volumes) removed."""
    from repro.errors import EngineError
    from repro.machine import engine

    removed = [0, 0]
    for attempt in range(attempts):
        try:
            cli = engine.client()
            for settle in (0.0, SETTLE_S):
                time.sleep(settle)
                result = engine.cleanup(cli, owner=owner)
                removed[0] += result.containers
                removed[1] += result.volumes
            return removed[0], removed[1]
        except EngineError:
            time.sleep(1.0 + attempt)  # the engine is restarting: try again
    return removed[0], removed[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.machine.reaper")
    parser.add_argument("--run", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--boot-id", required=True)
    parser.add_argument("--pid-ns", required=True)
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    owner = Owner(run_id=args.run, pid=args.pid, start=args.start, boot_id=args.boot_id, pid_ns=args.pid_ns)
    watch(owner, sys.stdin.fileno(), HostView.here())
    reap(owner)
    return 0


# -- the fallback: runs whose owner is gone, decided from labels --------------------------------


@dataclass(frozen=True)
class LabObject:
    """A container or volume with the lab's label."""

    kind: str  # "container" or "volume"
    name: str
    labels: dict[str, str]


@dataclass(frozen=True)
class RunGroup:
    """The lab objects of one owner (or of one run id, when they name no owner)."""

    run_id: str
    owner: Owner | None
    liveness: Liveness
    containers: tuple[str, ...]
    volumes: tuple[str, ...]

    def describe(self) -> str:
        who = self.owner.describe() if self.owner else f"run {self.run_id} (no owner labels)"
        return f"{who}: {len(self.containers)} container(s), {len(self.volumes)} volume(s), {self.liveness.value}"


def group_runs(objects: Iterable[LabObject], host: HostView) -> list[RunGroup]:
    """The lab's objects by owner, each with what can be said about that owner."""
    groups: dict[tuple[str, Owner | None], tuple[list[str], list[str]]] = {}
    for obj in objects:
        owner = Owner.from_labels(obj.labels)
        key = (owner.run_id if owner else obj.labels.get(RUN_LABEL, "-"), owner)
        containers, volumes = groups.setdefault(key, ([], []))
        (containers if obj.kind == "container" else volumes).append(obj.name)
    return [RunGroup(run_id, owner, liveness(owner, host), tuple(c), tuple(v))
            for (run_id, owner), (c, v) in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))]


@dataclass(frozen=True)
class CleanPlan:
    """What `repro clean` removes: some owners' objects, or everything; or nothing, refusing."""

    remove: tuple[RunGroup, ...]
    everything: bool = False
    refused: tuple[RunGroup, ...] = ()  # alive or undecidable runs that a plain clean will not touch
    kept: tuple[RunGroup, ...] = ()     # the same, left alone by --stale


def plan_clean(groups: Sequence[RunGroup], *, stale_only: bool = False, force: bool = False) -> CleanPlan:
    """--force: everything; --stale: the runs whose owner is gone; plain: the same, unless some run is
    alive or cannot be told dead -- then nothing (refused). Only --force sweeps by the lab's label
    alone; the others remove by owner, so a run that starts meanwhile is never touched."""
    alive = tuple(g for g in groups if not g.liveness.stale)
    dead = tuple(g for g in groups if g.liveness.stale)
    if force:
        return CleanPlan(remove=tuple(groups), everything=True)
    if stale_only:
        return CleanPlan(remove=dead, kept=alive)
    if alive:
        return CleanPlan(remove=(), refused=alive)
    return CleanPlan(remove=dead)


def lab_objects(cli: "DockerClient") -> list[LabObject]:
    """Every container and volume with the lab's label, with its labels."""
    from repro.machine.names import LAB_LABEL

    found = [LabObject("container", row["Id"][:12], dict(row.get("Labels") or {}))
             for row in cli.api.containers(all=True, filters={"label": LAB_LABEL})]
    found += [LabObject("volume", v.name, dict(v.attrs.get("Labels") or {}))
              for v in cli.volumes.list(filters={"label": LAB_LABEL})]
    return found


def stale_runs(cli: "DockerClient", host: HostView | None = None) -> list[RunGroup]:
    """The runs whose owner is certainly gone (dead, or from before the host's last boot)."""
    return [g for g in group_runs(lab_objects(cli), host or HostView.here()) if g.liveness.stale]


def remove_groups(cli: "DockerClient", groups: Iterable[RunGroup]) -> tuple[int, int]:
    """Remove these owners' containers and volumes (by owner, so a live process's are never touched)."""
    from repro.machine import engine

    containers = volumes = 0
    for group in groups:
        result = engine.cleanup(cli, owner=group.owner, run_id=group.run_id)
        containers, volumes = containers + result.containers, volumes + result.volumes
    return containers, volumes


if __name__ == "__main__":
    sys.exit(main())
