"""`repro clean --caches/--images` selection: only the lab's entries (by the cache layout) and images (by label), never
one a container uses, a build in progress or (--older-than) a recent one; the current lab image only with --all."""

from __future__ import annotations

import os
import pathlib
import time

import pytest

from repro import caches
from repro.caches import EntryKind
from repro.cli import main
from repro.machine.images import LAB_IMAGE, STORE_IMAGE, LabImage, plan_images
from repro.upkeep import parse_age

DAY = 86400.0
COMMIT = "b5295040fbc06d3b7057e36cd72643190b36d021"


def make(path: pathlib.Path, size: int = 100, age: float = 2 * DAY, now: float | None = None) -> pathlib.Path:
    """A directory holding one file of ``size`` bytes, last used ``age`` seconds ago."""
    path.mkdir(parents=True)
    (path / "data").write_bytes(b"x" * size)
    stamp = (now or time.time()) - age
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def cache(tmp_path: pathlib.Path) -> pathlib.Path:
    """A cache root laid out as the lab makes it, with every kind of entry, the lab's lock and probe files, and
    things the lab did not make."""
    root = tmp_path / "cache"
    make(root / "sqlite" / "3.53.2-6b541ea88f64", 1000)
    make(root / "sqlite" / "3.51.2-9011a646c196-assisted", 1000)
    (root / "sqlite" / ".3.53.2-6b541ea88f64.lock").touch()
    make(root / "sqlite" / "sources" / "better-sqlite3-12.11.1", 9000)
    (root / "sqlite" / "sources" / "probes.json").write_text("{}")
    make(root / "initial" / "grown-21c2231206394df631064f44", 300_000)
    make(root / "initial" / "db-ed5f9b3f90f77e21686915a0", 2000)
    make(root / "stores" / COMMIT, 50)
    make(root / "repos" / "0123456789abcdef0123.git", 70)
    make(root / "wheels" / "f632a686fab23886ed938dbe", 10)
    make(root / "initial" / "grown-k2j4x8_q", 5000, age=2 * DAY)  # a grower that died two days ago
    make(root / "sqlite" / ".build-abc12_x9", 10, age=60)            # a compile in progress
    # Not the lab's: a user's notes, a directory of their own, a look-alike outside the layout.
    (root / "notes.txt").write_text("mine")
    make(root / "mine", 10)
    make(root / "initial" / "grown-21c2231206394df631064f44-backup", 10)
    make(root / "sqlite" / "sources" / "my-sqlite", 10)
    return root


def test_scan_finds_every_kind_and_names_what_is_not_the_labs(cache: pathlib.Path) -> None:
    entries, foreign = caches.scan(cache)
    found = {e.path.relative_to(cache).as_posix(): e.kind for e in entries}
    assert found == {
        "sqlite/3.53.2-6b541ea88f64": EntryKind.SQLITE_BUILD,
        "sqlite/3.51.2-9011a646c196-assisted": EntryKind.SQLITE_BUILD,
        "sqlite/.build-abc12_x9": EntryKind.PARTIAL,
        "sqlite/sources/better-sqlite3-12.11.1": EntryKind.SQLITE_SOURCE,
        "initial/grown-21c2231206394df631064f44": EntryKind.START_DB,
        "initial/db-ed5f9b3f90f77e21686915a0": EntryKind.START_DB,
        "initial/grown-k2j4x8_q": EntryKind.PARTIAL,
        f"stores/{COMMIT}": EntryKind.STORE_TREE,
        "repos/0123456789abcdef0123.git": EntryKind.STORE_MIRROR,
        "wheels/f632a686fab23886ed938dbe": EntryKind.WHEELS,
    }
    assert sorted(p.relative_to(cache).as_posix() for p in foreign) == [
        "initial/grown-21c2231206394df631064f44-backup", "mine", "notes.txt", "sqlite/sources/my-sqlite"]
    assert {e.path.name: e.bytes for e in entries}["grown-21c2231206394df631064f44"] == 300_000
    assert caches.sizes(entries)[EntryKind.START_DB] == (2, 302_000)


def test_eviction_keeps_what_a_container_mounts_a_build_in_progress_and_what_is_not_the_labs(
        cache: pathlib.Path) -> None:
    entries, foreign = caches.scan(cache)
    # A trial's machine bind-mounts one SQLite build (the library's directory) and a store tree.
    mounted = [str(cache / "sqlite" / "3.53.2-6b541ea88f64"), str(cache / "stores" / COMMIT / "hermes_state"),
               "/var/lib/docker/volumes/x/_data"]
    plan = caches.plan_caches(entries, now=time.time(), used=caches.in_use(entries, mounted), foreign=foreign)
    kept = {k.entry.path.relative_to(cache).as_posix(): k.reason for k in plan.kept}
    assert kept == {"sqlite/3.53.2-6b541ea88f64": "in use by a container",
                    f"stores/{COMMIT}": "in use by a container",
                    "sqlite/.build-abc12_x9": "a build may be making it"}
    assert caches.remove(plan.remove) == []
    left = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.name != "data")
    assert left == sorted([
        "initial", "initial/grown-21c2231206394df631064f44-backup", "mine", "notes.txt", "repos",
        "sqlite", "sqlite/.3.53.2-6b541ea88f64.lock", "sqlite/.build-abc12_x9", "sqlite/3.53.2-6b541ea88f64",
        "sqlite/sources", "sqlite/sources/my-sqlite", "sqlite/sources/probes.json", "stores", f"stores/{COMMIT}",
        "wheels"])
    assert (cache / "notes.txt").read_text() == "mine"


