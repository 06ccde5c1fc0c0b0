"""Faults that kill processes: Fly's stop (SIGINT/SIGTERM, SIGKILL after the kill timeout), SIGKILL, OOM.

A killed process keeps everything it wrote in the kernel's page cache, so these are all
process crashes for the oracle, whatever the signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from repro.faults.base import Fault, FaultOutcome, run_agent
from repro.protocol import Line, Tag
from repro.scenario import FaultName, FaultStep
from repro.workload.agent import Action

if TYPE_CHECKING:
    from repro.machine.container import ConstrainedHost

WORKLOAD_SERVICE = "session-store"


def _finish_records(machine: "ConstrainedHost") -> list[dict[str, object]]:
    return [dict(line.payload) for line in machine.console.parsed() if line.tag is Tag.FINISH]


def _workload_finished(line: Line) -> bool:
    return line.is_finish(WORKLOAD_SERVICE)


class FlyStop(Fault):
    """Fly's stop: the signal to PID 1, s6 stops the services, SIGKILL after the kill timeout."""

    signal: ClassVar[str]

    def inject(self, machine: "ConstrainedHost", step: FaultStep) -> FaultOutcome:
        # The agent only marks the moment; the signal goes through the engine, as Fly's does.
        agent = run_agent(machine, Action.NONE, step)
        down = machine.stop(signal=self.signal)
        return FaultOutcome.of(self.name, agent, down, finish=_finish_records(machine))

    def describe(self, outcome: FaultOutcome) -> str:
        ending = ", stopped cleanly" if outcome.graceful else ", SIGKILLed after the kill timeout"
        return super().describe(outcome) + ending


class SigInt(FlyStop):
    name = FaultName.SIGINT
    signal = "SIGINT"
    summary = "Fly's default stop: SIGINT to PID 1, SIGKILL after the kill timeout"


class SigTerm(FlyStop):
    name = FaultName.SIGTERM
    signal = "SIGTERM"
    summary = "Fly's stop with kill_signal SIGTERM (s6's own), SIGKILL after the kill timeout"


class CleanStop(FlyStop):
    """No fault: a matrix's control per store. The workload runs to its trigger, then Fly's ordinary stop (SIGTERM,
    which the workload answers by closing the store) ends it: anything lost or damaged here needed no crash."""

    name = FaultName.CLEAN_STOP
    signal = "SIGTERM"
    summary = "no fault (the control): the workload, then a clean stop (SIGTERM, the store closed)"

    def describe(self, outcome: FaultOutcome) -> str:
        ending = "stopped cleanly" if outcome.graceful else "not clean: SIGKILLed after the kill timeout"
        return f"no fault after {outcome.acks_at_fire} acks, {ending}"


class SigKill(Fault):
    """The workload killed without warning, from inside the machine so that it can land mid-write."""

    name = FaultName.SIGKILL
    summary = "SIGKILL to the workload (by default at its next database write)"

    def inject(self, machine: "ConstrainedHost", step: FaultStep) -> FaultOutcome:
        agent = run_agent(machine, Action.KILL_WORKLOAD, step)
        machine.console.wait_for(_workload_finished, 10, "the workload's end")
        down = machine.kill()
        return FaultOutcome.of(self.name, agent, down, finish=_finish_records(machine))


class SigKillMachine(Fault):
    """The whole machine killed (a VM hard stop from the processes' view; its page cache lives on)."""

    name = FaultName.SIGKILL_MACHINE
    summary = "SIGKILL to every process of the machine at once"

    def inject(self, machine: "ConstrainedHost", step: FaultStep) -> FaultOutcome:
        agent = run_agent(machine, Action.NONE, step)
        return FaultOutcome.of(self.name, agent, machine.kill())


class OutOfMemory(Fault):
    """The workload leaks until the kernel's cgroup OOM killer kills it, as after the beta's leak."""

    name = FaultName.OOM
    summary = "the workload leaks until the kernel OOM killer kills it"

    def inject(self, machine: "ConstrainedHost", step: FaultStep) -> FaultOutcome:
        agent = run_agent(machine, Action.NONE, step)
        run_agent(machine, Action.LEAK)
        line = machine.console.wait_for(_workload_finished, 60, "the OOM kill of the workload")
        kills = kernel_oom_kills(machine)
        down = machine.kill()
        # The container's OOMKilled flag and the cgroup's oom_kill counter say the kernel did it.
        return FaultOutcome.of(self.name, agent, down, killed={
            "service": line.payload.get("service"), "signal": line.payload.get("signal"), "kernel_oom_kills": kills})

    def describe(self, outcome: FaultOutcome) -> str:
        killed = outcome.detail.get("killed")
        text = super().describe(outcome)
        if isinstance(killed, dict):
            text += (f", kernel OOM killer killed {killed.get('service')} (signal {killed.get('signal')},"
                     f" oom_kill={killed.get('kernel_oom_kills')})")
        return text


def kernel_oom_kills(machine: "ConstrainedHost") -> int:
    """The machine's own OOM-kill counter: memory.oom_control on cgroup v1, memory.events on v2."""
    control = machine.exec_checked(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null"
                                    " || cat /sys/fs/cgroup/memory.events"])
    for row in control.splitlines():
        if row.startswith("oom_kill "):
            return int(row.split()[1])
    return 0
