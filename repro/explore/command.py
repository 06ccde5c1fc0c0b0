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
    from repro.explore.runner import AnyModel, AnySpace, Exploration
    from repro.explore.space import Selection, StateSpace
    from repro.explore.tracedir import TraceDir
    from repro.filesystems import FsSpec
    from repro.options import ExploreOptions
    from repro.scenario import MachineProfile, StoreSpec, WorkloadSpec

DEFAULT_OPS = 150
DEFAULT_BUDGET = 2000
DEFAULT_SHRINK = 16  # findings per model shrunk to an ordering (repro/explore/orderings.py)
MAX_OPS = 10_000  # a recording's machine is given 60 s + 0.5 s per operation; its states grow with it
MAX_RATE = 10_000.0  # operations per second: past what any machine here does (0 is flat out)
MAX_REOPENS = 100  # --recovery: each reopen is a recording machine of its own


def _check_numbers(opts: ExploreOptions) -> None:
    """The numeric options, before anything is read or any container starts."""
    check_jobs(opts.jobs)
    if opts.budget < 1:
        raise ScenarioError("--budget must be at least 1")
    if not 0 <= opts.shrink <= 1000:
        raise ScenarioError("--shrink must be from 0 to 1,000")
    if not 0 <= opts.recovery <= MAX_REOPENS:
        raise ScenarioError(f"--recovery must be from 0 to {MAX_REOPENS} states to reopen")
    if opts.recovery and (opts.fs or opts.materialize or opts.compare_models):
        raise ScenarioError("--recovery reopens file-level crash states of an exploration: not with --fs, "
                            "--materialize or --compare-models")
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
    if opts.reproducible and not (opts.record or opts.compare_models):
        raise ScenarioError("--reproducible is how a trace is recorded: give it with --record")
    if opts.fs and not opts.record:
        raise ScenarioError("--fs is how a trace is recorded: give it with --record (a recorded trace says its own)")
    parse_models(opts.models, block_level=bool(opts.fs) if opts.record else None)  # names first, the trace's kind later
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
        models = parse_models(opts.models, block_level=recording.fs is not None)
    else:
        trace = TraceDir.open(opts.trace_dir)
        recorded_store(trace)  # a recording is data: the store it names must be a store directory
        models = parse_models(opts.models, block_level=trace.recording.block_level)
        from repro.explore.second import read_first

        read_first(trace.path)  # a reopen's trace: its first.json is data, checked before the sandbox reads it
        if opts.recovery:
            from repro.explore.reopen import require_reopenable

            require_reopenable(trace)  # the reopens run the recording's store: its settings must be the lab's
        if trace.recording.block_level:
            from repro.explore.runner import require_devices

            require_devices(1)
    target = outdir.plan(opts.out, RUN_ID, force=opts.force, prefix="explore-")
    if trace is not None and target.explicit and trace.path.is_relative_to(target.path.resolve()):
        raise ScenarioError(f"the trace {trace.path} is inside --out {target.path}: give another --out (the "
                            "reports of an exploration never go where its trace is read from)")
    from repro.machine import engine
    from repro.machine.labels import owner

    cli = engine.client()
    try:
        image = _image(cli, opts.image)
        if recording is not None and recording.fs is not None:
            require_programs(image, (recording.fs,))
        out = outdir.claim(target, RUN_ID)
        if recording is not None:
            trace = _record(recording, seed, out, command, image)
        assert trace is not None
        reopens = _Reopens(opts.recovery, _profile(opts)) if opts.recovery else None
        return _explore(trace, models, opts.budget, seed, opts.jobs, out, image, opts.shrink, reopens)
    finally:
        engine.cleanup(cli, owner=owner())


def _image(cli: DockerClient, name: str | None) -> str:
    """The image of the recording machine and of the sandbox (decided in one place: engine.trial_image)."""
    from repro.machine import engine

    return engine.trial_image(cli, name)


def parse_models(text: str, *, block_level: bool | None) -> tuple[AnyModel, ...]:
    """--models for a trace: the file-level models, or for one recorded with --fs the block-level ones
    (``block_level`` None: either, as long as every name is one of them)."""
    from repro.explore.blockspace import BlockModel

    if block_level is None and text.strip() not in ("all", "block") and all(
            p.strip().startswith("block-") for p in text.split(",") if p.strip()):
        block_level = True
    if block_level:
        return BlockModel.parse_list(text)
    if any(part.strip().startswith("block-") for part in text.split(",")):
        raise ScenarioError("the block-level models explore a trace recorded with --fs; this one was recorded on "
                            "the lossy filesystem directly")
    return PersistenceModel.parse_list(text)


