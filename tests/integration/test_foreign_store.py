"""Stores as they ship: a module beside its siblings, releases by git ref, third-party requirements installed
offline, and every store that cannot be imported refused in one line before any trial (nothing left behind)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import uuid

import pytest

from upstream_like import build_wheel, git_releases, offline_requirements, write_module_store

pytestmark = pytest.mark.docker



def repro(*argv: str, cache: pathlib.Path, run_id: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, with a cache of its own (refs, wheels, starting databases) and a known run id."""
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HERMES_LAB_CACHE": str(cache),
           "HERMES_LAB_RUN_ID": run_id or uuid.uuid4().hex[:10]}
    return subprocess.run([str(pathlib.Path(sys.executable).with_name("repro")), *argv], env=env, capture_output=True, text=True,
                          timeout=1200)


def trials(out: pathlib.Path) -> list[dict[str, object]]:
    return list(json.loads((out / "report.json").read_text())["trials"])


def leftovers(run_id: str) -> tuple[list[str], list[str]]:
    from repro.machine import engine

    return engine.leftovers(engine.client(), run_id)


def test_a_module_store_with_a_sibling_module_and_package_passes_sigkill_trials(tmp_path: pathlib.Path,
                                                                               lab_image: str) -> None:
    store = write_module_store(tmp_path / "project")
    out = tmp_path / "run"
    proc = repro("run", "--fault", "sigkill", "--trials", "2", "--seed", "4", "--store-path", str(store),
                 "--out", str(out), cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    found = trials(out)
    assert [t["verdict"] for t in found] == ["pass", "pass"]
    assert all(t["store"] == str(store) and t["preset"] == "own" for t in found)
    assert all((t["journal_mode"], t["synchronous"]) == ("wal", "2") for t in found)  # its own settings, read back
    # the honest label everywhere: the full path, "own settings", the pragmas in force by name
    label = f"{store} own settings"
    # ... and the SQLite in force (the image's own here)
    assert re.search(rf"{re.escape(label)} \(wal/full [0-9.]+ \(system\)\)", (out / "report.md").read_text())
    assert f"store={label} in_force=wal/full " in (out / "junit.xml").read_text()


def test_a_dirty_working_tree_is_recorded_with_its_commit_and_the_files_imported(tmp_path: pathlib.Path,
                                                                                 lab_image: str) -> None:
    repo = tmp_path / "project"
    (commit,) = git_releases(repo, [("v1", {})])
    (repo / "hermes_constants.py").write_text((repo / "hermes_constants.py").read_text() + "# local fix\n")
    (repo / "notes.py").write_text("never imported\n")
    out = tmp_path / "run"
    proc = repro("run", "--fault", "sigkill", "--trials", "1", "--seed", "4", "--store-path", str(repo),
                 "--out", str(out), cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (store,) = json.loads((out / "report.json").read_text())["run"]["stores"]
    files = ["agent/__init__.py", "agent/memory_manager.py", "hermes_constants.py", "hermes_state.py"]
    assert (store["kind"], store["commit"], store["dirty"], store["imported"]) == ("path", commit, True, files)
    assert len(store["diff_sha256"]) == 64 and len(store["content_sha256"]) == 64
    line = (f"{repo}: git {commit[:7]} (dirty, diff {store['diff_sha256'][:12]}), 4 files imported, "
            f"sha256 {store['content_sha256'][:16]}")
    assert f"store: {line}" in proc.stdout.splitlines()
    assert line in (out / "report.md").read_text()
    run = json.loads((out / "report.json").read_text())["run"]
    assert run["lab_version"] == "0.1.0" and run["image_id"].startswith("sha256:") and run["image"]
    # The store changed after the run: a rerun of other code is refused as a replay, and says why (issue 21 item 1).
    (repo / "hermes_constants.py").write_text((repo / "hermes_constants.py").read_text() + "# a later change\n")
    first = str(trials(out)[0]["id"])
    replayed = repro("replay", str(out), first, cache=tmp_path / "cache")
    assert replayed.returncode == 2, replayed.stderr + replayed.stdout
    assert f"not a replay: the store {repo} is not the code that ran" in replayed.stderr
    assert not (out / "replays").exists()  # no trial ran


def test_two_releases_by_ref_are_named_by_ref_and_commit(tmp_path: pathlib.Path, lab_image: str) -> None:
    repo = tmp_path / "hermes-agent"
    old, new = git_releases(repo, [("v2026.6", {"release": "2026.6"}), ("v2026.11", {"release": "2026.11"})])
    out = tmp_path / "run"
    run_id = uuid.uuid4().hex[:10]
    proc = repro("matrix", "--faults", "sigkill", "--trials", "1", "--seed", "5",
                 "--store-refs", f"{repo}@v2026.6,{repo}@v2026.11", "--out", str(out), cache=tmp_path / "cache",
                 run_id=run_id)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    names = [f"{repo}@v2026.6 ({old[:7]})", f"{repo}@v2026.11 ({new[:7]})"]
    assert [t["store"] for t in trials(out)] == names * 2  # sigkill, then each store's no-fault control
    assert [t["faults"] for t in trials(out)] == [["sigkill"]] * 2 + [["clean-stop"]] * 2
    assert [t["verdict"] for t in trials(out)] == ["pass"] * 4
    report = (out / "report.md").read_text()
    assert all(f"{n} own settings (wal/full" in report for n in names)  # the comparison's sides too
    # Identical pragmas read back on an identical SQLite: a platform-only fix would not have run (issue 21 item 4).
    assert "the two releases ran the same durability settings on these machines (wal/full 3.40.1 (system))" in report
    assert (tmp_path / "cache" / "stores" / old / "hermes_state.py").is_file()
    stores = json.loads((out / "report.json").read_text())["run"]["stores"]
    assert [(s["kind"], s["commit"], s["subject"]) for s in stores] == \
        [("ref", old, "release v2026.6"), ("ref", new, "release v2026.11")]
    assert all("hermes_state.py" in s["imported"] and len(s["content_sha256"]) == 64 for s in stores)
    first = str(trials(out)[0]["id"])
    replayed = repro("replay", str(out), first, cache=tmp_path / "cache")  # from the stored ref and commit
    assert replayed.returncode == 0, replayed.stderr + replayed.stdout
    assert f"{repo}@v2026.6 ({old[:7]})" in (next((out / "replays").iterdir()) / "report.md").read_text()
    # The ref caches that run made go by run (issue 21 item 6): both trees, listed first, then removed.
    listed = repro("clean", "--caches", "--run", run_id, "--dry-run", cache=tmp_path / "cache")
    assert listed.returncode == 0 and f"stores/{old}" in listed.stdout and f"stores/{new}" in listed.stdout, \
        listed.stdout + listed.stderr
    removed = repro("clean", "--caches", "--run", run_id, cache=tmp_path / "cache")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not (tmp_path / "cache" / "stores" / old).exists() and not (tmp_path / "cache" / "stores" / new).exists()


def test_a_third_party_package_is_installed_offline_into_a_derived_image(tmp_path: pathlib.Path,
                                                                         lab_image: str) -> None:
    store = write_module_store(tmp_path / "project", needs="tinydep")
    proc = repro("run", "--fault", "sigkill", "--trials", "1", "--store-path", str(store), "--out",
                 str(tmp_path / "without"), cache=tmp_path / "cache")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no module named 'tinydep'" in lines[0] and "--store-requirements" in lines[0]
    from repro.machine import engine

    base_id = engine.client().images.get(lab_image).id  # derived images an earlier run of this test left: gone
    for old in engine.client().images.list(filters={"label": f"org.hermes-lab.base-image={base_id}"}):
        engine.client().images.remove(old.id, force=True)
    reqs = offline_requirements(tmp_path / "requirements.txt", tmp_path / "wheels", "tinydep")
    build_wheel(tmp_path / "wheels")
    out = tmp_path / "with"
    run_id = uuid.uuid4().hex[:10]
    proc = repro("run", "--fault", "sigkill", "--trials", "1", "--store-path", str(store), "--store-requirements",
                 str(reqs), "--out", str(out), cache=tmp_path / "cache", run_id=run_id)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert trials(out)[0]["verdict"] == "pass"
    image = json.loads((out / "report.json").read_text())["trials"][0]["scenario"]["store"]["image"]
    assert image.startswith("hermes-lab-store:")
    (store_record,) = json.loads((out / "report.json").read_text())["run"]["stores"]
    assert (store_record["image"], store_record["requirements"]) == (image, str(reqs))  # provenance: which image
    cli = engine.client()
    labels = cli.images.get(image).labels
    assert labels["org.hermes-lab"] == "store-image"
    assert labels.get("org.hermes-lab.made-by-run") == run_id  # built by this run (earlier ones removed above)
    listed = repro("clean", "--images", "--run", run_id, "--dry-run", cache=tmp_path / "cache")
    assert listed.returncode == 0 and image in listed.stdout and "would remove 1 image" in listed.stdout, listed.stdout
    removed = repro("clean", "--images", "--run", run_id, cache=tmp_path / "cache")
    assert removed.returncode == 0, removed.stderr + removed.stdout
    assert image not in [t for i in cli.images.list() for t in i.tags]  # the run's derived image is gone


def _no_session_db(store: pathlib.Path) -> str:
    text = (store / "hermes_state.py").read_text().replace("class SessionDB:", "class SessionStore:")
    (store / "hermes_state.py").write_text(text)
    return f"{store}/hermes_state.py defines no SessionDB"


def _syntax_error(store: pathlib.Path) -> str:
    (store / "hermes_constants.py").write_text("def get_hermes_home(:\n")
    return f"syntax error at {store}/hermes_constants.py:1"


def _exits_at_import(store: pathlib.Path) -> str:
    with open(store / "hermes_state.py", "a") as module:
        module.write("\nimport os\nos._exit(0)\n")  # no handler runs, and exit 0 looks like success
    return "the store exited while being imported"


@pytest.mark.parametrize("breakage", [_no_session_db, _syntax_error, _exits_at_import])
def test_a_store_that_cannot_be_imported_is_one_line_and_no_trial(tmp_path: pathlib.Path, lab_image: str,
                                                                  breakage) -> None:  # type: ignore[no-untyped-def]
    store = write_module_store(tmp_path / "project")
    words = breakage(store)
    run_id = uuid.uuid4().hex[:10]
    out = tmp_path / "run"
    proc = repro("run", "--fault", "sigkill", "--trials", "2", "--store-path", str(store), "--out", str(out),
                 cache=tmp_path / "cache", run_id=run_id)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("repro: error: store ") and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (out / "report.json").exists()
    assert leftovers(run_id) == ([], [])  # the throwaway machine and its disk are gone
