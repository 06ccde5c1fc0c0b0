"""The matrix: profiles x fault combinations x stores x trials, each trial with a stable id and seed."""

from __future__ import annotations

import dataclasses
import random
from typing import Sequence

from repro.errors import ScenarioError
from repro.scenario.model import FaultSpec, Scenario, WorkloadSpec, id_safe
from repro.scenario.profiles import MachineProfile, get_profile
from repro.scenario.stores import StoreSpec


def trial_seed(run_seed: int, trial_id: str) -> int:
    """The workload's seed for one trial, derived from the run's seed (string seeding is stable)."""
    return random.Random(f"{run_seed}:{trial_id}").getrandbits(31)


def trial_id(scenario: Scenario, number: int) -> str:
    """``profile.faults.store[.hz=hazards].number``, with anything unsafe in a path replaced."""
    hazards = "+".join(scenario.workload.hazard_labels)
    raw = ".".join([scenario.profile.name, scenario.fault_label, scenario.store.label,
                    *([f"hz={hazards}"] if hazards else []), str(number)])
    return id_safe(raw)


# More trials than any run finishes (at a few seconds each, 100,000 is days): a typo, refused up front.
MAX_TRIALS = 100_000


MAX_JOBS = 64


def check_jobs(jobs: int) -> None:
    """ScenarioError unless ``jobs`` (trials run at once, or explore's workers) is from 1 to MAX_JOBS."""
    if not 1 <= jobs <= MAX_JOBS:
        raise ScenarioError(f"--jobs must be from 1 to {MAX_JOBS}")


def check_trial_count(trials: int, groups: int = 1) -> None:
    """ScenarioError unless ``trials`` per group, times ``groups``, is between 1 and MAX_TRIALS."""
    if trials < 1:
        raise ScenarioError("--trials must be at least 1")
    if trials * max(1, groups) > MAX_TRIALS:
        raise ScenarioError(f"--trials {trials} x {groups} scenario(s) is {trials * groups:,} trials; at most "
                            f"{MAX_TRIALS:,} per run")


def expand(profiles: Sequence[str | MachineProfile], fault_combos: Sequence[tuple[str, ...]], stores: Sequence[StoreSpec],
           trials: int, seed: int, workload: WorkloadSpec | None = None) -> list[Scenario]:
    """The matrix: every (profile, fault combination, store) times ``trials``, with stable ids."""
    check_trial_count(trials, len(profiles) * len(fault_combos) * len(stores))  # before any list is made
    workload = workload or WorkloadSpec()
    scenarios = []
    for profile in profiles:
        for combo in fault_combos:
            for store in stores:
                machine = get_profile(profile) if isinstance(profile, str) else profile
                proto = Scenario(machine, tuple(FaultSpec.parse(f) for f in combo), store, seed,
                                 workload=workload)
                scenarios += [dataclasses.replace(proto, trial_id=trial_id(proto, number))
                              for number in range(1, trials + 1)]
    seen: set[str] = set()
    for scenario in scenarios:  # results, artifacts and comparisons are keyed by trial id
        if scenario.trial_id in seen:
            raise ScenarioError(f"two trials would share the id {scenario.trial_id!r}: the same profile, fault "
                                "or store is listed twice")
        seen.add(scenario.trial_id)
    return scenarios
