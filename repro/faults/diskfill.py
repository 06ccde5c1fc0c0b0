"""disk-fill: the npm cache fills the data disk while the workload keeps writing (optionally cleared again)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from repro.faults.base import FaultOutcome, trigger_kwargs

if TYPE_CHECKING:
    from repro.host import ConstrainedHost
    from repro.scenario import FaultStep

# How long the workload keeps writing against the full disk before the next step.
FULL_DWELL_S = 1.0
CLEAR_AFTER_MS = 500


class DiskFill:
    def __init__(self, clear: bool) -> None:
        self.clear = clear

    def inject(self, host: "ConstrainedHost", step: "FaultStep") -> FaultOutcome:
        agent = host.agent("none", **trigger_kwargs(step))  # type: ignore[arg-type]
        event = host.fill_disk(clear_after_ms=CLEAR_AFTER_MS if self.clear else 0)
        if self.clear:
            host.wait_for_line(lambda l: l.startswith('EVENT {"kind": "disk-cleared"'), 30, "the cache to be cleared")
        time.sleep(FULL_DWELL_S)
        return FaultOutcome.from_reports(step.name.value, agent, None, disk=event)
