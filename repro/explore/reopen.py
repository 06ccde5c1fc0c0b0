"""Crash during recovery (`repro explore --recovery N`): record the store reopening chosen crash states on
lossyfs, then check every crash state of each reopen where its first-level state was judged
(repro/explore/second.py says what is judged and what counts as worse).

For each chosen state the lab builds its files here (no store code runs on this side), uploads them into a
recording machine's lossy backing directory -- so they are the trace's initial files -- and starts the
workload with ``reopen``: the mark ``ready``, then the store opens the database as a restarted service
would (SQLite's hot-journal rollback or WAL recovery, the store's own repair), reads its counts and closes
it; once its process has ended (s6's FINISH, which the store cannot cut short by writing a CLOSED of its
own), the machine stops cleanly. The reopen is recorded without the kernel's writeback cache, so the same
first-level state gives a trace of the same shape. Its crash states are checked in the explore sandbox
like any trace's; the reopen's trace directory holds the first-level ledger (machine.log), the reopen
machine's own log (reopen.log) and first.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import pathlib
import tarfile
import tempfile
import time
from typing import Callable

from repro.errors import LabError, ScenarioError
from repro.explore.check import JudgedAt
from repro.explore.materialize import Materializer
from repro.explore.record import stop_and_fetch, wait_for_exit
from repro.explore.models import PRESETS, PersistenceModel
from repro.explore.runner import Exploration, batches, check_in_sandbox, plan, state_ref
from repro.explore.second import FIRST_FILE, FirstLevel, SecondLevel, choose, summarize
from repro.explore.space import StateSpace
from repro.explore.timeline import Timeline
from repro.explore.tracedir import LOG_FILE, Recording, TraceDir, write_recording
from repro.machine.disk import DATA_DIR, LOSSY_BACKING
from repro.machine.container import ConstrainedHost
from repro.machine.services import MARK_SOCKET, start, start_lossyfs
from repro.oracle.verdicts import Verdict
from repro.protocol import EventKind
from repro.scenario import OWN_SETTINGS, MachineProfile, StoreSpec
from repro.verify.crosscheck import channel_problems, require
from repro.workload.config import WorkloadConfig

REOPEN_LOG = "reopen.log"
SYNCED_ONLY = PRESETS["synced-only"]
REOPEN_TIMEOUT_S = 90.0  # a store repairing a damaged file on a 1-CPU machine through FUSE
UID = GID = 1000  # the workload's user, hermes


def reopen_timeout() -> float:
    """How long a reopen may take: the workload phase's deadline where HERMES_LAB_DEADLINES sets one (the phase in
    which a trial's store opens), else REOPEN_TIMEOUT_S."""
    from repro.phases import Phase, deadline_overrides

    return deadline_overrides().get(Phase.WORKLOAD, REOPEN_TIMEOUT_S)


def store_of(recording: Recording) -> StoreSpec:
    """The store a recording ran, as the machine is given it: the inverse of StoreSpec.environment."""
    env = dict(recording.store_env)
    autockpt = env.get("HERMES_STATE_WAL_AUTOCHECKPOINT")
    try:
        store = StoreSpec(env.get("HERMES_STATE_PRESET", OWN_SETTINGS), env.get("HERMES_STATE_JOURNAL_MODE"),
                          env.get("HERMES_STATE_SYNCHRONOUS"), recording.store_path,
                          (env.get("HERMES_STATE_CHECKPOINT_MODE") or "").lower() or None,
                          wal_autocheckpoint=None if autockpt is None else int(autockpt))
    except ValueError:
        raise ScenarioError(f"recording.json: HERMES_STATE_WAL_AUTOCHECKPOINT={autockpt!r} is not a number") from None
    if store.environment() != env:
        raise ScenarioError(f"recording.json: the store's settings {env} are not ones the lab sets")
    return store


def require_reopenable(trace: TraceDir) -> StoreSpec:
    """The store a trace's states are reopened with; ScenarioError (before any machine) for a trace whose states
    cannot be: recorded with --fs, a reopen's own trace, a database the reopen machine would not open."""
    from repro.explore.second import read_first

    if trace.recording.block_level:
        raise ScenarioError("--recovery reopens file-level states: a trace recorded with --fs is not modelled yet")
    if read_first(trace.path) is not None:
        raise ScenarioError(f"{trace.path} is a reopen's trace (a second level): --recovery reopens the states of "
                            "a workload's trace")
    if trace.recording.db_name != "state.db":
        raise ScenarioError(f"recording.json: db_name {trace.recording.db_name!r}: a reopen opens state.db")
    return store_of(trace.recording)


