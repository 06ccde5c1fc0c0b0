"""Benchmark: SQLite append throughput on the lossyfs mount against a plain directory, in one run.

Both sides live on the same disk (the lossy mount's backing dir is a sibling of the plain dir),
run in one process, and alternate rounds so drift hits both alike. Workloads: a bare one-row
INSERT+COMMIT with a 1 KB payload (WAL, synchronous FULL and NORMAL) and, when importable,
hermes_state's append_message (presets `durable` = WAL+FULL and `ns506` = WAL+NORMAL).
Target: lossy >= 25% of plain with synchronous=FULL. Needs root, /dev/fuse and Debian's
python3-pyfuse3 (the daemon runs under /usr/bin/python3).
Usage: python bench/bench_lossyfs.py [--dir DIR] [--seconds S] [--rounds N] [--cpu N]
"""

from __future__ import annotations

import argparse
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

from repro.lossyfs.control import LossyMount, fuse_unavailable_reason  # noqa: E402

PAYLOAD = os.urandom(1024)
TARGET_FULL = 0.25

Round = Callable[[float], float]  # seconds -> commits per second


@dataclass(frozen=True)
class Workload:
    name: str
    synchronous: str
    open: Callable[[Path], tuple[Round, Callable[[], None]]]  # db path -> (round, close)


@dataclass(frozen=True)
class Row:
    workload: str
    synchronous: str
    plain_rate: float
    lossy_rate: float

    @property
    def ratio(self) -> float:
        return self.lossy_rate / self.plain_rate if self.plain_rate else float("nan")


def _timed(step: Callable[[], object], seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        step()
        n += 1
        if n % 16 == 0 and time.perf_counter() >= deadline:
            return n / (time.perf_counter() - start)


def _bare(synchronous: str) -> Callable[[Path], tuple[Round, Callable[[], None]]]:
    def open_(path: Path) -> tuple[Round, Callable[[], None]]:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")

        def step() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t(v) VALUES (?)", (PAYLOAD,))
            conn.execute("COMMIT")

        return (lambda s: _timed(step, s)), conn.close

    return open_


def _store(preset: str) -> Callable[[Path], tuple[Round, Callable[[], None]]]:
    from hermes_state import DurabilityConfig, SessionDB

    def open_(path: Path) -> tuple[Round, Callable[[], None]]:
        db = SessionDB(path, config=DurabilityConfig.preset_named(preset))
        db.create_session("bench", "bench")
        content = PAYLOAD.hex()[:1024]
        return (lambda s: _timed(lambda: db.append_message("bench", "user", content), s)), db.close

    return open_


def workloads() -> list[Workload]:
    found = [Workload("INSERT+COMMIT 1KB", "FULL", _bare("FULL")),
             Workload("INSERT+COMMIT 1KB", "NORMAL", _bare("NORMAL"))]
    try:
        import hermes_state  # noqa: F401
    except ImportError as exc:
        print(f"hermes_state not importable ({exc}); benchmarking plain sqlite3 only")
        return found
    return found + [Workload("append_message durable", "FULL", _store("durable")),
                    Workload("append_message ns506", "NORMAL", _store("ns506"))]


def bench(w: Workload, plain_dir: Path, lossy_dir: Path, seconds: float, rounds: int) -> Row:
    tag = f"{w.name}-{w.synchronous}".replace(" ", "_").replace("+", "_")
    plain_round, plain_close = w.open(plain_dir / f"{tag}.db")
    lossy_round, lossy_close = w.open(lossy_dir / f"{tag}.db")
    try:
        plain_round(0.1)  # warm up both
        lossy_round(0.1)
        plain, lossy = [], []
        for _ in range(rounds):
            plain.append(plain_round(seconds))
            lossy.append(lossy_round(seconds))
    finally:
        plain_close()
        lossy_close()
    return Row(w.name, w.synchronous, statistics.median(plain), statistics.median(lossy))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per timed round (default 1.5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default 3)")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process and the daemon to one CPU")
    parser.add_argument("--writeback-interval-ms", type=int, default=100)
    parser.add_argument("--torn-writes", action="store_true")
    parser.add_argument("--lazy-dirs", action="store_true")
    args = parser.parse_args(argv)
    reason = fuse_unavailable_reason()
    if reason is not None:
        print(f"cannot mount lossyfs here: {reason}", file=sys.stderr)
        return 2
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # inherited by the daemon started below
    workdir = Path(tempfile.mkdtemp(prefix="lossyfs-bench-", dir=args.dir))
    plain, backing, mount = workdir / "plain", workdir / "backing", workdir / "mnt"
    for d in (plain, backing, mount):
        d.mkdir()
    try:
        with LossyMount(backing, mount, writeback_interval_ms=args.writeback_interval_ms,
                        torn_writes=args.torn_writes, lazy_dirs=args.lazy_dirs) as lossy:
            cpus = sorted(os.sched_getaffinity(0))
            print(f"sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]}, dir {workdir}, cpus {cpus}, "
                  f"writeback every {args.writeback_interval_ms} ms, {args.rounds} x {args.seconds}s rounds per side")
            print(f"{'workload':<24} {'sync':<7} {'plain/s':>9} {'lossy/s':>9} {'ratio':>6}")
            worst_full = float("inf")
            for w in workloads():
                row = bench(w, plain, mount, args.seconds, args.rounds)
                if row.synchronous == "FULL":
                    worst_full = min(worst_full, row.ratio)
                print(f"{row.workload:<24} {row.synchronous:<7} {row.plain_rate:>9.0f} {row.lossy_rate:>9.0f} "
                      f"{row.ratio:>6.2f}", flush=True)
            lossy.stop()
        verdict = "meets" if worst_full >= TARGET_FULL else "MISSES"
        print(f"lowest FULL ratio {worst_full:.2f}: {verdict} the >= {TARGET_FULL:.2f} target")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
