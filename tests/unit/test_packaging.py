"""The image's build context is what the Dockerfile copies (the wheel's copy: tests/checks/test_wheel_contents.py);
the engine's errors keep their cause."""

from __future__ import annotations

import pathlib

import docker.errors
import pytest

from repro.errors import ImageError
from repro.machine import context, engine
from repro.machine.labels import CONTEXT_LABEL, LAB_LABEL

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_context_holds_what_the_dockerfile_copies() -> None:
    files = context.context_files(context.find_sources(ROOT / "repro"))
    assert "docker/Dockerfile" in files and "docker/lab-init" in files and "hermes_state/store.py" in files
    assert "repro/workload/agent.py" in files and "repro/verify/probe.py" in files
    assert "repro/machine/container.py" not in files and "repro/cli.py" not in files  # the host side stays out
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
