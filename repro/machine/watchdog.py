"""A deadline on every phase of a trial: when one passes, the trial's machines are removed, which ends any wait on them.

A machine frozen with `docker pause`, a hung exec or an engine that stops answering would
otherwise block a trial forever: an exec's output stream and a container's log stream have
no timeout. Removing the container ends both (the engine kills even a paused container), the
phase fails, and the trial becomes an `error` naming the phase and its deadline; the run
goes on. If the phase still has not returned GRACE_S later, the trial's disk holder and
volumes go too (the holder is the restarted machine: a probe that hangs there is first bounded
by its own timeout inside the holder, repro/machine/restart.py). A holder that is paused goes at
the deadline with the machines: nothing in it can run out its own timeout, so the grace would
only be waited out.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Callable, Iterator

from repro.errors import DeadlineError

if TYPE_CHECKING:
    from repro.machine.disk import DataDisk

GRACE_S = 15.0
MACHINE_ROLES = ("machine",)


class Watchdog:
    """Arms a timer per phase; on expiry removes this process's containers of one trial."""

    def __init__(self, trial_id: str, disk: Callable[[], "DataDisk | None"] = lambda: None) -> None:
        self.trial_id = trial_id
        self._disk = disk  # the trial's data disk, which may be one an earlier trial made (repro/machine/pool.py)
        self.expired: DeadlineError | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def phase(self, name: str, seconds: float) -> Iterator[None]:
        """Run a phase under a deadline. Raises DeadlineError if it passed (whatever the phase raised)."""
        stage_two = threading.Timer(seconds + GRACE_S, self._remove, args=(False,))
        stage_one = threading.Timer(seconds, self._expire, args=(name, seconds, stage_two))
        stage_one.daemon = stage_two.daemon = True
        stage_one.start()
        try:
            yield
        except BaseException as exc:
            if self.expired is not None and isinstance(exc, Exception):
                raise self.expired from exc
            raise
        finally:
            stage_one.cancel()
            stage_two.cancel()
        if self.expired is not None:
            raise self.expired

    def _expire(self, name: str, seconds: float, stage_two: threading.Timer) -> None:
        with self._lock:
            self.expired = DeadlineError(f"the {name} phase passed its {seconds:g} s deadline; "
                                         "the trial's machines were removed")
        stage_two.start()
        self._remove(True)

    def _remove(self, machines_only: bool) -> None:
        from repro.machine import engine
        from repro.machine.labels import ROLE_LABEL, TRIAL_LABEL, owner

        try:
            cli = engine.client()
            label = [*engine.selector(owner=owner()), f"{TRIAL_LABEL}={self.trial_id}"]
            for row in cli.api.containers(all=True, filters={"label": label}):
                frozen = row.get("State") == "paused"  # its own timeouts cannot fire: waiting GRACE_S is no use
                if machines_only and not frozen and (row.get("Labels") or {}).get(ROLE_LABEL) not in MACHINE_ROLES:
                    continue
                with contextlib.suppress(Exception):
                    cli.api.remove_container(row["Id"], force=True, v=True)
            disk = self._disk()
            if machines_only and disk is not None and disk.holder_id:  # a kept disk's holder: another trial's label
                with contextlib.suppress(Exception):
                    if cli.api.inspect_container(disk.holder_id)["State"].get("Paused"):
                        disk.remove()
            if not machines_only:
                if disk is not None:  # a kept disk carries the label of the trial that made it
                    disk.remove()
                for volume in cli.volumes.list(filters={"label": label}):
                    with contextlib.suppress(Exception):
                        volume.remove(force=True)
        except Exception:  # a watchdog must never die of the engine
            pass
