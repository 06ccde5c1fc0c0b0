"""The wheel carries the image's build context under the lab's own namespace, identical to docker/ (no drift),
and no top-level hermes_state; the engine's errors keep their cause."""

from __future__ import annotations

import pathlib
import zipfile

import docker.errors
import pytest

from repro.errors import ImageError
from repro.machine import context, engine
from repro.machine.labels import CONTEXT_LABEL, LAB_LABEL

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_has_no_top_level_store_and_carries_the_build_context(lab_wheel: pathlib.Path,
                                                                        tmp_path: pathlib.Path) -> None:
    with zipfile.ZipFile(lab_wheel) as wheel:
        names = wheel.namelist()
        wheel.extractall(tmp_path)
    tops = {name.split("/")[0] for name in names}
    assert tops == {"repro", lab_wheel.name.split("-")[0] + "-0.1.0.dist-info"}, tops  # no hermes_state/
    for name in ("repro/_image/Dockerfile", "repro/_image/lab-init", "repro/_image/make-base.sh",
                 "repro/_image/s6/session-store/run", "repro/_store/hermes_state/__init__.py"):
        assert name in names
    # the packaged copy is the checkout's docker/ and hermes_state/, byte for byte: the same context hash
    packaged = context.find_sources(tmp_path / "repro")
    checkout = context.find_sources(ROOT / "repro")
    assert (packaged.origin, checkout.origin) == ("package", "checkout")
    assert list(context.context_files(packaged)) == list(context.context_files(checkout))
    assert context.digest(packaged, "base") == context.digest(checkout, "base")
    assert context.context_tar(packaged) == context.context_tar(checkout)  # reproducible, whichever copy


def test_the_context_holds_what_the_dockerfile_copies() -> None:
    files = context.context_files(context.find_sources(ROOT / "repro"))
    assert "docker/Dockerfile" in files and "docker/lab-init" in files and "hermes_state/store.py" in files
    assert "repro/workload/agent.py" in files and "repro/verify/probe.py" in files
    assert "repro/machine/host.py" not in files and "repro/cli.py" not in files  # the host side stays out
    assert not any("__pycache__" in name for name in files)


def test_a_dockerfile_that_copies_what_is_not_there_is_an_image_error(tmp_path: pathlib.Path) -> None:
    assert context.copy_sources("FROM x\nCOPY --chown=1:1 a b /dst/\nCOPY --from=build /x /y\n") == ["a", "b"]
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "Dockerfile").write_text("FROM x\nCOPY repro/nothing.py /opt/lab/\n")
    sources = context.ContextSources(docker_dir, tmp_path / "hermes_state", ROOT / "repro", "checkout")
    with pytest.raises(ImageError, match="nothing.py"):
        context.context_files(sources)
    (docker_dir / "Dockerfile").write_text("FROM x\nCOPY /etc/passwd /x\n")
    with pytest.raises(ImageError, match="outside"):
        context.context_files(sources)
    with pytest.raises(ImageError, match="build context is missing"):
        context.find_sources(tmp_path / "repro")


def test_engine_errors_keep_their_cause() -> None:
    exc = docker.errors.APIError(
        "500 Server Error for http+docker://localhost/v1.41/build?t=hermes-lab%3Alatest&dockerfile=docker%2FDockerf",
        explanation="Cannot locate specified Dockerfile: docker/Dockerfile")
    assert "Cannot locate specified Dockerfile: docker/Dockerfile" in engine._short(exc)
    assert "http+docker" not in engine._short(exc)
    assert engine._short(RuntimeError("a\nb")) == "a b"


def test_image_state_tells_current_from_stale_and_foreign() -> None:
    assert engine.image_state(None, "h") is engine.ImageState.MISSING
    assert engine.image_state({LAB_LABEL: "image", CONTEXT_LABEL: "h"}, "h") is engine.ImageState.CURRENT
    assert engine.image_state({LAB_LABEL: "image", CONTEXT_LABEL: "old"}, "h") is engine.ImageState.STALE
    assert engine.image_state({LAB_LABEL: "image"}, "h") is engine.ImageState.STALE  # built before context hashes
    assert engine.image_state({}, "h") is engine.ImageState.FOREIGN
