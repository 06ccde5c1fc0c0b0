"""Each crash state judged as a trial is: the probe on its files, the diff against the ledger acknowledged
before its crash point, the oracle for the configuration in force -- in the explore sandbox's workers
(repro/explore/worker.py), never in the lab's own process: the probe imports the store under test.

The ledger at a crash point: operations whose ``ack`` mark precedes it keep their outcome;
operations after the last ack up to the next acknowledged one were in flight (indeterminate,
unless they failed, which SQLite rolled back); later ones had not been invoked. The oracle
judges with the power-loss crash class and the pragmas of READY; the lazy-dirs model with
lazy directory entries. Where the configuration allows losing the last commits, the loss must
also lie after the last sync that made earlier commits durable (the WAL's fsync under WAL +
NORMAL, a directory fsync for a rollback journal with lazy entries): a lost commit acknowledged
before that sync is a broken promise too (``lost-beyond-sync``).

States that look alike to SQLite share the probe's facts -- the probe is the costly part, the
diff against each state's own ledger prefix is cheap: first states whose files are equal byte for
byte (materialize.py's content key, from the operations alone), then WAL-mode states whose
recovered image is equal (image.py: a torn frame after the last commit, a checkpoint's un-synced
writes under frames that hold the same pages). The facts reused are those of the state probed
first: every check's result is the same, only the file sizes it noted may differ.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from repro.explore.blockspace import BlockModel, BlockState
from repro.explore.image import WAL_HEADER, Frame, FrameChecker, WalHeader, image_key, read_frames, read_header
from repro.explore.materialize import Materializer
from repro.explore.models import PersistenceModel
from repro.explore.space import StateSpace, StateSpec
from repro.explore.timeline import CrashPoint, Timeline
from repro.explore.tracedir import TraceDir
from repro.ledger import Ledger, Outcome
from repro.oracle.promises import JournalMode, LossBound, StoreConfig
from repro.oracle.verdicts import Verdict, judge
from repro.verify.facts import ProbeFacts
from repro.verify.probe import collect

CRASH_FAULTS = ("power-loss",)
_CACHE_SIZE = 256


class ViolationKind(str, enum.Enum):
    """How a state broke the configuration's promise."""

    CORRUPT = "corrupt"
    LOST_ACKED = "lost-acked"
    LOST_BEYOND_SYNC = "lost-beyond-sync"
    ERROR = "error"


@dataclass(frozen=True)
class StateResult:
    """One state's verdict, compact enough to send back from a worker."""

    model: PersistenceModel | BlockModel
    index: int
    point: int
    seq: int  # the operation the crash follows
    verdict: Verdict
    expected: bool
    acked: int
    lost: tuple[int, ...]  # ledger indices of acknowledged writes not found
    beyond_sync: tuple[int, ...]  # of those, acknowledged before the sync that should have kept them
    reason: str
    probed: bool  # the probe ran on this state (else an equal state's facts were used)
    # a crash during recovery (repro/explore/second.py): message ids the interrupted state held that this one lacks
    regressed: tuple[int, ...] = ()

    @property
    def kind(self) -> ViolationKind | None:
        """The promise this state broke, if any."""
        if self.verdict is Verdict.ERROR:
            return ViolationKind.ERROR
        if not self.expected:
            return ViolationKind.CORRUPT if self.verdict is Verdict.CORRUPT else ViolationKind.LOST_ACKED
        if self.beyond_sync:
            return ViolationKind.LOST_BEYOND_SYNC
        return None


def ledger_at(ledger: Ledger, point: CrashPoint | JudgedAt) -> Ledger:
    """The ledger as a crash at ``point`` leaves it (see the module docstring)."""
    last, nxt = point.acked, point.next_ack
    ops = []
    for op in ledger.operations:
        if op.index <= last:
            ops.append(op)
        elif nxt is None or op.index <= nxt:
            ops.append(op if op.outcome is not Outcome.OK else
                       dataclasses.replace(op, outcome=Outcome.INFO, result={}, error=""))
    return Ledger(tuple(ops), ledger.ready, ledger.events)


@dataclass(frozen=True)
class JudgedAt:
    """What a verdict depends on besides the facts: the acks around the crash point, the sync horizons and
    whether entries are lazy. A state is judged at its own crash point; a state of a crash during recovery
    (repro/explore/second.py) at the crash point of the state whose reopen it interrupted."""

    acked: int
    next_ack: int | None
    wal_sync_ack: int
    dir_sync_ack: int
    lazy_dirs: bool

    @classmethod
    def of(cls, spec: StateSpec | BlockState) -> JudgedAt:
        point = spec.point
        return cls(point.acked, point.next_ack, point.wal_sync_ack, spec.dir_sync_ack, spec.model.lazy_dirs)


