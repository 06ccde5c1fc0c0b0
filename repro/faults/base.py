"""The fault protocol: given a running machine and a resolved trigger, inject and say what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from repro.host import AgentReport, ConstrainedHost, StopReport
    from repro.scenario import FaultStep


@dataclass(frozen=True)
class FaultOutcome:
    """What a fault did: when it fired (acks at that instant) and how the machine ended."""

    fault: str
    fired: bool
    acks_at_fire: int
    in_write: bool
    machine_down: bool
    exit_code: int | None = None
    oom_killed: bool = False
    detail: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_reports(cls, fault: str, agent: "AgentReport", down: "StopReport | None",
                     **detail: object) -> "FaultOutcome":
        return cls(
            fault=fault, fired=agent.fired, acks_at_fire=agent.acks, in_write=agent.in_write,
            machine_down=down is not None, exit_code=down.exit_code if down else None,
            oom_killed=down.oom_killed if down else False,
            detail={**({"graceful": down.graceful, "down_s": down.seconds} if down else {}), **detail},
        )


class Fault(Protocol):
    """A fault class. ``inject`` blocks until the fault has fired (and, if it ends the
    machine, until the machine is down)."""

    def inject(self, host: "ConstrainedHost", step: "FaultStep") -> FaultOutcome: ...


def trigger_kwargs(step: "FaultStep") -> dict[str, object]:
    """The agent's trigger arguments for a resolved step."""
    from repro.scenario import Trigger

    return {"after_acks": step.after_acks, "after_ms": step.after_ms,
            "in_write": step.trigger in (Trigger.IN_WRITE, Trigger.ON_WRITE), "delay_us": step.delay_us,
            "on_write": step.trigger is Trigger.ON_WRITE}
