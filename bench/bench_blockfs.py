"""Benchmark: kernel-recovered crash states per second (--fs ext4) beside the file-level models' rate, and what
recording below ext4 costs a machine against recording on the lossy filesystem directly -- side by side, one run.

One seeded workload of --ops operations (default 300, WAL + FULL, small messages) is recorded in rounds that
alternate: on lossyfs directly (what a power-loss trial records today) and below ext4 on a loop device over
lossyfs (a 64 MB sparse image, fly-256's disk). Printed: the median recording time of each and their ratio
(target: ext4 at most 2x). Then the last recording of each is explored with --budget states per model on 2
checkers, and the states checked per second are printed for both (target: >= 50/s kernel-recovered; the
wall clock includes each sandbox's start, and the load average is printed since other work blurs it).

Needs the engine on this host, /dev/fuse and a free loop device. About 3 minutes with the defaults.
Usage: python bench/bench_blockfs.py [--ops N] [--budget N] [--rounds N] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from repro.explore.blockspace import BlockModel  # noqa: E402
from repro.explore.configs import CONFIGURATIONS  # noqa: E402
from repro.explore.models import PersistenceModel  # noqa: E402
from repro.explore.record import record  # noqa: E402
from repro.explore.runner import Exploration, explore  # noqa: E402
from repro.explore.tracedir import TraceDir  # noqa: E402
from repro.filesystems import parse  # noqa: E402
from repro.machine import engine, loops  # noqa: E402
from repro.machine.labels import owner  # noqa: E402
from repro.scenario import WorkloadSpec, get_profile  # noqa: E402

TARGET_RATE = 50.0
TARGET_SLOWDOWN = 2.0


def _line(name: str, run: Exploration) -> str:
    cpu = run.stats.cpu_s
    per_cpu = f", {2 * run.states / cpu:.0f}/s per 2 worker CPU-seconds" if cpu else ""
    return (f"  {name:<28} {run.states:>6} states in {run.seconds:6.1f} s: {run.rate:6.1f} states/s wall{per_cpu}; "
            f"{run.stats.probes} probes; probe {run.stats.probe_s:.1f} s"
            + (f", recoverers {run.stats.recover_s:.1f} s ({1000 * run.stats.recover_s / run.states:.0f} ms a state)"
               if run.stats.recover_s else ""))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--budget", type=int, default=400, help="states per model")
    parser.add_argument("--rounds", type=int, default=2, help="recordings per side, alternating")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    image = engine.trial_image(engine.client(), None)
    devices = loops.require_devices(str(engine.client().api.base_url), 1)
    profile, store, workload = get_profile("fly-256"), CONFIGURATIONS["wal-full"], WorkloadSpec(sizes="200:2k")
    ext4 = parse("ext4")
    times: dict[str, list[float]] = {"lossyfs": [], "ext4": []}
    traces: dict[str, TraceDir] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-blockfs-") as scratch:
            for n in range(args.rounds):
                for side in ("lossyfs", "ext4"):
                    dest = pathlib.Path(scratch) / f"{side}-{n}"
                    dest.mkdir()
                    started = time.perf_counter()
                    traces[side] = record(profile=profile, store=store, workload=workload, ops=args.ops,
                                          seed=args.seed, dest=dest, image=image, source="bench",
                                          fs=ext4 if side == "ext4" else None, loops=devices if side == "ext4" else ())
                    times[side].append(time.perf_counter() - started)
            plain, below = statistics.median(times["lossyfs"]), statistics.median(times["ext4"])
            print(f"recording {args.ops} operations (median of {args.rounds}, machine start to trace fetched):")
            print(f"  on lossyfs directly {plain:6.1f} s; below ext4 {below:6.1f} s: ratio {below / plain:.2f}x "
                  f"(target <= {TARGET_SLOWDOWN:.0f}x)")
            print(f"exploring, {args.budget} states per model, 2 checkers; load average {os.getloadavg()[0]:.2f}:")
            files = explore(traces["lossyfs"], PersistenceModel.parse_list("all"), budget=args.budget, seed=args.seed, jobs=2,
                            image=image)
            print(_line("file-level models", files))
            blocks = explore(traces["ext4"], tuple(BlockModel), budget=args.budget, seed=args.seed, jobs=2,
                             image=image)
            print(_line("ext4, kernel-recovered", blocks))
            print(f"  ratio file-level / kernel-recovered: {files.rate / blocks.rate:.1f}x; "
                  f"target >= {TARGET_RATE:.0f} kernel-recovered states/s")
    finally:
        engine.cleanup(owner=owner())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
