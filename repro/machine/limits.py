"""What a Fly-like machine may use: memory without swap, one pinned CPU, pids, capabilities, no network.

One function turns a profile into the engine's container settings, so every machine the
lab starts -- the trial machine, the restarted machine -- is limited in the same place.
"""

from __future__ import annotations

import math
import os
import threading

from docker.types import Mount

from repro.machine.labels import labels
from repro.scenario import MachineProfile

# What s6-setuidgid, lab-init and the fault agent need; everything else is dropped.
BASE_CAPS = ("CHOWN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER")

_cpu_lock = threading.Lock()
_cpu_next = 0


def pick_cpus(cpus: float) -> str:
    """Host CPUs for the next machine: a 1-vCPU Fly machine runs every process on one CPU.

    A CFS quota alone (nano_cpus) still lets two processes of the machine run at the same
    time on two host CPUs -- the workload and the FUSE daemon, the workload and the fault
    agent -- which no 1-vCPU machine can. So the machine is also pinned to ceil(cpus) host
    CPUs, handed out round robin so that trials running side by side get different ones.
    """
    global _cpu_next
    available = sorted(os.sched_getaffinity(0))
    want = max(1, min(len(available), math.ceil(cpus)))
    with _cpu_lock:
        start = _cpu_next
        _cpu_next = (_cpu_next + want) % len(available)
    return ",".join(str(available[(start + i) % len(available)]) for i in range(want))


def container_settings(profile: MachineProfile, *, role: str, mounts: list[Mount], fuse: bool,
                       restarted: bool) -> dict[str, object]:
    """docker-py ``containers.create`` keyword arguments for a machine of this profile.

    The restarted machine runs only the probe, as uid 1000: it needs no capability at all.
    Only a power-loss machine gets the FUSE device, CAP_SYS_ADMIN and an unconfined AppArmor profile.
    """
    caps = [] if restarted else [*BASE_CAPS, *(["SYS_ADMIN"] if fuse else [])]
    security = ["no-new-privileges=true", *(["apparmor=unconfined"] if fuse else [])]
    settings: dict[str, object] = dict(
        mem_limit=profile.memory, memswap_limit=profile.memory_swap, nano_cpus=int(profile.cpus * 1e9),
        cpuset_cpus=pick_cpus(profile.cpus), pids_limit=profile.pids_limit,
        network_mode="bridge" if profile.network else "none",
        labels=labels(role), mounts=mounts, stop_signal=profile.kill_signal,
        cap_drop=["ALL"], cap_add=caps, security_opt=security,
    )
    if fuse:
        settings["devices"] = ["/dev/fuse:/dev/fuse:rwm"]
    return settings
