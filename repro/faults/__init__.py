"""Every fault the lab can inject, one class each, looked up by name (see base.py for what a fault is)."""

from __future__ import annotations

from repro.faults.base import AgentReport, Fault, FaultOutcome, run_agent
from repro.faults.disk import DiskFill, DiskFillClear
from repro.faults.power import PowerLoss
from repro.faults.process import CleanStop, OutOfMemory, SigInt, SigKill, SigKillMachine, SigTerm
from repro.scenario import FaultName, FaultStep

FAULTS: dict[FaultName, Fault] = {fault.name: fault for fault in (
    SigInt(), SigTerm(), SigKill(), SigKillMachine(), OutOfMemory(), DiskFill(), DiskFillClear(), PowerLoss(),
    CleanStop())}


def inject(machine: object, step: FaultStep) -> FaultOutcome:
    """Fire one resolved fault step on a running machine."""
    return FAULTS[step.name].inject(machine, step)  # type: ignore[arg-type]


__all__ = ["FAULTS", "AgentReport", "Fault", "FaultOutcome", "inject", "run_agent"]
