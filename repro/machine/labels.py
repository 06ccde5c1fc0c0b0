"""The labels every container and volume of the lab carries -- lab, run, owner, role -- so nothing outlives its run.

The owner labels (repro/machine/owner.py) say which live process a container or volume
belongs to; asking for labels also makes sure this process has its detached reaper
(repro/machine/reaper.py), which removes the process's containers and volumes when it dies
by any signal. `repro clean --run ID` removes one run's, `repro clean --stale` those whose
owner is gone.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import uuid
from typing import Iterator

from repro.machine.names import BASE_IMAGE, CONTEXT_LABEL, IMAGE, LAB_LABEL
from repro.machine.owner import RUN_LABEL, Owner, current

ROLE_LABEL = "org.hermes-lab.role"
TRIAL_LABEL = "org.hermes-lab.trial"
CPUS_LABEL = "org.hermes-lab.cpus"  # the host CPUs a machine is pinned to ("" when it is not)

# One id per lab process (several processes may share one through the environment: each
# still owns only its own containers, by its pid).
RUN_ID = os.environ.get("HERMES_LAB_RUN_ID") or uuid.uuid4().hex[:10]

__all__ = ["BASE_IMAGE", "CONTEXT_LABEL", "CPUS_LABEL", "IMAGE", "LAB_LABEL", "ROLE_LABEL", "RUN_ID", "RUN_LABEL", "TRIAL_LABEL", "labels",
           "owner", "trial_scope"]

_trial: contextvars.ContextVar[str] = contextvars.ContextVar("hermes_lab_trial", default="")
_owner: Owner | None = None


def owner() -> Owner:
    """This process as the owner of RUN_ID (computed again after a fork)."""
    global _owner
    if _owner is None or _owner.pid != os.getpid():
        _owner = current(RUN_ID)
    return _owner


def labels(role: str, cpus: str | None = None) -> dict[str, str]:
    """The labels of a new container or volume; starts this process's reaper if it has none."""
    from repro.machine import reaper

    me = owner()
    reaper.ensure_running(me)
    out = {LAB_LABEL: "1", ROLE_LABEL: role, **me.labels()}
    if _trial.get():
        out[TRIAL_LABEL] = _trial.get()
    if cpus is not None:
        out[CPUS_LABEL] = cpus
    return out


@contextlib.contextmanager
def trial_scope(trial_id: str) -> Iterator[None]:
    """Containers made in this thread meanwhile carry the trial's id (the watchdog removes them by it)."""
    token = _trial.set(trial_id)
    try:
        yield
    finally:
        _trial.reset(token)
