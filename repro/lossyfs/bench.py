"""In-machine benchmark: hermes_state `append_message` on the lossy mount against the plain data disk.

Run inside a lab machine (1 CPU, the tmpfs data disk) with the lossyfs daemon already serving
the mount -- bench/bench_lossyfs.py on the host does all of that and calls this module. For each
preset a fresh store is opened on each side; timed rounds alternate plain / lossy so that drift
(CPU quota periods, the daemon's writeback timer, WAL growth) hits both sides alike, and the
median round of each side is reported. One line per preset on stdout:

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


class _Side:
    """One store on one directory, with a message of fixed size to append."""

    def __init__(self, directory: Path, preset: str, content: str) -> None:
        self.path = directory / f"bench-{preset}.db"
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
        self.db = SessionDB(self.path, config=DurabilityConfig.preset_named(preset))
        self.db.create_session("bench", "bench")
        self._content = content

    def step(self) -> None:
        self.db.append_message("bench", "user", self._content)

    def close(self) -> None:
        self.db.close()


def bench_preset(preset: str, plain_dir: Path, lossy_dir: Path, seconds: float, rounds: int,
                 size: int) -> dict[str, object]:
    content = ("x" * 63 + "\n") * (size // 64) + "x" * (size % 64)
    plain = _Side(plain_dir, preset, content)
    lossy = _Side(lossy_dir, preset, content)
    try:
        sync = plain.db.pragmas_in_force().synchronous
        lossy_sync = lossy.db.pragmas_in_force().synchronous
        if sync != lossy_sync:
            raise RuntimeError(f"{preset}: synchronous {sync} on the plain disk but {lossy_sync} on the mount")
        _timed(plain.step, min(0.2, seconds))  # warm both up: schema pages cached, WAL created
        _timed(lossy.step, min(0.2, seconds))
        plain_rounds, lossy_rounds = [], []
        for _ in range(rounds):
            plain_rounds.append(_timed(plain.step, seconds))
            lossy_rounds.append(_timed(lossy.step, seconds))
    finally:
        plain.close()
        lossy.close()
    p, q = statistics.median(plain_rounds), statistics.median(lossy_rounds)
    return {"preset": preset, "synchronous": sync, "plain": round(p, 1), "lossy": round(q, 1),
            "ratio": round(q / p, 4) if p else None,
            "plain_rounds": [round(r, 1) for r in plain_rounds], "lossy_rounds": [round(r, 1) for r in lossy_rounds]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m repro.lossyfs.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--plain", required=True, help="a directory on the plain data disk")
    parser.add_argument("--lossy", required=True, help="a directory on the lossy mount")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    parser.add_argument("--size", type=int, default=1024, help="message content bytes")
    args = parser.parse_args(argv)
    for preset in args.presets.split(","):
        row = bench_preset(preset, Path(args.plain), Path(args.lossy), args.seconds, args.rounds, args.size)
        print(f"{TAG} {json.dumps(row, sort_keys=True)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
