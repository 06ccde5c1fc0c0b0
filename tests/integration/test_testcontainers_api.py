"""The test author's API: a machine, a workload, a fault and a verdict, without the CLI."""

from __future__ import annotations

import pathlib

import pytest

from repro.errors import TrialError
from repro.testing import ConstrainedHost

pytestmark = pytest.mark.docker


def test_the_documented_example_runs(lab_image: str) -> None:
    with ConstrainedHost("fly-256", preset="ns506", image=lab_image) as host:
        host.start_workload(seed=7)
        host.wait_for_acks(200)
        host.stop(signal="SIGINT")
        result = host.verify()
        assert result.integrity == "ok" and result.lost_acked == 0
        assert result.verdict == "pass" and result.acked >= 200


def test_the_machine_fixture_and_a_kill_mid_write(machine, tmp_path: pathlib.Path) -> None:
    host = machine("fly-256", preset="legacy")
    with host:
        ready = host.start_workload(seed=11)
        assert ready["synchronous"] == 2  # legacy keeps the compiled-in FULL
        report = host.kill_workload(after_acks=100, in_write=True)
        assert report.fired and report.in_write and report.acks >= 100
        result = host.verify()
        assert result.integrity == "ok" and result.lost_acked == 0
        # The crash state is the disk as the crash left it: the killed writer's WAL still holds
        # frames, which the restarted machine's clean close then checkpointed and deleted.
        crash, after = tmp_path / "crash", tmp_path / "after"
        crash.mkdir()
        after.mkdir()
        assert "state.db-wal" in host.fetch_database(crash, crash_state=True)
        assert (crash / "state.db-wal").stat().st_size > 0
        assert "state.db" in host.fetch_database(after, crash_state=False)
        assert not (after / "state.db-wal").exists()


def test_a_trigger_that_never_comes_is_a_lab_error_not_a_verdict(machine) -> None:
    host = machine("fly-256")
    with host:
        host.start_workload(seed=3)
        with pytest.raises(TrialError, match="trigger never came"):
            host.agent("none", after_acks=2**30, timeout=1.0)
