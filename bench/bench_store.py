"""Benchmark: append_message throughput per preset against a bare one-row INSERT+COMMIT loop.

Both loops run in one process, on the same directory (so the same disk), under the same
pragmas (the bare connection gets them from the same `apply_durability`). Rounds alternate
store / bare so drift hits both alike. Target: append_message >= 50% of the bare rate with
FTS on. Besides the rates it prints the CPU time per operation of each side (steadier than
wall time on a shared machine) and the WAL frames (pages) each commit writes, counted with
`PRAGMA wal_checkpoint` after the timed rounds. `--breakdown` adds, per preset, the cost of
the store's transaction built up one piece at a time on a plain connection (message row,
session index, counters, FTS trigger, periodic checkpoint).
Usage: python bench/bench_store.py [--dir DIR] [--seconds S] [--rounds N] [--breakdown]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hermes_state import DurabilityConfig, Preset, SessionDB, apply_durability  # noqa: E402
from hermes_state.schema import FTS_SQL, TABLES_SQL, split_statements  # noqa: E402

CONTENT = "The quick brown fox jumps over the lazy dog while the agent writes its transcript. " * 3
BARE_TABLE = "CREATE TABLE t (id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, content TEXT)"
BARE_INSERT = "INSERT INTO t(session_id, content) VALUES (?, ?)"
FRAME_SAMPLE = 64  # commits whose WAL frames are counted (x ~8 frames stays under wal_autocheckpoint)


@dataclass(frozen=True)
class Row:
    preset: str
    pragmas: str
    store_rate: float
    bare_rate: float
    store_cpu_us: float
    bare_cpu_us: float
    store_frames: float | None
    bare_frames: float | None

    @property
    def ratio(self) -> float:
        return self.store_rate / self.bare_rate if self.bare_rate else float("nan")


def _timed(seconds: float, one: Callable[[int], object]) -> tuple[float, float]:
    """Call ``one(n)`` for n = 1, 2, ... for about *seconds*: (calls per second, CPU us per call).
    The same loop times every side, so its own cost (under 1%) weighs on all of them alike."""
    n = 0
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        n += 1
        one(n)
        if n % 16 == 0 and time.perf_counter() >= deadline:
            break
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1e6


def _store_round(db: SessionDB, seconds: float) -> tuple[float, float]:
    """(appends per second, CPU microseconds per append)."""
    return _timed(seconds, lambda _n: db.append_message("bench", "user", CONTENT))


def _bare_round(conn: sqlite3.Connection, seconds: float) -> tuple[float, float]:
    """(one-row INSERT+COMMIT transactions per second, CPU microseconds per transaction)."""
    def one(_n: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(BARE_INSERT, ("bench", CONTENT))
        conn.execute("COMMIT")

    return _timed(seconds, one)


def _wal_frames(conn: sqlite3.Connection) -> int | None:
    """Frames in the WAL now (None outside WAL mode), via a PASSIVE checkpoint."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[1]) if row is not None and int(row[1]) >= 0 else None


def _frames_per_commit(conn: sqlite3.Connection, commit: Callable[[], object], n: int = FRAME_SAMPLE) -> float | None:
    """WAL frames one commit writes: checkpoint (the next write restarts the WAL), commit
    *n* times, count. The caller keeps other checkpoints out of the sample."""
    if n <= 0 or _wal_frames(conn) is None:
        return None
    for _ in range(n):
        commit()
    frames = _wal_frames(conn)
    return frames / n if frames is not None else None


