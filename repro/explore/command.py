"""`repro explore`: check every crash state of a recorded trace, record one first, or write one state out.

Every input is checked before any container starts (bad input is exit 2); the exit code is the
exploration's: 0 the configuration kept its promises, 1 a state broke one, 3 the lab failed.
The states are checked in the explore sandbox (repro/explore/sandbox.py), never in this process:
the store under test is imported only there.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import random
import shlex
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from repro.errors import ExitCode, ScenarioError
from repro.explore.models import PersistenceModel
from repro.scenario.matrix import check_jobs

if TYPE_CHECKING:
    from docker.client import DockerClient

    from repro.explore.check import StateResult
    from repro.explore.runner import Exploration
    from repro.explore.space import Selection, StateSpace
    from repro.explore.tracedir import TraceDir
    from repro.options import ExploreOptions
    from repro.scenario import MachineProfile, StoreSpec, WorkloadSpec

DEFAULT_OPS = 150
DEFAULT_BUDGET = 2000
DEFAULT_SHRINK = 16  # findings per model shrunk to an ordering (repro/explore/orderings.py)
MAX_OPS = 10_000  # a recording's machine is given 60 s + 0.5 s per operation; its states grow with it
MAX_RATE = 10_000.0  # operations per second: past what any machine here does (0 is flat out)


def _check_numbers(opts: ExploreOptions) -> None:
    """The numeric options, before anything is read or any container starts."""
    check_jobs(opts.jobs)
    if opts.budget < 1:
        raise ScenarioError("--budget must be at least 1")
    if not 0 <= opts.shrink <= 1000:
        raise ScenarioError("--shrink must be from 0 to 1,000")
    if not 1 <= opts.ops <= MAX_OPS:
        raise ScenarioError(f"--ops must be from 1 to {MAX_OPS:,}")
    rate = opts.workload.rate
    if not (math.isfinite(rate) and 0 <= rate <= MAX_RATE):
        raise ScenarioError(f"--rate must be from 0 (flat out) to {MAX_RATE:,.0f} operations per second, "
                            f"not {rate}")


def run(opts: ExploreOptions, argv: list[str]) -> int:
    from repro.explore.sandbox import recorded_store
    from repro.explore.tracedir import TraceDir
    from repro.machine.labels import RUN_ID
    from repro.report import outdir

    if bool(opts.record) == bool(opts.trace_dir):
        raise ScenarioError("give a TRACE_DIR to explore, or --record to record one first (not both)")
    models = PersistenceModel.parse_list(opts.models)
    _check_numbers(opts)
    if opts.materialize:
        if not opts.trace_dir or not opts.out:
            raise ScenarioError("--materialize needs a TRACE_DIR and --out DIR")
        return materialize(opts.trace_dir, opts.materialize, pathlib.Path(opts.out), opts.image)
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1, 2**31)
    command = shlex.join(["repro", *argv])
    trace, recording = None, None
    if not opts.trace_dir:  # --record (checked above: one of the two)
        recording = _recording(opts)
    else:
        trace = TraceDir.open(opts.trace_dir)
        recorded_store(trace)  # a recording is data: the store it names must be a store directory
    target = outdir.plan(opts.out, RUN_ID, force=opts.force, prefix="explore-")
    if trace is not None and target.explicit and trace.path.is_relative_to(target.path.resolve()):
        raise ScenarioError(f"the trace {trace.path} is inside --out {target.path}: give another --out (the "
                            "reports of an exploration never go where its trace is read from)")
    from repro.machine import engine
    from repro.machine.labels import owner

    cli = engine.client()
    try:
        image = _image(cli, opts.image)
        out = outdir.claim(target, RUN_ID)
        if recording is not None:
            trace = _record(recording, seed, out, command, image)
        assert trace is not None
        return _explore(trace, models, opts.budget, seed, opts.jobs, out, image, opts.shrink)
    finally:
        engine.cleanup(cli, owner=owner())


def _image(cli: DockerClient, name: str | None) -> str:
    """The image of the recording machine and of the sandbox (decided in one place: engine.trial_image)."""
    from repro.machine import engine

    return engine.trial_image(cli, name)


@dataclass(frozen=True)
class _Recording:
    """What --record will run, checked before any container starts."""

    profile: MachineProfile
    store: StoreSpec
    workload: WorkloadSpec
    ops: int


def _recording(opts: ExploreOptions) -> _Recording:
    from repro.scenario import OWN_SETTINGS, StoreSpec, get_profile

    profile = get_profile(opts.profile)
    if opts.sqlite != "system" or opts.store.sqlite_assisted:
        # the states are checked in a sandbox of the same image, with its SQLite: a recording on
        # another library would be judged by a different one
        raise ScenarioError("repro explore records with the image's own SQLite (--sqlite system): its states are "
                            "checked in a sandbox of the same image, with the image's")
    if opts.store_path:
        from repro.prepare import check_store_path

        check_store_path(opts.store_path)
    settings = opts.store
    store = StoreSpec(opts.preset or (OWN_SETTINGS if opts.store_path else "ns506"), settings.journal_mode,
                      settings.synchronous, os.path.abspath(opts.store_path) if opts.store_path else None,
                      settings.checkpoint_mode, wal_autocheckpoint=settings.wal_autocheckpoint)
    return _Recording(profile, store, opts.workload.spec(), opts.ops)


def _record(plan: _Recording, seed: int, out: pathlib.Path, command: str, image: str) -> TraceDir:
    from repro.explore.record import record

    dest = out / "trace"
    dest.mkdir()  # the report directory is this run's (outdir.claim): its trace/ is new
    print(f"recording {plan.ops} operations on {plan.profile.name} ({plan.store.label}), seed {seed} into {dest}",
          file=sys.stderr)
    return record(profile=plan.profile, store=plan.store, workload=plan.workload, ops=plan.ops, seed=seed,
                  dest=dest, image=image, source=command)


def _explore(trace: TraceDir, models: tuple[PersistenceModel, ...], budget: int, seed: int, jobs: int,
             out: pathlib.Path, image: str, shrink: int = DEFAULT_SHRINK) -> int:
    from rich.console import Console

    from repro.explore.report import print_report, write_all
    from repro.explore.runner import explore

    err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

    def on_start(space: StateSpace, selections: list[Selection]) -> None:
        timeline = space.timeline
        err.print(f"[bold]repro explore[/] {trace.path}: {len(timeline.ops)} operations, "
                  f"{len(timeline.points)} crash points; seed [bold]{seed}[/], budget {budget} per model")
        for sel in selections:
            how = "all of them" if sel.exhaustive else f"a sample of {len(sel.indices)} (seed {seed})"
            err.print(f"  {sel.model.value:<12} {sel.total:>8} states: checking {how}")

    def on_progress(done: int, total: int) -> None:
        if done == total or done % 500 < 50:
            err.print(f"  checked {done}/{total}", end="\r")

    run = explore(trace, models, budget=budget, seed=seed, jobs=jobs, image=image, on_start=on_start,
                  on_progress=on_progress)
    err.print()
    if shrink:
        run = _orderings(run, models, jobs, image, shrink)
    print_report(run, Console(width=None if sys.stdout.isatty() else 160))
    written = write_all(out, run)
    err.print(f"{run.states} states in {run.seconds:.1f} s ({run.rate:.0f}/s); reports: "
              f"{', '.join(str(p) for p in written)}; seed {seed}; exit {int(run.exit_code)}")
    return run.exit_code


def _orderings(run: Exploration, models: tuple[PersistenceModel, ...], jobs: int, image: str,
               shrink: int) -> Exploration:
    """The run with its findings shrunk to orderings: their sibling states checked in a sandbox of their own."""
    import dataclasses

    from repro.explore.orderings import explain
    from repro.explore.runner import check_in_sandbox

    def check(refs: list[tuple[str, int]]) -> list[StateResult]:
        work = [refs[k:k + 200] for k in range(0, len(refs), 200)]
        return check_in_sandbox(run.trace_dir, models, work, jobs=jobs, image=image)[0]

    found = explain(run.space, run.trace_dir.ledger(), run.results, check, limit=shrink, seed=run.seed)
    return dataclasses.replace(run, orderings=found)


def materialize(trace_dir: str, state_id: str, out: pathlib.Path, image: str | None = None) -> int:
    """Write the state's files to ``out`` (which must be empty or new), with state.json saying what it is.
    The files are built here (no store runs for that); the verdict comes from the sandbox."""
    from repro.explore.materialize import Materializer
    from repro.explore.runner import check_in_sandbox, describe_state
    from repro.explore.space import StateSpace, parse_state_id
    from repro.explore.timeline import Timeline
    from repro.explore.sandbox import recorded_store
    from repro.explore.tracedir import TraceDir
    from repro.machine import engine
    from repro.machine.labels import owner

    model, index = parse_state_id(state_id)
    trace = TraceDir.open(trace_dir)
    recorded_store(trace)
    if out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise ScenarioError(f"{out} exists and is not an empty directory")
    space = StateSpace(Timeline(trace.reader()), (model,))
    spec = space.spec(model, index)  # a bad index is bad input, before any container starts
    cli = engine.client()
    try:
        chosen = _image(cli, image)
        with tempfile.TemporaryDirectory(prefix="repro-materialize-") as scratch:
            Materializer(space.timeline, scratch).write(spec, out)
        results, _ = check_in_sandbox(trace, (model,), [[(model.value, index)]], jobs=1, image=chosen)
    finally:
        engine.cleanup(cli, owner=owner())
    result = results[0]
    about = {**describe_state(space, spec), "trace": str(trace.path), "digest": trace.digest(),
             "verdict": result.verdict.value, "broken_promise": result.kind.value if result.kind else None,
             "reason": result.reason, "lost": list(result.lost)}
    (out / "state.json").write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")
    for key, value in about.items():
        print(f"{key}: {value}")
    print(f"files: {', '.join(sorted(p.name for p in out.iterdir() if p.name != 'state.json'))} in {out}")
    return ExitCode.OK
