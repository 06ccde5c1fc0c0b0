"""oom: the workload leaks until the kernel's cgroup OOM killer kills it, as after the beta leak."""

from __future__ import annotations

from typing import TYPE_CHECKING

from repro.faults.base import FaultOutcome, trigger_kwargs

if TYPE_CHECKING:
    from repro.host import ConstrainedHost
    from repro.scenario import FaultStep


class OutOfMemory:
    def inject(self, host: "ConstrainedHost", step: "FaultStep") -> FaultOutcome:
        agent = host.agent("none", **trigger_kwargs(step))  # type: ignore[arg-type]
        killed = host.oom()
        down = host.kill()
        # The container's OOMKilled flag and the cgroup's oom_kill counter say the kernel did it.
        return FaultOutcome.from_reports(step.name.value, agent, down, killed=killed)
