"""sigkill: the workload killed without warning; sigkill-machine: the whole machine killed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from repro.faults.base import FaultOutcome, trigger_kwargs

if TYPE_CHECKING:
    from repro.host import ConstrainedHost
    from repro.scenario import FaultStep


class KillWorkload:
    def inject(self, host: "ConstrainedHost", step: "FaultStep") -> FaultOutcome:
        # In the machine, so that the kill can land inside a write (microsecond timing).
        agent = host.kill_workload(**trigger_kwargs(step))
        down = host.kill()
        return FaultOutcome.from_reports(step.name.value, agent, down, finish=host.finish_records())


class KillMachine:
    def inject(self, host: "ConstrainedHost", step: "FaultStep") -> FaultOutcome:
        agent = host.agent("none", **trigger_kwargs(step))  # type: ignore[arg-type]
        down = host.kill()
        return FaultOutcome.from_reports(step.name.value, agent, down)
