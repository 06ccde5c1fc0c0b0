"""Foreign stores without Docker: layouts, git refs (never touching the user's tree), requirements and wheels,
the in-machine import check, the settings rule and the labels that keep distinct stores apart."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from repro.protocol import Tag, parse_line
from repro.errors import ScenarioError
from repro.scenario import StoreSpec
from repro.source.check import StoreCheck, problem_line
from repro.source.layout import StoreLayout, content_hash, store_layout
from repro.source.prepare import settings_rule
from repro.source.refs import StoreRef, checkout
from repro.source.wheels import platforms, requirements_text, wheelhouse
from upstream_like import build_wheel, git_releases, offline_requirements, write_module_store

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_a_store_is_a_package_or_a_module(tmp_path: pathlib.Path) -> None:
    module = write_module_store(tmp_path / "upstream")
    assert store_layout(module) is StoreLayout.MODULE
    assert store_layout(REPO) is StoreLayout.PACKAGE
    with pytest.raises(ScenarioError, match="no hermes_state package and no hermes_state.py"):
        store_layout(tmp_path)
    (module / "hermes_state").mkdir()
    with pytest.raises(ScenarioError, match="both"):
        store_layout(module)


def test_content_hash_sees_every_file_but_caches(tmp_path: pathlib.Path) -> None:
    store = write_module_store(tmp_path / "s")
    before = content_hash(store)
    (store / "__pycache__").mkdir()
    (store / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert content_hash(store) == before
    (store / "agent" / "memory_manager.py").write_text("def sanitize_context(t):\n    return t.strip()\n")
    assert content_hash(store) != before


def _git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_a_ref_is_checked_out_by_commit_without_touching_the_users_tree(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "project"
    old, new = git_releases(repo, [("v1", {"release": "2026.6"}), ("v2", {"release": "2026.11"})])
    (repo / "hermes_state.py").write_text("uncommitted work\n")  # the user's working tree, mid-edit
    status, head = _git(repo, "status", "--porcelain"), _git(repo, "rev-parse", "HEAD")
    cache = tmp_path / "cache"
    commit, tree = checkout(StoreRef.parse(f"{repo}@v1"), cache)
    assert commit == old and tree == cache / "stores" / old
    assert "RELEASE = '2026.6'" in (tree / "hermes_state.py").read_text()
    assert (tree / "agent" / "memory_manager.py").is_file() and not (tree / ".git").exists()
    assert oct(tree.stat().st_mode & 0o777) == "0o755" and oct((tree / "hermes_state.py").stat().st_mode & 0o777) == "0o644"
    assert (_git(repo, "status", "--porcelain"), _git(repo, "rev-parse", "HEAD")) == (status, head)
    assert (repo / "hermes_state.py").read_text() == "uncommitted work\n"
    assert _git(repo, "worktree", "list").count("\n") == 1
    mark = (tree.stat().st_ino, (tree / "hermes_state.py").stat().st_mtime_ns)
    again, same = checkout(StoreRef.parse(f"{repo}@{old[:10]}"), cache)  # another name, the same commit
    # Cached: not extracted again (the same directory and files); the use is recorded in its mtime (repro/caches.py).
    assert (again, same) == (old, tree) and (tree.stat().st_ino, (tree / "hermes_state.py").stat().st_mtime_ns) == mark
    assert checkout(StoreRef.parse(f"{repo}@v2"), cache)[0] == new


@pytest.mark.parametrize("text", ["no-at-sign", "@v1", "repo@", ""])
def test_a_ref_needs_repo_and_rev(text: str) -> None:
    with pytest.raises(ScenarioError, match="REPO@REV"):
        StoreRef.parse(text)


def test_an_unknown_rev_or_repo_is_bad_input(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "project"
    git_releases(repo, [("v1", {})])
    with pytest.raises(ScenarioError, match="'v9' is not a commit"):
        checkout(StoreRef.parse(f"{repo}@v9"), tmp_path / "cache")
    with pytest.raises(ScenarioError, match="neither a directory nor a URL"):
        checkout(StoreRef.parse(f"{tmp_path}/nowhere@v1"), tmp_path / "cache")
    assert StoreRef.parse("git@github.com:org/repo.git@v1.2").repo == "git@github.com:org/repo.git"


def test_requirements_from_a_file_or_the_stores_project(tmp_path: pathlib.Path) -> None:
    store = write_module_store(tmp_path / "s")
    with pytest.raises(ScenarioError, match="no requirements.txt and no pyproject.toml"):
        requirements_text("auto", str(store))
    (store / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["tinydep>=1", "other"]\n')
    assert requirements_text("auto", str(store)) == ("tinydep>=1\nother\n", store)
    (store / "requirements.txt").write_text("tinydep\n")
    assert requirements_text("auto", str(store)) == ("tinydep\n", store)
    own = tmp_path / "reqs" / "r.txt"
    own.parent.mkdir()
    own.write_text("x\n")
    assert requirements_text(str(own), str(store)) == ("x\n", own.parent)
    with pytest.raises(ScenarioError, match="--store-requirements"):
        requirements_text(str(tmp_path / "missing.txt"), str(store))


def test_platforms_cover_the_images_glibc() -> None:
    tags = platforms("x86_64")
    assert "manylinux2014_x86_64" in tags and "manylinux_2_36_x86_64" in tags and "manylinux_2_37_x86_64" not in tags
    assert platforms("arm64")[0] == "manylinux2014_aarch64"


def test_the_wheelhouse_is_downloaded_once_offline(tmp_path: pathlib.Path) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels)
    reqs = offline_requirements(tmp_path / "requirements.txt", wheels, "tinydep")
    house = wheelhouse(reqs.read_text(), tmp_path, tmp_path / "cache", "x86_64")
    assert [p.name for p in house.iterdir()] == ["tinydep-1.0-py3-none-any.whl"]
    mark = (house.stat().st_ino, (house / "tinydep-1.0-py3-none-any.whl").stat().st_mtime_ns)
    assert wheelhouse(reqs.read_text(), tmp_path, tmp_path / "cache", "x86_64") == house
    assert (house.stat().st_ino, (house / "tinydep-1.0-py3-none-any.whl").stat().st_mtime_ns) == mark
    with pytest.raises(ScenarioError, match="cannot download wheels.*nosuchpkg"):
        wheelhouse(f"--no-index\n--find-links {wheels}\nnosuchpkg\n", tmp_path, tmp_path / "cache", "x86_64")


def _check(store: pathlib.Path) -> dict[str, object]:
    """The in-machine import check as a machine runs it (a process of its own; the lab's bundled store is on
    the path too, as in the image)."""
    proc = subprocess.run([sys.executable, "-m", "repro.verify.importcheck", str(store), "--scratch", str(store.parent)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    found = [p for p in map(parse_line, proc.stdout.splitlines()) if p is not None and p.tag is Tag.STORE_CHECK]
    return dict(found[-1].payload)  # the last stands, as on the host (repro/source/check.py)


def test_the_import_check_opens_a_module_store_from_its_own_directory(tmp_path: pathlib.Path) -> None:
    found = _check(write_module_store(tmp_path / "s"))
    assert found == {"ok": True, "file": "hermes_state.py", "reads_lab_settings": False, "journal_mode": "wal",
                     "synchronous": 2, "imported": ["agent/__init__.py", "agent/memory_manager.py",
                                                    "hermes_constants.py", "hermes_state.py"]}
    lab = _check(REPO)  # the lab's own package reads HERMES_STATE_*
    assert lab["ok"] and lab["file"] == "hermes_state/__init__.py" and lab["reads_lab_settings"] is True


@pytest.mark.parametrize(("change", "problem", "detail"), [
    (lambda s: (s / "agent" / "memory_manager.py").write_text("def (:\n"), "syntax-error",
     "agent/memory_manager.py:1: invalid syntax"),
    (lambda s: (s / "hermes_state.py").write_text("import tinydep\n"), "missing-module",
     "no module named 'tinydep' (at hermes_state.py:1)"),
    (lambda s: (s / "hermes_state.py").write_text("class SessionStore: pass\n"), "no-session-db",
     "hermes_state.py defines no SessionDB"),
    (lambda s: (s / "hermes_state.py").write_text("raise RuntimeError('no config')\n"), "import-error",
     "RuntimeError: no config (at hermes_state.py:1)"),
    (lambda s: (s / "hermes_state.py").write_text("class SessionDB:\n    def __init__(self, p):\n"
                                                  "        raise OSError('read-only')\n"), "open-failed",
     "OSError: read-only (at hermes_state.py:3)"),
])
def test_the_import_check_names_the_problem(tmp_path: pathlib.Path, change, problem: str, detail: str) -> None:  # type: ignore[no-untyped-def]
    store = write_module_store(tmp_path / "s")
    change(store)
    found = _check(store)
    assert found["ok"] is False and found["problem"] == problem and found["detail"] == detail


@pytest.mark.parametrize(("code", "stage", "detail"), [
    ("import os\nos._exit(3)\n", "import", ""),  # no handler runs: the line printed before the import stands
    ("import sys\nsys.exit(4)\n", "import", "sys.exit(4) (at hermes_state.py:2)"),
    ("import os\nclass SessionDB:\n    def __init__(self, p):\n        os._exit(0)\n", "open", ""),
])
def test_a_store_that_ends_the_process_is_named_as_such(tmp_path: pathlib.Path, code: str, stage: str,
                                                        detail: str) -> None:
    store = write_module_store(tmp_path / "s")
    (store / "hermes_state.py").write_text(code)
    found = _check(store)
    assert found == {"ok": False, "problem": "exited", "stage": stage, "detail": detail}
    line = problem_line(StoreSpec(store_path=str(store)), {**found, "exit": 3})
    doing = "being imported" if stage == "import" else "opening a new database"
    assert f"the store exited while {doing}: " in line
    assert ("exit 3, without a word" in line) == (not detail)


def test_the_bundled_store_is_never_a_fallback(tmp_path: pathlib.Path) -> None:
    """With the lab's own store importable (as it is in the image), a directory that does not yield its own
    hermes_state -- one the machine's user cannot list looks the same to Python -- is refused, not replaced."""
    empty = tmp_path / "not-a-store"
    empty.mkdir()
    found = _check(empty)
    assert found["ok"] is False and found["problem"] == "import-error"
    assert found["detail"] == f"hermes_state came from {REPO}/hermes_state/__init__.py, not from the store"


