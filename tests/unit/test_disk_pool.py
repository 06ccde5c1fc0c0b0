"""The disks a run keeps across its trials (repro/machine/pool.py): which disk may serve which trial, which are never kept,
and the empty-disk check. (Kept and reused disks in the engine: tests/integration/test_machine.py.)"""

from __future__ import annotations

import pytest

from repro.errors import TrialError
from repro.machine.cpus import CpuPin
from repro.machine.disk import DataDisk
from repro.machine.pool import DiskKey, DiskPool, check_empty
from repro.scenario import get_profile

FLY256, FLY512 = get_profile("fly-256"), get_profile("fly-512")


def test_a_disk_serves_only_a_trial_with_the_same_limits_image_and_inputs() -> None:
    key = DiskKey.of(FLY256, "hermes-lab:latest", b"store and sqlite")
    assert key == DiskKey.of(FLY256, "hermes-lab:latest", b"store and sqlite")
    for other in (DiskKey.of(FLY512, "hermes-lab:latest", b"store and sqlite"),
                  DiskKey.of(FLY256, "hermes-lab:other", b"store and sqlite"),
                  DiskKey.of(FLY256, "hermes-lab:latest", b"another store")):
        assert other != key


def test_a_removed_or_unpinned_disk_is_never_kept() -> None:
    pool = DiskPool(max_idle=4)
    key = DiskKey.of(FLY256, "hermes-lab:latest", b"")
    removed = DataDisk(FLY256)  # never made, or removed by a watchdog: no holder, no volumes
    removed.pin = CpuPin("0")
    unpinned = DataDisk(FLY256)
    unpinned.volume_name = "x-unit-test"  # removing it clears this (no engine needed: it is not asked twice)
    assert not removed.alive and not unpinned.pin.cpus
    assert pool.take(key) is None and pool.made == 1
    pool.give_back(key, removed)
    pool.give_back(key, unpinned)
    assert pool.take(key) is None and pool.reused == 0 and not pool.evict_oldest()
    assert unpinned.volume_name == ""


def test_a_reused_disk_must_be_empty_after_the_machine_booted() -> None:
    check_empty({"services": "", "disk_entries": 0})
    for bad in ({"disk_entries": 3}, {}, {"disk_entries": "0"}):  # left files, an old lab-init, a garbled count
        with pytest.raises(TrialError, match="empty disk"):
            check_empty(bad)
