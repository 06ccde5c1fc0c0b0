"""`repro clean --images/--caches` against the real engine: a derived image of the lab's goes, the lab image and an image
a container uses stay, a mounted cache entry stays, and nothing is removed while another process's run lives.

The engine is shared: the test removes only the images it built (a label of its own), and its cache is fresh."""

from __future__ import annotations

import io
import pathlib
import subprocess
import tarfile
import time
import uuid
from typing import Iterator

import pytest

from repro import caches
from repro.cli import main
from repro.machine import engine, images
from repro.machine.labels import LAB_LABEL
from repro.machine.owner import current, process_start

pytestmark = pytest.mark.docker

TEST_LABEL = "org.hermes-lab.test-evict"


def build_derived(cli: object, base: str, tag: str, test_id: str) -> str:
    """A tiny image on the lab image labelled as a store's derived image (and as this test's); its id."""
    dockerfile = b"ARG BASE\nFROM ${BASE}\nRUN echo evict > /tmp/evict-test\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    base_id = cli.images.get(base).id  # type: ignore[attr-defined]
    built, _ = cli.images.build(fileobj=io.BytesIO(buf.getvalue()), custom_context=True, tag=tag,  # type: ignore[attr-defined]
                                buildargs={"BASE": base}, rm=True, forcerm=True, network_mode="none",
                                labels={LAB_LABEL: images.STORE_IMAGE, "org.hermes-lab.base-image": base_id,
                                        TEST_LABEL: test_id, f"{TEST_LABEL}.tag": tag})  # two builds, two images
    return str(built.id)


@pytest.fixture
def test_id() -> Iterator[str]:
    """This test's label value; whatever images carry it are removed afterwards (only those)."""
    value = uuid.uuid4().hex[:10]
    yield value
    cli = engine.client()
    for row in cli.api.images(filters={"label": f"{TEST_LABEL}={value}"}):
        for container in cli.api.containers(all=True, filters={"ancestor": row["Id"]}):
            cli.api.remove_container(container["Id"], force=True)
        try:
            cli.images.remove(row["Id"], force=True)
        except Exception:  # noqa: BLE001 -- removed by the test itself
            pass


def test_images_evicts_a_derived_image_and_keeps_the_lab_image_and_a_used_one(lab_image: str, test_id: str) -> None:
    cli = engine.client()
    gone_id = build_derived(cli, lab_image, f"hermes-lab-store:evict-{test_id}-a", test_id)
    used_id = build_derived(cli, lab_image, f"hermes-lab-store:evict-{test_id}-b", test_id)
    holder = cli.containers.create(used_id, entrypoint=["true"], labels={TEST_LABEL: test_id})  # never started
    try:
        started = time.monotonic()
        listing = images.lab_images(cli)
        plan = images.plan_images(listing, current=lab_image, now=time.time())
        listed = time.monotonic() - started
        removed = {i.id for i in plan.remove}
        kept = {k.image.id: k.reason for k in plan.kept}
        lab_id = cli.images.get(lab_image).id
        assert gone_id in removed
        assert kept[used_id] == "used by 1 container(s)"
        # Other tests' trials may be using the lab image right now (the suite runs in parallel): then that is the
        # reason it stays; otherwise it stays as the current lab image.
        lab_users = next(i.containers for i in listing if i.id == lab_id)
        assert kept[lab_id] == (f"used by {lab_users} container(s)" if lab_users else
                                "the current lab image: --all removes it")
        latest = engine.image_present(cli, "hermes-lab:latest")
        if latest:
            assert cli.images.get("hermes-lab:latest").id in kept
        # Remove only this test's images (the engine is shared), as the command would.
        mine = [i for i in plan.remove if i.id == gone_id]
        assert mine and mine[0].bytes < 1 << 20  # one small layer of its own, not the lab image's 270 MB
        assert images.remove_images(cli, mine) == []
        assert not engine.image_present(cli, gone_id)
        assert engine.image_present(cli, used_id) and engine.image_present(cli, lab_image)
        assert engine.image_present(cli, "hermes-lab:latest") == latest
        # The engine itself refuses a used image (never forced): the command reports it, exit 3.
        refused = images.remove_images(cli, [i for i in images.lab_images(cli, [f"{TEST_LABEL}={test_id}"])])
        assert [i.id for i, _ in refused] == [used_id]
        print(f"listing the engine's lab images and planning: {listed:.2f} s")
    finally:
        holder.remove(force=True)


def test_caches_keeps_a_mounted_entry_and_refuses_while_another_run_lives(
        lab_image: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        test_id: str) -> None:
    cli = engine.client()
    root = tmp_path / "cache"
    monkeypatch.setenv("HERMES_LAB_CACHE", str(root))
    mounted = root / "sqlite" / "3.53.2-6b541ea88f64"
    for entry in (mounted, root / "wheels" / "f632a686fab23886ed938dbe"):
        entry.mkdir(parents=True)
        (entry / "data").write_bytes(b"x" * 4096)
    (root / "notes.txt").write_text("not the lab's")
    holder = cli.containers.create(lab_image, entrypoint=["true"], labels={TEST_LABEL: test_id},
                                   volumes={str(mounted): {"bind": "/opt/lib", "mode": "ro"}})
    other = subprocess.Popen(["sleep", "120"])  # another lab process, alive, owning a volume
    found = process_start(other.pid)
    assert found is not None
    me = current("evict-" + test_id)
    owner = {**me.labels(), "org.hermes-lab.owner-pid": str(other.pid), "org.hermes-lab.owner-start": str(found[0])}
    volume = cli.volumes.create(name=f"evict-{test_id}", labels={LAB_LABEL: "1", **owner})
    try:
        assert main(["clean", "--caches"]) == 2
        err = capsys.readouterr().err
        assert "alive or cannot be told dead" in err and "nothing removed" in err
        assert (root / "wheels" / "f632a686fab23886ed938dbe").is_dir()
        assert main(["clean", "--caches", "--dry-run"]) == 0
        assert "would remove 1 cache entry" in capsys.readouterr().out
        # Once that run is over (or from the library, as the command does when none lives): the mounted entry stays.
        entries, foreign = caches.scan(root)
        in_use = caches.in_use(entries, [m.get("Source", "") for c in cli.api.containers(all=True)
                                         for m in c.get("Mounts") or []])
        plan = caches.plan_caches(entries, now=time.time(), used=in_use, foreign=foreign)
        assert [e.path for e in plan.remove] == [root / "wheels" / "f632a686fab23886ed938dbe"]
        assert [k.entry.path for k in plan.kept] == [mounted]
        assert caches.remove(plan.remove) == []
        assert mounted.is_dir() and (root / "notes.txt").is_file()
        assert not (root / "wheels" / "f632a686fab23886ed938dbe").exists()
    finally:
        other.kill()
        other.wait()
        volume.remove(force=True)
        holder.remove(force=True)
