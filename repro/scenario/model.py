"""What one trial is: machine profile, faults, store, workload and seed, validated up front."""

from __future__ import annotations

import enum
import math
import random
import re
from dataclasses import dataclass, field

from repro.errors import ScenarioError, shown
from repro.oracle.promises import CrashClass
from repro.scenario.profiles import MachineProfile, format_size, parse_size
from repro.scenario.start import StartSpec
from repro.scenario.stores import SYSTEM_SQLITE, StoreSpec
# The workload's part of a scenario is the machine's own object (stdlib, in the image): one name end to end.
from repro.workload.spec import HAZARD_DEFAULTS, MAX_TRIGGER_VALUE, Hazard, HazardName, WorkloadSpec


class FaultName(str, enum.Enum):
    """The fault classes of the beta report (plus power loss, the one kills cannot show)."""

    SIGINT = "sigint"
    SIGTERM = "sigterm"
    SIGKILL = "sigkill"
    SIGKILL_MACHINE = "sigkill-machine"
    OOM = "oom"
    DISK_FILL = "disk-fill"
    DISK_FILL_CLEAR = "disk-fill-clear"
    POWER_LOSS = "power-loss"
    CLEAN_STOP = "clean-stop"  # no fault: a matrix's control per store (the workload, then Fly's ordinary stop)

    @property
    def ends_trial(self) -> bool:
        """Whether the fault ends the machine (FAULT_TRAITS)."""
        return FAULT_TRAITS[self].ends_machine


class Trigger(str, enum.Enum):
    """When a fault fires."""

    ACKS = "acks"  # after N acknowledged writes (seeded N when not given)
    RANDOM = "random"  # at a seeded random moment, in milliseconds after readiness
    IN_WRITE = "in-write"  # while a write is in flight, after N acks, seeded delay in the call
    ON_WRITE = "on-write"  # at the store's next write to its database files after N acks (inotify)
    CHECKPOINT = "checkpoint"  # at its next write to the database file itself (in WAL mode: a checkpoint)


@dataclass(frozen=True)
class FaultTraits:
    """What a fault is as data -- when it fires unless told, what crash it is, whether the machine
    survives it -- read by the scenario, the oracle's table check and the fault classes (repro/faults),
    which add how it fires."""

    default_trigger: Trigger
    crash_class: CrashClass = CrashClass.PROCESS
    ends_machine: bool = True


FAULT_TRAITS: dict[FaultName, FaultTraits] = {
    FaultName.SIGINT: FaultTraits(Trigger.ACKS),
    FaultName.SIGTERM: FaultTraits(Trigger.ACKS),
    FaultName.SIGKILL: FaultTraits(Trigger.ON_WRITE),
    FaultName.SIGKILL_MACHINE: FaultTraits(Trigger.ACKS),
    FaultName.OOM: FaultTraits(Trigger.ACKS),
    FaultName.DISK_FILL: FaultTraits(Trigger.ACKS, ends_machine=False),
    FaultName.DISK_FILL_CLEAR: FaultTraits(Trigger.ACKS, ends_machine=False),
    FaultName.POWER_LOSS: FaultTraits(Trigger.IN_WRITE, CrashClass.POWER_LOSS),
    FaultName.CLEAN_STOP: FaultTraits(Trigger.ACKS),
}


def default_trigger(name: FaultName) -> Trigger:
    """When a fault fires if the user did not say (FAULT_TRAITS)."""
    return FAULT_TRAITS[name].default_trigger


# Options of the power-loss filesystem that a fault may ask for (power-loss:lazy-dirs,torn-writes);
# "record" keeps its trace with the trial's artifacts, for `repro explore`.
POWER_LOSS_OPTIONS = ("lazy-dirs", "torn-writes", "record")
LAZY_DIRS_OPTION, RECORD_OPTION = "lazy-dirs", "record"


