"""The test API has the CLI's defaults and refusals: a foreign store runs its own settings, a preset with it is
refused unless asked, and a fault that needs FUSE asks for it (power loss)."""

from __future__ import annotations

import pytest

from repro.errors import ScenarioError
from repro.scenario.stores import OWN_SETTINGS
from repro.testing import ConstrainedHost, fault_step, inject


def test_a_preset_with_a_foreign_store_is_refused_unless_asked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScenarioError, match="preset 'legacy' with store_path: a foreign store runs its own settings"):
        ConstrainedHost("fly-256", preset="legacy", store_path=str(tmp_path))
    assert ConstrainedHost("fly-256", store_path=str(tmp_path)).store.preset == OWN_SETTINGS  # the CLI's default
    asked = ConstrainedHost("fly-256", preset="legacy", store_path=str(tmp_path), lab_settings=True)
    assert asked.store.preset == "legacy"
    assert ConstrainedHost("fly-256").store.preset == "ns506"  # the lab's own store keeps its default preset
    from repro.machine.container import ConstrainedHost as Machine  # the lab's own machine class: the same defaults

    assert Machine("fly-256", store_path=str(tmp_path)).store.preset == OWN_SETTINGS
    assert Machine("fly-256").store.preset == "ns506"


def test_power_loss_asks_for_fuse_and_refuses_a_machine_without_it() -> None:
    assert ConstrainedHost("fly-256", faults=["power-loss:lazy-dirs"]).fuse
    assert not ConstrainedHost("fly-256", faults=["sigkill"]).fuse
    plain = ConstrainedHost("fly-256")
    with pytest.raises(ScenarioError, match="power-loss needs the machine's FUSE filesystem"):
        inject(plain, "power-loss")  # refused before anything is sent to a machine that never started


def test_the_machine_is_machine_and_the_old_host_keyword_still_works() -> None:
    """The glossary's rename (machine, not host) keeps callers that passed ``host=`` working, with a warning;
    the machine given both ways is refused."""
    plain = ConstrainedHost("fly-256")
    step = fault_step(machine=plain, fault="sigterm@acks=5")
    with pytest.warns(DeprecationWarning, match=r"fault_step\(host=\.\.\.\) is deprecated"):
        assert fault_step(host=plain, fault="sigterm@acks=5") == step
    with pytest.warns(DeprecationWarning), \
            pytest.raises(ScenarioError, match="power-loss needs the machine's FUSE filesystem"):
        inject(host=plain, fault="power-loss")
    with pytest.raises(TypeError, match="got the machine twice"):
        fault_step(plain, host=plain, fault="sigterm")
