"""Trial latency (machine start to verdict) for sigkill and sigterm, and --jobs 2 vs --jobs 1 throughput.

Run: .venv/bin/python bench/bench_trials.py [--trials N]
Needs the engine and the lab image (bash docker/setup.sh). Prints medians and the ratio
measured side by side in one run; absolute times wander between runs and machines.
Targets (issue 4): median trial under 3 s; --jobs 2 at least 1.6x the trials/min of --jobs 1.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time

from repro.machine import engine
from repro.machine.labels import RUN_ID
from repro.pipeline import run_trials
from repro.scenario import StoreSpec, expand


def timed_run(faults: tuple[str, ...], trials: int, jobs: int, seed: int, out: pathlib.Path) -> tuple[float, list[float], list[str]]:
    scenarios = expand(["fly-256"], [faults], [StoreSpec("ns506")], trials, seed)
    started = time.monotonic()
    records = run_trials(scenarios, out_dir=out, jobs=jobs)
    wall = time.monotonic() - started
    return wall, [r.duration_s for r in records], [r.verdict.value for r in records]


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
                _wall, durations, verdicts = timed_run((fault,), args.trials, 1, args.seed, out)
                print(f"  {fault:<8} median {statistics.median(durations):5.2f} s   "
                      f"min {min(durations):5.2f}  max {max(durations):5.2f}   verdicts {sorted(set(verdicts))}")
            print(f"throughput, {args.trials} sigkill trials, jobs 1 then jobs 2, same seed")
            wall1, _, _ = timed_run(("sigkill",), args.trials, 1, args.seed + 1, out)
            wall2, _, _ = timed_run(("sigkill",), args.trials, 2, args.seed + 1, out)
            rate1, rate2 = 60 * args.trials / wall1, 60 * args.trials / wall2
            print(f"  jobs 1: {rate1:6.1f} trials/min   jobs 2: {rate2:6.1f} trials/min   ratio {rate2 / rate1:4.2f}x")
    finally:
        engine.cleanup(cli, run_id=RUN_ID)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
