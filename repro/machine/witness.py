"""Who ended a machine: the engine's own record of the signals it delivered and the containers it removed, held against what the lab asked.

The engine logs a ``kill`` event, with the signal's number, for every signal sent through it --
`docker kill`, `docker stop`, `docker rm -f` of a running container, and the lab's own stops and
kills -- and a ``destroy`` event for every removal; a signal sent from inside a machine is not
among them. A trial's machine, or its disk's holder (the restarted machine), that received a
signal the lab did not ask for, or was removed while the lab still used it, was ended from outside
the lab: its end is not the fault's, and the trial cannot be judged (MachineKilledError). The
watchdog's removals (repro/machine/watchdog.py) are told apart by the trial, which knows its
deadline passed. The clocks: events are asked for from the lab's own start time, so an engine
whose clock runs far behind the lab's host could hide them (a local engine shares the clock).
"""

from __future__ import annotations

import signal as signals
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from repro.errors import MachineKilledError

MACHINE = "machine"
HOLDER = "disk holder"
_ROLE_TEXT = {MACHINE: "the machine", HOLDER: "the disk's holder (the restarted machine)"}


@dataclass(frozen=True)
class EngineAct:
    """One thing the engine did to a trial's container: delivered a signal (``kill``) or removed it (``destroy``)."""

    role: str  # MACHINE or HOLDER
    action: str  # "kill" or "destroy"
    signal: int | None = None

    def describe(self) -> str:
        if self.action == "destroy":
            return f"{_ROLE_TEXT.get(self.role, self.role)} was removed from outside the lab (docker rm -f)"
        name = signal_name(self.signal)
        how = "docker kill or docker rm -f" if self.signal == signals.SIGKILL else "docker kill or docker stop"
        return f"{_ROLE_TEXT.get(self.role, self.role)} was killed from outside the lab ({name} through the engine: {how})"


def signal_name(number: int | None) -> str:
    try:
        return signals.Signals(number).name if number is not None else "a signal"
    except ValueError:
        return f"signal {number}"


def signal_number(name: str) -> int:
    """``SIGKILL`` -> 9 (as the engine's events say it)."""
    return int(signals.Signals[name if name.startswith("SIG") else f"SIG{name}"])


def acts_from_events(events: Iterable[Mapping[str, Any]], roles: Mapping[str, str]) -> list[EngineAct]:
    """The engine's ``kill`` and ``destroy`` events of the containers in ``roles`` (container id -> role)."""
    found: list[EngineAct] = []
    for event in events:
        actor = event.get("Actor") or {}
        role = roles.get(str(actor.get("ID") or event.get("id") or ""))
        action = str(event.get("Action") or event.get("status") or "")
        if role is None or action not in ("kill", "destroy"):
            continue
        raw = str((actor.get("Attributes") or {}).get("signal") or "")
        found.append(EngineAct(role, action, int(raw) if raw.isdigit() else None))
    return found


def foreign(acts: Sequence[EngineAct], asked: Mapping[str, Sequence[int]]) -> list[EngineAct]:
    """The acts the lab did not ask for: per role, signals beyond those it sent (counted), and any removal
    (the lab asks the witness before it removes anything of a trial)."""
    left = {role: Counter(numbers) for role, numbers in asked.items()}
    out: list[EngineAct] = []
    for act in acts:
        budget = left.setdefault(act.role, Counter())
        if act.action == "kill" and act.signal is not None and budget[act.signal] > 0:
            budget[act.signal] -= 1
            continue
        out.append(act)
    return out


def verdict_of(acts: Sequence[EngineAct]) -> MachineKilledError | None:
    """The error a trial ends with when anything was done to its containers from outside the lab."""
    if not acts:
        return None
    first = acts[0]
    more = f" ({len(acts) - 1} more: {'; '.join(a.describe() for a in acts[1:3])})" if len(acts) > 1 else ""
    return MachineKilledError(f"{first.describe()}{more}: the trial's end is not the fault's, so it cannot be judged")


def ended_from_outside(client: Any, roles: Mapping[str, str], asked: Mapping[str, Sequence[int]], since: float,
                       until: float) -> MachineKilledError | None:
    """Ask the engine what it did to ``roles``' containers between ``since`` and ``until`` (seconds since the
    epoch); the error to end the trial with if it did anything the lab did not ask (``asked``: role -> the
    signal numbers the lab sent). Raises the engine's own errors (docker-py, requests)."""
    events = client.api.events(since=since, until=until, filters={"container": list(roles)}, decode=True)
    try:
        return verdict_of(foreign(acts_from_events(events, roles), asked))
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
