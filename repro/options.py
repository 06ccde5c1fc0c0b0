"""Each command's options as one frozen, typed object, made once from argparse at the CLI's edge (repro/cli.py): nothing below it sees a Namespace.

A field takes the value of the parser's option of the same name (its ``dest``); a field whose type
is one of the groups below (store, workload, start) is filled the same way from the same options.
Adding an option is: ``add_argument`` in cli.py, a field of the same name here, and its use.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, Union

if TYPE_CHECKING:
    from repro.scenario import Hazard, WorkloadSpec


@dataclass(frozen=True)
class StoreOptions:
    """How every store of a command is set, beside which stores they are: overrides of its preset, the
    SQLite build's kind and a foreign store's requirements."""

    journal_mode: str | None = None
    synchronous: str | None = None
    checkpoint_mode: str | None = None
    wal_autocheckpoint: int | None = None
    sqlite_assisted: bool = False
    store_requirements: str | None = None


@dataclass(frozen=True)
class WorkloadOptions:
    """How the gateway-like workload drives the store: --rate, --mix, --message-size (as given). Each field
    is the WorkloadSpec field of the same name (the machine reads it under that name too)."""

    rate: float = 0.0
    mix: str = ""
    sizes: str = ""

    def spec(self, hazards: tuple[Hazard, ...] = (), linger_ms: int = 0) -> WorkloadSpec:
        """The scenario's workload (checked), with the hazards and slow shutdown a run adds: the one place
        these options become one, for run, matrix, hunt and explore's recording alike."""
        from repro.scenario import WorkloadSpec

        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return WorkloadSpec(**given, hazards=hazards, linger_ms=linger_ms)


@dataclass(frozen=True)
class StartOptions:
    """What the machine's disk starts with: a copied or grown database, its size, a filler."""

    from_db: str | None = None
    initial_size: str | None = None
    disk_size: str | None = None
    disk_fill_to: int | None = None
    fs: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOptions:
    """`repro run`, `matrix` and `hunt`. run names one profile, fault list, store and SQLite; matrix and
    hunt name comma-separated lists of each (the fields in the plural)."""

    command: str = "run"
    trials: int | str = 3  # a count, or "auto": as many as bound a rate below target_rate (commands.trial_count)
    target_rate: str | None = None
    seed: int | None = None
    jobs: int = 1
    out: str | None = None
    force: bool = False
    json: str | None = None
    fail_on: tuple[str, ...] | None = None
    shard: str | None = None
    image: str | None = None
    linger_ms: int = 0
    hazard: tuple[str, ...] | None = None
    store: StoreOptions = field(default_factory=StoreOptions)
    workload: WorkloadOptions = field(default_factory=WorkloadOptions)
    start: StartOptions = field(default_factory=StartOptions)
    # run
    profile: str = ""
    fault: tuple[str, ...] | None = None
    preset: str | None = None
    store_path: str | None = None
    store_ref: str | None = None
    sqlite: str = "system"
    trial_id: str | None = None
    # matrix and hunt
    profiles: str = ""
    faults: str = ""
    presets: str | None = None
    store_paths: str = ""
    store_refs: str = ""
    sqlites: str = "system"
    duration: int = 0  # hunt (its parser's default: HUNT.duration_s)


@dataclass(frozen=True)
class ExploreOptions:
    """`repro explore`: a trace to explore, or what to record first; the search's bounds."""

    trace_dir: str | None = None
    record: bool = False
    profile: str = ""
    preset: str | None = None
    store_path: str | None = None
    sqlite: str = "system"
    store: StoreOptions = field(default_factory=StoreOptions)
    ops: int = 150
    workload: WorkloadOptions = field(default_factory=WorkloadOptions)
    models: str = "all"
    budget: int = 2000
    shrink: int = 16
    seed: int | None = None
    jobs: int = 2
    out: str | None = None
    force: bool = False
    image: str | None = None
    materialize: str | None = None
    fs: str | None = None
    disk_size: str | None = None
    compare_models: bool = False
    reproducible: bool = False
    configs: str = "all"
    filesystems: tuple[str, ...] = ("ext4",)
    recovery: int = 0


@dataclass(frozen=True)
class ReplayOptions:
    """`repro replay RUN_DIR TRIAL_ID`."""

    run_dir: str
    trial_id: str


@dataclass(frozen=True)
class MergeOptions:
    """`repro merge RUN_DIR... --out DIR`."""

    run_dirs: tuple[str, ...]
    out: str
    force: bool = False
    fail_on: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ReportOptions:
    """`repro report RUN_DIR [--fail-on CONDITION]`."""

    run_dir: str
    fail_on: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CleanOptions:
    """`repro clean`: which runs' objects, or which caches and images."""

    run: str | None = None
    stale: bool = False
    force: bool = False
    caches: bool = False
    images: bool = False
    all: bool = False
    older_than: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class BareOptions:
    """A command without options of its own (image build, doctor, sqlite list)."""

    command: str


Options = Union[RunOptions, ExploreOptions, ReplayOptions, MergeOptions, ReportOptions, CleanOptions, BareOptions]

_BY_COMMAND: dict[str, type[Any]] = {
    "run": RunOptions, "matrix": RunOptions, "hunt": RunOptions, "explore": ExploreOptions,
    "replay": ReplayOptions, "merge": MergeOptions, "report": ReportOptions, "clean": CleanOptions,
}
_GROUPS = (StoreOptions, WorkloadOptions, StartOptions)

T = TypeVar("T")


def from_namespace(args: argparse.Namespace) -> Options:
    """The options of the command argparse parsed (``args.command``), typed and frozen."""
    kind = _BY_COMMAND.get(args.command, BareOptions)
    made: Options = _fill(kind, vars(args))
    return made


def _fill(kind: type[T], values: dict[str, Any]) -> T:
    """``kind`` from the parsed values of the same names; a group field from the same values; lists as tuples."""
    hints = typing.get_type_hints(kind)
    given: dict[str, Any] = {}
    for f in dataclasses.fields(kind):  # type: ignore[arg-type]
        if hints[f.name] in _GROUPS:
            given[f.name] = _fill(hints[f.name], values)
        elif f.name in values:
            value = values[f.name]
            given[f.name] = tuple(value) if isinstance(value, list) else value
    return kind(**given)
