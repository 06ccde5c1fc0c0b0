"""Who owns a lab container or volume -- a run id and a live process -- and whether that owner is still alive.

Every container and volume the lab makes carries its owner in its labels: the run id, the
owner's pid, the pid's start time (field 22 of /proc/PID/stat, in clock ticks since boot),
the host's boot id and the owner's pid namespace. That is enough to decide "is the owner
alive" without a registry: same boot and pid namespace, the pid exists, is not a zombie and
started at the same tick. A pid reused by another process starts at another tick; a
container from before a reboot carries another boot id. Objects without owner labels (an
older lab, Docker Compose) or from another pid namespace cannot be decided, so nothing
removes them but an explicit ``repro clean --run ID`` or ``--force``.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Callable, Mapping

RUN_LABEL = "org.hermes-lab.run"
PID_LABEL = "org.hermes-lab.owner-pid"
START_LABEL = "org.hermes-lab.owner-start"
BOOT_LABEL = "org.hermes-lab.boot-id"
PIDNS_LABEL = "org.hermes-lab.pid-ns"


class Liveness(str, enum.Enum):
    """What can be said about an owner from here."""

    ALIVE = "alive"
    GONE = "gone"              # the pid is gone, a zombie, or a different process now (start time)
    OTHER_BOOT = "other-boot"  # made before the host's last reboot: its owner is certainly gone
    FOREIGN = "foreign"        # another pid namespace (a lab inside a container): cannot tell
    UNKNOWN = "unknown"        # no owner labels (an older lab, Compose): cannot tell

    @property
    def stale(self) -> bool:
        """Whether the objects may be removed as orphans without asking anyone."""
        return self in (Liveness.GONE, Liveness.OTHER_BOOT)


@dataclass(frozen=True)
class Owner:
    """A run id and the process that owns its containers and volumes."""

    run_id: str
    pid: int
    start: int  # clock ticks after boot at which the pid started
    boot_id: str
    pid_ns: str

    def labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id, PID_LABEL: str(self.pid), START_LABEL: str(self.start),
                BOOT_LABEL: self.boot_id, PIDNS_LABEL: self.pid_ns}

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> "Owner | None":
        """The owner named by a container's or volume's labels; None when they do not name one."""
        labels = labels or {}
        try:
            return cls(run_id=labels[RUN_LABEL], pid=int(labels[PID_LABEL]), start=int(labels[START_LABEL]),
                       boot_id=labels[BOOT_LABEL], pid_ns=labels[PIDNS_LABEL])
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid})"


@dataclass(frozen=True)
class HostView:
    """What this host says about processes: its boot id, our pid namespace, a pid's start and state."""

    boot_id: str
    pid_ns: str
    # pid -> (start ticks, state letter) or None when there is no such process
    process: Callable[[int], "tuple[int, str] | None"]

    @classmethod
    def here(cls) -> "HostView":
        return cls(boot_id=boot_id(), pid_ns=pid_namespace(), process=process_start)


def liveness(owner: Owner | None, host: HostView) -> Liveness:
    """Decide from the labels alone whether an owner is alive (see the module's docstring)."""
    if owner is None:
        return Liveness.UNKNOWN
    if owner.boot_id != host.boot_id:
        return Liveness.OTHER_BOOT
    if owner.pid_ns != host.pid_ns:
        return Liveness.FOREIGN
    found = host.process(owner.pid)
    if found is None:
        return Liveness.GONE
    start, state = found
    if start != owner.start or state in ("Z", "X"):  # reused pid, or dead but not yet waited for
        return Liveness.GONE
    return Liveness.ALIVE


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


def pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


def process_start(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks after boot, state letter) of a pid, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return parse_stat(text)


def parse_stat(text: str) -> tuple[int, str] | None:
    """(start ticks, state) from the text of /proc/PID/stat."""
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = text[text.rfind(")") + 2:].split()
    try:
        return int(fields[19]), fields[0]  # field 3 is the state, field 22 the start time
    except (IndexError, ValueError):
        return None


def current(run_id: str) -> Owner:
    """This process as the owner of ``run_id``."""
    found = process_start(os.getpid())
    return Owner(run_id=run_id, pid=os.getpid(), start=found[0] if found else 0, boot_id=boot_id(),
                 pid_ns=pid_namespace())