def _bare_commit(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(BARE_INSERT, ("bench", CONTENT))
    conn.execute("COMMIT")


def bench_preset(workdir: Path, config: DurabilityConfig, seconds: float, rounds: int) -> Row:
    store_path = workdir / f"store-{config.preset.value}.db"
    bare_path = workdir / f"bare-{config.preset.value}.db"
    db = SessionDB(store_path, config=config)
    if not db.fts_enabled:
        raise SystemExit("FTS5 is not available: the benchmark's target is defined with FTS on")
    db.create_session("bench", "bench")
    bare = sqlite3.connect(str(bare_path), isolation_level=None, timeout=config.connect_timeout_s)
    bare_pragmas = apply_durability(bare, config, db_label=str(bare_path))
    if bare_pragmas != db.pragmas:
        raise SystemExit(f"pragma mismatch: store {db.pragmas} vs bare {bare_pragmas}")
    bare.execute(BARE_TABLE)
    store_runs: list[tuple[float, float]] = []
    bare_runs: list[tuple[float, float]] = []
    try:
        _store_round(db, 0.1)  # warm caches
        _bare_round(bare, 0.1)
        for _ in range(rounds):
            store_runs.append(_store_round(db, seconds))
            bare_runs.append(_bare_round(bare, seconds))
        # Frame counts after the timed rounds, on the same connections. The store's own
        # periodic checkpoint would restart the WAL inside the sample, so the sample starts
        # right after one and ends before the next.
        every = db.config.checkpoint_every
        while every and db._writes % every != 0:
            db.append_message("bench", "user", CONTENT)
        sample = min(FRAME_SAMPLE, every - 1) if every else FRAME_SAMPLE
        store_frames = _frames_per_commit(db._conn, lambda: db.append_message("bench", "user", CONTENT), sample)
        bare_frames = _frames_per_commit(bare, lambda: _bare_commit(bare))
    finally:
        db.close()
        bare.close()
    p = db.pragmas
    return Row(
        preset=config.preset.value,
        pragmas=f"{p.journal_mode}/sync={p.synchronous}",
        store_rate=statistics.median(r for r, _ in store_runs),
        bare_rate=statistics.median(r for r, _ in bare_runs),
        store_cpu_us=statistics.median(c for _, c in store_runs),
        bare_cpu_us=statistics.median(c for _, c in bare_runs),
        store_frames=store_frames,
        bare_frames=bare_frames,
    )


# -- --breakdown: the store's transaction built up one piece at a time -----------------------

_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, role, content, tool_call_id, tool_calls, tool_name, timestamp, "
    "token_count, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BUMP_COUNTERS = (
    "UPDATE sessions SET message_count = message_count + 1, tool_call_count = tool_call_count + ? WHERE id = ?"
)


@dataclass(frozen=True)
class Step:
    name: str
    index: bool
    counters: bool
    fts: bool
    checkpoint: bool


STEPS = (
    Step("message row (FK checked)", index=False, counters=False, fts=False, checkpoint=False),
    Step("+ idx_messages_session", index=True, counters=False, fts=False, checkpoint=False),
    Step("+ session counters UPDATE", index=True, counters=True, fts=False, checkpoint=False),
    Step("+ FTS5 trigger", index=True, counters=True, fts=True, checkpoint=False),
    Step("+ periodic checkpoint", index=True, counters=True, fts=True, checkpoint=True),
    # not cumulative: the floor of any store that keeps an FTS5 index in the message's transaction
    Step("message row + FTS5 only", index=False, counters=False, fts=True, checkpoint=False),
)


def _step_conn(path: Path, config: DurabilityConfig, step: Step) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=config.connect_timeout_s)
    apply_durability(conn, config, db_label=str(path))
    conn.execute("BEGIN IMMEDIATE")
    for statement in split_statements(TABLES_SQL):
        if step.index or "idx_messages_session" not in statement:
            conn.execute(statement)
    if step.fts:
        for statement in split_statements(FTS_SQL):
            conn.execute(statement)
    conn.execute("INSERT INTO sessions (id, source, started_at) VALUES ('bench', 'bench', ?)", (time.time(),))
    conn.execute("COMMIT")
    return conn


def _step_round(conn: sqlite3.Connection, step: Step, config: DurabilityConfig, seconds: float) -> tuple[float, float]:
    """(wall, CPU) microseconds per transaction of *step*, the store's SQL on a plain connection."""
    every = config.checkpoint_every if step.checkpoint else 0
    checkpoint_sql = f"PRAGMA wal_checkpoint({config.checkpoint_mode.value})"

    def one(n: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_INSERT_MESSAGE, ("bench", "user", CONTENT, None, None, None, time.time(), None, None))
        if step.counters:
            conn.execute(_BUMP_COUNTERS, (0, "bench"))
        conn.execute("COMMIT")
        if every and n % every == 0:
            conn.execute(checkpoint_sql).fetchall()

    rate, cpu_us = _timed(seconds, one)
    return 1e6 / rate, cpu_us


