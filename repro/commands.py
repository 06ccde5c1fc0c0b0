"""What each `repro` command does once its arguments are parsed: scenarios from options, runs, replay, doctor, sqlite.

The CLI (repro/cli.py) only parses argv, dispatches here and turns errors into exit codes;
this module builds scenarios (checking every input before any container starts), runs
them through the pipeline and writes the reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from repro.errors import EngineError, ExitCode, ScenarioError

if TYPE_CHECKING:
    from repro.report.comparison import Comparison
    from repro.report.records import TrialRecord
    from repro.scenario import Scenario

DEFAULT_FAULTS: tuple[tuple[str, ...], ...] = (
    ("sigint",), ("sigterm",), ("sigkill",), ("oom",), ("disk-fill",), ("disk-fill", "sigterm"),
)
DEFAULT_TRIALS = 3
# The default run also shows the cause upstream traced corruption to: the gateway dropping its
# own POSIX locks (raw open/close of state.db) while a dashboard process opens and closes it.
DEFAULT_HAZARD_SCENARIO = (("sigkill",), ("raw-open", "dashboard"))


@dataclass(frozen=True)
class HuntPlan:
    """`repro hunt`: the WAL-reset bug's conditions (docs/FACTS.md) -- the gateway, a cron writer and a
    checkpointer (PASSIVE and TRUNCATE alternately) as three processes with three connections on one
    WAL database, flat out, writers checkpointing every few pages -- for `duration_s`, then the whole
    machine SIGKILLed and the database judged. Small messages and fly-1g's 256 MB disk hold minutes of it."""

    profile: str = "fly-1g"
    sqlites: str = "system,3.51.2,3.53.2"
    duration_s: int = 60
    hazards: tuple[str, ...] = ("cron=1", "checkpointer=1")
    wal_autocheckpoint: int = 8
    message_size: str = "100:1k"

    @staticmethod
    def fault(duration_s: int) -> str:
        if not 1 <= duration_s <= 86_400:
            raise ScenarioError(f"--duration must be 1 to 86400 seconds, not {duration_s}")
        return f"sigkill-machine@random={duration_s * 1000}"


HUNT = HuntPlan()


def clean() -> int:
    from repro.machine import engine

    result = engine.cleanup()
    print(f"removed {result.containers} container(s) and {result.volumes} volume(s)")
    return ExitCode.OK


def build_image() -> int:
    from repro.machine import engine

    built = engine.build_image()
    print(f"image {built.image} ({built.image_id}) on {built.base} [{built.base_origin}]")
    return ExitCode.OK


def _scenarios(args: argparse.Namespace, seed: int) -> list:  # type: ignore[type-arg]
    from repro.scenario import FaultSpec, Hazard, StoreSpec, WorkloadSpec, expand, get_profile

    if args.trials < 1:
        raise ScenarioError("--trials must be at least 1")
    if args.jobs < 1:
        raise ScenarioError("--jobs must be at least 1")
    if args.command == "run":
        profiles = [args.profile]
        combos = [tuple(args.fault)] if args.fault else list(DEFAULT_FAULTS) + _power_loss_if_possible()
        stores = [StoreSpec(args.preset, args.journal_mode, args.synchronous, _absolute(args.store_path),
                            args.checkpoint_mode, args.wal_autocheckpoint, args.sqlite.strip(), args.sqlite_assisted)]
    else:  # matrix, hunt
        profiles = _split(args.profiles)
        hunt = args.command == "hunt"
        combos = [(HUNT.fault(args.duration),)] if hunt else [tuple(c.split("+")) for c in _split(args.faults)]
        paths: list[str | None] = [_absolute(p) for p in _split(args.store_paths)] or [None]
        stores = [StoreSpec(p, args.journal_mode, args.synchronous, s, args.checkpoint_mode, args.wal_autocheckpoint,
                            q, args.sqlite_assisted)
                  for q in _split(args.sqlites) for s in paths for p in _split(args.presets)]
        for option, values in (("--profiles", profiles), ("--faults", combos), ("--presets", _split(args.presets)),
                               ("--sqlites", _split(args.sqlites))):
            if not values:
                raise ScenarioError(f"{option} names nothing")
    for name in profiles:
        get_profile(name)
    for combo in combos:
        for fault in combo:
            FaultSpec.parse(fault)
    hazards = tuple(Hazard.parse(h) for h in args.hazard or (HUNT.hazards if args.command == "hunt" else ()))
    workload = WorkloadSpec(args.rate, args.mix, args.message_size, hazards, args.linger)
    scenarios = expand(profiles, combos, stores, args.trials, seed, workload)
    if args.command == "run" and not args.fault and not hazards:  # the main job: the lock bug too
        faults, names = DEFAULT_HAZARD_SCENARIO
        with_hazards = dataclasses.replace(workload, hazards=tuple(Hazard.parse(n) for n in names))
        scenarios += expand(profiles, [faults], stores, args.trials, seed, with_hazards)
    if getattr(args, "trial_id", None):
        scenarios = [s for s in scenarios if s.trial_id == args.trial_id]
        if not scenarios:
            raise ScenarioError(f"no trial {args.trial_id!r} in this scenario")
    return scenarios


