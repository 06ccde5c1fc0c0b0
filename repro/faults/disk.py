"""Disk faults: the npm cache fills the data disk while the workload keeps writing (optionally cleared again).

The machine stays up: a disk fill is followed by Fly's stop, or by another fault.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from repro.faults.base import Fault, FaultOutcome, run_agent
from repro.machine import services
from repro.protocol import EventKind
from repro.scenario import FaultName, FaultStep
from repro.workload.agent import Action

if TYPE_CHECKING:
    from repro.machine.container import ConstrainedHost

# How long the workload keeps writing against the full disk before the next step.
FULL_DWELL_S = 1.0
CLEAR_AFTER_MS = 500
FILL_TIMEOUT_S = 60.0


class DiskFill(Fault):
    name = FaultName.DISK_FILL
    summary = "an npm-like cache fills the data disk; the workload writes on into it"
    clear: ClassVar[bool] = False

    def inject(self, machine: "ConstrainedHost", step: FaultStep) -> FaultOutcome:
        agent = run_agent(machine, Action.NONE, step)
        services.start(machine, "npm-cache", {"LAB_NPM_CLEAR_AFTER_MS": str(CLEAR_AFTER_MS if self.clear else 0)})
        full = machine.console.wait_for(lambda l: l.is_event(EventKind.DISK_FULL), FILL_TIMEOUT_S, "a full disk")
        if self.clear:
            machine.console.wait_for(lambda l: l.is_event(EventKind.DISK_CLEARED), 30, "the cache to be cleared")
        time.sleep(FULL_DWELL_S)
        return FaultOutcome.of(self.name, agent, None, disk=dict(full.payload))

    def describe(self, outcome: FaultOutcome) -> str:
        disk = outcome.detail.get("disk")
        text = super().describe(outcome)
        if isinstance(disk, dict):
            text += f", disk full after {int(str(disk.get('written', 0))) >> 20} MiB of cache"
        return text


class DiskFillClear(DiskFill):
    name = FaultName.DISK_FILL_CLEAR
    summary = "the disk fills, then the cache is cleared again after 0.5 s"
    clear = True
