"""A trial as named phases -- boot, workload, faults, stop, restart, judge, record -- and a run of many.

Each phase is one method of ``_Trial``, run from the table ``PHASE_STEPS`` and recorded (time, error); the runner announces every phase as an event (so
a display can say "fault fired" or "verifying") and, when the lab fails, names the phase
in the `error` verdict. Every phase runs under a deadline (``phase_deadlines``) that a
watchdog enforces by removing the trial's machines (repro/machine/watchdog.py), so a frozen
machine ends as an `error` and the run goes on. The runner itself prints nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import pathlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import docker.errors
import requests.exceptions

from repro.errors import DeadlineError, LabError, MachineKilledError
from repro.faults import FAULTS, FaultOutcome
from repro.ledger import Ledger, ledger_lines, parse_lines
from repro.machine.container import ConstrainedHost
from repro.machine.labels import IMAGE, trial_scope
from repro.machine.pool import DiskPool
from repro.machine.recovery import Recovery, recover_disk
from repro.machine.services import stop_blockfs
from repro.machine.restart import Restart, fetch_database, restart
from repro.machine.watchdog import Watchdog
from repro.oracle.verdicts import Judgement, judge, lab_error
from repro.phases import Phase, deadline_overrides, phase_deadlines
from repro.protocol import Tag, format_line, store_output
from repro.report.records import PhaseCall, TrialRecord
from repro.report.timeline import build_timeline
from repro.scenario import HazardName, Scenario, replay_command, replay_script, scenario_to_dict, trial_seed
from repro.sqlite import for_store, runtime as sqlite_runtime
from repro.startdb.files import load as load_start, start_rows
from repro.startdb.restore import Restored, restore
from repro.verify import crosscheck
from repro.workload import READY_PRAGMAS
from repro.workload.checkpointer import checkpoint_count
from repro.workload.config import WorkloadConfig

# What a lab failure looks like from here: our own errors (a ledger or probe line we cannot
# read included), the engine (docker-py) or its HTTP transport failing, or a machine printing
# something that is not JSON. Any of them makes the trial an `error` verdict; the run goes on.
LAB_FAILURES = (LabError, docker.errors.DockerException, requests.exceptions.RequestException,
                json.JSONDecodeError)


class Progress(str, enum.Enum):
    START = "start"
    PHASE = "phase"
    DONE = "done"


@dataclass(frozen=True)
class TrialEvent:
    """Progress of a run, for whoever displays it."""

    progress: Progress
    trial_id: str
    phase: Phase | None = None
    record: TrialRecord | None = None


class _Trial:
    """The state one trial builds up, phase by phase."""

    def __init__(self, scenario: Scenario, machine: ConstrainedHost) -> None:
        self.scenario = scenario
        self.machine = machine
        self.seed = trial_seed(scenario.seed, scenario.seed_id)
        self.ready: dict[str, object] = {}
        self.outcomes: list[FaultOutcome] = []
        self.ledger: Ledger | None = None
        self.restarted: Restart | None = None
        self.recovery: Recovery | None = None  # --fs: what the kernel made of the disk's filesystem
        self.judgement: Judgement | None = None
        self.stamped: list[str] = []  # the machine's log with the engine's timestamps (the timeline)
        self.lines: list[str] = []  # the same log without them: ledger, evidence
        self.restored: Restored | None = None  # the starting database and filler, when the trial has them
        self.sqlite_seen: dict[str, tuple[str, str]] = {}  # process -> (version, source id) it loaded
        self.checkpoints = 0  # the checkpointer hazard's count
        self.calls: list[PhaseCall] = []  # each phase that ran: its time and the error that ended it

    def boot(self) -> None:
        self.machine.start()
        if self.scenario.start.active:
            self.restored = restore(self.machine, self.scenario.start)

    def workload(self) -> None:
        config = WorkloadConfig.of(self.scenario.workload, seed=self.seed, hold=True)
        self.ready = self.machine.start_workload(config, lossy_args=self.scenario.lossy_args,
                                                 record=self.scenario.records)
        self.sqlite_seen = sqlite_runtime.machine_reports(self.machine.lines())
        sqlite_runtime.check_in_force(self.machine.sqlite, self.sqlite_seen)  # the wrong library: a lab error

    def faults(self) -> None:
        for step in self.scenario.schedule():
            self.outcomes.append(FAULTS[step.name].inject(self.machine, step))

    def stop(self) -> None:
        if not any(o.machine_down for o in self.outcomes):
            if self.machine.fs is not None:  # a clean stop unmounts the filesystem, as a machine shutting down does
                stop_blockfs(self.machine)
            self.machine.stop()  # no fault ended the machine: Fly's ordinary stop ends the trial

    def restart(self) -> None:
        if self.machine.fs is not None:  # the kernel recovers the filesystem's image before the probe opens anything
            if self.machine.is_running():
                self.machine.kill()
            self.recovery = recover_disk(self.machine)
        self.restarted = restart(self.machine, baseline=bool(self.scenario.start.files))
        # One fetch of the whole log (tens of MB at worst): the timeline needs the engine's timestamps,
        # the ledger and the evidence the lines without them.
        self.stamped = self.machine.output(timestamps=True)
        self.lines = lines = ([line.partition(" ")[2] for line in self.stamped] if self.stamped
                              else self.machine.output())
        crosscheck.require(crosscheck.channel_problems(lines))  # a gap, a repeat, a damaged record, a lost start
        self.ledger = parse_lines(lines)
        self.checkpoints = checkpoint_count(lines)

    def judge(self) -> None:
        assert self.restarted is not None
        facts = self.restarted.facts
        sqlite_runtime.check_in_force(self.machine.sqlite, {
            **self.sqlite_seen, "verifier": (facts.sqlite_version, facts.sqlite_source_id)})
        assert self.ledger is not None
        crosscheck.require(crosscheck.ledger_problems(self.ledger, self.lines, crosscheck.Witnesses(  # before any verdict
            agent_acks=tuple(o.acks_at_fire for o in self.outcomes if o.detail.get("agent")), facts=facts,
            page_cache_lost=self.scenario.needs_fuse)))
        self.judgement = judge(self.ledger, self.restarted.facts, tuple(f.name.value for f in self.scenario.faults),
                               lazy_dirs=self.scenario.lazy_dirs,
                               locks_dropped=self.scenario.workload.hazard_every(HazardName.RAW_OPEN) > 0,
                               start=start_rows(self.scenario.start.files) if self.scenario.start.files else None)

    @property
    def story(self) -> str:
        told = [FAULTS[o.fault].describe(o) for o in self.outcomes]
        return "; ".join(told + ([self.recovery.describe()] if self.recovery is not None else []))


# The phases of a trial, in order, and the step each runs (RECORD runs after them, whatever happened).
PHASE_STEPS: tuple[tuple[Phase, Callable[[_Trial], None]], ...] = (
    (Phase.BOOT, _Trial.boot), (Phase.WORKLOAD, _Trial.workload), (Phase.FAULTS, _Trial.faults),
    (Phase.STOP, _Trial.stop), (Phase.RESTART, _Trial.restart), (Phase.JUDGE, _Trial.judge))
PHASES = tuple(phase for phase, _ in PHASE_STEPS)


@contextlib.contextmanager
def _called(phase: Phase, calls: list[PhaseCall]) -> Iterator[None]:
    """Record the phase's duration and the error that ended it (then raised on), like pytest's CallInfo."""
    started, error = time.monotonic(), ""
    try:
        yield
    except BaseException as exc:
        error = _one_line(exc)
        raise
    finally:
        calls.append(PhaseCall(phase.value, round(time.monotonic() - started, 3), error))


def run_trial(scenario: Scenario, *, out_dir: pathlib.Path, image: str = IMAGE,
              on_event: Callable[[TrialEvent], None] = lambda e: None,
              deadlines: Mapping[Phase, float] | None = None, pool: DiskPool | None = None) -> TrialRecord:
    """Run one trial. Lab failures, and phases past their deadline, become an `error` verdict naming
    the phase; nothing is left running. ``deadlines`` override some phases' (seconds); ``pool``: disks
    kept across a run's trials (a trial that ended with a verdict hands its disk back)."""
    started = time.monotonic()
    limits = phase_deadlines(scenario, deadlines)
    with trial_scope(scenario.trial_id):  # every container of the trial carries its id, for the watchdog
        machine = ConstrainedHost(scenario.profile, store=scenario.store, sqlite=for_store(scenario.store)[1],
                                  image=scenario.store.image or image, fuse=scenario.fuse,
                                  record=scenario.records, pool=pool)
        trial = _Trial(scenario, machine)
        watchdog = Watchdog(scenario.trial_id, disk=lambda: machine.disk)
        artifacts: str | None = None
        error: BaseException | None = None
        phase = Phase.BOOT
        try:
            try:
                for phase, step in PHASE_STEPS:
                    on_event(TrialEvent(Progress.PHASE, scenario.trial_id, phase))
                    with _called(phase, trial.calls), watchdog.phase(phase.value, limits[phase]):
                        step(trial)
            except LAB_FAILURES as exc:  # the lab failed, not the store -- or someone else ended its machine
                known = isinstance(exc, (DeadlineError, MachineKilledError))
                error = exc if known else machine.ended_from_outside() or exc
                trial.judgement = lab_error(f"{phase.value}: {_one_line(error)}")
            on_event(TrialEvent(Progress.PHASE, scenario.trial_id, Phase.RECORD))
            assert trial.judgement is not None
            if trial.judgement.verdict.value != "pass" and phase is not Phase.BOOT:
                try:
                    with watchdog.phase(Phase.RECORD.value, limits[Phase.RECORD]):
                        artifacts = keep_artifacts(trial, out_dir, error)
                except (*LAB_FAILURES, OSError):  # evidence is best effort (a full --out too); the verdict stands
                    artifacts = str(out_dir / "trials" / scenario.trial_id)
            if scenario.records and phase is not Phase.BOOT:
                try:
                    with watchdog.phase(Phase.RECORD.value, limits[Phase.RECORD]):
                        artifacts = keep_trace(trial, out_dir) or artifacts
                except (*LAB_FAILURES, OSError):  # the trace is evidence too: best effort
                    pass
        finally:
            try:  # a disk is kept for the next trial only after a verdict, and if no deadline pulled it down
                machine.remove(keep_disk=trial.judgement is not None and trial.judgement.verdict.value != "error"
                               and watchdog.expired is None)
            except LAB_FAILURES:
                pass
    return _record(trial, time.monotonic() - started, artifacts, replay_command(out_dir, scenario.trial_id))