def breakdown(workdir: Path, config: DurabilityConfig, seconds: float, rounds: int, bare_wall_us: float) -> None:
    conns = [_step_conn(workdir / f"step{i}-{config.preset.value}.db", config, step) for i, step in enumerate(STEPS)]
    try:
        walls: list[list[float]] = [[] for _ in STEPS]
        cpus: list[list[float]] = [[] for _ in STEPS]
        for conn, step in zip(conns, STEPS):
            _step_round(conn, step, config, 0.1)
        for _ in range(rounds):
            for i, (conn, step) in enumerate(zip(conns, STEPS)):
                wall, cpu = _step_round(conn, step, config, seconds)
                walls[i].append(wall)
                cpus[i].append(cpu)
        print(f"  {'step (cumulative but last)':<28} {'wall us':>8} {'cpu us':>7} {'frames':>7} {'bare/step':>9}")
        for conn, step, wall_list, cpu_list in zip(conns, STEPS, walls, cpus):
            wall, cpu = statistics.median(wall_list), statistics.median(cpu_list)
            frames = None if step.checkpoint else _frames_per_commit(conn, functools.partial(_plain_commit, conn, step))
            shown = f"{frames:>7.2f}" if frames is not None else f"{'-':>7}"
            print(f"  {step.name:<28} {wall:>8.1f} {cpu:>7.1f} {shown} {bare_wall_us / wall:>9.2f}")
    finally:
        for conn in conns:
            conn.close()


def _plain_commit(conn: sqlite3.Connection, step: Step) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(_INSERT_MESSAGE, ("bench", "user", CONTENT, None, None, None, time.time(), None, None))
    if step.counters:
        conn.execute(_BUMP_COUNTERS, (0, "bench"))
    conn.execute("COMMIT")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per timed round (default 1.5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default 3)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the store's transaction built up piece by piece, per preset")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="hermes-bench-", dir=args.dir))
    try:
        st = os.statvfs(workdir)
        print(f"sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]}, dir {workdir} "
              f"(fs block {st.f_bsize}), {args.rounds} x {args.seconds}s rounds per side")
        print(f"{'preset':<8} {'pragmas':<14} {'append_message/s':>17} {'bare INSERT+COMMIT/s':>21} {'ratio':>6}"
              f" {'cpu us store/bare':>18} {'wal frames/commit store/bare':>29}")
        worst = float("inf")
        for preset in (Preset.NS506, Preset.LEGACY, Preset.DURABLE):
            config = DurabilityConfig.preset_named(preset)
            row = bench_preset(workdir, config, args.seconds, args.rounds)
            worst = min(worst, row.ratio)
            frames = (f"{row.store_frames:.2f} / {row.bare_frames:.2f}"
                      if row.store_frames is not None and row.bare_frames is not None else "-")
            print(f"{row.preset:<8} {row.pragmas:<14} {row.store_rate:>17.0f} {row.bare_rate:>21.0f} {row.ratio:>6.2f}"
                  f" {f'{row.store_cpu_us:.1f} / {row.bare_cpu_us:.1f}':>18} {frames:>29}")
            if args.breakdown:
                breakdown(workdir, config, args.seconds, args.rounds, 1e6 / row.bare_rate)
        verdict = "meets" if worst >= 0.5 else "MISSES"
        print(f"lowest ratio {worst:.2f}: {verdict} the >= 0.50 target (FTS on)")
        print("note: with synchronous=NORMAL in WAL a commit does not fsync, so the bare loop is CPU-bound and\n"
              "the ratio measures the store's CPU cost, which follows the pages each commit writes to the WAL\n"
              "(a full-page frame each: message row, session index, session counters, FTS5 segment, structure,\n"
              "term index and docsize, against one page for the bare row); with FULL the fsync per commit\n"
              "dominates both sides. --breakdown shows where the time goes.")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
