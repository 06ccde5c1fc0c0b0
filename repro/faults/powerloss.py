"""power-loss: the lossy filesystem drops everything not yet fsynced, then the machine is killed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from repro.faults.base import FaultOutcome, trigger_kwargs

if TYPE_CHECKING:
    from repro.host import ConstrainedHost
    from repro.scenario import FaultStep


class PowerLoss:
    def inject(self, host: "ConstrainedHost", step: "FaultStep") -> FaultOutcome:
        agent = host.cut_power(**trigger_kwargs(step))
        return FaultOutcome(fault=step.name.value, fired=agent.fired, acks_at_fire=agent.acks,
                            in_write=agent.in_write, machine_down=True, detail=dict(agent.detail))
