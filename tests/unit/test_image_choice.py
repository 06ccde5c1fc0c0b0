"""The image a command's machines run is decided in one place (repro.machine.engine.trial_image)."""

from __future__ import annotations

import pathlib

import docker.errors
import pytest

from repro.errors import ScenarioError
from repro.machine import engine
from repro.machine.labels import IMAGE

ROOT = pathlib.Path(__file__).resolve().parents[2]


class _Images:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def get(self, name: str) -> object:
        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return object()


class _Engine:
    def __init__(self, *present: str) -> None:
        self.images = _Images(set(present))


def test_the_users_image_must_be_on_the_engine_and_the_labs_is_built_when_needed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine.trial_image(_Engine("mine:1"), "mine:1") == "mine:1"  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="--image 'gone:1' is not on the engine"):
        engine.trial_image(_Engine(), "gone:1")  # type: ignore[arg-type]
    built: list[str] = []
    monkeypatch.setattr(engine, "ensure_image", lambda cli, image: built.append(image))
    assert engine.trial_image(_Engine(), None) == IMAGE and built == [IMAGE]  # type: ignore[arg-type]
    assert engine.image_name(None) == IMAGE and engine.image_name("x:1") == "x:1"


def test_no_other_module_decides_the_image() -> None:
    """Checking the user's --image, or falling back to the lab's own, happens only in engine.py (a sandbox
    whose image vanished mid-run still says so where it finds out)."""
    deciders = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "repro").rglob("*.py")
                      if p.name != "engine.py" and ("build or pull it" in (text := p.read_text())
                                                    or "image or IMAGE" in text))
    assert deciders == []
