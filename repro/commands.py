"""What each `repro` command does once its arguments are parsed: scenarios from options (a matrix with each store's
no-fault control, CONTROL), runs, replay, clean, doctor, sqlite, explore (repro/explore/command.py).

The CLI (repro/cli.py) only parses argv, dispatches here and turns errors into exit codes;
this module builds scenarios (checking every input before any container starts), runs
them through the pipeline and writes the reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import shlex
import shutil
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from repro.errors import EngineError, ExitCode, LabError, ScenarioError, shown
from repro.upkeep import reap_dead_runs

if TYPE_CHECKING:
    from docker.client import DockerClient

    from repro.report.outdir import ReportDir
    from repro.report.records import FailOn
    from repro.options import ExploreOptions, ReplayOptions, RunOptions
    from repro.scenario import Scenario, StoreSpec

DEFAULT_FAULTS: tuple[tuple[str, ...], ...] = (
    ("sigint",), ("sigterm",), ("sigkill",), ("oom",), ("disk-fill",), ("disk-fill", "sigterm"),
)
POWER_LOSS = ("power-loss",)  # in the default run where the engine's host has FUSE
MATRIX_FAULTS = ",".join("+".join(c) for c in DEFAULT_FAULTS)  # matrix's --faults default, as argparse gives it
CONTROL = ("clean-stop",)  # a matrix's no-fault control per store: a clean start, the workload, a clean stop
DEFAULT_TRIALS = 3
AUTO_TRIALS = "auto"  # --trials auto: as many as bound a rate below --target-rate (repro/report/confidence.py)
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
    sizes: str = "100:1k"  # --message-size

    @staticmethod
    def fault(duration_s: int) -> str:
        if not 1 <= duration_s <= 86_400:
            raise ScenarioError(f"--duration must be 1 to 86400 seconds, not {duration_s}")
        return f"sigkill-machine@random={duration_s * 1000}"


HUNT = HuntPlan()


def _scenarios(args: RunOptions, seed: int, *, build: bool = True) -> list:  # type: ignore[type-arg]
    from repro.prepare import check_filesystems, prepare_run, require_loop_device, size_option, store_spec, with_disk
    from repro.source.prepare import resolve_refs
    from repro.scenario import FaultSpec, Hazard, StartSpec, StoreSpec, expand, get_profile, with_fs

    from repro.scenario import check_jobs, check_trial_count

    trials = trial_count(args)
    check_trial_count(trials)  # before anything is expanded
    check_jobs(args.jobs)
    if args.command == "run":
        profiles = [args.profile]
        combos = [tuple(args.fault)] if args.fault else [*DEFAULT_FAULTS, POWER_LOSS]  # power loss: if FUSE, below
        if args.store_path and args.store_ref:
            raise ScenarioError("--store-path and --store-ref both name the store: give one")
        stores = [store_spec(args.store, args.preset, _absolute(args.store_path), args.store_ref, args.sqlite)]
    else:  # matrix, hunt
        profiles = _split(args.profiles)
        hunt = args.command == "hunt"
        combos = [(HUNT.fault(args.duration),)] if hunt else [tuple(c.split("+")) for c in _split(args.faults)]
        sources = [(_absolute(p), None) for p in _split(args.store_paths)] + [(None, r) for r in _split(args.store_refs)]
        presets: list[str | None] = list(_split(args.presets)) if args.presets is not None else [None]
        stores = [store_spec(args.store, p, path, ref, q)
                  for q in _split(args.sqlites) for path, ref in sources or [(None, None)] for p in presets]
        for option, values in (("--profiles", profiles), ("--faults", combos), ("--presets", presets),
                               ("--sqlites", _split(args.sqlites))):
            if not values:
                raise ScenarioError(f"{option} names nothing")
        combos += [] if hunt or CONTROL in combos else [CONTROL]
    filesystems = check_filesystems(tuple(args.start.fs or ()), one=args.command == "run")
    if filesystems and not (args.fault if args.command == "run" else args.faults != MATRIX_FAULTS):
        combos = [POWER_LOSS, *([CONTROL] if CONTROL in combos else [])]  # --fs takes power loss only (for now)
    machines = [with_fs(with_disk(get_profile(name), args.start.disk_size), fs) for name in profiles
                for fs in filesystems or (None,)]
    for combo in combos:
        for fault in combo:
            FaultSpec.parse(fault)
    hazards = tuple(Hazard.parse(h) for h in args.hazard or (HUNT.hazards if args.command == "hunt" else ()))
    workload = args.workload.spec(hazards, args.linger_ms)
    start = StartSpec(from_db=_absolute(args.start.from_db),
                      initial_size=size_option(args.start.initial_size, "--initial-size"), fill_pct=args.start.disk_fill_to)
    default_run = args.command == "run" and not args.fault and not hazards and not filesystems
    check_trial_count(trials, len(profiles) * (len(combos) + int(default_run)) * len(stores))
    stores = resolve_refs(stores)  # a ref's label names its commit: the ids are final before the one expansion
    scenarios = expand(machines, combos, stores, trials, seed, workload)  # ids checked before any build
    if filesystems:
        require_loop_device()
    if default_run:  # the main job: the lock bug too
        faults, names = DEFAULT_HAZARD_SCENARIO
        with_hazards = dataclasses.replace(workload, hazards=tuple(Hazard.parse(n) for n in names))
        scenarios += expand(machines, [faults], stores, trials, seed, with_hazards)
    if build:  # before any container: the import check and the grower below start machines
        _sqlite_builds(stores)
    starts: dict[StoreSpec, StartSpec] = {}
    if any(store.foreign for store in stores) or start.database or args.start.disk_size:
        prepared, starts = prepare_run(stores, machines, start, seed, jobs=args.jobs, image=args.image)
        ready = dict(zip(stores, prepared))  # the same stores, checked out and installed: the same labels
        if any(ready[s].label != s.label for s in stores):
            raise LabError("preparing the stores changed their labels, and so the trial ids")
        scenarios = [dataclasses.replace(s, store=ready[s.store]) for s in scenarios]
    if start.active:
        scenarios = [dataclasses.replace(s, start=starts.get(s.store, start)) for s in scenarios]
    if build and args.command == "run" and not args.fault and not _engine_has_fuse(args.image):  # all else checked
        scenarios = [s for s in scenarios if tuple(f.name.value for f in s.faults) != POWER_LOSS]
    if args.trial_id:
        scenarios = [s for s in scenarios if s.trial_id == args.trial_id]
        if not scenarios:
            raise ScenarioError(f"no trial {shown(args.trial_id)} in this scenario")
    return scenarios


def trial_count(args: RunOptions) -> int:
    """The trials per scenario: --trials N, or for --trials auto the count that bounds --target-rate (said on stderr)."""
    from repro.report.confidence import auto_trials

    if args.trials != AUTO_TRIALS:
        if args.target_rate is not None:
            raise ScenarioError("--target-rate goes with --trials auto (it chooses the trial count)")
        return int(args.trials)
    count, note = auto_trials(args.target_rate or "5%")
    print(f"repro: --trials auto: {note}", file=sys.stderr)
    return count


def _engine_has_fuse(image: str | None) -> bool:
    """Whether the engine's host has FUSE, which the default run's power-loss trials need (a note if not)."""
    from repro.machine import engine, limits

    try:
        found = limits.has_device("/dev/fuse", image=engine.image_name(image))
    except EngineError:  # no engine: the run fails at its first machine, with the engine's own message
        found = os.path.exists("/dev/fuse")
    if not found:
        print("repro: note: the engine's host has no /dev/fuse, the default run leaves out power-loss", file=sys.stderr)
    return found


def _absolute(path: str | None) -> str | None:
    """Store paths are kept absolute, so that a trial's replay command works from anywhere."""
    return os.path.abspath(path) if path else None