def _record(trial: _Trial, duration_s: float, artifacts: str | None, replay: str) -> TrialRecord:
    scenario, ready, outcomes = trial.scenario, trial.ready, trial.outcomes
    assert trial.judgement is not None
    last = outcomes[-1] if outcomes else None
    ver = trial.judgement.verification
    timeline = build_timeline(
        trial.stamped, faults=[(o.fault.value, o.acks_at_fire, o.fired_at) for o in outcomes],
        lost_ops=[w.op_index for w in ver.lost] if ver is not None else [],
        files=[(f.name, f.size) for f in trial.restarted.facts.files] if trial.restarted is not None else [])
    story = trial.story
    return TrialRecord.judged(
        trial.judgement,
        id=scenario.trial_id, profile=scenario.profile.name, faults=tuple(f.name.value for f in scenario.faults),
        preset=scenario.store.preset,
        journal_mode=str(ready.get("journal_mode", scenario.store.journal_mode or "?")),
        synchronous=str(ready.get("synchronous", scenario.store.synchronous or "?")),
        seed=scenario.seed, duration_s=round(duration_s, 3),
        detail=trial.judgement.reason[:500] + (f" [{story}]" if story else ""),
        replay=replay, scenario=scenario_to_dict(scenario),
        oom_killed=any(o.oom_killed for o in outcomes) if outcomes else None,
        exit_code=last.exit_code if last else None, artifacts_dir=artifacts,
        store=scenario.store.source, hazards=scenario.workload.hazard_labels,
        start=_start_text(trial),
        sqlite=scenario.store.sqlite_label, sqlite_version=str(ready.get("sqlite_version", "")),
        sqlite_source_id=str(ready.get("sqlite_source_id", "")),
        checkpoints=trial.checkpoints, timeline=timeline,
        schedule=tuple(step.describe() for step in scenario.schedule()),
        cpus=trial.machine.pin.describe() if trial.machine.pin else "", phases=tuple(trial.calls),
        pragmas={name: str(ready[name]) for name in READY_PRAGMAS if name in ready},
        evidence=dict(trial.restarted.kept) if trial.restarted is not None else {})


