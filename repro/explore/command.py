"""`repro explore`: check every crash state of a recorded trace, record one first, or write one state out.

Every input is checked before any container starts (bad input is exit 2); the exit code is the
exploration's: 0 the configuration kept its promises, 1 a state broke one, 3 the lab failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import random
import shlex
import sys
from typing import TYPE_CHECKING

from repro.errors import ExitCode, ScenarioError
from repro.explore.models import PersistenceModel

if TYPE_CHECKING:
    from repro.explore.space import Selection, StateSpace
    from repro.explore.tracedir import TraceDir

DEFAULT_OPS = 150
DEFAULT_BUDGET = 2000


def _out_dir(text: str | None, default: str) -> pathlib.Path:
    out = pathlib.Path(text or default)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ScenarioError(f"cannot make {out}: {existing} is not a writable directory")
    return out


def run(args: argparse.Namespace, argv: list[str]) -> int:
    if bool(args.record) == bool(args.trace_dir):
        raise ScenarioError("give a TRACE_DIR to explore, or --record to record one first (not both)")
    models = PersistenceModel.parse_list(args.models)
    for name, value in (("--budget", args.budget), ("--jobs", args.jobs), ("--ops", args.ops)):
        if value < 1:
            raise ScenarioError(f"{name} must be at least 1")
    if args.materialize:
        if not args.trace_dir or not args.out:
            raise ScenarioError("--materialize needs a TRACE_DIR and --out DIR")
        return materialize(args.trace_dir, args.materialize, pathlib.Path(args.out))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = _out_dir(args.out, f"runs/explore-{stamp}")
    command = shlex.join(["repro", *argv])
    if args.record:
        trace = _record(args, seed, out, command)
    else:
        from repro.explore.tracedir import TraceDir

        trace = TraceDir.open(args.trace_dir)
    return _explore(trace, models, args.budget, seed, args.jobs, out)


def _record(args: argparse.Namespace, seed: int, out: pathlib.Path, command: str) -> TraceDir:
    from repro.machine import engine
    from repro.machine.labels import IMAGE, owner
    from repro.scenario import OWN_SETTINGS, StoreSpec, WorkloadSpec, get_profile
    from repro.explore.record import record

    profile = get_profile(args.profile)
    if args.sqlite != "system" or args.sqlite_assisted:
        # the states are probed on this host, with its own SQLite: a recording on another library
        # would be judged by a different one
        raise ScenarioError("repro explore records with the image's own SQLite (--sqlite system): its states are "
                            "probed on this host, with the host's")
    store = StoreSpec(args.preset or (OWN_SETTINGS if args.store_path else "ns506"), args.journal_mode,
                      args.synchronous, os.path.abspath(args.store_path) if args.store_path else None,
                      args.checkpoint_mode, wal_autocheckpoint=args.wal_autocheckpoint)
    workload = WorkloadSpec(args.rate, args.mix, args.message_size)
    dest = out / "trace"
    if dest.exists() and any(dest.iterdir()):
        raise ScenarioError(f"{dest} is not empty: choose another --out")
    image = args.image or IMAGE
    cli = engine.client()
    if args.image is None:  # the lab's own image: built only if missing or stale
        engine.ensure_image(cli, image=image)
    elif not engine.image_present(cli, image):  # the user named it: bad input, not the lab failing
        raise ScenarioError(f"--image {image} is not on the engine: build or pull it, or leave out --image")
    dest.mkdir(parents=True, exist_ok=True)
    print(f"recording {args.ops} operations on {profile.name} ({store.label}), seed {seed} into {dest}",
          file=sys.stderr)
    try:
        return record(profile=profile, store=store, workload=workload, ops=args.ops, seed=seed, dest=dest,
                      image=image, source=command)
    finally:
        engine.cleanup(cli, owner=owner())


def _explore(trace: TraceDir, models: tuple[PersistenceModel, ...], budget: int, seed: int, jobs: int,
             out: pathlib.Path) -> int:
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

    run = explore(trace, models, budget=budget, seed=seed, jobs=jobs, on_start=on_start, on_progress=on_progress)
    err.print()
    print_report(run, Console(width=None if sys.stdout.isatty() else 160))
    written = write_all(out, run)
    err.print(f"{run.states} states in {run.seconds:.1f} s ({run.rate:.0f}/s); reports: "
              f"{', '.join(str(p) for p in written)}; seed {seed}; exit {int(run.exit_code)}")
    return run.exit_code


def materialize(trace_dir: str, state_id: str, out: pathlib.Path) -> int:
    """Write the state's files to ``out`` (which must be empty or new), with state.json saying what it is."""
    from repro.explore.check import Checker, judge_state
    from repro.explore.runner import describe_state
    from repro.explore.space import parse_state_id
    from repro.explore.tracedir import TraceDir

    model, index = parse_state_id(state_id)
    trace = TraceDir.open(trace_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ScenarioError(f"{out} exists and is not an empty directory")
    os.environ.update(trace.recording.store_env)  # the probe opens the store as the machine did
    checker = Checker(trace, (model,))
    try:
        spec = checker.space.spec(model, index)
        checker.materializer.write(spec, out)
        facts, _, _, _ = checker.facts(spec)  # on a copy of its own: the files in `out` stay as the crash left them
        result = judge_state(spec, facts, checker.ledger, checker.config, trace.recording.locks_dropped,
                             checker.timeline.ops[spec.point.last_op].seq, True)
        about = {**describe_state(checker.space, spec), "trace": str(trace.path), "digest": trace.digest(),
                 "verdict": result.verdict.value, "broken_promise": result.kind.value if result.kind else None,
                 "reason": result.reason, "lost": list(result.lost)}
    finally:
        checker.close()
    (out / "state.json").write_text(json.dumps(about, indent=2) + "\n", encoding="utf-8")
    for key, value in about.items():
        print(f"{key}: {value}")
    print(f"files: {', '.join(sorted(p.name for p in out.iterdir() if p.name != 'state.json'))} in {out}")
    return ExitCode.OK

