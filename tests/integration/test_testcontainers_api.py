"""The test author's API: a machine, a workload, a fault and a verdict, without the CLI."""

from __future__ import annotations

import pytest

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


def test_the_machine_fixture_and_a_kill_mid_write(machine) -> None:
    host = machine("fly-256", preset="legacy")
    with host:
        ready = host.start_workload(seed=11)
        assert ready["synchronous"] == 2  # legacy keeps the compiled-in FULL
        report = host.kill_workload(after_acks=100, in_write=True)
        assert report.fired and report.in_write and report.acks >= 100
        result = host.verify()
        assert result.integrity == "ok" and result.lost_acked == 0
