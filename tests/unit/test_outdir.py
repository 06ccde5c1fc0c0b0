"""A run's report directory is its own: unique by default, an existing one refused unless --force, --force deletes only lab files."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import subprocess
import sys

import pytest

from repro.errors import ScenarioError
from repro.machine import owner
from repro.report import outdir

NOW = dt.datetime(2026, 11, 30, 1, 2, 3)


def test_the_default_names_the_run_and_two_same_second_runs_never_share(tmp_path: pathlib.Path) -> None:
    first = outdir.plan(None, "abc", base=tmp_path / "runs", now=NOW)
    assert first.path == tmp_path / "runs" / "20261130-010203-abc" and not first.explicit
    # the same second and the same run id (HERMES_LAB_RUN_ID shared): the second gets a suffix
    a = outdir.claim(first, "abc")
    b = outdir.claim(outdir.plan(None, "abc", base=tmp_path / "runs", now=NOW), "abc")
    assert a != b and a.is_dir() and b.is_dir() and b.name == "20261130-010203-abc-2"
    assert (a / outdir.MARKER).read_text().split()[0] == "abc"


def _old_run(path: pathlib.Path) -> None:
    (path / "trials" / "t1").mkdir(parents=True)
    (path / "trials" / "t1" / "state.db").write_bytes(b"x")
    (path / "replays").mkdir()
    (path / "report.json").write_text(json.dumps({"format": 1, "run": {}, "trials": []}))
    (path / "report.md").write_text("old")
    (path / "junit.xml").write_text("<x/>")
    (path / "notes.txt").write_text("mine")


def test_a_non_empty_out_is_refused_without_force(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    _old_run(out)
    with pytest.raises(ScenarioError, match="not empty.*--force"):
        outdir.plan(str(out), "new")
    assert (out / "report.json").exists()
    assert outdir.plan(str(tmp_path / "fresh"), "new").explicit  # absent: fine
    (tmp_path / "empty").mkdir()
    assert outdir.claim(outdir.plan(str(tmp_path / "empty"), "new"), "new") == tmp_path / "empty"


def test_force_clears_only_the_lab_files_of_the_old_run(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    _old_run(out)
    path = outdir.claim(outdir.plan(str(out), "new", force=True), "new")
    assert path == out
    assert sorted(p.name for p in out.iterdir()) == [outdir.MARKER, "notes.txt"]  # not the user's file
    start = owner.process_start(os.getpid())
    assert start is not None
    assert (out / outdir.MARKER).read_text().split() == ["new", str(os.getpid()), str(start[0])]


def test_force_refuses_a_directory_that_holds_no_lab_report(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"\xff\xd8")
    (out / "report.json").write_text('{"not": "ours"}')
    with pytest.raises(ScenarioError, match="no lab report.*even with --force"):
        outdir.plan(str(out), "new", force=True)
    assert sorted(p.name for p in out.iterdir()) == ["cat.jpg", "report.json"]


def test_a_directory_a_live_run_writes_to_is_never_cleared(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / outdir.MARKER).write_text(f"other {os.getpid()}\n")  # this very process: alive
    with pytest.raises(ScenarioError, match="is writing there now"):
        outdir.claim(outdir.ReportDir(out, True, True), "new")
    start = owner.process_start(os.getpid())
    assert start is not None
    (out / outdir.MARKER).write_text(f"other {os.getpid()} {start[0]}\n")  # alive, and the same process
    with pytest.raises(ScenarioError, match="is writing there now"):
        outdir.claim(outdir.ReportDir(out, True, True), "new")
    # an earlier run's marker whose pid the kernel gave to another process since (here: this one, which
    # started later than the marker says): not that run, so the directory is reusable (the suite met this)
    (out / outdir.MARKER).write_text(f"other {os.getpid()} {start[0] - 1}\n")
    assert outdir.claim(outdir.ReportDir(out, True, True), "new") == out
    (out / outdir.MARKER).unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / outdir.MARKER).write_text(f"other {dead.stdout.strip()}\n")  # an interrupted run: reusable
    assert outdir.claim(outdir.ReportDir(out, True, True), "new") == out


def test_two_runs_claiming_one_out_at_once_cannot_both_take_it(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "r"
    target = outdir.plan(str(out), "a")
    outdir.claim(target, "a")
    with pytest.raises(ScenarioError):
        outdir.claim(outdir.ReportDir(out, True, False), "b")


def test_force_removes_a_link_in_the_place_of_a_lab_file_or_directory_and_never_follows_it(
        tmp_path: pathlib.Path) -> None:
    """A link named trials/ or trace/ (or explore.json) in an old report is removed, not followed: the new
    reports go into the directory, and what the links pointed to is untouched."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    out = tmp_path / "r"
    out.mkdir()
    _old_run(out)
    import shutil

    shutil.rmtree(out / "trials")
    for name in ("trials", "trace"):
        (out / name).symlink_to(victim, target_is_directory=True)
    (out / "explore.json").symlink_to(victim / "keep.txt")
    path = outdir.claim(outdir.plan(str(out), "new", force=True), "new")
    assert sorted(p.name for p in path.iterdir()) == [outdir.MARKER, "notes.txt"]
    (path / "trials").mkdir()  # what the run does next: a directory of its own
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert (victim / "keep.txt").read_text() == "precious"


def test_force_refuses_an_out_that_is_itself_a_link(tmp_path: pathlib.Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    _old_run(real)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(ScenarioError, match="symbolic link"):
        outdir.plan(str(tmp_path / "link"), "new", force=True)
    assert (real / "report.md").read_text() == "old"


def test_a_runs_directory_the_lab_makes_ignores_itself_in_git(tmp_path: pathlib.Path) -> None:
    """As pytest's .pytest_cache: `runs/` made by the lab carries a .gitignore of `*`; one the user made is left alone."""
    repo = tmp_path / "project"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    outdir.claim(outdir.plan(None, "abc", base=repo / "runs", now=NOW), "abc")
    outdir.claim(outdir.plan(str(repo / "nested" / "runs" / "readme"), "abd"), "abd")  # --out runs/readme
    for made in (repo / "runs", repo / "nested" / "runs"):
        assert (made / ".gitignore").read_text().splitlines()[-1] == "*"
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert status == ""  # nothing of the runs shows as untracked
    mine = tmp_path / "mine"
    (mine / "runs").mkdir(parents=True)
    outdir.claim(outdir.plan(None, "abe", base=mine / "runs", now=NOW), "abe")
    assert not (mine / "runs" / ".gitignore").exists()  # the user's own directory: not the lab's to change