def _output_paths(args: RunOptions) -> ReportDir:
    """The report directory and --json, checked before anything is made or any machine starts."""
    from repro.machine.labels import RUN_ID
    from repro.report import outdir

    out = outdir.plan(args.out, RUN_ID, force=args.force)
    if args.json:
        target = pathlib.Path(args.json)
        if target.is_dir() or not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
            raise ScenarioError(f"cannot write --json {shown(args.json)}: not a file in a writable directory")
    return out


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run(args: RunOptions, argv: list[str]) -> int:
    import random

    from repro.pipeline import deadline_overrides
    from repro.report.outcome import parse_fail_on
    from repro.report.records import FailOn
    from repro.shards import Shard
    from repro.source.provenance import bundled_notice_of

    shard = Shard.parse(args.shard) if args.shard else None
    if shard is not None and args.seed is None:
        raise ScenarioError("--shard needs --seed: every shard must expand the same trials from the same seed")
    fail_on = parse_fail_on(args.fail_on)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    out = _output_paths(args)
    bundled_notice_of(args)
    deadline_overrides()  # a malformed HERMES_LAB_DEADLINES is bad input too
    scenarios = _scenarios(args, seed)  # all input checked before any trial (foreign stores: in a throwaway machine)
    for gate in (FailOn.REGRESSION, FailOn.INCONCLUSIVE):
        if gate in fail_on and (args.command != "matrix" or len({s.store for s in scenarios}) != 2):
            raise ScenarioError(f"--fail-on {gate.value} needs `repro matrix` with exactly two stores "
                                "(--presets OLD,NEW, --store-paths OLD,NEW or --store-refs OLD,NEW)")
    planned = len(scenarios)
    if shard is not None:
        scenarios = shard.select(scenarios)
    code, _ = _run_scenarios(scenarios, seed=seed, out=out, argv=argv, image=args.image, jobs=args.jobs,
                             json_path=args.json, compare=args.command in ("matrix", "hunt"), fail_on=fail_on,
                             shard=str(shard) if shard else "", planned=planned)
    return code


