"""A trial's phases, in order, and how long each may take (its deadline, from the scenario and $HERMES_LAB_DEADLINES)."""

from __future__ import annotations

import enum
import math
import os
from typing import Mapping

from repro.errors import ScenarioError, shown
from repro.faults.base import AGENT_TIMEOUT_S
from repro.machine.container import BOOT_TIMEOUT_S
from repro.machine.restart import PROBE_TIMEOUT_S
from repro.machine.services import START_TIMEOUT_S
from repro.scenario import HazardName, Scenario


class Phase(str, enum.Enum):
    """The steps of one trial, in order."""

    BOOT = "boot"          # the machine and its disk start
    WORKLOAD = "workload"  # the store opens and the workload (and hazards) start
    FAULTS = "faults"      # each fault fires at its trigger
    STOP = "stop"          # Fly's ordinary stop, when no fault ended the machine
    RESTART = "restart"    # the crash state is kept; the restarted machine probes the database
    JUDGE = "judge"        # the oracle compares facts and ledger with what SQLite promises
    RECORD = "record"      # the record, and the evidence of a trial that did not pass


# HERMES_LAB_DEADLINES="faults=10,restart=60" overrides phases' deadlines (seconds).
DEADLINES_ENV = "HERMES_LAB_DEADLINES"
MARGIN_S = 15.0
FAULT_WAIT_S = 60.0  # the longest a fault waits for its effect (an OOM kill, a full disk)


def phase_deadlines(scenario: Scenario, overrides: Mapping[Phase, float] | None = None) -> dict[Phase, float]:
    """How long each phase may take: the sum of the waits inside it (each with its own timeout), plus a margin."""
    profile, workload = scenario.profile, scenario.workload
    stop_s = profile.kill_timeout_s + workload.linger_ms / 1000 + 30  # the kill timeout, then SIGKILL and a wait
    services = 1 + int(scenario.needs_fuse) + sum(1 for h in (HazardName.DASHBOARD, HazardName.CRON)
                                                  if workload.hazard_every(h))
    deadlines = {
        # restoring a starting database and filler: the disk's size at 20 MB/s at worst (measured: 300 MB/s)
        Phase.BOOT: BOOT_TIMEOUT_S + 30 + MARGIN_S + (profile.disk / (20 << 20) if scenario.start.active else 0),
        Phase.WORKLOAD: services * (START_TIMEOUT_S + 10) + MARGIN_S,
        Phase.FAULTS: MARGIN_S + sum(AGENT_TIMEOUT_S + step.after_ms / 1000 + FAULT_WAIT_S + stop_s
                                     for step in scenario.schedule()),
        Phase.STOP: stop_s + MARGIN_S,
        Phase.RESTART: 30 + BOOT_TIMEOUT_S + PROBE_TIMEOUT_S + MARGIN_S,
        Phase.JUDGE: 60.0,
        Phase.RECORD: 120.0,
    }
    deadlines.update(overrides if overrides is not None else deadline_overrides())
    return deadlines


def deadline_overrides(text: str | None = None) -> dict[Phase, float]:
    """``faults=10,restart=60`` (default: $HERMES_LAB_DEADLINES) -> {Phase: seconds}; ScenarioError if malformed."""
    text = os.environ.get(DEADLINES_ENV, "") if text is None else text
    found: dict[Phase, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            phase, seconds = Phase(name.strip()), float(value)
        except ValueError:
            raise ScenarioError(f"{DEADLINES_ENV}: {shown(part)} is not PHASE=SECONDS with PHASE one of "
                                f"{', '.join(p.value for p in Phase)}") from None
        if not (math.isfinite(seconds) and 0 < seconds <= 86400):
            raise ScenarioError(f"{DEADLINES_ENV}: {shown(part)}: seconds must be in (0, 86400]")
        found[phase] = seconds
    return found
