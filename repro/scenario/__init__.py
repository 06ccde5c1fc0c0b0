"""What one trial is -- machine profile, faults, store, workload, seed -- and how trials are made and replayed."""

from __future__ import annotations

from repro.scenario.matrix import MAX_JOBS, MAX_TRIALS, check_jobs, check_trial_count, expand, trial_id, trial_seed
from repro.scenario.model import (
    FAULT_TRAITS,
    HAZARD_DEFAULTS,
    MAX_TRIGGER_VALUE,
    POWER_LOSS_OPTIONS,
    FaultName,
    FaultTraits,
    FaultSpec,
    FaultStep,
    Hazard,
    HazardName,
    Scenario,
    Trigger,
    WorkloadSpec,
    default_trigger,
    parse_fault,
)
from repro.scenario.profiles import DEFAULT_PROFILE, PROFILES, MachineProfile, format_size, get_profile, parse_size, with_fs
from repro.scenario.replay import SCENARIO_FORMAT, replay_command, replay_script, scenario_from_dict, scenario_to_dict
from repro.scenario.start import StartSpec
from repro.scenario.stores import CHECKPOINT_MODES, JOURNAL_MODES, OWN_SETTINGS, PRESETS, SYNCHRONOUS, StoreSpec

__all__ = [
    "CHECKPOINT_MODES", "DEFAULT_PROFILE", "FAULT_TRAITS", "FaultTraits", "HAZARD_DEFAULTS", "JOURNAL_MODES", "MAX_TRIALS", "MAX_TRIGGER_VALUE",
    "POWER_LOSS_OPTIONS", "PRESETS", "PROFILES", "SCENARIO_FORMAT", "SYNCHRONOUS",
    "FaultName", "FaultSpec", "FaultStep", "Hazard", "HazardName", "MachineProfile", "OWN_SETTINGS", "Scenario",
    "StartSpec", "StoreSpec",
    "Trigger", "WorkloadSpec",
    "MAX_JOBS", "check_jobs", "check_trial_count", "default_trigger", "expand", "format_size", "get_profile", "with_fs", "parse_fault", "parse_size",
    "replay_command", "replay_script",
    "scenario_from_dict", "scenario_to_dict", "trial_id", "trial_seed",
]
