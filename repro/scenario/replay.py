"""A Scenario as JSON and back, so that a trial is replayed from what ran, not from argv text.

Every trial record in report.json carries its scenario in this form; `repro replay RUN_DIR
TRIAL_ID` rebuilds the Scenario from it and runs exactly that trial. Flat settings (profile,
store, workload) are written field by field from their dataclasses, so a new field travels
without a hand-written line here; faults and hazards use the spelling the CLI parses.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import types
import typing
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

from repro.errors import ScenarioError
from repro.scenario.model import FaultSpec, Hazard, Scenario, WorkloadSpec
from repro.scenario.profiles import MachineProfile
from repro.scenario.start import StartSpec
from repro.scenario.stores import StoreSpec

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SCENARIO_FORMAT = 4
# What each format added, with the value every older trial ran with (so its replay runs the same):
# format 2 the SQLite a trial loads; format 3 a foreign store's ref and requirements, and the starting disk;
# format 4 the data disk's kernel filesystem.
_ADDED: dict[int, dict[str, dict[str, object]]] = {
    2: {"store": {"wal_autocheckpoint": None, "sqlite": "system", "sqlite_assisted": False}},
    3: {"store": {"store_ref": None, "store_commit": None, "requirements": None, "image": None},
        "start": {"from_db": None, "initial_size": None, "fill_pct": None, "files": None}},
    4: {"profile": {"fs": None}},  # format 4: the data disk's kernel filesystem (--fs)
}

_T = TypeVar("_T", bound="DataclassInstance")


def scenario_to_dict(scenario: Scenario) -> dict[str, object]:
    """The JSON form of a scenario (versioned)."""
    workload = _flat(scenario.workload, skip=("hazards",))
    # The period is always written: a hazard's default may change, the replay must not.
    workload["hazards"] = [f"{h.name.value}={h.every}" for h in scenario.workload.hazards]
    return {
        "format": SCENARIO_FORMAT,
        "trial_id": scenario.trial_id,
        "seed": scenario.seed,
        "profile": _flat(scenario.profile),
        # As given (the default trigger is resolved from the seed, so it is not written out).
        "faults": [str(fault) for fault in scenario.faults],
        "store": _flat(scenario.store),
        "workload": workload,
        "start": _flat(scenario.start),
    }


def scenario_from_dict(data: Mapping[str, object]) -> Scenario:
    """Rebuild and validate a scenario; anything malformed is a ScenarioError."""
    data = _upgraded(data)
    _exact_keys(data, {"format", "trial_id", "seed", "profile", "faults", "store", "workload", "start"}, "scenario")
    trial_id, seed, faults = data["trial_id"], data["seed"], data["faults"]
    if not isinstance(trial_id, str) or not trial_id:
        raise ScenarioError(f"scenario: trial_id must be a non-empty string, not {trial_id!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ScenarioError(f"scenario: seed must be an integer, not {seed!r}")
    workload = _mapping(data["workload"], "scenario workload")
    hazards = workload.get("hazards")
    if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
        raise ScenarioError("scenario: faults must be a list of fault strings")
    if not isinstance(hazards, list) or not all(isinstance(h, str) for h in hazards):
        raise ScenarioError("scenario workload: hazards must be a list of hazard strings")
    return Scenario(
        profile=_build(MachineProfile, _mapping(data["profile"], "scenario profile"), "scenario profile"),
        faults=tuple(FaultSpec.parse(f) for f in faults),
        store=_build(StoreSpec, _mapping(data["store"], "scenario store"), "scenario store"),
        seed=seed,
        trial_id=trial_id,
        workload=_build(WorkloadSpec, workload, "scenario workload",
                        given={"hazards": tuple(Hazard.parse(h) for h in hazards)}),
        start=_build(StartSpec, _mapping(data["start"], "scenario start"), "scenario start"),
    )


def _upgraded(data: Mapping[str, object]) -> Mapping[str, object]:
    """An older scenario in the current format: the fields added since, at the values it ran with
    (a field it already carries is kept as written)."""
    version = data.get("format")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCENARIO_FORMAT:
        raise ScenarioError(f"scenario format {version!r} is not {SCENARIO_FORMAT}: "
                            "made by another version of the lab; re-run it")
    upgraded: dict[str, object] = {**data, "format": SCENARIO_FORMAT}
    for newer in range(version + 1, SCENARIO_FORMAT + 1):
        for part, added in _ADDED[newer].items():
            upgraded[part] = {**added, **_mapping(upgraded.get(part, {}), f"scenario {part}")}
    return upgraded


def replay_command(run_dir: str | os.PathLike[str], trial_id: str) -> str:
    """The command that runs one trial of a run again, as a person types it (``repro`` on PATH)."""
    return shlex.join(["repro", "replay", os.path.abspath(run_dir), trial_id])


def replay_script(run_dir: str | os.PathLike[str], trial_id: str) -> str:
    """replay.sh: the same replay with this interpreter and this checkout of the lab, by absolute
    paths, so that it runs from any directory with or without ``repro`` on PATH."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv = [sys.executable, "-m", "repro.cli", "replay", os.path.abspath(run_dir), trial_id]
    return ("#!/bin/sh\n"
            f"# Replays trial {trial_id}: same scenario, seed and fault schedule (timing makes it approximate).\n"
            f"# As typed by hand: {replay_command(run_dir, trial_id)}\n"
            f"PYTHONPATH={shlex.quote(root)}${{PYTHONPATH:+:$PYTHONPATH}}\n"
            "export PYTHONPATH\n"
            f"exec {shlex.join(argv)} \"$@\"\n")


def _flat(obj: DataclassInstance, skip: tuple[str, ...] = ()) -> dict[str, object]:
    """A dataclass of scalars -> {field: value}."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip}


def _build(cls: type[_T], data: Mapping[str, object], what: str, given: Mapping[str, object] | None = None) -> _T:
    """{field: value} -> a dataclass of scalars, every value checked against its field's type."""
    given = dict(given or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    _exact_keys(data, names, what)
    values: dict[str, Any] = {}
    for name in names - set(given):
        value, hint = data[name], hints[name]
        if not _matches(value, hint):
            raise ScenarioError(f"{what}: {name} must be {_type_name(hint)}, not {value!r}")
        values[name] = float(value) if hint is float and isinstance(value, int) else value
    return cls(**values, **given)


def _matches(value: object, hint: object) -> bool:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return True
        if isinstance(value, bool):  # JSON true is not the number 1
            if option is bool:
                return True
        elif option is float and isinstance(value, (int, float)):
            return True
        elif isinstance(option, type) and option is not type(None) and isinstance(value, option):
            return True
    return False


def _type_name(hint: object) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _mapping(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{what} is not an object")
    return value


def _exact_keys(data: Mapping[str, object], names: set[str], what: str) -> None:
    missing, unknown = sorted(names - set(data)), sorted(set(data) - names)
    if missing:
        raise ScenarioError(f"{what} lacks {', '.join(missing)}")
    if unknown:
        raise ScenarioError(f"{what} has unknown {', '.join(unknown)}")
