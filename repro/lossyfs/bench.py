"""In-machine benchmark: hermes_state `append_message` on the lossy mount against the plain data disk.

Run inside a lab machine (1 CPU, the tmpfs data disk) with the lossyfs daemon already serving
the mount -- bench/bench_lossyfs.py on the host does all of that and calls this module. For each
preset, timed rounds alternate plain / lossy so that drift (CPU quota periods, the daemon's
writeback timer) hits both sides alike; each round runs on a fresh store (the 64 MB disk holds
only seconds of appends at tmpfs speed), and the median round of each side is reported. One line per preset on stdout:

  BENCH {"preset": ..., "synchronous": <0-3 as SQLite reports it>, "plain": <appends/s>,
         "lossy": <appends/s>, "ratio": lossy/plain, "plain_rounds": [...], "lossy_rounds": [...]}

Usage: python3 -m repro.lossyfs.bench --plain DIR --lossy DIR [--presets ns506,legacy,durable]
       [--seconds S] [--rounds N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hermes_state import DurabilityConfig, SessionDB

PRESETS = ("ns506", "legacy", "durable")
TAG = "BENCH"
WARMUP = 32  # appends before the clock starts: schema pages cached, WAL and -shm created


def _timed(step: Callable[[], object], seconds: float) -> float:
    """Run `step` for about `seconds`; appends per second."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        step()
        n += 1
        if n % 8 == 0 and time.perf_counter() >= deadline:
            return n / (time.perf_counter() - start)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def _round(directory: Path, preset: str, content: str, seconds: float) -> tuple[float, int]:
    """One timed round on a fresh store (the 64 MB data disk holds only a few seconds of appends):
    open, warm up, time, close, delete. Returns (appends/s, synchronous in force)."""
    path = directory / f"bench-{preset}.db"
    _remove(path)
    db = SessionDB(path, config=DurabilityConfig.preset_named(preset))
    try:
        db.create_session("bench", "bench")
        sync = db.pragmas_in_force().synchronous
        for _ in range(WARMUP):
            db.append_message("bench", "user", content)
        rate = _timed(lambda: db.append_message("bench", "user", content), seconds)
    finally:
        db.close()
    _remove(path)
    return rate, sync


def bench_preset(preset: str, plain_dir: Path, lossy_dir: Path, seconds: float, rounds: int,
                 size: int) -> dict[str, object]:
    content = ("x" * 63 + "\n") * (size // 64) + "x" * (size % 64)
    plain_rounds: list[float] = []
    lossy_rounds: list[float] = []
    syncs: set[object] = set()
    for _ in range(rounds):
        for directory, rates in ((plain_dir, plain_rounds), (lossy_dir, lossy_rounds)):
            rate, sync = _round(directory, preset, content, seconds)
            rates.append(rate)
            syncs.add(sync)
    if len(syncs) != 1:
        raise RuntimeError(f"{preset}: synchronous differs between the plain disk and the mount: {syncs}")
    p, q = statistics.median(plain_rounds), statistics.median(lossy_rounds)
    return {"preset": preset, "synchronous": syncs.pop(), "plain": round(p, 1), "lossy": round(q, 1),
            "ratio": round(q / p, 4) if p else None,
            "plain_rounds": [round(r, 1) for r in plain_rounds], "lossy_rounds": [round(r, 1) for r in lossy_rounds]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m repro.lossyfs.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--plain", required=True, help="a directory on the plain data disk")
    parser.add_argument("--lossy", required=True, help="a directory on the lossy mount")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per timed round (each on a fresh store)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per side")
    parser.add_argument("--size", type=int, default=1024, help="message content bytes")
    args = parser.parse_args(argv)
    for preset in args.presets.split(","):
        row = bench_preset(preset, Path(args.plain), Path(args.lossy), args.seconds, args.rounds, args.size)
        print(f"{TAG} {json.dumps(row, sort_keys=True)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
