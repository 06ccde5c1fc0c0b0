"""What a fault is: its name, default trigger, crash class, whether it ends the machine, and how it fires.

Adding a fault is its name and traits in repro/scenario/model.py (FaultName, FAULT_TRAITS: data,
which the scenario reads without importing this package) and one subclass of ``Fault`` in this
package, listed in ``FAULTS`` (repro/faults/__init__.py), plus its tests; the runner and the report
ask the fault itself. The oracle keeps its own stdlib-only table of crash classes (the
Compose judge needs it), and a unit test fails when the two disagree.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from repro.oracle.promises import CrashClass
from repro.protocol import Tag
from repro.scenario import FAULT_TRAITS, FaultName, FaultStep, Trigger
from repro.workload.agent import Action

if TYPE_CHECKING:
    from repro.machine.container import ConstrainedHost, StopReport

AGENT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class AgentReport:
    """What the in-machine fault agent saw at the instant it fired."""

    acks: int
    in_write: bool
    detail: dict[str, object]


@dataclass(frozen=True)
class FaultOutcome:
    """What a fault did: when it fired (acks at that instant) and how the machine ended."""

    fault: FaultName
    acks_at_fire: int
    in_write: bool
    machine_down: bool
    exit_code: int | None = None
    oom_killed: bool = False
    graceful: bool | None = None  # a stop: did the machine exit within the kill timeout
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def fired_at(self) -> float | None:
        """When the agent fired (POSIX seconds on the machine's clock), if it said."""
        agent = self.detail.get("agent")
        value = agent.get("fired_at") if isinstance(agent, dict) else None
        return float(value) if isinstance(value, (int, float)) else None

    @classmethod
    def of(cls, fault: FaultName, agent: AgentReport, down: "StopReport | None", **detail: object) -> "FaultOutcome":
        return cls(fault=fault, acks_at_fire=agent.acks, in_write=agent.in_write, machine_down=down is not None,
                   exit_code=down.exit_code if down else None, oom_killed=down.oom_killed if down else False,
                   graceful=down.graceful if down else None,
                   detail={"agent": agent.detail, **({"down_s": down.seconds} if down else {}), **detail})


class Fault(abc.ABC):
    """A fault class. ``inject`` blocks until the fault has fired (and, if it ends the machine,
    until the machine is down); ``describe`` says in one clause what it did."""

    name: ClassVar[FaultName]
    summary: ClassVar[str]

    # What the fault is as data lives with its name (repro/scenario: FAULT_TRAITS); the class adds how it fires.
    @property
    def default_trigger(self) -> Trigger:
        return FAULT_TRAITS[self.name].default_trigger

    @property
    def crash_class(self) -> CrashClass:
        return FAULT_TRAITS[self.name].crash_class

    @property
    def ends_machine(self) -> bool:
        return FAULT_TRAITS[self.name].ends_machine

    @abc.abstractmethod
    def inject(self, machine: "ConstrainedHost", step: FaultStep) -> FaultOutcome: ...

    def describe(self, outcome: FaultOutcome) -> str:
        return f"{outcome.fault.value} at {outcome.acks_at_fire} acks" + (" mid-write" if outcome.in_write else "")


def run_agent(machine: "ConstrainedHost", action: Action, step: FaultStep | None = None,
              timeout: float = AGENT_TIMEOUT_S) -> AgentReport:
    """Run the in-machine fault agent: wait for the step's trigger (none: fire now), then ``action``."""
    timeout += step.after_ms / 1000.0 if step is not None else 0.0  # @random=MS: the wait is part of the plan
    argv = ["python3", "-m", "repro.workload.agent", "--action", action.value, "--timeout", str(timeout)]
    if step is not None:
        argv += ["--after-acks", str(step.after_acks), "--after-ms", str(step.after_ms),
                 "--delay-us", str(step.delay_us)]
        if step.trigger in (Trigger.IN_WRITE, Trigger.ON_WRITE):
            argv.append("--in-write")
        if step.trigger in (Trigger.ON_WRITE, Trigger.CHECKPOINT):
            argv += ["--on-write", machine.db_path.rsplit("/", 1)[0]]
        if step.trigger is Trigger.CHECKPOINT:
            argv.append("--database-file")
    result = machine.get_wrapped_container().exec_run(argv, user="root")
    output = (result.output or b"").decode("utf-8", "replace")
    from repro.protocol import parse_all

    for line in parse_all(output.splitlines()):
        if line.tag is Tag.AGENT:
            detail = dict(line.payload)
            if not detail.get("fired"):  # judging it as if it had fired would be a lie
                raise machine.console.error(
                    f"the fault's trigger never came ({detail.get('reason')}, {detail.get('acks')} acks, "
                    f"after_acks={step.after_acks if step else 0}): {action.value} did not fire")
            return AgentReport(acks=int(str(detail.get("acks", 0))), in_write=bool(detail.get("in_write")),
                               detail=detail)
    raise machine.console.error(f"the fault agent failed (exit {result.exit_code}): {output.strip()[-300:]}")
