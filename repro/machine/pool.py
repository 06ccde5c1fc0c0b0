"""Data disks kept across the trials of one run, so that a trial starts one container (its machine) instead of two.

A disk (repro/machine/disk.py: the tmpfs volume, the inputs volume, and the holder that is the
restarted machine) is handed back after a trial that ended with a verdict, and the next trial
with the same profile, image and inputs takes it. The next machine empties the disk as it boots
(docker/lab-init, LAB_WIPE_DISK) and reports how many entries the disk holds afterwards; a
trial on a reused disk that is not empty is refused (``check_empty``), so every trial still
starts on an empty disk. A disk stays pinned to the CPUs it was made with, and its machine
takes the same ones; only pinned disks are kept, and a trial that finds no free CPU removes
an idle disk first (idle holders hold their CPUs). At most ``max_idle`` disks wait at once
(the oldest goes first); the run removes the rest when it ends, and the owner labels and the
reaper cover a run that dies.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

from repro.errors import TrialError
from repro.machine.disk import DataDisk
from repro.scenario import MachineProfile

WIPE_ENV = "LAB_WIPE_DISK"


@dataclass(frozen=True)
class DiskKey:
    """What a disk must match to serve another trial: the machine's limits, the image, the same inputs."""

    profile: MachineProfile
    image: str
    inputs: str  # sha256 of the inputs archive

    @classmethod
    def of(cls, profile: MachineProfile, image: str, inputs: bytes) -> "DiskKey":
        return cls(profile, image, hashlib.sha256(inputs).hexdigest())


class DiskPool:
    """Idle disks by key; thread-safe (a run's trials run in a thread pool)."""

    def __init__(self, max_idle: int = 2) -> None:
        self.max_idle = max(0, max_idle)
        self._idle: OrderedDict[int, tuple[DiskKey, DataDisk]] = OrderedDict()
        self._lock = threading.Lock()
        self.made = 0    # takes that found no disk to reuse (the caller made one)
        self.reused = 0  # trials that took a kept disk
        self._closed = False

    def __enter__(self) -> "DiskPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def take(self, key: DiskKey) -> DataDisk | None:
        """An idle disk of that key (the most recently returned), or None: the caller makes one."""
        with self._lock:
            for ident in reversed(self._idle):
                if self._idle[ident][0] == key and self._idle[ident][1].alive:
                    self.reused += 1
                    return self._idle.pop(ident)[1]
            self.made += 1
            return None

    def evict_oldest(self) -> bool:
        """Remove the oldest idle disk (to free the CPUs it holds); False if none waits."""
        with self._lock:
            if not self._idle:
                return False
            _, disk = self._idle.popitem(last=False)[1]
        disk.remove()
        return True

    def give_back(self, key: DiskKey, disk: DataDisk) -> None:
        """Keep ``disk`` for a later trial; beyond ``max_idle`` the oldest idle disk is removed. A disk whose
        holder is gone, or that is not pinned (it would stay unpinned for every trial after), is removed."""
        evicted: list[DataDisk] = []
        with self._lock:
            if self._closed or not disk.alive or not disk.pin.cpus:  # the run is over, or a disk not to reuse
                evicted.append(disk)
            else:
                self._idle[id(disk)] = (key, disk)
            while len(self._idle) > self.max_idle:
                evicted.append(self._idle.popitem(last=False)[1][1])
        for old in evicted:
            old.remove()

    def close(self) -> None:
        """Remove every idle disk (the run is over)."""
        with self._lock:
            self._closed = True
            idle = [disk for _, disk in self._idle.values()]
            self._idle.clear()
        for disk in idle:
            disk.remove()


def check_empty(boot: Mapping[str, object]) -> None:
    """TrialError unless a reused disk's machine booted on an empty disk (its boot line's ``disk_entries``)."""
    entries = boot.get("disk_entries")
    if entries != 0:
        raise TrialError(f"the reused data disk held {entries} entries after the machine emptied it at boot: "
                         "the trial would not start on an empty disk")
