"""Block-level crash states judged as trials are: the probe on the files the kernel recovered, the diff, the oracle (stdlib only).

The files come from repro/explore/recover.py, which mounted the state's image as root; here, in a
uid-1000 checker of the explore sandbox, each state's files are copied to a fresh scratch directory
(the probe may rewrite them: WAL replay, a hot journal's rollback, the store's repair) and probed,
then judged exactly as a file-level state is (check.judge_state: the ledger at the crash point, the
power-loss crash class, the pragmas of READY). States whose recovered files are equal byte for byte
share the probe's facts. A state the kernel could not mount, or whose files it could not read back (a
checksum or I/O error), is ``corrupt`` and unexpected: no configuration of SQLite keeps a database
on a filesystem that does not come back.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import tempfile
import time

from repro.explore.blockspace import BlockModel, BlockSpace
from repro.explore.check import ChunkStats, StateResult, judge_state
from repro.explore.timeline import Timeline
from repro.explore.tracedir import TraceDir
from repro.oracle.promises import StoreConfig
from repro.oracle.verdicts import Verdict
from repro.verify.facts import ProbeFacts
from repro.verify.probe import collect

_CACHE_SIZE = 256


def tree_digest(root: str) -> bytes:
    """sha256 over every file's relative path and content under ``root``, in a fixed order."""
    digest = hashlib.sha256()
    for base, dirs, names in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            digest.update(b"\1")
    return digest.digest()


class BlockChecker:
    """Probes and judges the recovered states of one block-level trace; one per worker process."""

    def __init__(self, trace_dir: TraceDir, models: tuple[BlockModel, ...], recovered: str, scratch: str | None = None,
                 *, store_mount: str | None = None) -> None:
        self.trace_dir = trace_dir
        self.store_mount = store_mount
        self.recovered = recovered
        self.space = BlockSpace(Timeline(trace_dir.reader()), models)
        self.ledger = trace_dir.ledger()
        self.config = StoreConfig.from_ready(self.ledger.ready)
        self.scratch = tempfile.mkdtemp(prefix="repro-blocks-", dir=scratch)
        self._cache: collections.OrderedDict[bytes, ProbeFacts] = collections.OrderedDict()
        self._serial = 0

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def check(self, model: BlockModel, index: int, mounted: bool, error: str, stats: ChunkStats,
              source: str = "") -> StateResult:
        """Judge one state from what the recoverer made of it: its files in ``source`` (a directory under the
        recovered root), or, not ``mounted``, the kernel's refusal ``error``."""
        state = self.space.spec(model, index)
        seq = self.space.timeline.ops[state.point.last_op].seq
        stats.states += 1
        if not mounted:
            return StateResult(model, index, state.point.index, seq, Verdict.CORRUPT, False, state.point.acked, (), (),
                               f"the kernel could not recover the state's filesystem: {error}", False)
        started = time.perf_counter()
        root = os.path.realpath(self.recovered)
        source = os.path.realpath(source or os.path.join(self.recovered, f"{model.value}-{index}"))
        if os.path.commonpath([root, source]) != root:
            raise ValueError(f"a recovered state outside {self.recovered}: {source}")
        key = tree_digest(source)
        facts = self._cache.get(key)
        probed = facts is None
        if facts is None:
            self._serial += 1
            state_dir = os.path.join(self.scratch, f"state-{self._serial}")  # a fresh path: the store heals once per path
            shutil.copytree(source, state_dir)
            built = time.perf_counter()
            facts = collect(os.path.join(state_dir, self.trace_dir.recording.db_name), self.store_mount)
            stats.materialize_s += built - started
            stats.probe_s += time.perf_counter() - built
            shutil.rmtree(state_dir, ignore_errors=True)
            self._cache[key] = facts
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
            stats.probes += 1
        else:
            self._cache.move_to_end(key)
        judged = time.perf_counter()
        result = judge_state(state, facts, self.ledger, self.config,  # type: ignore[arg-type]
                             self.trace_dir.recording.locks_dropped, seq, probed)
        stats.judge_s += time.perf_counter() - judged
        return result
