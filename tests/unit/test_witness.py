"""The witness of a machine's end without Docker: the engine's events held against what the lab asked."""

from __future__ import annotations

from repro.errors import MachineKilledError
from repro.machine.witness import HOLDER, MACHINE, EngineAct, acts_from_events, foreign, signal_number, verdict_of

ROLES = {"m1": MACHINE, "h1": HOLDER}


def _kill(container: str, signal: int) -> dict[str, object]:
    return {"Type": "container", "Action": "kill", "Actor": {"ID": container, "Attributes": {"signal": str(signal)}}}


def _event(container: str, action: str) -> dict[str, object]:
    return {"Type": "container", "Action": action, "Actor": {"ID": container, "Attributes": {}}}


def test_events_become_acts_of_the_trials_containers_only() -> None:
    events = [_event("m1", "start"), _kill("m1", 2), _kill("other", 9), _event("m1", "die"), _event("h1", "destroy")]
    assert acts_from_events(events, ROLES) == [EngineAct(MACHINE, "kill", 2), EngineAct(HOLDER, "destroy")]


def test_the_labs_own_signals_are_not_foreign() -> None:
    """Fly's stop: SIGINT, then SIGKILL after the kill timeout; a kill the lab asked for twice counts twice."""
    acts = [EngineAct(MACHINE, "kill", 2), EngineAct(MACHINE, "kill", 9)]
    asked = {MACHINE: [signal_number("SIGINT"), signal_number("SIGKILL"), signal_number("SIGKILL")]}
    assert foreign(acts, asked) == [] and verdict_of(foreign(acts, asked)) is None


def test_a_signal_beyond_the_labs_is_foreign() -> None:
    """The lab sent SIGINT (a stop); someone's `docker kill` beat the kill timeout: the stop was not graceful."""
    acts = [EngineAct(MACHINE, "kill", 2), EngineAct(MACHINE, "kill", 9)]
    found = foreign(acts, {MACHINE: [signal_number("SIGINT")]})
    assert found == [EngineAct(MACHINE, "kill", 9)]
    error = verdict_of(found)
    assert isinstance(error, MachineKilledError)
    assert str(error).startswith("the machine was killed from outside the lab (SIGKILL through the engine: "
                                 "docker kill or docker rm -f): the trial's end is not the fault's")


def test_a_removal_or_a_signal_to_the_holder_is_always_foreign() -> None:
    acts = [EngineAct(MACHINE, "kill", 9), EngineAct(MACHINE, "destroy"), EngineAct(HOLDER, "kill", 15)]
    found = foreign(acts, {MACHINE: [9]})
    assert found == [EngineAct(MACHINE, "destroy"), EngineAct(HOLDER, "kill", 15)]
    text = str(verdict_of(found))
    assert text.startswith("the machine was removed from outside the lab (docker rm -f) (1 more: the disk's holder "
                           "(the restarted machine) was killed from outside the lab (SIGTERM through the engine: "
                           "docker kill or docker stop))")
