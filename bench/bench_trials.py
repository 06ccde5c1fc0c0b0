"""Trial latency (machine start to verdict) for sigkill and sigterm, and --jobs 2 vs --jobs 1 throughput.

Run: .venv/bin/python bench/bench_trials.py [--trials N]
Needs the engine and the lab image (bash docker/setup.sh). Prints medians and the ratio
measured side by side in one run; absolute times wander between runs and machines.
Targets: median trial under 3 s; --jobs 2 at 1.8x the trials/min of --jobs 1 and 120 trials/min
on 2 cores. With a local engine it also prints the host's busy CPU-seconds per trial (all
processes: the lab, the engine, the machines; from /proc/stat), and the ceiling that puts on
the ratio: a trial that keeps C CPUs busy on average at --jobs 1 cannot scale past cores / C.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import tempfile
import time

from repro.machine import engine
from repro.machine.labels import RUN_ID
from repro.pipeline import run_trials
from repro.scenario import StoreSpec, expand


def busy_seconds() -> float:
    """CPU-seconds the whole host spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed_run(faults: tuple[str, ...], trials: int, jobs: int, seed: int,
              out: pathlib.Path) -> tuple[float, list[float], list[str], float]:
    """(wall seconds, each trial's seconds, verdicts, busy CPU-seconds of the host)."""
    scenarios = expand(["fly-256"], [faults], [StoreSpec("ns506")], trials, seed)
    started, busy = time.monotonic(), busy_seconds()
    records = run_trials(scenarios, out_dir=out, jobs=jobs)
    wall = time.monotonic() - started
    return wall, [r.duration_s for r in records], [r.verdict.value for r in records], busy_seconds() - busy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=424242)
    args = parser.parse_args()
    cli = engine.client()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp)
            print(f"trial latency, {args.trials} trials each, jobs 1, fly-256, ns506 (seed {args.seed})")
            for fault in ("sigkill", "sigterm"):
                _wall, durations, verdicts, _busy = timed_run((fault,), args.trials, 1, args.seed, out)
                print(f"  {fault:<8} median {statistics.median(durations):5.2f} s   "
                      f"min {min(durations):5.2f}  max {max(durations):5.2f}   verdicts {sorted(set(verdicts))}")
            print(f"throughput, {args.trials} sigkill trials, jobs 1 then jobs 2, same seed")
            wall1, _, _, busy1 = timed_run(("sigkill",), args.trials, 1, args.seed + 1, out)
            wall2, _, _, busy2 = timed_run(("sigkill",), args.trials, 2, args.seed + 1, out)
            rate1, rate2 = 60 * args.trials / wall1, 60 * args.trials / wall2
            print(f"  jobs 1: {rate1:6.1f} trials/min   jobs 2: {rate2:6.1f} trials/min   ratio {rate2 / rate1:4.2f}x")
            if engine.client().api.base_url.startswith("http+docker://"):  # a unix socket: the engine runs on this host
                cores = len(os.sched_getaffinity(0))
                busy_share = busy1 / wall1
                print(f"  host CPU per trial: jobs 1 {busy1 / args.trials:4.2f} s, jobs 2 {busy2 / args.trials:4.2f} s; "
                      f"at jobs 1 a trial keeps {busy_share:4.2f} of {cores} CPUs busy, so the ratio cannot pass "
                      f"{cores / busy_share:4.2f}x")
    finally:
        engine.cleanup(cli, run_id=RUN_ID)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