def test_a_mount_of_the_whole_cache_keeps_every_entry(cache: pathlib.Path) -> None:
    entries, _ = caches.scan(cache)
    assert caches.in_use(entries, [str(cache)]) == {e.path for e in entries}


def test_older_than_keeps_what_a_run_touched_since(cache: pathlib.Path) -> None:
    entries, _ = caches.scan(cache)
    caches.touch(cache / "initial" / "grown-21c2231206394df631064f44")  # a run used it just now
    entries, _ = caches.scan(cache)
    plan = caches.plan_caches(entries, now=time.time(), used=set(), older_than=DAY)
    assert {k.entry.path.name for k in plan.kept if k.reason == "used recently"} == {"grown-21c2231206394df631064f44"}
    assert "db-ed5f9b3f90f77e21686915a0" in {e.path.name for e in plan.remove}
    everything = caches.plan_caches(entries, now=time.time(), used=set())
    assert "grown-21c2231206394df631064f44" in {e.path.name for e in everything.remove}


def test_an_empty_or_missing_cache_has_nothing_to_remove(tmp_path: pathlib.Path) -> None:
    entries, foreign = caches.scan(tmp_path / "nowhere")
    assert (entries, foreign) == ([], [])


def image(name: str, kind: str = STORE_IMAGE, *, tags: tuple[str, ...] | None = None, base: str = "",
          containers: int = 0, created: float = 0.0) -> LabImage:
    return LabImage(id=f"sha256:{name}", tags=(f"{name}:x",) if tags is None else tags, kind=kind, base=base,
                    created=created, bytes=1000, containers=containers)


def test_images_keep_the_tagged_lab_images_and_what_a_container_uses() -> None:
    lab = image("lab", LAB_IMAGE, tags=("hermes-lab:latest",))
    other = image("lab2", LAB_IMAGE, tags=("hermes-lab:ci",))
    old_lab = image("old", LAB_IMAGE, tags=())                  # an older build, untagged
    held = image("held", LAB_IMAGE, tags=())                    # untagged, but a used derived image is on it
    derived = image("store1", base=lab.id)
    used = image("store2", base=held.id, containers=1)
    odd = image("odd", "compose", tags=("mine:1",))             # labelled, but not an image the lab builds
    plan = plan_images([lab, other, old_lab, held, derived, used, odd], current="hermes-lab:latest")
    assert [i.name for i in plan.remove] == ["store1:x", "old"]
    assert {k.image.name: k.reason for k in plan.kept} == {
        "hermes-lab:latest": "the current lab image: --all removes it",
        "hermes-lab:ci": "a tagged lab image: --all removes it",
        "held": "a kept derived image is built on it",
        "store2:x": "used by 1 container(s)",
        "mine:1": "labelled org.hermes-lab='compose': not an image the lab builds"}
    everything = plan_images([lab, other, derived, used], current="hermes-lab:latest", everything=True)
    assert [i.name for i in everything.remove] == ["store1:x", "hermes-lab:ci", "hermes-lab:latest"]
    recent = plan_images([derived, image("store3", created=100.0)], current="hermes-lab:latest", now=100.0 + DAY,
                         older_than=2 * DAY)
    assert recent.remove == () and {k.reason for k in recent.kept} == {"made recently"}


@pytest.mark.parametrize(("text", "seconds"), [("7d", 7 * DAY), ("12h", 43200.0), ("30m", 1800.0), ("90s", 90.0)])
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("argv", [
    ["clean", "--all"], ["clean", "--dry-run"], ["clean", "--older-than", "7d"],
    ["clean", "--images", "--older-than", "7x"], ["clean", "--caches", "--all"],
    ["clean", "--caches", "--stale"], ["clean", "--images", "--force"],
])
def test_bad_eviction_options_are_exit_2_before_the_engine(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # reaching the engine would be exit 3
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("repro: error: ")


def test_each_run_notes_the_entries_it_made_and_the_note_is_the_labs(cache: pathlib.Path) -> None:
    """`repro clean --caches --run ID` removes what that run made: each maker notes it under made-by/<run id>."""
    caches.record_made(cache, cache / "stores" / COMMIT, "r1")
    caches.record_made(cache, cache / "wheels" / "f632a686fab23886ed938dbe", "r1")
    caches.record_made(cache, cache / "initial" / "db-ed5f9b3f90f77e21686915a0", "r2")
    (cache / "made-by" / "r3").write_text("../../etc\nstores/../../x\n")  # a crafted note names nothing outside
    assert caches.made_by(cache, "r1") == {cache / "stores" / COMMIT, cache / "wheels" / "f632a686fab23886ed938dbe"}
    assert caches.made_by(cache, "r2") == {cache / "initial" / "db-ed5f9b3f90f77e21686915a0"}
    assert caches.made_by(cache, "r3") == set() and caches.made_by(cache, "never") == set()
    _, foreign = caches.scan(cache)
    assert not [p for p in foreign if "made-by" in p.parts]  # the notes are the lab's: never listed as foreign
