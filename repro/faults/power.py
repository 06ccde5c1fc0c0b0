"""power-loss: the lossy filesystem drops everything not yet fsynced, then the machine is killed.

The one fault that loses the page cache, so the only one that shows the difference
between synchronous OFF, NORMAL and FULL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from repro.faults.base import Fault, FaultOutcome, run_agent
from repro.scenario import FaultName, FaultStep
from repro.workload.agent import Action

if TYPE_CHECKING:
    from repro.machine.container import ConstrainedHost


class PowerLoss(Fault):
    name = FaultName.POWER_LOSS
    summary = "the power is cut: what was not fsynced is gone (options: lazy-dirs, torn-writes, record)"

    def inject(self, machine: "ConstrainedHost", step: FaultStep) -> FaultOutcome:
        if not machine.fuse:
            raise machine.console.error("power loss needs a machine started with_fuse()")
        agent = run_agent(machine, Action.CUT_POWER, step)
        from repro.protocol import LossyKind

        machine.console.wait_for(lambda l: l.is_lossy(LossyKind.CUT), 10, "the power cut")
        return FaultOutcome.of(self.name, agent, machine.kill())
