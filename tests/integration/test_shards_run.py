"""Two shards of a real run, merged, equal the unsharded run trial for trial (ids, seeds, schedules, verdicts)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.docker
REPRO = [str(pathlib.Path(sys.executable).with_name("repro"))]  # the console script, as a user runs it
# the kill at the store's next write after 20 acknowledged ones, with a seeded delay into it (each trial's own):
# the test is about shards and the merge, and the schedules they expand, not about where the fault lands
RUN = ["run", "--fault", "sigkill@on-write=20", "--trials", "4", "--seed", "23"]


def trials(run_dir: pathlib.Path) -> list[dict[str, object]]:
    return list(json.loads((run_dir / "report.json").read_text())["trials"])


def test_two_shards_merged_equal_the_unsharded_run(lab_image: str, tmp_path: pathlib.Path) -> None:
    def repro(*argv: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*REPRO, *argv, "--image", lab_image], capture_output=True, text=True, timeout=300) \
            if argv[0] == "run" else subprocess.run([*REPRO, *argv], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    repro(*RUN, "--out", str(tmp_path / "whole"))
    repro(*RUN, "--shard", "1/2", "--out", str(tmp_path / "s1"))
    repro(*RUN, "--shard", "2/2", "--out", str(tmp_path / "s2"), "--jobs", "2")
    assert [len(trials(tmp_path / s)) for s in ("s1", "s2")] == [2, 2]
    merged = repro("merge", str(tmp_path / "s2"), str(tmp_path / "s1"), "--out", str(tmp_path / "merged"))
    assert "crash trials on fly-256" in merged.stdout
    whole, joined = trials(tmp_path / "whole"), trials(tmp_path / "merged")
    keys = ("id", "seed", "schedule", "scenario", "verdict", "faults", "preset", "journal_mode", "synchronous")
    assert [{k: t[k] for k in keys} for t in joined] == [{k: t[k] for k in keys} for t in whole]
    assert all(t["timeline"] for t in joined)  # each trial's timeline came along
    report = json.loads((tmp_path / "merged" / "report.json").read_text())["run"]
    assert report["planned"] == 4 and len(report["merged_from"]) == 2 and report["seed"] == 23
    for name in ("report.md", "junit.xml", "report.html"):
        assert (tmp_path / "merged" / name).is_file()
    assert "4 pass" in (tmp_path / "merged" / "report.md").read_text()
