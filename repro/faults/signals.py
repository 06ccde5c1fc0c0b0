"""sigint / sigterm: Fly's stop -- the signal to PID 1, s6 stops the services, SIGKILL after the kill timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from repro.faults.base import FaultOutcome, trigger_kwargs

if TYPE_CHECKING:
    from repro.host import ConstrainedHost
    from repro.scenario import FaultStep


class FlyStop:
    def __init__(self, signal: str) -> None:
        self.signal = signal

    def inject(self, host: "ConstrainedHost", step: "FaultStep") -> FaultOutcome:
        # The agent only marks the moment; the signal goes through the engine, as Fly's does.
        agent = host.agent("none", **trigger_kwargs(step))  # type: ignore[arg-type]
        down = host.stop(signal=self.signal)
        finish = host.finish_records()
        return FaultOutcome.from_reports(step.name.value, agent, down, finish=finish)