def _power_loss_if_possible() -> list[tuple[str, ...]]:
    """The default run includes power loss where the engine's host has FUSE."""
    if os.path.exists("/dev/fuse"):
        return [("power-loss",)]
    print("repro: note: no /dev/fuse here, the default run leaves out power-loss", file=sys.stderr)
    return []


def _absolute(path: str | None) -> str | None:
    """Store paths are kept absolute, so that a trial's replay command works from anywhere."""
    return os.path.abspath(path) if path else None


def _output_paths(args: argparse.Namespace) -> pathlib.Path:
    """The report directory and --json, checked before anything is made or any machine starts."""
    out = pathlib.Path(args.out or f"runs/{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    existing = out
    while not existing.exists() and existing != existing.parent:  # the part of the path that exists
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ScenarioError(f"cannot make the report directory {out}: {existing} is not a writable directory")
    if args.json:
        target = pathlib.Path(args.json)
        if target.is_dir() or not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
            raise ScenarioError(f"cannot write --json {args.json}: not a file in a writable directory")
    return out


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run(args: argparse.Namespace, argv: list[str]) -> int:
    import random

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    scenarios = _scenarios(args, seed)  # all input checked before any container starts
    out = _output_paths(args)
    return _run_scenarios(scenarios, seed=seed, out=out, argv=argv, image=args.image, jobs=args.jobs,
                          json_path=args.json, compare=args.command in ("matrix", "hunt"))


def _sqlite_builds(scenarios: Sequence[Scenario]) -> None:
    """Every SQLite the trials ask for, built (or found cached) and loaded once here before any container starts."""
    from repro import sqlite as lab_sqlite

    for line in lab_sqlite.prepare((s.store.sqlite, s.store.sqlite_assisted) for s in scenarios):
        print(f"repro: {line}", file=sys.stderr)


def _run_scenarios(scenarios: Sequence[Scenario], *, seed: int, out: pathlib.Path, argv: list[str],
                   image: str | None, jobs: int, json_path: str | None, compare: bool) -> int:
    """Run the trials (input already checked), print the table, write the reports; the run's exit code."""
    _sqlite_builds(scenarios)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from repro.machine import engine
    from repro.machine.labels import IMAGE, RUN_ID
    from repro.pipeline import TrialEvent, run_trials
    from repro.pipeline import Progress as TrialProgress
    from repro.report.comparison import comparison_markdown, render_comparison
    from repro.report.records import RunMeta, RunResult
    from repro.report.render import print_table, write_all

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    lab_image = image is None
    image = image or IMAGE
    cli = engine.client()
    if lab_image:  # the lab's own image: rebuilt from cache so it holds this checkout's store and workload
        engine.build_image(cli, image=image)
    elif not engine.image_present(cli, image):
        raise EngineError(f"image {image} is missing")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError(f"cannot make the report directory {out}: {exc.strerror}") from None
    console.print(f"[bold]repro[/] run {RUN_ID}: {len(scenarios)} trial(s), seed [bold]{seed}[/], out {out}")
    started = dt.datetime.now(dt.timezone.utc)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("trials", total=len(scenarios))

        def on_event(event: TrialEvent) -> None:
            if event.progress is TrialProgress.DONE and event.record is not None:
                progress.advance(task)
                rec = event.record
                progress.console.print(f"  {rec.id}: {rec.verdict.value} ({rec.duration_s:.1f} s) {rec.detail[:90]}")

        try:
            records = run_trials(scenarios, out_dir=out, jobs=jobs, image=image, on_event=on_event)
        finally:
            engine.cleanup(cli, run_id=RUN_ID)
    meta = RunMeta(run_id=RUN_ID, seed=seed, started_at=started.isoformat(timespec="seconds"),
                   command=shlex.join(["repro", *argv]),
                   duration_s=round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1),
                   lab_version="0.1.0",
                   sqlite_version=", ".join(sorted({r.sqlite_version for r in records if r.sqlite_version})))
    run = RunResult(meta, tuple(records))
    print_table(records, Console(width=None if sys.stdout.isatty() else 140))
    written = write_all(out, run)
    if json_path:
        shutil.copyfile(out / "report.json", json_path)
    comparison = _comparison(records) if compare else None
    if comparison is not None:
        Console(width=None if sys.stdout.isatty() else 140).print(render_comparison(comparison))
        with open(out / "report.md", "a", encoding="utf-8") as handle:
            handle.write("\n" + comparison_markdown(comparison) + "\n")
    code = run.exit_code
    console.print(f"reports: {', '.join(str(p) for p in written)}; seed {seed}; exit {int(code)}")
    return code


