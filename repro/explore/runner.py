"""An exploration: size the state space, choose the states (all, or a seeded sample), check them in
the explore sandbox's workers (repro/explore/sandbox.py), and sum up per persistence model.

The states of every model are checked together, sorted by crash point and cut into batches of
neighbouring crash points: each worker's work directory then only moves forward within a batch,
and states with equal files (often: a crash point's prefix 0 is its synced-only state) meet in
the same worker's cache of the probe's facts.
"""

from __future__ import annotations

import itertools
import queue
from concurrent.futures import Future, ThreadPoolExecutor
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

from repro.errors import ExitCode, ScenarioError
from repro.explore.blockspace import BlockModel, BlockSpace, BlockState
from repro.explore.check import ChunkStats, StateResult, ViolationKind
from repro.explore.models import PersistenceModel
from repro.explore.orderings import Ordering
from repro.explore.second import SecondLevel
from repro.explore.space import Selection, StateSpace, StateSpec
from repro.explore.timeline import Timeline
from repro.explore.tracedir import TraceDir
from repro.oracle.promises import CrashClass, StoreConfig, promise
from repro.oracle.verdicts import Verdict

if TYPE_CHECKING:
    from repro.explore.sandbox import Recoverer, Worker


AnySpace = Union[StateSpace, BlockSpace]
AnyModel = Union[PersistenceModel, BlockModel]


@dataclass(frozen=True)
class ModelSummary:
    """What checking one model's states found."""

    model: AnyModel
    selection: Selection
    verdicts: dict[str, int]
    violations: dict[str, int]  # ViolationKind value -> states
    violating_points: int  # distinct crash points with a broken promise
    findings: int  # states corrupt or with acknowledged writes lost, promised or not
    finding_points: int
    largest_loss: int
    largest_loss_state: str | None
    first_violation: StateResult | None
    first_finding: StateResult | None
    probes: int
    promise: str
    promise_safe: bool  # the configuration promised something for these states

    @property
    def checked(self) -> int:
        return len(self.selection.indices)

    @property
    def broken(self) -> int:
        return sum(n for kind, n in self.violations.items() if kind != ViolationKind.ERROR.value)


