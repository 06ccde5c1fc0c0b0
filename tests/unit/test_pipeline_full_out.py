"""A trial whose evidence cannot be written (a full or broken --out) keeps its verdict: run_trial never raises an OSError."""

from __future__ import annotations

import pathlib

import pytest

from repro import pipeline
from repro.errors import LabError
from repro.oracle.verdicts import Verdict
from repro.scenario import StoreSpec, WorkloadSpec, expand


class _Machine:
    """Stands in for ConstrainedHost: it boots, and then the lab fails as the workload starts."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.disk = None
        self.pin = None
        self.removed = False

    def start(self) -> None:
        pass

    def start_workload(self, *args: object, **settings: object) -> dict[str, object]:
        raise LabError("the workload did not start")

    def output(self) -> list[str]:
        return ["@boot/1/11 LAB BOOT {}"]

    def ended_from_outside(self) -> None:
        return None  # nobody else ended it: the lab's own failure stands

    def remove(self, keep_disk: bool = False) -> None:
        self.removed = True


def test_evidence_that_cannot_be_written_leaves_the_verdict_and_removes_the_machine(
        monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    made: list[_Machine] = []
    monkeypatch.setattr(pipeline, "ConstrainedHost", lambda *a, **k: made.append(_Machine()) or made[-1])
    monkeypatch.setattr(pipeline, "fetch_database", lambda *a, **k: None)
    (tmp_path / "trials").write_text("not a directory")  # every evidence write fails with an OSError
    scenario = expand(["fly-256"], [("sigkill",)], [StoreSpec("ns506")], 1, 9, WorkloadSpec())[0]
    record = pipeline.run_trial(scenario, out_dir=tmp_path)
    assert record.verdict is Verdict.ERROR and "workload did not start" in record.detail
    assert made and made[0].removed