@dataclass(frozen=True)
class _Recording:
    """What --record will run, checked before any container starts."""

    profile: MachineProfile
    store: StoreSpec
    workload: WorkloadSpec
    ops: int
    fs: FsSpec | None = None
    loops: tuple[str, ...] = ()
    reproducible: bool = False


def require_programs(image: str, systems: tuple[FsSpec, ...]) -> None:
    """ScenarioError when the image lacks a filesystem's mkfs (or the tools lab-blockfs runs), before any machine."""
    from repro.machine import limits

    needed = sorted({fs.kind.mkfs[0] for fs in systems} | {"unshare", "nsenter", "mount", "losetup"})
    missing = limits.image_has_programs(image, needed)
    if missing:
        raise ScenarioError(f"the image {image} has no {', '.join(missing)}: --fs {systems[0].kind.value} needs them "
                            "(the lab's image has e2fsprogs, xfsprogs, btrfs-progs and util-linux)")


def _filesystem(text: str, profile: MachineProfile) -> tuple[FsSpec, tuple[str, ...]]:
    """--fs, checked before any container starts: known, in this kernel, fits the disk, a free loop device."""
    from repro.filesystems import parse
    from repro.machine import engine, loops

    fs = parse(text)
    if not loops.kernel_has(fs.kind.value):
        raise ScenarioError(f"this machine's kernel has no {fs.kind.value} (not in /proc/filesystems): load its module "
                            f"(modprobe {fs.kind.value}) or choose another --fs")
    fs.check_size(profile.disk)
    return fs, loops.require_devices(str(engine.client().api.base_url), 1)


@dataclass(frozen=True)
class _Reopens:
    """--recovery: how many states are reopened, on which machine."""

    count: int
    profile: MachineProfile


def _profile(opts: ExploreOptions) -> MachineProfile:
    from repro.prepare import with_disk
    from repro.scenario import get_profile

    return with_disk(get_profile(opts.profile), opts.disk_size)


def _recording(opts: ExploreOptions) -> _Recording:
    from repro.scenario import OWN_SETTINGS, StoreSpec

    profile = _profile(opts)
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
    fs, devices = _filesystem(opts.fs, profile) if opts.fs else (None, ())
    return _Recording(profile, store, opts.workload.spec(), opts.ops, fs, devices, opts.reproducible)


def _record(plan: _Recording, seed: int, out: pathlib.Path, command: str, image: str) -> TraceDir:
    from repro.explore.record import record

    dest = out / "trace"
    dest.mkdir()  # the report directory is this run's (outdir.claim): its trace/ is new
    where = f" below {plan.fs.label}" if plan.fs is not None else ""
    print(f"recording {plan.ops} operations on {plan.profile.name}{where} ({plan.store.label}), seed {seed} into "
          f"{dest}", file=sys.stderr)
    return record(profile=plan.profile, store=plan.store, workload=plan.workload, ops=plan.ops, seed=seed,
                  dest=dest, image=image, source=command, fs=plan.fs, loops=plan.loops, reproducible=plan.reproducible)


def _explore(trace: TraceDir, models: tuple[AnyModel, ...], budget: int, seed: int, jobs: int,
             out: pathlib.Path, image: str, shrink: int = DEFAULT_SHRINK, reopens: _Reopens | None = None) -> int:
    from rich.console import Console

    from repro.explore.report import print_report, write_all
    from repro.explore.runner import explore

    err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

    def on_start(space: AnySpace, selections: list[Selection]) -> None:
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
    if shrink and not trace.recording.block_level:  # orderings are of file-level operations
        run = _orderings(run, models, jobs, image, shrink)  # type: ignore[arg-type]
    if reopens is not None:
        import dataclasses

        from repro.explore.reopen import reopen_states

        err.print(f"[bold]crash during recovery[/]: reopening {reopens.count} state(s) on {reopens.profile.name}")
        run = dataclasses.replace(run, second=reopen_states(run, count=reopens.count, profile=reopens.profile,
                                                            out=out, image=image, on_line=err.print))
    print_report(run, Console(width=None if sys.stdout.isatty() else 160))
    written = write_all(out, run)
    err.print(f"{run.states} states in {run.seconds:.1f} s ({run.rate:.0f}/s); reports: "
              f"{', '.join(str(p) for p in written)}; seed {seed}; exit {int(run.exit_code)}")
    return run.exit_code


