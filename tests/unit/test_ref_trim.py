"""A ref's tree in the cache: large non-Python files in directories without Python code are left out, and the
store still finds every module it imports -- at import or later, inside a function -- and the data beside them."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from repro.source.refs import StoreRef, checkout
from repro.source.trim import LARGE_BYTES, TreeFile, trim
from upstream_like import git_releases

REPO = pathlib.Path(__file__).resolve().parents[2]
BIG = LARGE_BYTES


def test_only_large_non_python_files_outside_code_directories_are_left_out() -> None:
    found = trim([
        TreeFile("hermes_state.py", 300_000), TreeFile("gateway/run.py", 1_100_000),  # code: kept at any size
        TreeFile("agent/__init__.py", 0), TreeFile("agent/models.json", 2 * BIG),  # beside code: a package's data
        TreeFile("locales/en.yaml", BIG - 1),  # small: kept anywhere
        TreeFile("website/static/logo.png", BIG), TreeFile("infographic/a/infographic.png", 3 * BIG),
        TreeFile("uv.lock", 2 * BIG),  # the root holds hermes_state.py: a code directory
    ])
    assert found.left_out == ("infographic/a/infographic.png", "website/static/logo.png")  # largest first
    assert (found.kept_files, found.left_out_bytes) == (6, 4 * BIG)
    assert found.kept_bytes == 300_000 + 1_100_000 + 2 * BIG + BIG - 1 + 2 * BIG
    assert "left out 2 files" in found.summary() and "e.g. infographic/a/infographic.png" in found.summary()
    assert "left out" not in trim([TreeFile("hermes_state.py", 10)]).summary()


def _git(repo: pathlib.Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=lab@example.org", "-c", "user.name=lab", *args], cwd=repo, check=True,
                   capture_output=True)


def test_a_trimmed_ref_still_imports_its_siblings_and_keeps_their_data(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "project"
    git_releases(repo, [("v1", {})])  # hermes_state.py importing hermes_constants.py and agent/memory_manager.py
    # Upstream's shapes: a module imported only inside a function, a package's data file read beside its code,
    # data read by path from a directory without Python, and a website's and an app's large assets.
    (repo / "toolsets.py").write_text("CORE = ('memory',)\n" + "# padding\n" * (BIG // 10))
    (repo / "agent" / "models.json").write_text('{"m": "' + "x" * (2 * BIG) + '"}')
    (repo / "locales").mkdir()
    (repo / "locales" / "en.yaml").write_text("hello: Hello\n")
    for asset in ("website/static/img/logo.png", "apps/desktop/public/bg.jpg"):
        (repo / asset).parent.mkdir(parents=True)
        (repo / asset).write_bytes(os.urandom(BIG + 1))
    with (repo / "hermes_state.py").open("a") as store:
        store.write("\n\ndef core_tools():\n    from toolsets import CORE  # a lazy import: not in the import check's list\n"
                    "    import json, pathlib\n    here = pathlib.Path(__file__).parent\n"
                    "    return CORE, len(json.loads((here / 'agent' / 'models.json').read_text())['m']),"
                    " (here / 'locales' / 'en.yaml').read_text()\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v2: lazy import, data, assets")
    _git(repo, "tag", "v2")

    commit, tree = checkout(StoreRef.parse(f"{repo}@v2"), tmp_path / "cache")
    assert not (tree / "website" / "static" / "img" / "logo.png").exists()
    assert not (tree / "apps" / "desktop" / "public" / "bg.jpg").exists()
    kept = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert kept == ["agent/__init__.py", "agent/memory_manager.py", "agent/models.json", "hermes_constants.py",
                    "hermes_state.py", "locales/en.yaml", "toolsets.py"]
    # The store, imported from the trimmed tree in a process of its own (the lab's bundled store also on the path,
    # as in the image), finds its siblings at import and its lazy import and data when called.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import hermes_state as s; "
            "assert s.__file__.startswith(sys.argv[1]); print(s.core_tools())")
    proc = subprocess.run([sys.executable, "-c", code, str(tree)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"(('memory',), {2 * BIG}, 'hello: Hello\\n')"


def test_a_repository_after_a_comma_is_found_from_home(tmp_path: pathlib.Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOME", str(tmp_path))  # the shell expands ~ before the first ref of --store-refs only
    (commit,) = git_releases(tmp_path / "src" / "hermes-agent", [("v1", {})])
    ref = StoreRef.parse("~/src/hermes-agent@v1")
    assert ref.path == str(tmp_path / "src" / "hermes-agent") and not ref.is_url
    assert checkout(ref, tmp_path / "cache")[0] == commit
