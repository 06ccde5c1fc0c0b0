"""The test author's entry point -- a machine, a fault, a verdict -- and the pytest plugin the lab's own suite uses.

    from repro.testing import ConstrainedHost, inject, verify
    with ConstrainedHost("fly-256", preset="ns506") as machine:
        machine.start_workload(seed=7)
        machine.wait_for_acks(200)
        inject(machine, "sigint")           # any fault the CLI takes: "sigkill@in-write", "oom", ...
        result = verify(machine)
        assert result.integrity == "ok" and result.lost_acked == 0

As a pytest plugin (``pytest_plugins = ["repro.testing"]``) it gives ``lab_image`` (the
lab image, built from the installed code once per session) and ``constrained_host``: a
factory whose machines are removed after the test, whatever happens.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, TypeVar

try:  # the test API (ConstrainedHost, inject, verify) needs no pytest; only the plugin's fixtures do
    from pytest import fixture
except ModuleNotFoundError:  # pragma: no cover - an installation without the `test` extra
    def fixture(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        """Without pytest the fixtures stay plain functions (``@fixture`` or ``@fixture(...)``)."""
        return args[0] if args and callable(args[0]) else (lambda function: function)

from repro.errors import LabError, ScenarioError
from repro.faults import FAULTS, FaultOutcome
from repro.ledger import Ledger, parse_lines
from repro.machine.disk import DataDisk
from repro.machine.container import ConstrainedHost as _Machine, StopReport
from repro.machine.recovery import recover_disk
from repro.machine.restart import restart
from repro.oracle.verdicts import Judgement, judge, lab_error
from repro.scenario import DEFAULT_PROFILE, FaultSpec, FaultStep, Scenario, get_profile, with_fs
from repro.scenario.stores import OWN_SETTINGS, StoreSpec
from repro.sqlite import runtime as sqlite_runtime
from repro.verify import crosscheck
from repro.verify.facts import ProbeFacts

__all__ = ["ConstrainedHost", "DataDisk", "StopReport", "VerifyResult", "constrained_host", "fault_step", "inject",
           "lab_image", "verify"]


class ConstrainedHost(_Machine):
    """The test API's machine: repro.machine.container.ConstrainedHost with the CLI's defaults and refusals.

    A foreign store (``store_path``) runs its own settings, as ``repro run --store-path`` does; a ``preset`` with it
    is refused unless ``lab_settings=True`` says the store reads the lab's HERMES_STATE_* settings (the CLI finds
    that out by importing it; a preset a store ignores would test something else). ``faults`` names the faults
    the test will inject: FUSE is requested when one needs it (power loss), as the CLI does for its trials.
    ``fs="ext4"`` (or xfs, btrfs, with options as --fs takes them) puts the store on that kernel filesystem, as
    ``repro run --fs`` does: FUSE comes with it, and ``verify`` lets the kernel recover it first."""

    def __init__(self, profile: Any = DEFAULT_PROFILE, *, preset: str | None = None, store_path: str | None = None,
                 lab_settings: bool = False, faults: tuple[str, ...] | list[str] = (), fuse: bool = False,
                 fs: str | None = None, **kwargs: Any) -> None:
        if store_path is not None and preset is not None and preset != OWN_SETTINGS and not lab_settings:
            raise ScenarioError(f"preset {preset!r} with store_path: a foreign store runs its own settings (as "
                                "`repro run --store-path` does); pass lab_settings=True if it reads the lab's "
                                "HERMES_STATE_* settings, or leave preset out")
        chosen = preset or (OWN_SETTINGS if store_path is not None else StoreSpec().preset)
        needs_fuse = fuse or fs is not None or any(FaultSpec.parse(f).name.value == "power-loss" for f in faults)
        if fs is not None:
            profile = with_fs(get_profile(profile) if isinstance(profile, str) else profile, fs)
        super().__init__(profile, preset=chosen, store_path=store_path, fuse=needs_fuse, **kwargs)


_F = TypeVar("_F", bound=Callable[..., Any])


def _takes_host(function: _F) -> _F:
    """The machine was the keyword ``host`` before the glossary's rename (machine, not host): ``host=`` still
    works, passed on as ``machine`` with a DeprecationWarning."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "host" in kwargs:
            if args or "machine" in kwargs:
                raise TypeError(f"{function.__name__}() got the machine twice (host= is machine=)")
            warnings.warn(f"{function.__name__}(host=...) is deprecated: pass the machine as machine=",
                          DeprecationWarning, stacklevel=2)
            kwargs["machine"] = kwargs.pop("host")
        return function(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


# The faults ``inject`` fired on each machine, for ``verify``'s default (the machine itself knows no faults).
_fired: "weakref.WeakKeyDictionary[ConstrainedHost, list[str]]" = weakref.WeakKeyDictionary()


@_takes_host
def inject(machine: ConstrainedHost, fault: str, *, seed: int = 0) -> FaultOutcome:
    """Fire a fault on a running machine, written as on the command line (``sigterm@acks=200``);
    its trigger is resolved from ``seed`` as a trial's is. Returns what it did."""
    step = fault_step(machine, fault, seed=seed)
    if step.name.value == "power-loss" and not machine.fuse:
        raise ScenarioError("power-loss needs the machine's FUSE filesystem: make it with faults=['power-loss'] "
                            "(or fuse=True) before it starts")
    outcome = FAULTS[step.name].inject(machine, step)
    _fired.setdefault(machine, []).append(step.name.value)
    return outcome


@_takes_host
def fault_step(machine: ConstrainedHost, fault: str, *, seed: int = 0) -> FaultStep:
    """A fault written as on the command line, its trigger resolved from ``seed`` as a trial's is."""
    return Scenario(machine.profile, (FaultSpec.parse(fault),), machine.store, seed, "t1").schedule()[0]


@dataclass(frozen=True)
class VerifyResult:
    """What the restarted machine found, and the oracle's verdict on it."""

    ledger: Ledger = field(repr=False)  # the whole ledger: repr would be hundreds of KB
    facts: ProbeFacts
    judgement: Judgement
    probe_output: str = field(repr=False)
    kept: Mapping[str, str] = field(default_factory=dict)  # the crash state kept as evidence: name -> sha256

    def __repr__(self) -> str:
        """One short line (the facts hold every row read back: tens of KB): what a failed assert should show."""
        return (f"VerifyResult(verdict={self.verdict!r}, integrity={self.integrity!r}, acked={self.acked}, "
                f"lost_acked={self.lost_acked}, phantom={self.phantom}, reason={self.judgement.reason[:200]!r})")

    @property
    def verdict(self) -> str:
        return self.judgement.verdict.value

    @property
    def integrity(self) -> str:
        ver = self.judgement.verification
        return ver.health.integrity if ver is not None else "unknown"

    @property
    def acked(self) -> int:
        ver = self.judgement.verification
        return ver.acked if ver is not None else 0

    @property
    def lost_acked(self) -> int:
        ver = self.judgement.verification
        return ver.lost_acked if ver is not None else 0

    @property
    def phantom(self) -> int:
        ver = self.judgement.verification
        return ver.phantom if ver is not None else 0


@_takes_host
def verify(machine: ConstrainedHost, faults: tuple[str, ...] | None = None, *, lazy_dirs: bool = False,
           locks_dropped: bool = False) -> VerifyResult:
    """Reopen the database in a restarted machine and judge it against the ledger. ``faults``
    default to those ``inject`` fired (a machine still running is killed: sigkill-machine). On a --fs machine
    the kernel recovers the filesystem first (repro/machine/recovery.py), as a trial's restart does."""
    if machine.fs is not None:
        if machine.is_running():
            machine.kill()
        recover_disk(machine)
    restarted = restart(machine)
    lines = machine.output()
    ledger = parse_lines(lines)
    names = faults if faults is not None else tuple(_fired.get(machine, ())) or ("sigkill-machine",)
    facts = restarted.facts
    problems = crosscheck.channel_problems(lines) + crosscheck.ledger_problems(ledger, lines, crosscheck.Witnesses(
        facts=facts, page_cache_lost="power-loss" in names))
    lazy_dirs = lazy_dirs or (machine.fs is not None and "power-loss" in names)  # a real filesystem: lazy entries
    try:  # as the pipeline's judge phase: the SQLite asked for must be the one every process ran
        sqlite_runtime.check_in_force(machine.sqlite, {**sqlite_runtime.machine_reports(lines),
                                                       "verifier": (facts.sqlite_version, facts.sqlite_source_id)})
    except LabError as exc:
        problems.append(str(exc))
    if problems:  # as a trial: evidence that disagrees with itself is never judged
        judgement = lab_error(crosscheck.disagreement(problems))
    else:
        judgement = judge(ledger, restarted.facts, names, lazy_dirs=lazy_dirs, locks_dropped=locks_dropped)
    return VerifyResult(ledger=ledger, facts=restarted.facts, judgement=judgement, probe_output=restarted.output,
                        kept=restarted.kept)


@fixture(scope="session")
def lab_image() -> str:
    """The lab image, built once per session if it is missing or stale (its context hash label
    differs from the code under test), so that it holds the code under test."""
    from repro.machine import engine

    return engine.ensure_image(engine.client()).image


@fixture
def constrained_host(lab_image: str) -> Iterator[Callable[..., ConstrainedHost]]:
    """Make machines (``constrained_host("fly-256", preset="legacy")``) removed after the test."""
    made: list[ConstrainedHost] = []

    def make(profile: str = DEFAULT_PROFILE, **kwargs: object) -> ConstrainedHost:
        kwargs.setdefault("image", lab_image)
        machine = ConstrainedHost(profile, **kwargs)  # type: ignore[arg-type]
        made.append(machine)
        return machine

    yield make
    for machine in made:
        machine.remove()