def _comparison(records: Sequence[TrialRecord]) -> Comparison | None:
    """Old vs new, side by side, when a matrix ran exactly two stores (presets or store paths)."""
    from repro.report.comparison import compare_runs
    from repro.report.records import sqlite_text

    by_sqlite = len({r.sqlite for r in records}) > 1

    def side(r: TrialRecord) -> str:  # by what was asked for: a trial that ran the wrong library is an error
        store = r.preset if r.store == "default" else f"{r.store} ({r.preset})"
        return f"{store}, SQLite {sqlite_text(r.sqlite, ())}" if by_sqlite else store

    stores = list(dict.fromkeys(side(r) for r in records))
    if len(stores) != 2:
        return None
    old = [r for r in records if side(r) == stores[0]]
    new = [r for r in records if side(r) == stores[1]]
    return compare_runs(old, new, stores[0], stores[1])


def replay(args: argparse.Namespace, argv: list[str]) -> int:
    """Run one trial of an earlier run again: the Scenario stored in its report.json, nothing else."""
    from repro.report.records import ResultsError, RunResult
    from repro.scenario import scenario_from_dict

    run_dir = pathlib.Path(args.run_dir)
    path = run_dir / "report.json"
    if not path.is_file():
        raise ScenarioError(f"{path} does not exist")
    try:
        run = RunResult.from_json(path.read_text())
    except ResultsError as exc:
        raise ScenarioError(f"{path} is not a lab report: {exc}") from None
    record = next((r for r in run.trials if r.id == args.trial_id), None)
    if record is None:
        raise ScenarioError(f"no trial {args.trial_id!r} in {path}")
    if record.scenario is None:
        raise ScenarioError(f"{path} was made by an older lab that did not store its scenarios; re-run it")
    scenario = scenario_from_dict(record.scenario)
    if scenario.trial_id != record.id:
        raise ScenarioError(f"{path}: trial {record.id!r} stores the scenario of {scenario.trial_id!r}")
    out = run_dir / "replays" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    print(f"replaying {record.id} (seed {scenario.seed}) into {out}", file=sys.stderr)
    return _run_scenarios([scenario], seed=scenario.seed, out=out, argv=argv, image=None, jobs=1,
                          json_path=None, compare=False)


def doctor() -> int:
    from repro.machine import engine
    from repro.machine.labels import IMAGE

    checks: list[tuple[str, bool, str, bool]] = []  # name, ok, detail, required
    sqlite_cli: object = None  # the engine, when the image is there to ask for its own SQLite
    try:
        cli = engine.client()
        info = cli.info()
        checks.append(("engine", True, f"Docker {info.get('ServerVersion')}", True))
        mem = bool(info.get("MemoryLimit"))
        checks.append(("memory cgroup", mem, f"cgroup v{info.get('CgroupVersion', '?')}, memory limit support "
                       + ("yes" if mem else "no"), True))
        swap = bool(info.get("SwapLimit"))
        checks.append(("swap limit", swap, "memory+swap can be capped" if swap else
                       "the engine cannot cap swap: machines may swap", False))
        present = engine.image_present(cli, IMAGE)
        checks.append(("image", present, IMAGE if present else f"{IMAGE} missing: run `repro image build`", True))
        sqlite_cli = cli if present else None
    except EngineError as exc:
        checks.append(("engine", False, str(exc), True))
    compose = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True) \
        if shutil.which("docker") else None
    checks.append(("compose v2", bool(compose and compose.returncode == 0),
                   compose.stdout.strip() if compose and compose.returncode == 0 else "`docker compose` missing", True))
    from repro.sqlite.runtime import system_check

    checks.append(system_check(sqlite_cli, IMAGE))
    fuse = os.path.exists("/dev/fuse")
    checks.append(("/dev/fuse", fuse, "present (power-loss trials)" if fuse else "missing: no power-loss trials", False))
    missing = False
    for name, ok, detail, required in checks:
        mark = "ok  " if ok else ("MISS" if required else "warn")
        print(f"{mark} {name:<14} {detail}")
        missing = missing or (required and not ok)
    return ExitCode.LAB_FAILED if missing else ExitCode.OK


def sqlite_list() -> int:
    """The SQLite versions the lab can build (checked-in index) or has built (cache), and the builds."""
    from repro import sqlite as lab_sqlite
    from repro.sqlite.build import sqlite_cache

    for line in lab_sqlite.listing():
        print(line)
    print(f"cache: {sqlite_cache()}; `--sqlite VERSION` builds any other version a better-sqlite3 release ships")
    return ExitCode.OK
