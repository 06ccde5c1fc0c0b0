"""One module per fault class behind one small protocol; `inject` looks a fault up by name."""

from __future__ import annotations

from repro.faults.base import Fault, FaultOutcome
from repro.faults.diskfill import DiskFill
from repro.faults.kill import KillMachine, KillWorkload
from repro.faults.oom import OutOfMemory
from repro.faults.powerloss import PowerLoss
from repro.faults.signals import FlyStop
from repro.scenario import FaultName

FAULTS: dict[FaultName, Fault] = {
    FaultName.SIGINT: FlyStop("SIGINT"),
    FaultName.SIGTERM: FlyStop("SIGTERM"),
    FaultName.SIGKILL: KillWorkload(),
    FaultName.SIGKILL_MACHINE: KillMachine(),
    FaultName.OOM: OutOfMemory(),
    FaultName.DISK_FILL: DiskFill(clear=False),
    FaultName.DISK_FILL_CLEAR: DiskFill(clear=True),
    FaultName.POWER_LOSS: PowerLoss(),
}

__all__ = ["FAULTS", "Fault", "FaultOutcome"]