def id_safe(text: str) -> str:
    """Text as it appears in a trial id (and so in a path): anything unsafe replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text)


def parse_fault(text: str) -> tuple[FaultName, Trigger | None, int | None]:
    """``sigkill``, ``sigkill@in-write``, ``sigterm@acks=200``, ``oom@random`` -> parts."""
    head, _, when = text.strip().partition("@")
    name = head.partition(":")[0]
    try:
        fault = FaultName(name)
    except ValueError:
        known = ", ".join(f.value for f in FaultName)
        raise ScenarioError(f"unknown fault {shown(name)}; known: {known}") from None
    if not when:
        return fault, None, None
    kind, sep, value = when.partition("=")
    try:
        trigger = Trigger(kind)
    except ValueError:
        raise ScenarioError(f"unknown trigger {shown(kind)} in {shown(text)}; use acks=N, random, in-write, "
                            "on-write or checkpoint") from None
    if sep and not value:
        raise ScenarioError(f"trigger {shown(text)} has '=' but no value: give a whole number or leave out '='")
    if value and not (value.isascii() and value.isdigit()):  # '²'.isdigit() is True, int('²') fails
        raise ScenarioError(f"trigger value in {shown(text)} must be a whole number")
    if value and (len(value) > 12 or int(value) >= MAX_TRIGGER_VALUE):  # the status board's counters are 32-bit
        raise ScenarioError(f"trigger value in {shown(text)} must be below {MAX_TRIGGER_VALUE}")
    return fault, trigger, int(value) if value else None


@dataclass(frozen=True)
class FaultSpec:
    """One fault of a scenario, as the user asked for it."""

    name: FaultName
    trigger: Trigger | None = None  # None: the fault's default
    value: int | None = None
    options: tuple[str, ...] = ()  # power-loss only: lazy-dirs, torn-writes, record

    @classmethod
    def parse(cls, text: str) -> "FaultSpec":
        name, trigger, value = parse_fault(text)
        head = text.strip().partition("@")[0]
        options = tuple(o for o in head.partition(":")[2].split(",") if o)
        for option in options:
            if name is not FaultName.POWER_LOSS or option not in POWER_LOSS_OPTIONS:
                raise ScenarioError(f"unknown option {shown(option)} in {shown(text)}; power-loss takes "
                                    f"{', '.join(POWER_LOSS_OPTIONS)}")
        return cls(name, trigger, value, tuple(sorted(set(options))))

    def __str__(self) -> str:
        text = self.name.value + (":" + ",".join(self.options) if self.options else "")
        if self.trigger is None:
            return text
        return f"{text}@{self.trigger.value}" + (f"={self.value}" if self.value is not None else "")

    @property
    def label(self) -> str:
        """The fault as reports name it: as typed, options included (``power-loss:lazy-dirs`` is another
        configuration than ``power-loss``), but its trigger left out when it is the fault's default and has no
        value (``sigkill`` for ``sigkill@acks``; ``sigkill@checkpoint``, ``sigterm@acks=200``)."""
        name = self.name.value + (":" + ",".join(self.options) if self.options else "")
        if self.trigger is None or (self.trigger is default_trigger(self.name) and self.value is None):
            return name
        return f"{name}@{self.trigger.value}" + (f"={self.value}" if self.value is not None else "")

    @property
    def lossy_args(self) -> str:
        """Arguments for the power-loss filesystem daemon (recording is the machine's business: services.py)."""
        return " ".join(f"--{option}" for option in self.options if option != RECORD_OPTION)


@dataclass(frozen=True)
class FaultStep:
    """A fault with its trigger resolved from the trial seed: exactly what the agent is told."""

    name: FaultName
    trigger: Trigger
    after_acks: int
    after_ms: int
    delay_us: int

    def describe(self) -> str:
        when = {Trigger.ACKS: f"after {self.after_acks} acks",
                Trigger.RANDOM: f"{self.after_ms} ms after ready",
                Trigger.IN_WRITE: f"in a write after {self.after_acks} acks, +{self.delay_us} us",
                Trigger.ON_WRITE: f"at a database write after {self.after_acks} acks, +{self.delay_us} us",
                Trigger.CHECKPOINT: f"in a write to the database file (a checkpoint in WAL mode) after "
                                    f"{self.after_acks} acks, +{self.delay_us} us"}[self.trigger]
        return f"{self.name.value} {when}"


def max_message_size(profile: MachineProfile) -> int:
    """The largest message a machine of this profile can be asked to write: a quarter of its disk or
    memory, whichever is smaller (the workload holds a message in memory and the store on the disk)."""
    return min(profile.disk, profile.memory) // 4


@dataclass(frozen=True)
class Scenario:
    """One trial: everything needed to run it again and get the same fault schedule."""

    profile: MachineProfile
    faults: tuple[FaultSpec, ...]
    store: StoreSpec = field(default_factory=StoreSpec)
    seed: int = 0
    trial_id: str = "t0"
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    start: StartSpec = field(default_factory=StartSpec)  # what the disk holds before the workload starts

    def __post_init__(self) -> None:
        if not self.faults:
            raise ScenarioError("a scenario needs at least one fault")
        names = [f.name for f in self.faults]
        enders = [n for n in names if n.ends_trial]
        if len(enders) > 1:
            raise ScenarioError(f"at most one fault may end the machine, got {', '.join(n.value for n in enders)}")
        if enders and names[-1] is not enders[0]:
            raise ScenarioError(f"{enders[0].value} ends the machine, so it must come last")
        if len(set(names)) != len(names):
            raise ScenarioError("a fault may appear only once per scenario")
        if self.workload.sizes:
            largest, limit = self.workload.size_range()[1], max_message_size(self.profile)
            if largest > limit:
                raise ScenarioError(f"--message-size MAX {format_size(largest)} does not fit a {self.profile.name} "
                                    f"machine: at most {format_size(limit)}, a quarter of its disk "
                                    f"({format_size(self.profile.disk)}) or memory ({format_size(self.profile.memory)})")
        if self.profile.fs is not None:
            other = [f.name.value for f in self.faults if f.name not in (FaultName.POWER_LOSS, FaultName.CLEAN_STOP)]
            if other:
                raise ScenarioError(f"--fs {self.profile.fs} takes power-loss (and the no-fault control) for now, not "
                                    f"{', '.join(other)}: a process fault on a kernel filesystem is not modelled yet")
            if any(f.lossy_args for f in self.faults):
                raise ScenarioError(f"--fs {self.profile.fs}: power-loss options (lazy-dirs, torn-writes, record) are "
                                    "the lossy filesystem's own model; below a kernel filesystem the kernel decides")
        if self.needs_fuse and self.workload.hazard_every(HazardName.CRON):
            raise ScenarioError("--hazard cron cannot be judged under power loss: two writers' ledgers have no "
                                "common commit order to tell a lost tail from a lost middle")

    @property
    def seed_id(self) -> str:
        """The trial id every seed of the trial derives from: the id without its SQLite, so that trial N
        runs the same workload and fault schedule on every library (same seeds, side by side). A
        trial on the system library keeps its id, and so the seeds it always had."""
        if self.store.sqlite_label == SYSTEM_SQLITE:
            return self.trial_id
        return self.trial_id.replace(id_safe(f",sqlite={self.store.sqlite_label}"), "")

    @property
    def fault_label(self) -> str:
        return "+".join(str(f) for f in self.faults)

    @property
    def crash_class(self) -> CrashClass:
        """The strongest crash class among the faults (a power cut beats a process crash)."""
        classes = {FAULT_TRAITS[f.name].crash_class for f in self.faults}
        return CrashClass.POWER_LOSS if CrashClass.POWER_LOSS in classes else CrashClass.PROCESS

    @property
    def needs_fuse(self) -> bool:
        """Only a power cut needs the lossy filesystem, and so FUSE rights."""
        return self.crash_class is CrashClass.POWER_LOSS

    @property
    def fuse(self) -> bool:
        """The machine gets the lossy filesystem: for a power cut, and under a --fs disk (whose image lies on it)."""
        return self.needs_fuse or self.profile.fs is not None

    @property
    def lossy_args(self) -> str:
        return " ".join(f.lossy_args for f in self.faults if f.name is FaultName.POWER_LOSS)

    @property
    def lazy_dirs(self) -> bool:
        """Directory entries durable only at a directory fsync (``power-loss:lazy-dirs``, or a real filesystem under
        --fs, which keeps them lazily: docs/findings.md): what the oracle judges by."""
        if self.profile.fs is not None and self.needs_fuse:
            return True
        return any(LAZY_DIRS_OPTION in f.options for f in self.faults if f.name is FaultName.POWER_LOSS)

    @property
    def records(self) -> bool:
        """The power-loss filesystem records a trace (``power-loss:record``) for `repro explore`."""
        return any(RECORD_OPTION in f.options for f in self.faults if f.name is FaultName.POWER_LOSS)

    def schedule(self) -> tuple[FaultStep, ...]:
        """Resolve every trigger from the seed (string seeding is stable across runs)."""
        rng = random.Random(f"{self.seed}:{self.seed_id}:{self.fault_label}")
        steps: list[FaultStep] = []
        for spec in self.faults:
            trigger = spec.trigger or default_trigger(spec.name)
            acks = spec.value if spec.value is not None and trigger is not Trigger.RANDOM else rng.randint(40, 400)
            after_ms = spec.value if spec.value is not None and trigger is Trigger.RANDOM else rng.randint(200, 2000)
            delays = {Trigger.IN_WRITE: rng.randint(0, 400), Trigger.ON_WRITE: rng.randint(0, 40)}
            delays[Trigger.CHECKPOINT] = delays[Trigger.ON_WRITE]  # no draw of its own: older schedules stay
            delay_us = delays.get(trigger, 0)
            if steps and spec.value is None:  # a later fault fires right after the one before it
                acks = 0
            if trigger is Trigger.RANDOM and spec.value is not None:
                acks = 0  # @random=MS is a moment on the clock (the hunt's duration), whatever the store managed
            steps.append(FaultStep(spec.name, trigger, acks, after_ms if trigger is Trigger.RANDOM else 0, delay_us))
        return tuple(steps)
