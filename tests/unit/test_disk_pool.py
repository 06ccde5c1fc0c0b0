"""The disks a run keeps across its trials (repro/machine/pool.py): which trial takes which, what is evicted, and the empty-disk check."""

from __future__ import annotations

import pytest

from repro.errors import TrialError
from repro.machine.disk import DataDisk
from repro.machine.pool import DiskKey, DiskPool, check_empty
from repro.scenario import get_profile

FLY256, FLY512 = get_profile("fly-256"), get_profile("fly-512")


def test_a_disk_serves_only_a_trial_with_the_same_limits_image_and_inputs() -> None:
    pool = DiskPool(max_idle=4)
    key = DiskKey.of(FLY256, "hermes-lab:latest", b"")
    disk = DataDisk(FLY256)  # not made in the engine: removing it asks nothing of it
    assert pool.take(key) is None and pool.made == 1
    pool.give_back(key, disk)
    for other in (DiskKey.of(FLY512, "hermes-lab:latest", b""), DiskKey.of(FLY256, "hermes-lab:other", b""),
                  DiskKey.of(FLY256, "hermes-lab:latest", b"another store")):
        assert pool.take(other) is None
    assert pool.take(key) is disk and pool.reused == 1
    assert pool.take(key) is None  # taken: one trial at a time


def test_idle_disks_beyond_the_limit_and_after_the_run_are_removed() -> None:
    pool = DiskPool(max_idle=1)
    old, new = DataDisk(FLY256), DataDisk(FLY512)
    old.volume_name, new.volume_name = "x-old", "x-new"  # what remove() clears (the engine is not asked: no holder)
    keys = DiskKey.of(FLY256, "i", b""), DiskKey.of(FLY512, "i", b"")
    pool.give_back(keys[0], old)
    pool.give_back(keys[1], new)  # the oldest goes
    assert old.volume_name == "" and pool.take(keys[0]) is None
    with pool:
        pass
    assert new.volume_name == "" and pool.take(keys[1]) is None
    late = DataDisk(FLY256)
    late.volume_name = "x-late"
    pool.give_back(keys[0], late)  # a trial that ends after the run closed its pool: removed, not kept
    assert late.volume_name == ""


def test_a_reused_disk_must_be_empty_after_the_machine_booted() -> None:
    check_empty({"services": "", "disk_entries": 0})
    for bad in ({"disk_entries": 3}, {}, {"disk_entries": "0"}):  # left files, an old lab-init, a garbled count
        with pytest.raises(TrialError, match="empty disk"):
            check_empty(bad)
