"""One crash trial end to end -- machine, workload, faults, restarted machine, verdict -- and a run of many."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Sequence

import docker.errors
import requests.exceptions

from repro.errors import LabError
from repro.faults import FAULTS, FaultOutcome
from repro.host import ConstrainedHost
from repro.labels import IMAGE
from repro.ledger import LedgerError
from repro.oracle import lab_error
from repro.report.records import TrialRecord, record_trial
from repro.scenario import HazardName, Scenario, replay_command, scenario_to_dict, trial_seed

# What a lab failure looks like from here: our own errors, a ledger we cannot read, the engine
# (docker-py) or its HTTP transport failing, or a machine printing something that is not JSON.
# Any of them makes the trial an `error` verdict; the rest of the run goes on.
LAB_FAILURES = (LabError, LedgerError, docker.errors.DockerException, requests.exceptions.RequestException,
                json.JSONDecodeError)


@dataclass(frozen=True)
class TrialEvent:
    """Progress of a run, for whoever displays it (the runner itself prints nothing)."""

    kind: str  # "start" | "done"
    trial_id: str
    record: TrialRecord | None = None


def run_trial(scenario: Scenario, *, out_dir: pathlib.Path, image: str = IMAGE) -> TrialRecord:
    """Run one trial. Lab failures become an `error` verdict; nothing is left running."""
    started = time.monotonic()
    seed = trial_seed(scenario.seed, scenario.trial_id)
    fault_names = tuple(f.name.value for f in scenario.faults)
    host = ConstrainedHost(scenario.profile, store=scenario.store, image=image, fuse=scenario.needs_fuse)
    outcomes: list[FaultOutcome] = []
    ready: dict[str, object] = {}
    artifacts: str | None = None
    judgement = None
    try:
        with host:
            try:
                workload = scenario.workload
                ready = host.start_workload(seed=seed, rate=workload.rate, hold=True, linger_ms=workload.linger_ms,
                                            lossy_args=scenario.lossy_args, env=workload.environment(),
                                            raw_open_every=workload.hazard_every(HazardName.RAW_OPEN),
                                            dashboard_ms=workload.hazard_every(HazardName.DASHBOARD),
                                            cron_ms=workload.hazard_every(HazardName.CRON))
                for step in scenario.schedule():
                    outcomes.append(FAULTS[step.name].inject(host, step))
                if not any(o.machine_down for o in outcomes):
                    host.stop()  # no fault ended the machine: Fly's ordinary stop ends the trial
                result = host.verify(faults=fault_names)
                judgement = result.judgement
                if judgement.verdict.value != "pass":
                    artifacts = keep_artifacts(host, scenario, out_dir, outcomes, result.probe_output)
            except LAB_FAILURES as exc:  # the lab failed, not the store
                judgement = lab_error(_one_line(exc))
                artifacts = keep_artifacts(host, scenario, out_dir, outcomes, "", error=exc)
    except LAB_FAILURES as exc:  # the machine could not even start, or could not be removed
        judgement = lab_error(_one_line(exc))
    assert judgement is not None
    last = outcomes[-1] if outcomes else None
    record = record_trial(
        id=scenario.trial_id, profile=scenario.profile.name, faults=fault_names,
        preset=scenario.store.preset,
        journal_mode=str(ready.get("journal_mode", scenario.store.journal_mode or "?")),
        synchronous=str(ready.get("synchronous", scenario.store.synchronous or "?")),
        seed=scenario.seed, judgement=judgement, duration_s=time.monotonic() - started,
        replay=replay_command(out_dir, scenario.trial_id), scenario=scenario_to_dict(scenario),
        oom_killed=any(o.oom_killed for o in outcomes) if outcomes else None,
        exit_code=last.exit_code if last else None, artifacts_dir=artifacts,
        store=scenario.store.store_path or "default", hazards=scenario.workload.hazard_labels,
    )
    story = "; ".join(filter(None, (describe_outcome(o) for o in outcomes)))
    return dataclasses.replace(record, detail=f"{record.detail} [{story}]" if story else record.detail,
                               sqlite_version=str(ready.get("sqlite_version", "")),
                               schedule=tuple(step.describe() for step in scenario.schedule()))


def describe_outcome(outcome: FaultOutcome) -> str:
    """One short clause per fault: when it fired and what it did to the machine."""
    text = f"{outcome.fault} at {outcome.acks_at_fire} acks" + (" mid-write" if outcome.in_write else "")
    killed = outcome.detail.get("killed")
    if isinstance(killed, dict):
        text += (f", kernel OOM killer killed {killed.get('service')} (signal {killed.get('signal')},"
                 f" oom_kill={killed.get('kernel_oom_kills')})")
    disk = outcome.detail.get("disk")
    if isinstance(disk, dict):
        text += f", disk full after {int(disk.get('written', 0)) >> 20} MiB of cache"
    if "graceful" in outcome.detail and outcome.fault in ("sigint", "sigterm"):
        text += ", stopped cleanly" if outcome.detail["graceful"] else ", SIGKILLed after the kill timeout"
    return text


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def keep_artifacts(host: ConstrainedHost, scenario: Scenario, out_dir: pathlib.Path,
                   outcomes: Sequence[FaultOutcome], probe_output: str,
                   error: BaseException | None = None) -> str:
    """Everything needed to study a trial that did not pass: the database files as the crash
    left them (db, -wal, -shm, -journal: copied before the restarted machine opened them),
    ledger, logs, the replay command."""
    target = out_dir / "trials" / scenario.trial_id
    target.mkdir(parents=True, exist_ok=True)
    try:  # as the crash left them if verify got that far, else as they are now
        host.fetch_database(target, crash_state=True)
    except LAB_FAILURES:  # evidence is best effort; the verdict stands without it
        pass
    lines = host.lines()
    try:
        container = host.get_wrapped_container()
        lines = container.logs().decode("utf-8", "replace").splitlines()
    except LAB_FAILURES:  # the machine is gone: the lines followed live are what there is
        pass
    (target / "machine.log").write_text("\n".join(lines) + "\n")
    (target / "ledger.jsonl").write_text("".join(l[len("LEDGER "):] + "\n" for l in lines if l.startswith("LEDGER ")))
    if probe_output:
        (target / "probe.log").write_text(probe_output)
    (target / "faults.json").write_text(json.dumps(
        {"schedule": [s.describe() for s in scenario.schedule()],
         "outcomes": [o.__dict__ for o in outcomes],
         "error": "" if error is None else "\n".join([str(error), *getattr(error, "__notes__", [])])},
        indent=2, default=str))
    (target / "replay.sh").write_text("#!/bin/sh\n" + replay_command(out_dir, scenario.trial_id) + "\n")
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
        on_event(TrialEvent("start", scenario.trial_id))
        record = run_trial(scenario, out_dir=out_dir, image=image)
        if stop.is_set():  # its machine was pulled down under it: no verdict to report
            raise KeyboardInterrupt
        on_event(TrialEvent("done", scenario.trial_id, record))
        return record

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="trial") as pool:
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
    """Kill this run's machines so that running trials end now instead of finishing first."""
    from repro import engine
    from repro.labels import RUN_ID

    try:
        engine.cleanup(run_id=RUN_ID)
    except LabError:
        pass  # no engine: nothing of ours can be running


__all__ = ["TrialEvent", "run_trial", "run_trials"]