def test_problem_lines_name_the_file_on_the_host(tmp_path: pathlib.Path) -> None:
    here = write_module_store(tmp_path / "store")
    store = StoreSpec("own", store_path=str(here))
    assert f"{here}/agent/m.py cannot be read by the machine's user (uid 1000)" in problem_line(
        store, {"problem": "unreadable", "detail": "agent/m.py"})
    assert problem_line(store, {"problem": "unreadable", "detail": "."}).startswith(f"store {here}: {here} cannot")
    assert f"syntax error at {here}/a.py:3: invalid syntax" in problem_line(
        store, {"problem": "syntax-error", "detail": "a.py:3: invalid syntax"})
    line = problem_line(store, {"problem": "missing-module", "detail": "no module named 'tinydep'", "module": "tinydep"})
    assert "'tinydep'" in line and "--store-requirements" in line


def test_settings_are_refused_for_a_store_that_would_ignore_them() -> None:
    own = StoreCheck("hermes_state.py", reads_lab_settings=False, journal_mode="wal", synchronous="2")
    settings_rule(StoreSpec("own", store_ref="/r@v1"), own)
    with pytest.raises(ScenarioError, match="--preset legacy would be ignored"):
        settings_rule(StoreSpec("legacy", store_ref="/r@v1"), own)
    with pytest.raises(ScenarioError, match="--checkpoint-mode truncate"):
        settings_rule(StoreSpec("own", checkpoint_mode="truncate", store_ref="/r@v1"), own)
    labs = StoreCheck("hermes_state/__init__.py", reads_lab_settings=True, journal_mode="wal", synchronous="1")
    settings_rule(StoreSpec("legacy", checkpoint_mode="truncate", store_ref="/r@v1"), labs)
    assert own.in_force == "wal/full"


def test_distinct_stores_never_share_a_label(tmp_path: pathlib.Path) -> None:
    a = write_module_store(tmp_path / "a" / "release")
    b = write_module_store(tmp_path / "b" / "release")
    specs = [StoreSpec("own", store_path=str(a)), StoreSpec("own", store_path=str(b)),
             StoreSpec("own", store_ref="/r@v1", store_commit="1" * 40),
             StoreSpec("own", store_ref="/other/r@v1", store_commit="1" * 40)]
    assert len({s.label for s in specs}) == len({s.source for s in specs}) == 4
    assert specs[0].source == str(a) and specs[2].source == "/r@v1 (1111111)"
    assert StoreSpec("own", store_path=str(a)).environment() == {}  # own settings: nothing passed