def judge_state(spec: StateSpec | BlockState, facts: ProbeFacts, ledger: Ledger, config: StoreConfig, locks_dropped: bool,
                seq: int, probed: bool, at: JudgedAt | None = None) -> StateResult:
    """One state's verdict; ``seq`` names the operation its crash point follows; ``at``: where it is judged
    (default: its own crash point)."""
    at = at or JudgedAt.of(spec)
    prefix = ledger_at(ledger, at)
    judgement = judge(prefix, facts, CRASH_FAULTS, config=config, lazy_dirs=at.lazy_dirs,
                      locks_dropped=locks_dropped)
    ver = judgement.verification
    lost = tuple(w.op_index for w in ver.lost) if ver is not None else ()
    horizon = None
    prom = judgement.promise
    if prom is not None and prom.loss is LossBound.LAST_COMMITS:
        wal = config.journal_mode is JournalMode.WAL
        horizon = at.wal_sync_ack if wal else at.dir_sync_ack
    beyond = tuple(i for i in lost if horizon is not None and i <= horizon) if judgement.expected else ()
    return StateResult(spec.model, spec.index, spec.point.index, seq, judgement.verdict, judgement.expected,
                       ver.acked if ver is not None else 0, lost, beyond, judgement.reason, probed)


@dataclass
class ChunkStats:
    """What one batch of states cost, for the benchmark and the report."""

    states: int = 0
    probes: int = 0
    materialize_s: float = 0.0
    probe_s: float = 0.0
    judge_s: float = 0.0
    cloned_bytes: int = 0
    patched_bytes: int = 0
    advanced_bytes: int = 0
    recover_s: float = 0.0  # block-level states: the recoverer's time (images, the kernel's mounts, copies)
    cpu_s: float = 0.0  # the worker's CPU time: states per CPU-second is what a busy machine cannot blur

    def add(self, other: ChunkStats) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class Checker:
    """Materialises, probes and judges states of one trace; one per worker process."""

    def __init__(self, trace_dir: TraceDir, models: tuple[PersistenceModel, ...], scratch: str | None = None,
                 *, images: bool = True, store_mount: str | None = None, judged_at: JudgedAt | None = None) -> None:
        """``judged_at``: the trace is a reopen's (repro/explore/second.py): every state is judged there, and
        against the rows its initial files -- the interrupted state -- held."""
        self.trace_dir = trace_dir
        self.judged_at = judged_at
        self.store_mount = store_mount  # where the store is mounted in the sandbox (None: the image's own)
        self.timeline = Timeline(trace_dir.reader())
        self.space = StateSpace(self.timeline, models)
        self.ledger = trace_dir.ledger()
        self.config = StoreConfig.from_ready(self.ledger.ready)
        self.scratch = tempfile.mkdtemp(prefix="repro-explore-", dir=scratch or _fast_tmp())
        try:
            self.materializer = Materializer(self.timeline, self.scratch)
            # a reopen's trace: the rows its first state held, read before any probe has run the store's code here
            self.initial_rows = self._read_initial_rows() if judged_at is not None else frozenset()
        except BaseException:  # the scratch is this checker's: it goes with a checker that never started
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        self._cache: collections.OrderedDict[object, ProbeFacts] = collections.OrderedDict()
        self._images = images
        self._frames = FrameChecker()
        self._judged: dict[tuple[object, ...], tuple[ProbeFacts, StateResult]] = {}
        self._wal_bases: dict[tuple[int, int], tuple[WalHeader | None, list[Frame]]] = {}
        self._serial = 0

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _read_initial_rows(self) -> frozenset[tuple[int, str]]:
        """The messages (id, content digest) of the trace's initial files as SQLite reads them, no store opening
        the file: what the interrupted state held."""
        state_dir = os.path.join(self.scratch, "initial")
        for f in self.timeline.initial.files:
            path = os.path.join(state_dir, f.path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(f.data)
        facts = collect(os.path.join(state_dir, self.trace_dir.recording.db_name), open_store=False)
        shutil.rmtree(state_dir, ignore_errors=True)
        return frozenset((m.id, m.sha) for m in facts.messages)

    def facts(self, spec: StateSpec) -> tuple[ProbeFacts, bool, float, float]:
        """The probe's facts for the state (measured, or those of an alike state); and timings."""
        started = time.perf_counter()
        keys: list[object] = [self.materializer.content_key(spec)]
        cached = self._cached(keys[0])
        if cached is None and self._images:
            image = self.image_key(spec)
            if image is not None:
                keys.append(image)
                cached = self._cached(image)
                if cached is not None:
                    self._remember(keys[0], cached)
        if cached is not None:
            return cached, False, time.perf_counter() - started, 0.0
        self._serial += 1
        state_dir = os.path.join(self.scratch, f"state-{self._serial}")  # a fresh path: the store heals once per path
        self.materializer.write(spec, state_dir)
        built = time.perf_counter()
        facts = collect(os.path.join(state_dir, self.trace_dir.recording.db_name), self.store_mount)
        probed = time.perf_counter()
        shutil.rmtree(state_dir, ignore_errors=True)
        for key in keys:
            self._remember(key, facts)
        return facts, True, built - started, probed - built

    def image_key(self, spec: StateSpec) -> bytes | None:
        """The digest of what SQLite recovers from the state (image.py), None where that does not apply."""
        names = self.materializer.state_names(spec)
        db = self.trace_dir.recording.db_name
        ino = names.get(db)
        if ino is None or any(path not in (db, db + "-wal", db + "-shm") for path in names):
            return None  # no database, or a journal (maybe hot) or another file beside it
        m = self.materializer
        wal = names.get(db + "-wal")
        return image_key(m.size(spec, ino), lambda offset, size: m.read(spec, ino, offset, size),
                         lambda page_size: m.page_digests(spec, ino, page_size),
                         self._wal(spec, wal) if wal is not None else None)

    def _wal(self, spec: StateSpec, ino: int) -> tuple[WalHeader, list[Frame]] | None:
        """The state's WAL header and valid frames: the durable WAL's, parsed once, and only the
        frames from the first one the state's own operations change parsed again."""
        m = self.materializer
        m.advance(spec.point.pos)
        base_key = (ino, m.durable.get(ino, 0))
        base = self._wal_bases.get(base_key)
        if base is None:
            durable = m.read_durable(ino, 0, m.durable_size(ino))
            header = read_header(durable[:WAL_HEADER])
            frames = read_frames(header, lambda o, n: durable[o:o + n], len(durable), checker=self._frames) \
                if header is not None else []
            base = (header, frames)
            if len(self._wal_bases) > 64:
                self._wal_bases.clear()
            self._wal_bases[base_key] = base
        change = m.first_change(spec, ino)
        header, frames = base
        if change is not None:
            read = lambda o, n: m.read(spec, ino, o, n)  # noqa: E731
            size = m.size(spec, ino)
            if change < WAL_HEADER or header is None:
                whole = read(0, size)
                header = read_header(whole[:WAL_HEADER])
                frames = read_frames(header, lambda o, n: whole[o:o + n], size, checker=self._frames) \
                    if header is not None else []
            else:
                first = (change - WAL_HEADER) // header.frame_size
                if len(frames) >= first:
                    chain = frames[first - 1].chain if first else header.chain
                    start = WAL_HEADER + first * header.frame_size
                    tail = read(start, max(0, size - start))  # the changed frames, read once
                    frames = frames[:first] + read_frames(
                        header, lambda o, n: tail[o - start:o - start + n], size, first, chain, self._frames)
        return (header, frames) if header is not None else None

    def _cached(self, key: object) -> ProbeFacts | None:
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
        return found

    def _remember(self, key: object, facts: ProbeFacts) -> None:
        self._cache[key] = facts
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def check(self, model: PersistenceModel, index: int, stats: ChunkStats) -> StateResult:
        spec = self.space.spec(model, index)
        facts, probed, build_s, probe_s = self.facts(spec)
        started = time.perf_counter()
        # the verdict depends on the facts, the ledger at the crash point (its acks), the sync horizons
        # and whether entries are lazy: crash points between the same two acks share all of them
        crash = spec.point
        at = self.judged_at or JudgedAt.of(spec)
        key = (id(facts), at)
        same = self._judged.get(key)
        if same is not None and same[0] is facts:
            result = dataclasses.replace(same[1], model=model, index=index, point=crash.index, probed=probed,
                                         seq=self.timeline.ops[crash.last_op].seq)
        else:
            result = judge_state(spec, facts, self.ledger, self.config, self.trace_dir.recording.locks_dropped,
                                 self.timeline.ops[spec.point.last_op].seq, probed, at)
            if self.judged_at is not None:
                now = {(m.id, m.sha) for m in facts.messages}
                result = dataclasses.replace(result, regressed=tuple(sorted(
                    i for i, sha in self.initial_rows if (i, sha) not in now)))
            if len(self._judged) > _CACHE_SIZE:
                self._judged.clear()
            self._judged[key] = (facts, result)
        stats.judge_s += time.perf_counter() - started
        stats.states += 1
        stats.probes += probed
        stats.materialize_s += build_s
        stats.probe_s += probe_s
        return result


def _fast_tmp() -> str | None:
    """tmpfs when there is one we may write (states are written and thrown away by the thousand); the sandbox
    passes its own (repro/explore/sandbox.py: SCRATCH_DIR)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
