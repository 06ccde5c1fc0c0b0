"""Which host CPUs a new machine is pinned to: free ones among what the engine runs now, across every lab process.

A 1-vCPU Fly machine runs every process on one CPU; a CFS quota alone (nano_cpus) still
lets two processes of the machine run at once on two host CPUs (the workload and the FUSE
daemon, the workload and the fault agent). So a machine is pinned to ceil(cpus) host CPUs
that no other running lab machine -- of this run or any other, as the engine reports them --
is pinned to. When there are not enough free CPUs the machine is not pinned at all, rather
than share one, and its trial record says so. The choice and the container's creation
happen under a process lock and an flock on a file every lab process on this host shares,
so two runs starting machines at once cannot both take the same CPU.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence

if TYPE_CHECKING:
    from docker.client import DockerClient

LOCK_PATH = os.path.join(tempfile.gettempdir(), "hermes-lab-cpus.lock")
LOCK_WAIT_S = 60.0
# Containers that hold their CPUs: made and not yet started, running, or frozen.
HOLDING = ("created", "running", "paused", "restarting")

_local = threading.Lock()


@dataclass(frozen=True)
class CpuPin:
    """The host CPUs a machine is pinned to ("" when it is not), and why it is not."""

    cpus: str
    reason: str = ""

    def describe(self) -> str:
        return f"pinned to CPU {self.cpus}" if self.cpus else f"unpinned: {self.reason}"


def parse_cpuset(text: str) -> set[int]:
    """``0-2,5`` -> {0, 1, 2, 5} (Docker's and the kernel's cpuset syntax); "" -> set()."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            cpus.update(range(int(low), int(high or low) + 1))
        except ValueError:
            continue
    return cpus


def choose(want: float, available: Sequence[int], in_use: Mapping[int, int]) -> CpuPin:
    """Pin to ceil(want) CPUs that no running lab machine uses, lowest first; unpinned if too few are free."""
    count = max(1, math.ceil(want))
    free = [cpu for cpu in sorted(available) if in_use.get(cpu, 0) == 0]
    if len(free) < count:
        busy = ", ".join(f"CPU {cpu}: {n}" for cpu, n in sorted(in_use.items()) if cpu in available)
        return CpuPin("", f"{len(available) - len(free)} of {len(available)} host CPUs already run lab machines "
                          f"({busy}); sharing one would give two machines one CPU")
    return CpuPin(",".join(str(cpu) for cpu in free[:count]))


def usage(cpusets: Iterable[str]) -> dict[int, int]:
    """How many machines are pinned to each CPU."""
    counts: dict[int, int] = {}
    for text in cpusets:
        for cpu in parse_cpuset(text):
            counts[cpu] = counts.get(cpu, 0) + 1
    return counts


def engine_cpusets(cli: "DockerClient") -> list[str]:
    """The cpusets of the lab's machines that hold CPUs now (label, else the engine's own HostConfig)."""
    from repro.machine.labels import CPUS_LABEL, LAB_LABEL

    found: list[str] = []
    for status in HOLDING:
        for row in cli.api.containers(all=True, filters={"label": LAB_LABEL, "status": status}):
            labels = row.get("Labels") or {}
            if CPUS_LABEL in labels:
                found.append(labels[CPUS_LABEL])
                continue
            try:  # a machine of an older lab: ask the engine what it is pinned to
                found.append(cli.api.inspect_container(row["Id"])["HostConfig"].get("CpusetCpus") or "")
            except Exception:  # gone meanwhile
                continue
    return found


_engine_cpus: dict[str, list[int]] = {}


def engine_cpus(cli: "DockerClient") -> list[int]:
    """The CPUs machines may be pinned to: on an engine behind a local socket, this process's own (their
    ids, which may not start at 0); on a remote engine (tcp://, ssh://), whose CPUs are not this host's,
    0..NCPU-1 as its `info` says. Asked once per engine."""
    key = str(cli.api.base_url)
    if key not in _engine_cpus:
        count = 0
        if not key.startswith("http+docker://"):  # docker-py's name for a unix socket or named pipe
            try:
                count = int(cli.info().get("NCPU") or 0)
            except Exception:  # an engine that does not answer `info` fails at the next call anyway
                count = 0
        _engine_cpus[key] = list(range(count)) if count > 0 else sorted(os.sched_getaffinity(0))
    return _engine_cpus[key]


@contextlib.contextmanager
def claim(want: float, cli: "DockerClient") -> Iterator[CpuPin]:
    """Choose CPUs for a machine; hold the choice (process lock + host-wide flock) until the
    caller has created the machine, so that the next choice sees it."""
    available = engine_cpus(cli)
    with _local, _host_lock() as locked:
        if not locked:
            yield CpuPin("", f"another lab process held the CPU lock ({LOCK_PATH}) over {LOCK_WAIT_S:.0f} s")
            return
        yield choose(want, available, usage(engine_cpusets(cli)))


@contextlib.contextmanager
def _host_lock() -> Iterator[bool]:
    """flock on LOCK_PATH, shared by every lab process on this host; True once held."""
    try:
        fd = os.open(LOCK_PATH, os.O_RDONLY | os.O_CREAT, 0o644)  # flock needs no write access
    except OSError:
        yield True  # no shared lock file here (read-only /tmp): the process lock must do
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.02)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
