"""Fly-like machine profiles: the sizes, limits and stop behaviour the lab's containers imitate."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from repro.errors import ScenarioError, shown
from repro.filesystems import FsSpec, parse as parse_fs
from repro.workload.spec import MAX_SIZE, format_size, parse_size  # sizes are read in the machine too


@dataclass(frozen=True)
class MachineProfile:
    """One Fly Machine size as a container: memory = memory+swap, 1 CPU, a tiny data disk."""

    name: str
    memory: int  # bytes; memory+swap is the same (no swap)
    cpus: float
    pids_limit: int
    disk: int  # bytes of the data volume (size-capped tmpfs)
    kill_signal: str = "SIGINT"  # Fly's default kill_signal
    kill_timeout_s: int = 5  # Fly's default kill_timeout
    network: bool = False
    fs: str | None = None  # --fs: the data disk is this kernel filesystem (repro/filesystems.py), not a bare tmpfs

    def __post_init__(self) -> None:
        if self.memory < (32 << 20):
            raise ScenarioError(f"profile {self.name}: memory below 32m cannot run the workload")
        if self.disk < (1 << 20):
            raise ScenarioError(f"profile {self.name}: disk below 1m")
        if self.kill_signal not in ("SIGINT", "SIGTERM"):
            raise ScenarioError(f"profile {self.name}: kill signal must be SIGINT or SIGTERM")
        if not 0 < self.kill_timeout_s <= 300:
            raise ScenarioError(f"profile {self.name}: kill timeout must be 1..300 s (Fly's range)")
        if self.fs is not None:
            parse_fs(self.fs).check_size(self.disk)

    @property
    def filesystem(self) -> FsSpec | None:
        """The kernel filesystem of the data disk (``--fs``), or None: the lab's own disk."""
        return None if self.fs is None else parse_fs(self.fs)

    @property
    def memory_swap(self) -> int:
        return self.memory


PROFILES: dict[str, MachineProfile] = {
    p.name: p
    for p in (
        MachineProfile("fly-256", memory=256 << 20, cpus=1.0, pids_limit=128, disk=64 << 20),
        MachineProfile("fly-512", memory=512 << 20, cpus=1.0, pids_limit=256, disk=128 << 20),
        MachineProfile("fly-1g", memory=1 << 30, cpus=1.0, pids_limit=512, disk=256 << 20),
    )
}
DEFAULT_PROFILE = "fly-256"


def with_fs(profile: MachineProfile, fs: str | None) -> MachineProfile:
    """The profile with its disk as a kernel filesystem (``--fs``), and a name that says so: fly-256+ext4."""
    if not fs:
        return profile
    spec = parse_fs(fs)
    return dataclasses.replace(profile, fs=spec.label, name=f"{profile.name}+{spec.label.replace(',', '+')}")


def get_profile(name: str) -> MachineProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ScenarioError(f"unknown profile {shown(name)}; known: {', '.join(PROFILES)}") from None