def _tar(files: pathlib.Path, prefix: str) -> bytes:
    """The state's files under ``prefix`` on the disk, owned by the workload's user."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid, info.gid, info.uname, info.gname = UID, GID, "hermes", "hermes"
            info.mode = 0o755 if info.isdir() else 0o644
            return info

        tar.add(files, arcname=prefix, filter=owned)
    return buf.getvalue()


def record_reopen(*, trace: TraceDir, first: FirstLevel, files: pathlib.Path, profile: MachineProfile,
                  store: StoreSpec, seed: int, dest: pathlib.Path, image: str) -> TraceDir:
    """Record the store reopening the state whose files are in ``files``; the reopen's trace directory."""
    machine = ConstrainedHost(profile, store=store, image=image, fuse=True, record=True)
    try:
        machine.start()
        assert machine.disk is not None
        machine.disk.put(DATA_DIR, _tar(files, LOSSY_BACKING[len(DATA_DIR):].strip("/")))
        start_lossyfs(machine, seed, "--no-writeback-cache", record=True)
        config = WorkloadConfig(seed=seed, reopen=True, db_path=machine.db_path, store_mount=machine.store_mount,
                                mark_socket=MARK_SOCKET)
        start(machine, "session-store", {**config.to_env(), **machine.store.environment()})
        wait_for_exit(machine, reopen_timeout(), "the store's reopen")
        refused = next((line for line in machine.console.parsed() if line.is_event(EventKind.CONFIG_ERROR)), None)
        if refused is not None:
            raise machine.console.error(f"the reopen did not start: {dict(refused.payload)}")
        stop_and_fetch(machine, dest)
        # the reopen's log is kept beside the first level's ledger, which TraceDir checks: this one is checked here
        require(channel_problems(machine.output()))
        recording = dataclasses.replace(trace.recording, reproducible=True,
                                        source=f"the reopen of {first.state} of {trace.path}")
        ledger = (trace.path / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
        write_recording(dest, recording, ledger)  # the first level's ledger: its states are judged against it
        (dest / REOPEN_LOG).write_text("\n".join(machine.output()) + "\n", encoding="utf-8")
        (dest / FIRST_FILE).write_text(first.to_json(), encoding="utf-8")
    finally:
        machine.remove()
    return TraceDir.open(dest)


def check_reopen(reopen: TraceDir, first: FirstLevel, models: tuple[PersistenceModel, ...], *, budget: int,
                 seed: int, jobs: int, image: str) -> SecondLevel:
    """Every crash state of a reopen (or a seeded sample), judged where its first-level state was; and always the
    completed reopen (its last crash point, synced-only: nothing but the reopen's own doing), chosen or not."""
    started = time.perf_counter()
    timeline = Timeline(reopen.reader())
    completed = (SYNCED_ONLY.value, len(timeline.points) - 1)  # one state per crash point: its index is the point's
    checked = models if SYNCED_ONLY in models else (*models, SYNCED_ONLY)
    space = StateSpace(timeline, checked)
    selections = plan(space, budget, seed)[:len(models)]
    chosen = {(s.model.value, i) for s in selections for i in s.indices}
    work = batches(space, selections, jobs) + ([] if completed in chosen else [[completed]])
    results, _ = check_in_sandbox(reopen, checked, work, jobs=jobs, image=image)  # type: ignore[arg-type]
    shape = reopen.shape()
    results.sort(key=lambda r: (checked.index(r.model), r.index))  # type: ignore[arg-type]
    last = next((r for r in results if (r.model.value, r.index) == completed), None)
    verdicts, found, completed_verdict, completed_worse, errors = summarize(
        first, results, last, chosen, lambda r: state_ref(r.model, r.index, shape))
    return SecondLevel(first=first, trace=str(reopen.path), shape=shape, ops=len(timeline.ops),
                       crash_points=len(timeline.points), states_total=sum(s.total for s in selections),
                       checked=len(chosen), verdicts=verdicts, worse=found, completed_worse=completed_worse,
                       errors=errors, seconds=time.perf_counter() - started, completed=completed_verdict)


def reopen_states(run: Exploration, *, count: int, profile: MachineProfile, out: pathlib.Path, image: str,
                  on_line: Callable[[str], None] = lambda text: None) -> tuple[SecondLevel, ...]:
    """The second level of an exploration: ``count`` of its states (repro/explore/second.py's choice)
    reopened, each reopen recorded and its crash states checked."""
    store = require_reopenable(run.trace_dir)
    space = run.space
    assert isinstance(space, StateSpace)
    models = tuple(m.model for m in run.models)
    levels: list[SecondLevel] = []
    for n, (result, reason) in enumerate(choose(run.results, count, run.seed), start=1):
        spec = space.spec(result.model, result.index)  # type: ignore[arg-type]
        first = FirstLevel.of(result, run.state_ref(result.model, result.index), reason, JudgedAt.of(spec))
        dest = out / "reopens" / f"{n:02d}"
        dest.mkdir(parents=True)
        on_line(f"reopen {n}: {first.state} ({reason}, {first.verdict}) into {dest}")
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="repro-reopen-") as scratch, \
                    tempfile.TemporaryDirectory(prefix="repro-reopen-state-") as state:
                files = pathlib.Path(state) / "files"
                Materializer(space.timeline, scratch).write(spec, files)
                reopen = record_reopen(trace=run.trace_dir, first=first, files=files, profile=profile, store=store,
                                       seed=run.seed, dest=dest, image=image)
            recorded = time.perf_counter() - started
            level = check_reopen(reopen, first, models, budget=run.budget, seed=run.seed, jobs=run.jobs,  # type: ignore[arg-type]
                                 image=image)
            level = dataclasses.replace(level, record_seconds=recorded)
        except ScenarioError:
            raise
        except LabError as exc:  # this reopen is an error of its own (a store that hangs on reopen, too): the rest go on
            if not any(dest.iterdir()):
                dest.rmdir()
            level = SecondLevel.failed(first, str(dest), str(exc).splitlines()[0][:300], time.perf_counter() - started)
        on_line(f"  {level.sentence()}" if level.error is not None else
                f"  recorded in {level.record_seconds:.1f} s; {level.crash_points} crash points, {level.checked} "
                f"states in {level.seconds:.1f} s ({level.rate:.0f}/s): {level.sentence()}")
        levels.append(level)
    with contextlib.suppress(OSError):  # every reopen failed before it recorded anything: no empty folder left
        (out / "reopens").rmdir()
    return tuple(levels)
