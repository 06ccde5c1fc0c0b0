"""The test API has the CLI's defaults and refusals: a foreign store runs its own settings, a preset with it is
refused unless asked, and a fault that needs FUSE asks for it (power loss)."""

from __future__ import annotations

import pytest

from repro.errors import ScenarioError
from repro.scenario.stores import OWN_SETTINGS
from repro.testing import ConstrainedHost, inject


def test_a_preset_with_a_foreign_store_is_refused_unless_asked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScenarioError, match="preset 'legacy' with store_path: a foreign store runs its own settings"):
        ConstrainedHost("fly-256", preset="legacy", store_path=str(tmp_path))
    assert ConstrainedHost("fly-256", store_path=str(tmp_path)).store.preset == OWN_SETTINGS  # the CLI's default
    asked = ConstrainedHost("fly-256", preset="legacy", store_path=str(tmp_path), lab_settings=True)
    assert asked.store.preset == "legacy"
    assert ConstrainedHost("fly-256").store.preset == "ns506"  # the lab's own store keeps its default preset


def test_power_loss_asks_for_fuse_and_refuses_a_machine_without_it() -> None:
    assert ConstrainedHost("fly-256", faults=["power-loss:lazy-dirs"]).fuse
    assert not ConstrainedHost("fly-256", faults=["sigkill"]).fuse
    plain = ConstrainedHost("fly-256")
    with pytest.raises(ScenarioError, match="power-loss needs the machine's FUSE filesystem"):
        inject(plain, "power-loss")  # refused before anything is sent to a machine that never started