@dataclass(frozen=True)
class Exploration:
    """The whole run: the trace, the configuration in force, one summary per model, the cost."""

    trace_dir: TraceDir
    digest: str
    config: StoreConfig
    ops: int
    crash_points: int
    budget: int
    seed: int
    jobs: int
    models: tuple[ModelSummary, ...]
    seconds: float
    stats: ChunkStats
    space: AnySpace = field(repr=False)
    machine_sqlite: str = "?"  # the SQLite the recording machine's store ran (READY); the sandbox runs the image's
    results: tuple[StateResult, ...] = field(repr=False, default=())
    shape: str = ""  # the trace's shape (TraceDir.shape): every state id the reports print carries it
    orderings: tuple[Ordering, ...] = ()  # findings shrunk and grouped (repro/explore/orderings.py), when asked
    second: tuple[SecondLevel, ...] = ()  # crash during recovery (--recovery): the chosen states' reopens

    @property
    def states(self) -> int:
        return sum(m.checked for m in self.models)

    @property
    def rate(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> ExitCode:
        if any(m.violations.get(ViolationKind.ERROR.value) for m in self.models) or any(s.errors for s in self.second):
            return ExitCode.LAB_FAILED
        if any(m.broken for m in self.models) or any(s.is_worse for s in self.second):
            return ExitCode.TRIAL_FAILED
        return ExitCode.OK

    def materialize_command(self, state_id: str) -> str:
        return f"repro explore {self.trace_dir.path} --materialize {state_id} --out DIR"

    def state_ref(self, model: AnyModel, index: int) -> str:
        """A state as reports print it: ``prefix:120@<shape>``, keyed by the trace's shape (TraceDir.shape), so
        that it names the same state in another recording of the same shape and no other."""
        return state_ref(model, index, self.shape)


def state_ref(model: AnyModel, index: int, shape: str) -> str:
    return f"{model.value}:{index}" + (f"@{shape}" if shape else "")


def split_state_ref(text: str) -> tuple[str, str]:
    """``prefix:120@3fa9c0d1e2b4`` -> (``prefix:120``, ``3fa9c0d1e2b4``); no ``@``: (text, "")."""
    state, _, shape = text.strip().partition("@")
    return state, shape


def plan(space: AnySpace, budget: int, seed: int) -> list[Selection]:
    if budget < 1:
        raise ScenarioError("--budget must be at least 1")
    return [space.select(model, budget, seed) for model in space.models]  # type: ignore[arg-type]


def batches(space: AnySpace, selections: Sequence[Selection], jobs: int) -> list[list[tuple[str, int]]]:
    """Every chosen state as (model, index), sorted by crash point, cut into contiguous batches."""
    order = {m: n for n, m in enumerate(space.models)}
    spec: Callable[[AnyModel, int], StateSpec | BlockState] = space.spec  # type: ignore[assignment]
    refs = sorted(((spec(s.model, i).point.index, order[s.model], i, s.model.value)  # type: ignore[index]
                   for s in selections for i in s.indices))
    size = max(16, min(400, len(refs) // max(1, jobs * 8) or 1))
    return [[(model, i) for _, _, i, model in refs[k:k + size]] for k in range(0, len(refs), size)]


def explore(trace_dir: TraceDir, models: tuple[AnyModel, ...], *, budget: int, seed: int, jobs: int = 2,
            image: str | None = None,
            on_start: Callable[[AnySpace, list[Selection]], None] = lambda s, sel: None,
            on_progress: Callable[[int, int], None] = lambda done, total: None) -> Exploration:
    """Check the chosen states of every model in one sandbox of ``image`` (default: the lab's) with ``jobs``
    workers; ``on_start`` sees the space before any state is checked. The time includes the sandbox's start."""
    timeline = Timeline(trace_dir.reader())
    ledger = trace_dir.ledger()
    config = StoreConfig.from_ready(ledger.ready)
    space: AnySpace = BlockSpace(timeline, models) if trace_dir.recording.block_level else StateSpace(timeline, models)  # type: ignore[arg-type]
    selections = plan(space, budget, seed)
    on_start(space, selections)
    work = batches(space, selections, jobs)
    started = time.perf_counter()
    results, stats = check_in_sandbox(trace_dir, models, work, jobs=jobs, image=image, on_progress=on_progress)
    seconds = time.perf_counter() - started
    results.sort(key=lambda r: (models.index(r.model), r.index))
    shape = trace_dir.shape()
    summaries = tuple(summarize(sel, [r for r in results if r.model == sel.model], config,
                                trace_dir.recording.locks_dropped, shape) for sel in selections)
    return Exploration(trace_dir, trace_dir.digest(), config, len(timeline.ops), len(timeline.points), budget, seed,
                       jobs, summaries, seconds, stats, space, str(ledger.ready.get("sqlite_version", "?")),
                       tuple(results), shape=shape)


_Done = Union[tuple[list[StateResult], ChunkStats], BaseException, None]


def check_in_sandbox(trace_dir: TraceDir, models: tuple[AnyModel, ...], work: list[list[tuple[str, int]]],
                     *, jobs: int, image: str | None = None,
                     on_progress: Callable[[int, int], None] = lambda done, total: None,
                     ) -> tuple[list[StateResult], ChunkStats]:
    """Check the batches in one sandbox, ``jobs`` workers taking batches as they finish the last; the
    first failure of any worker ends them all (the sandbox is removed) and is raised here."""
    from repro.explore.sandbox import RECOVERED_DIR, Sandbox
    from repro.machine.engine import image_name

    results: list[StateResult] = []
    stats = ChunkStats()
    total = sum(len(b) for b in work)
    if not work:
        return results, stats
    todo: queue.SimpleQueue[list[tuple[str, int]]] = queue.SimpleQueue()
    for batch in work:
        todo.put(batch)
    done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
    workers = max(1, min(jobs, len(work)))
    blocks = trace_dir.recording.block_level
    loops = require_devices(workers) if blocks else ()
    sandbox = Sandbox(trace_dir, image=image_name(image), jobs=workers, loops=loops)
    serial = itertools.count()

    def serve() -> None:
        try:
            if blocks:  # a root recoverer mounts each state; the uid-1000 checker probes what it left
                out = f"{RECOVERED_DIR}-{next(serial)}"
                recoverer = sandbox.recoverer(models, out)  # type: ignore[arg-type]
                worker = sandbox.worker(models, recovered=out)
            else:
                recoverer, worker = None, sandbox.worker(models)
            if recoverer is None:
                while True:
                    try:
                        batch = todo.get_nowait()
                    except queue.Empty:
                        break
                    done.put(worker.check(batch))
            else:
                _pipelined(todo, recoverer, worker, done)
        except BaseException as exc:  # handed to the main thread, which raises it
            done.put(exc)
        finally:
            done.put(None)

    with sandbox:
        threads = [threading.Thread(target=serve, name=f"explore-worker-{n}", daemon=True)
                   for n in range(workers)]
        for thread in threads:
            thread.start()
        finished = 0
        while finished < len(threads):
            try:
                item = done.get(timeout=0.5)  # a timeout: Ctrl-C reaches this thread
            except queue.Empty:
                continue
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                chunk, chunk_stats = item
                results.extend(chunk)
                stats.add(chunk_stats)
                on_progress(len(results), total)
    if len(results) != total:
        from repro.explore.sandbox import SandboxError

        raise SandboxError(f"the explore sandbox checked {len(results)} of {total} states")
    return results, stats


def summarize(selection: Selection, results: list[StateResult], config: StoreConfig,
              locks_dropped: bool, shape: str = "") -> ModelSummary:
    violating = [r for r in results if r.kind is not None]
    findings = [r for r in results if r.verdict in (Verdict.CORRUPT, Verdict.LOST_ACKED) or r.beyond_sync]
    largest = max(results, key=lambda r: (len(r.lost), -r.index), default=None)
    prom = promise(config, CrashClass.POWER_LOSS, lazy_dirs=selection.model.lazy_dirs, locks_dropped=locks_dropped)
    return ModelSummary(
        model=selection.model, selection=selection,
        verdicts=dict(Counter(r.verdict.value for r in results)),
        violations=dict(Counter(r.kind.value for r in violating if r.kind is not None)),
        violating_points=len({r.point for r in violating if r.kind is not ViolationKind.ERROR}),
        findings=len(findings), finding_points=len({r.point for r in findings}),
        largest_loss=len(largest.lost) if largest is not None else 0,
        largest_loss_state=None if largest is None or not largest.lost else
        state_ref(largest.model, largest.index, shape),
        first_violation=violating[0] if violating else None,
        first_finding=findings[0] if findings else None,
        probes=sum(r.probed for r in results), promise=prom.reason, promise_safe=prom.promised_safe)


def _pipelined(todo: queue.SimpleQueue[list[tuple[str, int]]], recoverer: Recoverer, worker: Worker,
               done: queue.SimpleQueue[_Done]) -> None:
    """Block-level batches: the recoverer mounts batch k+1 (into the other slot) while the checker probes batch k."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recoverer") as ahead:
        nxt: Future[tuple[list[dict[str, Any]], float]] | None = None
        slot = 0
        batch = _take(todo)
        if batch is not None:
            nxt = ahead.submit(recoverer.recover, batch, slot)
        while batch is not None and nxt is not None:
            recovered, seconds = nxt.result()
            following = _take(todo)
            nxt = ahead.submit(recoverer.recover, following, 1 - slot) if following is not None else None
            results, stats = worker.check(batch, recovered)
            stats.recover_s += seconds
            done.put((results, stats))
            batch, slot = following, 1 - slot


def _take(todo: queue.SimpleQueue[list[tuple[str, int]]]) -> list[tuple[str, int]] | None:
    try:
        return todo.get_nowait()
    except queue.Empty:
        return None


def require_devices(count: int) -> tuple[str, ...]:
    """The engine host's free loop devices for ``count`` recoverers (ScenarioError when there are too few)."""
    from repro.machine import engine, loops

    return loops.require_devices(str(engine.client().api.base_url), count)


def describe_state(space: AnySpace, spec: StateSpec | BlockState, limit: int = 8) -> dict[str, object]:
    """A state in words: where the crash is, what was acknowledged, what was dropped or torn."""
    if isinstance(space, BlockSpace):
        return space.describe(spec, limit)  # type: ignore[arg-type]
    assert isinstance(spec, StateSpec)
    timeline = space.timeline
    point = spec.point
    dropped = [timeline.describe(p) for p in spec.dropped]
    out: dict[str, object] = {
        "state": spec.state_id,
        "crash_point": point.index,
        "after": timeline.describe(point.last_op) if point.last_op >= 0 else "the start",
        "acknowledged_through": point.acked,
        "persisted_unsynced": len(spec.persisted),
        "dropped": dropped[:limit] + ([f"... {len(dropped) - limit} more"] if len(dropped) > limit else []),
    }
    if spec.torn is not None:
        kept = (f"first {spec.torn.kept}" if spec.torn.mask is None else
                f"sectors {','.join(map(str, spec.torn.sectors_kept()))}")
        out["torn"] = f"{timeline.describe(spec.torn.pos)}: {kept} of {spec.torn.total} sectors"
    if spec.grown is not None:
        grown = [timeline.describe(p) for p in spec.dropped if p in timeline.grows]
        out[f"grown_with_{spec.grown.value}"] = grown[:limit] + ([f"... {len(grown) - limit} more"]
                                                               if len(grown) > limit else [])
    if spec.entries is not None:
        missing = [timeline.describe(p) for p in timeline.entry_log[spec.entries:point.committed_entries
                                                                     + len(point.pending)]]
        out["entries_not_durable"] = missing[:limit] + ([f"... {len(missing) - limit} more"]
                                                        if len(missing) > limit else [])
    return out