def _start_text(trial: _Trial) -> str:
    """How the trial's disk started: the database it held and how long restoring it took ("" when empty)."""
    start = trial.scenario.start
    if not start.active:
        return ""
    files = load_start(start.files) if start.files else None
    if trial.restored is None:
        return start.describe() + (f": {files.describe()}" if files is not None else "")
    return f"{start.describe()}: {trial.restored.describe(files)}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def keep_artifacts(trial: _Trial, out_dir: pathlib.Path, error: BaseException | None = None) -> str:
    """Everything needed to study a trial that did not pass: the database files as the crash
    left them (db, -wal, -shm, -journal: copied before the restarted machine opened them),
    ledger, logs, the replay command."""
    scenario, machine = trial.scenario, trial.machine
    target = out_dir / "trials" / scenario.trial_id
    target.mkdir(parents=True, exist_ok=True)
    try:  # as the crash left them if the restart got that far (checked against their hashes), else as they are now
        fetch_database(machine, target, kept=trial.restarted.kept if trial.restarted is not None else None)
    except LAB_FAILURES as exc:  # evidence is best effort; the verdict stands without it, and says so
        error = error or exc
    lines = trial.lines
    if not lines:  # the trial ended before its restart fetched the log
        try:
            lines = machine.output()
        except LAB_FAILURES:
            lines = []
    (target / "machine.log").write_text("\n".join(lines) + "\n")
    printed = store_output(lines)
    if printed:  # what the store printed: an ordinary artifact, never evidence
        (target / "store.log").write_text(printed)
    (target / "ledger.jsonl").write_text("".join(format_line(Tag.LEDGER, p.payload).partition(" ")[2] + "\n"
                                                 for p in ledger_lines(lines)))
    if trial.restarted is not None:
        (target / "probe.log").write_text(trial.restarted.output)
    (target / "faults.json").write_text(json.dumps(
        {"schedule": [s.describe() for s in scenario.schedule()],
         "outcomes": [dataclasses.asdict(o) for o in trial.outcomes],
         "error": "" if error is None else "\n".join([str(error), *getattr(error, "__notes__", [])])},
        indent=2, default=str))
    script = target / "replay.sh"
    script.write_text(replay_script(out_dir, scenario.trial_id))
    script.chmod(0o755)
    return str(target)


