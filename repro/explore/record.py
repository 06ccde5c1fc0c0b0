"""Record a trace to explore: one machine runs the workload for N operations on the recording lossy
filesystem and stops cleanly -- no fault: the crash states come from exploring the trace.

The machine is the trial's (ConstrainedHost, the profile's limits, the store under test); the
lossy filesystem records to the machine's trace volume (services.TRACE_DIR), outside the disk under
test, and the workload marks READY and every acknowledged operation. After Fly's ordinary stop the daemon has synced and
closed the trace; it is fetched from the stopped machine with its log (the ledger) and the
settings the probe needs to open the store as the machine did.
"""

from __future__ import annotations

import pathlib

from repro.errors import TrialError
from repro.explore.tracedir import TRACE_FILE, Recording, TraceDir, write_recording
from repro.machine.container import ConstrainedHost
from repro.filesystems import FsSpec
from repro.machine.services import fetch_trace, stop_blockfs
from repro.protocol import EventKind, Line, LossyKind
from repro.scenario import MachineProfile, StoreSpec, WorkloadSpec
from repro.workload.config import WorkloadConfig

# Generous: a 1-CPU machine writing through FUSE, with the workload's largest messages.
_BASE_TIMEOUT_S = 60.0
_PER_OP_TIMEOUT_S = 0.5
_EXIT_TIMEOUT_S = 30.0  # from the store's close to its process's end: the interpreter's exit


def _done(line: Line) -> bool:
    return line.is_event(EventKind.CLOSED) or line.is_finish("session-store")


def _exited(line: Line) -> bool:
    return line.is_finish("session-store")


def wait_for_exit(machine: ConstrainedHost, timeout: float, what: str) -> None:
    """Wait until the workload's process has ended (s6's FINISH record, written by the supervisor's finish script,
    not by the process): whatever the store did after its CLOSED event, which it could write itself, is then in
    the trace before the machine stops."""
    machine.console.wait_for(_exited, timeout, what)


def stop_and_fetch(machine: ConstrainedHost, dest: pathlib.Path) -> None:
    """Fly's ordinary stop of a recording machine, then its trace into ``dest``: the lossy filesystem must have
    synced and closed the trace (a synced STOPPED line), and the trace must be there."""
    machine.stop()
    stopped = [line for line in machine.console.parsed() if line.is_lossy(LossyKind.STOPPED)]
    if not stopped or stopped[-1].payload.get("synced") is not True:
        raise machine.console.error("the lossy filesystem did not stop cleanly (no synced STOPPED line)")
    if TRACE_FILE not in fetch_trace(machine, dest):
        raise TrialError(f"the machine left no trace in {dest}")


def record(*, profile: MachineProfile, store: StoreSpec, workload: WorkloadSpec, ops: int, seed: int,
           dest: pathlib.Path, image: str, source: str, fs: FsSpec | None = None,
           loops: tuple[str, ...] = (), reproducible: bool = False) -> TraceDir:
    """Run the workload for ``ops`` operations on a recording machine; the trace directory it left.
    ``fs``: the store's directory is that kernel filesystem, on an image on the recording lossy mount
    (through one of ``loops``): the trace is then what the filesystem sent its block device."""
    machine = ConstrainedHost(profile, store=store, image=image, fuse=True, record=True, fs=fs, loops=loops)
    try:
        machine.start()
        machine.start_workload(WorkloadConfig.of(workload, seed=seed, ops=ops), record=True,
                               lossy_args="--no-writeback-cache" if reproducible else "")
        end = machine.console.wait_for(_done, _BASE_TIMEOUT_S + ops * _PER_OP_TIMEOUT_S, f"{ops} operations")
        if not end.is_event(EventKind.CLOSED):
            raise machine.console.error(f"the workload ended without closing the store: {dict(end.payload)}")
        wait_for_exit(machine, _EXIT_TIMEOUT_S, "the workload's process to end after closing the store")
        if fs is not None:
            stop_blockfs(machine)  # the filesystem's last writes and flush reach lossyfs while it still records
        stop_and_fetch(machine, dest)
        write_recording(dest, Recording(store_env=store.environment(), store_path=store.store_path,
                                        reproducible=reproducible,
                                        source=source, fs=fs), machine.output())
    finally:
        machine.remove()
    return TraceDir.open(dest)
