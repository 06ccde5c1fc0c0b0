"""The workload's settings in the machine: the run's WorkloadSpec plus what the lab decides per trial, and
both sides of its environment contract (LAB_* variables), field by field.

The lab writes them with ``to_env`` into the machine; the workload reads them back with ``from_env``.
Each field travels as LAB_<FIELD> (``linger_ms`` as LAB_LINGER_MS), so a field added to WorkloadSpec
or here is on both sides at once, under one name.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Mapping

from repro.errors import ScenarioError, shown
from repro.workload.spec import Hazard, HazardName, WorkloadConfigError, WorkloadSpec

ROLES = ("gateway", "cron")


@dataclass(frozen=True)
class WorkloadConfig(WorkloadSpec):
    """How the gateway-like workload drives the store: the spec's fields, then the trial's and machine's."""

    seed: int = 0
    ops: int = 0  # operations to run; 0: until stopped
    db_path: str = "/opt/data/state.db"
    store_mount: str = ""
    status_path: str = "/run/lab/status"
    ledger_file: str = ""  # also append the ledger here (never on the data disk under test)
    # Hold after READY until the fault agent says it is watching, so that "after N acks" means N:
    # a flat-out workload would otherwise run on for the agent's start-up time on a one-CPU machine.
    hold: bool = False
    # The cron hazard runs a second copy of this workload in its own process: role "cron" (no
    # READY line, never held), its ledger indices start above op_offset so that the two ledgers
    # merge into one, and its sessions differ because its seed does.
    role: str = "gateway"
    op_offset: int = 0
    # Recording (repro explore): the lossyfs daemon's mark socket. After READY the workload sends
    # the mark "ready", and after each ok ledger line "ack <index>", so that every position of the
    # recorded trace maps to the ledger prefix acknowledged before it. Empty: no marks.
    mark_socket: str = ""
    # Crash during recovery (repro explore --recovery): only reopen the database as a restarted service would --
    # the mark "ready" first, then the store opens it (SQLite's recovery, the store's own repair), reads its
    # counts and closes it; no operation.
    reopen: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.role not in ROLES:
            raise WorkloadConfigError(f"LAB_ROLE must be gateway or cron, not {shown(self.role)}")

    @classmethod
    def of(cls, spec: WorkloadSpec, **settings: object) -> "WorkloadConfig":
        """The run's workload with the trial's settings (seed, ops, hold, ...)."""
        given = {f.name: getattr(spec, f.name) for f in dataclasses.fields(WorkloadSpec)}
        return cls(**{**given, **settings})  # type: ignore[arg-type]

    @property
    def raw_open_every(self) -> int:
        """The raw-open hazard: every N operations the gateway open()s and close()s its own live database
        file with raw calls (a size probe), which drops this process's POSIX locks; 0: never."""
        return self.hazard_every(HazardName.RAW_OPEN)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "WorkloadConfig":
        values: dict[str, object] = {}
        try:
            for f in dataclasses.fields(cls):
                text = env.get(env_name(f.name))
                if text is not None:
                    values[f.name] = _decode(f.default, text)
            return cls(**values)  # type: ignore[arg-type]
        except WorkloadConfigError:
            raise
        except (ScenarioError, ValueError) as exc:
            raise WorkloadConfigError(str(exc)) from exc

    def to_env(self) -> dict[str, str]:
        """The LAB_* variables that ``from_env`` reads back into an equal config."""
        return {env_name(f.name): _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}


def env_name(field: str) -> str:
    """The variable a setting travels as: ``linger_ms`` -> ``LAB_LINGER_MS``."""
    return f"LAB_{field.upper()}"


def _encode(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):  # the hazards, each as the CLI spells it, its period always written
        return ",".join(f"{h.name.value}={h.every}" for h in value)
    return str(value)


def _decode(default: object, text: str) -> object:
    """A variable's text as the type of its field's default."""
    if isinstance(default, bool):
        return text == "1"
    if isinstance(default, tuple):
        return tuple(Hazard.parse(part) for part in text.split(",") if part.strip())
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text
