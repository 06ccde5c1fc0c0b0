"""Which code each store was: git commit, dirty flag and diff hash, a ref's subject, the imported files and their hash, in every report."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess

import pytest
from rich.console import Console

from repro.oracle.verdicts import Verdict
from repro.report.html import render_html
from repro.report.markdown import render_markdown
from repro.report.outcome import report_json
from repro.report.provenance import StoreProvenance
from repro.report.records import RunResult
from repro.report.terminal import print_table
from repro.scenario import StoreSpec
from repro.source.provenance import bundled_notice, files_hash, git_state, store_provenance
from test_report import rec, run_of
from test_store_source import _check
from upstream_like import git_releases, write_module_store


def _git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=lab@example.org", "-c", "user.name=lab", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_the_import_check_lists_the_files_the_store_imported(tmp_path: pathlib.Path) -> None:
    store = write_module_store(tmp_path / "s")
    (store / "unused.py").write_text("raise SystemExit('never imported')\n")
    found = _check(store)
    imported = found["imported"]
    assert found["ok"] and isinstance(imported, list) and "hermes_state.py" in imported
    assert "unused.py" not in imported and imported == sorted(imported)


def test_the_files_hash_covers_exactly_the_listed_files(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "b.py").write_text("B = 1\n")
    first = files_hash(tmp_path, ["a.py", "b.py"])
    assert first == files_hash(tmp_path, ["b.py", "a.py"]) and len(first) == 64
    (tmp_path / "c.py").write_text("not imported\n")
    assert files_hash(tmp_path, ["a.py", "b.py"]) == first
    (tmp_path / "b.py").write_text("B = 2\n")
    assert files_hash(tmp_path, ["a.py", "b.py"]) != first
    assert files_hash(tmp_path, []) == ""


def test_a_store_path_records_its_commit_and_whether_its_tree_is_dirty(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "repo"
    (commit,) = git_releases(repo, [("v1", {})])
    assert git_state(str(repo), ["hermes_state.py"]) == (commit, False, "")
    (repo / "hermes_state.py").write_text((repo / "hermes_state.py").read_text() + "# local change\n")
    head, dirty, diff = git_state(str(repo), ["hermes_state.py"])
    assert (head, dirty, len(diff)) == (commit, True, 64)
    assert git_state(str(repo), ["hermes_state.py"])[2] == diff  # the same change, the same hash
    (repo / "hermes_state.py").write_text((repo / "hermes_state.py").read_text() + "# another\n")
    assert git_state(str(repo), ["hermes_state.py"])[2] != diff
    _git(repo, "checkout", "--", "hermes_state.py")
    (repo / "extra.py").write_text("X = 1\n")  # untracked: dirty only if the store imported it
    assert git_state(str(repo), ["hermes_state.py"])[1] is False
    assert git_state(str(repo), ["hermes_state.py", "extra.py"])[1] is True
    assert git_state(str(tmp_path), []) == ("", None, "")  # not in a repository


def test_a_store_paths_provenance_line(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "repo"
    (commit,) = git_releases(repo, [("v1", {})])
    (repo / "hermes_state.py").write_text((repo / "hermes_state.py").read_text() + "# local change\n")
    store = StoreSpec("own", store_path=str(repo))
    found = store_provenance(store, ["hermes_state.py", "hermes_constants.py"])
    assert (found.kind, found.commit, found.dirty, found.imported) == \
        ("path", commit, True, ("hermes_state.py", "hermes_constants.py"))
    assert found.content_sha256 == files_hash(repo, ["hermes_state.py", "hermes_constants.py"])
    assert found.line == (f"{repo}: git {commit[:7]} (dirty, diff {found.diff_sha256[:12]}), 2 files imported, "
                          f"sha256 {found.content_sha256[:16]}")
    plain = store_provenance(StoreSpec("own", store_path=str(write_module_store(tmp_path / "plain"))), [])
    assert plain.line.startswith(f"{tmp_path / 'plain'}: not in a git repository")


def test_a_ref_records_its_commit_subject_and_date(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "repo"
    old, new = git_releases(repo, [("v1", {}), ("v2", {"release": "2026.7"})])
    store = StoreSpec("own", store_ref=f"{repo}@v1", store_commit=old, store_path=str(repo))
    found = store_provenance(store, ["hermes_state.py"])
    assert (found.kind, found.commit, found.subject) == ("ref", old, "release v1")
    assert found.date[:4].isdigit() and "T" in found.date
    assert found.line.startswith(f'{repo}@v1 ({old[:7]}): git {old[:7]} "release v1" {found.date[:10]}')


def test_the_bundled_store_says_it_is_the_labs() -> None:
    found = store_provenance(StoreSpec())
    assert found.kind == "bundled" and len(found.content_sha256) == 64
    assert found.line.startswith("bundled store ns506 (the lab's own hermes_state")


def test_provenance_travels_in_report_json_and_shows_in_every_report(tmp_path: pathlib.Path) -> None:
    found = StoreProvenance(source="/src/app", kind="path", path="/src/app", commit="1a2b3c4d" * 5, dirty=True,
                            diff_sha256="9f8e" * 16, imported=("hermes_state.py", "agent/x.py"),
                            content_sha256="abcd" * 16)
    run = run_of(rec(1, Verdict.PASS, store="/src/app"))
    run = RunResult(dataclasses.replace(run.meta, stores=(found,)), run.trials)
    back = RunResult.from_json(report_json(run))
    assert back.meta.stores == (found,)
    line = "/src/app: git 1a2b3c4 (dirty, diff 9f8e9f8e9f8e), 2 files imported, sha256 abcdabcdabcdabcd"
    assert found.line == line
    assert f"- store: {line}" in render_markdown(run)
    assert line in render_html(run)
    console = Console(record=True, width=200)
    print_table(run.trials, console, stores=run.meta.stores)
    assert f"store: {line}" in console.export_text()


@pytest.mark.parametrize(("files", "shown"), [(["hermes_state.py"], "./hermes_state.py"),
                                              (["hermes_state/__init__.py"], "./hermes_state/")])
def test_a_bare_run_beside_a_store_says_it_tests_the_bundled_one(tmp_path: pathlib.Path, files: list[str],
                                                                   shown: str) -> None:
    assert bundled_notice(str(tmp_path), "ns506") == ""
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert bundled_notice(str(tmp_path), "ns506") == \
        f"testing the lab's bundled store ns506 -- not {shown}; use --store-path . to test yours"


def test_the_notice_is_the_first_thing_a_bare_run_prints(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from repro.cli import main

    (tmp_path / "hermes_state.py").write_text("")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--trials", "0", "--out", str(tmp_path / "out")]) == 2  # bad input, after the notice
    err = capsys.readouterr().err
    assert err.splitlines()[0] == ("repro: note: testing the lab's bundled store ns506 -- not ./hermes_state.py; "
                                   "use --store-path . to test yours")
    assert main(["run", "--trials", "0", "--store-path", ".", "--out", str(tmp_path / "out2")]) == 2
    assert "bundled" not in capsys.readouterr().err


def test_the_lab_s_own_checkout_is_not_told_it_tests_another_store(tmp_path: pathlib.Path) -> None:
    """In the lab's checkout ./hermes_state/ is the bundled store: no notice. A copy of it is the same store;
    a copy with one byte changed is another."""
    from repro.machine.context import find_sources

    bundled = find_sources().store_dir
    assert bundled_notice(str(bundled.parent), "ns506") == ""
    shutil.copytree(bundled, tmp_path / "hermes_state", ignore=shutil.ignore_patterns("__pycache__"))
    assert bundled_notice(str(tmp_path), "ns506") == ""
    init = tmp_path / "hermes_state" / "__init__.py"
    init.write_text(init.read_text() + "\n# changed\n")
    assert "-- not ./hermes_state/" in bundled_notice(str(tmp_path), "ns506")


def test_a_replay_of_other_code_is_refused_and_the_same_code_is_not() -> None:
    from repro.source.provenance import replay_refusal

    then = (StoreProvenance(source="/src/app", kind="path", content_sha256="a" * 64),)
    same = StoreProvenance(source="/src/app", kind="path", content_sha256="a" * 64)
    other = StoreProvenance(source="/src/app", kind="path", content_sha256="b" * 64)
    assert replay_refusal(then, same) == ""
    assert replay_refusal(then, other).startswith("not a replay: the store /src/app is not the code that ran "
                                                  "(the files it imports hashed sha256 aaaaaaaaaaaaaaaa then, "
                                                  "bbbbbbbbbbbbbbbb now)")
    assert replay_refusal((), other) == ""  # a report of a lab that recorded no provenance: nothing to hold it to


def test_the_run_records_its_image_and_starting_databases(tmp_path: pathlib.Path) -> None:
    from repro.report.records import RunMeta
    from repro.source.provenance import start_hashes

    start = tmp_path / "db-0123"
    start.mkdir()
    (start / "state.db").write_bytes(b"SQLite format 3\0")
    hashes = start_hashes([None, str(start), str(start)])
    assert list(hashes) == ["db-0123"] and len(hashes["db-0123"]) == 64
    meta = RunMeta(run_id="r", seed=1, started_at="now", command="repro run", image="hermes-lab:latest",
                   image_id="sha256:" + "c" * 64, starts=hashes)
    back = RunMeta.from_dict(meta.to_dict())
    assert (back.image, back.image_id, dict(back.starts)) == (meta.image, meta.image_id, hashes)