def keep_trace(trial: _Trial, out_dir: pathlib.Path) -> str | None:
    """A recording trial's trace, ledger and settings as a trace directory for `repro explore`
    (``trials/<id>/trace``); returns the trial's artifact directory, or None if nothing was recorded."""
    from repro.explore.tracedir import Recording, write_recording
    from repro.machine.services import fetch_trace

    scenario, machine = trial.scenario, trial.machine
    target = out_dir / "trials" / scenario.trial_id
    try:
        if not fetch_trace(machine, target / "trace"):
            return None
        write_recording(target / "trace", Recording(
            store_env=scenario.store.environment(), store_path=scenario.store.store_path,
            locks_dropped=scenario.workload.hazard_every(HazardName.RAW_OPEN) > 0,
            source=f"trial {scenario.trial_id} of {out_dir}", scenario=scenario_to_dict(scenario)),
            trial.lines or machine.output())
    except LAB_FAILURES:  # evidence is best effort; the verdict stands without it
        return None
    return str(target)


def run_trials(scenarios: Sequence[Scenario], *, out_dir: pathlib.Path, jobs: int = 1, image: str = IMAGE,
               on_event: Callable[[TrialEvent], None] = lambda e: None,
               stop: threading.Event | None = None) -> list[TrialRecord]:
    """Run trials, ``jobs`` at a time; records come back in scenario order."""
    stop = stop or threading.Event()
    records: dict[str, TrialRecord] = {}

    def one(scenario: Scenario) -> TrialRecord:
        if stop.is_set():
            raise KeyboardInterrupt
        on_event(TrialEvent(Progress.START, scenario.trial_id))
        record = run_trial(scenario, out_dir=out_dir, image=image, on_event=on_event, pool=disks)
        if stop.is_set():  # its machine was pulled down under it: no verdict to report
            raise KeyboardInterrupt
        on_event(TrialEvent(Progress.DONE, scenario.trial_id, record=record))
        return record

    disks = DiskPool(max_idle=max(1, jobs))  # a trial starts its machine on the disk an earlier one used
    with disks, ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="trial") as pool:
        futures = {pool.submit(one, s): s for s in scenarios}
        try:
            for future in as_completed(futures):
                record = future.result()
                records[record.id] = record
        except BaseException:  # Ctrl-C or a bug: stop queued trials and pull down the running ones
            stop.set()
            for future in futures:
                future.cancel()
            _remove_run_containers()
            raise
    return [records[s.trial_id] for s in scenarios if s.trial_id in records]


def _remove_run_containers() -> None:
    """Kill this process's machines so that running trials end now instead of finishing first."""
    from repro.machine import engine
    from repro.machine.labels import owner

    try:
        engine.cleanup(owner=owner())
    except LabError:
        pass  # no engine: nothing of ours can be running