def _materialize_block(trace: TraceDir, state_id: str, out: pathlib.Path, image: str | None) -> int:
    """A block-level state: its image (state.img, to mount read-only or to fsck), and the sandbox's verdict."""
    from repro.explore.blockspace import BlockModel, BlockSpace
    from repro.explore.materialize import Materializer
    from repro.explore.recover import build_image
    from repro.explore.runner import check_in_sandbox
    from repro.explore.timeline import Timeline
    from repro.machine import engine
    from repro.machine.labels import owner

    name, _, number = state_id.strip().rpartition(":")
    try:
        model = BlockModel(name)
    except ValueError:
        raise ScenarioError(f"{state_id!r}: a state of this trace (recorded with --fs) is "
                            f"{'|'.join(m.value for m in BlockModel)}:INDEX") from None
    if not (number.isascii() and number.isdigit()):
        raise ScenarioError(f"a state is MODEL:INDEX (e.g. block-prefix:120), not {state_id!r}")
    _check_out(out)
    space = BlockSpace(Timeline(trace.reader()), (model,))
    state = space.spec(model, int(number))  # a bad index is bad input, before any container starts
    from repro.explore.runner import require_devices

    require_devices(1)
    cli = engine.client()
    try:
        chosen = _image(cli, image)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="repro-materialize-") as scratch:
            build_image(Materializer(space.timeline, scratch), space, state, str(out / "state.img"))
        results, _ = check_in_sandbox(trace, (model,), [[(model.value, state.index)]], jobs=1, image=chosen)
    finally:
        engine.cleanup(cli, owner=owner())
    return _write_about(out, {**space.describe(state), "fs": trace.recording.fs.label if trace.recording.fs else "",
                              "trace": str(trace.path), "digest": trace.digest()}, results[0])


def _check_out(out: pathlib.Path) -> None:
    if out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise ScenarioError(f"{out} exists and is not an empty directory")


def _write_about(out: pathlib.Path, about: dict[str, object], result: StateResult) -> int:
    about = {**about, "verdict": result.verdict.value, "broken_promise": result.kind.value if result.kind else None,
             "reason": result.reason, "lost": list(result.lost)}
    (out / "state.json").write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")
    for key, value in about.items():
        print(f"{key}: {value}")
    print(f"files: {', '.join(sorted(p.name for p in out.iterdir() if p.name != 'state.json'))} in {out}")
    return ExitCode.OK


def _orderings(run: Exploration, models: tuple[PersistenceModel, ...], jobs: int, image: str,
               shrink: int) -> Exploration:
    """The run with its findings shrunk to orderings: their sibling states checked in a sandbox of their own."""
    import dataclasses

    from repro.explore.orderings import explain
    from repro.explore.runner import check_in_sandbox

    def check(refs: list[tuple[str, int]]) -> list[StateResult]:
        work = [refs[k:k + 200] for k in range(0, len(refs), 200)]
        return check_in_sandbox(run.trace_dir, models, work, jobs=jobs, image=image)[0]

    found = explain(run.space, run.trace_dir.ledger(), run.results, check, limit=shrink,  # type: ignore[arg-type]
                    seed=run.seed)
    return dataclasses.replace(run, orderings=found)


def same_shape(trace: TraceDir, given: str) -> str:
    """A state id as reports print it (``prefix:120@<shape>``) without its shape, once the shape is this trace's
    (ScenarioError when it is another recording's: the same id names another state there)."""
    from repro.explore.runner import split_state_ref

    state, shape = split_state_ref(given)
    if shape and shape != trace.shape():
        raise ScenarioError(f"{given} is a state of a trace of shape {shape}; {trace.path} has shape {trace.shape()}: "
                            "another recording, where the same id names another state")
    return state


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

    trace = TraceDir.open(trace_dir)
    recorded_store(trace)
    state_id = same_shape(trace, state_id)
    if trace.recording.block_level:
        return _materialize_block(trace, state_id, out, image)
    model, index = parse_state_id(state_id)
    _check_out(out)
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
    about = {**describe_state(space, spec), "trace": str(trace.path), "digest": trace.digest()}
    from repro.explore.second import read_first, worse

    first = read_first(trace.path)
    if first is not None:  # a state of a crash during a reopen: judged where the reopened state was
        about.update({"reopened_state": first.state, "its_verdict": first.verdict,
                      "acknowledged_through": first.at.acked, "regressed": list(results[0].regressed),
                      "worse": worse(first, results[0])})
    return _write_about(out, about, results[0])