def _sqlite_builds(stores: Iterable[StoreSpec]) -> None:
    """Every SQLite the stores ask for, built (or found cached) and loaded once here before any container starts."""
    from repro import sqlite as lab_sqlite

    for line in lab_sqlite.prepare((s.sqlite, s.sqlite_assisted) for s in stores):
        print(f"repro: {line}", file=sys.stderr)


def _run_scenarios(scenarios: Sequence[Scenario], *, seed: int, out: ReportDir, argv: list[str],
                   image: str | None, jobs: int, json_path: str | None, compare: bool,
                   fail_on: Sequence[FailOn] = (), shard: str = "", planned: int = 0) -> tuple[int, pathlib.Path]:
    """Run the trials (input already checked), print the table, write the reports; the run's exit code
    and the report directory it used (every SQLite they load already built: `_sqlite_builds`)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from repro.machine import engine
    from repro.machine.labels import RUN_ID, owner
    from repro.pipeline import TrialEvent, run_trials
    from repro.report import outdir
    from repro.pipeline import Progress as TrialProgress
    from repro.report.outcome import outcome
    from repro.report.records import RunMeta, RunResult
    from repro.report.render import write_all
    from repro.report.terminal import print_outcome, print_table, trial_line
    from repro.source.prepare import provenance
    from repro.source.provenance import lab_version, start_hashes

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    cli = engine.client()
    chosen = engine.trial_image(cli, image)
    reaped = reap_dead_runs(cli)
    if reaped:
        console.print(f"repro: note: {reaped}")
    path = outdir.claim(out, RUN_ID)
    stores = provenance(s.store for s in scenarios)  # before any trial: the code as it was when the trials began
    part = f" (shard {shard} of {planned})" if shard else ""
    console.print(f"[bold]repro[/] run {RUN_ID}: {len(scenarios)} trial(s){part}, seed [bold]{seed}[/], out {path}")
    started = dt.datetime.now(dt.timezone.utc)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("trials", total=len(scenarios))

        def on_event(event: TrialEvent) -> None:
            if event.progress is TrialProgress.DONE and event.record is not None:
                progress.advance(task)
                progress.console.print(trial_line(event.record))

        try:
            records = run_trials(scenarios, out_dir=path, jobs=jobs, image=chosen, on_event=on_event)
        finally:
            engine.cleanup(cli, owner=owner())
    meta = RunMeta(run_id=RUN_ID, seed=seed, started_at=started.isoformat(timespec="seconds"),
                   command=shlex.join(["repro", *argv]),
                   duration_s=round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1),
                   lab_version=lab_version(), image=chosen, image_id=str(cli.images.get(chosen).id),
                   starts=start_hashes(s.start.files for s in scenarios),
                   sqlite_version=", ".join(sorted({r.sqlite_version for r in records if r.sqlite_version})),
                   compare=compare, fail_on=tuple(fail_on), shard=shard, planned=planned or len(records),
                   stores=stores)
    run = RunResult(meta, tuple(records))
    result = outcome(run)
    stdout = Console(width=None if sys.stdout.isatty() else 140)
    print_table(records, stdout, stores=meta.stores)
    print_outcome(result, stdout)
    written = write_all(path, run)
    if json_path:
        try:
            shutil.copyfile(path / "report.json", json_path)
        except OSError as exc:
            raise outdir.write_error(pathlib.Path(json_path), exc) from None
    console.print(f"reports: {', '.join(str(p) for p in written)}; seed {seed}; exit {int(result.code)}")
    return result.code, path


def replay(args: ReplayOptions, argv: list[str]) -> int:
    """Run one trial of an earlier run again: the Scenario stored in its report.json, nothing else."""
    from repro.report.records import ResultsError, RunResult
    from repro.report.render import read_run
    from repro.scenario import scenario_from_dict

    run_dir = pathlib.Path(args.run_dir)
    path = run_dir / "report.json"
    if not path.is_file():
        raise ScenarioError(f"{shown(path, quote=False)} does not exist")
    try:
        run = read_run(run_dir)
    except ResultsError as exc:
        raise ScenarioError(str(exc)) from None
    record = next((r for r in run.trials if r.id == args.trial_id), None)
    if record is None:
        raise ScenarioError(f"no trial {shown(args.trial_id)} in {shown(path, quote=False)}")
    if record.scenario is None:
        raise ScenarioError(f"{path} was made by an older lab that did not store its scenarios; re-run it")
    scenario = scenario_from_dict(record.scenario)
    from repro.prepare import check_store_path, prepare_replay

    if scenario.store.store_path is not None and scenario.store.store_ref is None:
        check_store_path(scenario.store.store_path)

    _sqlite_builds([scenario.store])
    scenario = prepare_replay(scenario)
    from repro.source.prepare import provenance
    from repro.source.provenance import replay_refusal

    if refusal := replay_refusal(run.meta.stores, provenance([scenario.store])[0]):
        raise ScenarioError(refusal)
    if scenario.trial_id != record.id:
        raise ScenarioError(f"{path}: trial {shown(record.id)} stores the scenario of {shown(scenario.trial_id)}")
    from repro.machine.labels import RUN_ID
    from repro.report import outdir
    from repro.report.comparison import replay_lines

    out = outdir.plan(None, RUN_ID, base=run_dir / "replays")
    print(f"replaying {record.id} (seed {scenario.seed}) into {out.path.parent}", file=sys.stderr)
    code, written = _run_scenarios([scenario], seed=scenario.seed, out=out, argv=argv, image=None, jobs=1,
                                   json_path=None, compare=False)
    try:
        replayed = RunResult.from_json((written / "report.json").read_text()).trials
    except (OSError, ResultsError):
        replayed = ()
    for line in replay_lines(record, next(iter(replayed), None), scenario.crash_class.value):
        print(line)
    return code


def explore(args: ExploreOptions, argv: list[str]) -> int:
    """`repro explore`: repro/explore/command.py (--compare-models: repro/explore/compare.py)."""
    from repro.explore import command, compare

    return compare.command(args, argv) if args.compare_models else command.run(args, argv)

