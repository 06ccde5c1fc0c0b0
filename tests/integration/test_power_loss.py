"""Power loss through the lossy filesystem: what each synchronous level really buys."""

from __future__ import annotations

import os
import pathlib
from typing import Callable

import pytest

from repro.report.records import TrialRecord
from repro.scenario import FaultSpec, Scenario, StoreSpec, get_profile, trial_id
from repro.pipeline import run_trial

# Skipped locally without /dev/fuse; in CI (`CI` set) that is a failure, not a skip.
_NO_FUSE = not pathlib.Path("/dev/fuse").exists() and not os.environ.get("CI")
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_NO_FUSE, reason="power loss needs /dev/fuse on the engine's host")]
SEED = 5050


def _trials(fault: str, store: StoreSpec, count: int, out: pathlib.Path, image: str,
            stop_on: Callable[[TrialRecord], bool] | None = None) -> list[TrialRecord]:
    """Up to ``count`` seeded trials; with ``stop_on``, stop at the first trial it accepts."""
    records = []
    for number in range(1, count + 1):
        proto = Scenario(get_profile("fly-256"), (FaultSpec.parse(fault),), store, SEED)
        scenario = Scenario(proto.profile, proto.faults, store, SEED, trial_id(proto, number))
        record = run_trial(scenario, out_dir=out, image=image)
        assert record.verdict.value != "error", f"{record.id}: {record.detail}"
        records.append(record)
        if stop_on is not None and stop_on(record):
            break
    return records


def _why(records: list[TrialRecord]) -> str:
    return "\n".join(f"{r.id}: {r.verdict.value}: {r.detail} (replay: {r.replay})" for r in records)


def test_wal_full_keeps_every_acknowledged_write(lab_image: str, tmp_path: pathlib.Path) -> None:
    # every crash state, not a sample of crash points, is test_explore's: here the trial's power-loss path
    records = _trials("power-loss", StoreSpec("durable"), 3, tmp_path, lab_image)
    assert all(r.journal_mode == "wal" and r.synchronous == "2" for r in records)
    assert all(r.verdict.value == "pass" for r in records), _why(records)


def test_wal_normal_never_corrupts_but_loses_the_last_commits(lab_image: str, tmp_path: pathlib.Path) -> None:
    records = _trials("power-loss", StoreSpec("ns506"), 10, tmp_path, lab_image,
                      stop_on=lambda r: r.lost_acked > 0 or r.verdict.value not in ("pass", "expected-loss"))
    assert all(r.synchronous == "1" for r in records)
    assert all(r.verdict.value in ("pass", "expected-loss") for r in records), _why(records)
    # if no trial ever lost an acknowledged commit, the filesystem is not losing what it should
    assert any(r.lost_acked > 0 for r in records), _why(records)


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_synchronous_off_is_caught(journal_mode: str, lab_image: str, tmp_path: pathlib.Path) -> None:
    store = StoreSpec("ns506", journal_mode=journal_mode, synchronous="off")
    records = _trials("power-loss", store, 10, tmp_path, lab_image,
                      stop_on=lambda r: r.verdict.value in ("corrupt", "lost-acked"))
    assert all(r.synchronous == "0" for r in records)
    assert any(r.verdict.value in ("corrupt", "lost-acked") for r in records), _why(records)
    assert all(r.expected for r in records)  # synchronous=OFF promised nothing under power loss


def test_delete_full_with_lazy_directories_may_roll_back_the_last_commit(lab_image: str,
                                                                          tmp_path: pathlib.Path) -> None:
    store = StoreSpec("ns506", journal_mode="delete", synchronous="full")
    records = _trials("power-loss:lazy-dirs", store, 10, tmp_path, lab_image,
                      stop_on=lambda r: r.verdict.value != "pass")
    assert all(r.verdict.value in ("pass", "expected-loss") for r in records), _why(records)
    assert any(r.verdict.value == "expected-loss" for r in records), _why(records)


def test_delete_extra_with_lazy_directories_keeps_every_commit(lab_image: str, tmp_path: pathlib.Path) -> None:
    store = StoreSpec("ns506", journal_mode="delete", synchronous="extra")
    records = _trials("power-loss:lazy-dirs", store, 3, tmp_path, lab_image)  # every state: test_explore
    assert all(r.synchronous == "3" for r in records)
    assert all(r.verdict.value == "pass" for r in records), _why(records)
