"""A reproducible recording: the same seed gives a trace of the same shape, so a state id -- printed with that
shape -- names the same state in both recordings, and is refused against a recording of another shape."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from repro.errors import ExitCode
from repro.explore.configs import CONFIGURATIONS
from repro.explore.models import PersistenceModel
from repro.explore.record import record
from repro.explore.runner import explore
from repro.scenario import WorkloadSpec, get_profile

_NO_FUSE = not pathlib.Path("/dev/fuse").exists() and not os.environ.get("CI")
pytestmark = [pytest.mark.docker, pytest.mark.fuse,
              pytest.mark.skipif(_NO_FUSE, reason="recording needs /dev/fuse on the engine's host")]
REPRO = pathlib.Path(sys.executable).with_name("repro")


def _record(dest: pathlib.Path, image: str, reproducible: bool):  # type: ignore[no-untyped-def]
    dest.mkdir(parents=True)
    return record(profile=get_profile("fly-256"), store=CONFIGURATIONS["wal-normal"], workload=WorkloadSpec(sizes="200:2k"),
                  ops=30, seed=9, dest=dest, image=image, source="tests reproducible", reproducible=reproducible)


def test_the_same_seed_records_the_same_shape_and_ids_name_the_same_states(lab_image: str,
                                                                          tmp_path: pathlib.Path) -> None:
    first, second = _record(tmp_path / "a", lab_image, True), _record(tmp_path / "b", lab_image, True)
    assert first.recording.reproducible and first.shape() == second.shape()
    models = PersistenceModel.parse_list("prefix,torn")
    runs = [explore(t, models, budget=150, seed=9, jobs=2) for t in (first, second)]
    assert [(r.model.value, r.index, r.point) for r in runs[0].results] == \
           [(r.model.value, r.index, r.point) for r in runs[1].results]
    assert [r.verdict for r in runs[0].results] == [r.verdict for r in runs[1].results]
    out = tmp_path / "reports"
    done = subprocess.run([str(REPRO), "explore", str(first.path), "--models", "prefix", "--budget", "50", "--seed", "9",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode in (ExitCode.OK, ExitCode.TRIAL_FAILED), done.stderr[-2000:]
    report = json.loads((out / "explore.json").read_text())
    assert report["trace"]["shape"] == first.shape() and report["trace"]["reproducible"] is True
    shown = [m["largest_loss_state"] for m in report["models"] if m.get("largest_loss_state")]
    assert all(s.endswith("@" + first.shape()) for s in shown), shown
    wrong = subprocess.run([str(REPRO), "explore", str(first.path), "--materialize", "prefix:0@000000000000", "--out",
                            str(tmp_path / "state")], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == ExitCode.BAD_INPUT and "another recording" in wrong.stderr, wrong.stderr
