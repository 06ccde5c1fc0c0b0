"""Benchmark: rendering a run's reports (terminal table, report.json, report.md, junit.xml, report.html) for N trials.

Run: .venv/bin/python bench/bench_report.py [--trials 20000] [--scale 4]
No engine needed: the trials are synthetic (a matrix of two stores, several faults, every verdict,
a timeline on every trial). Prints the seconds each renderer takes for N and for N x scale trials
and the ratio; rendering must be linear (ratio ~ scale) and 20,000 trials must render in under 30 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import pathlib
import sys
import tempfile
import time
from typing import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402

from repro.oracle.verdicts import Verdict  # noqa: E402
from repro.report.html import render_html  # noqa: E402
from repro.report.junit import junit_element  # noqa: E402
from repro.report.markdown import render_markdown  # noqa: E402
from repro.report.outcome import outcome, report_json  # noqa: E402
from repro.report.records import RunMeta, RunResult, TrialRecord  # noqa: E402
from repro.report.render import write_all  # noqa: E402
from repro.report.terminal import print_outcome, print_table  # noqa: E402
from repro.report.timeline import Mark, MarkKind, Timeline  # noqa: E402

TARGET_TRIALS = 20_000
TARGET_S = 30.0
_FAULTS = (("sigkill",), ("sigterm",), ("oom",), ("disk-fill",), ("disk-fill", "sigterm"), ("power-loss",))
_VERDICTS = (Verdict.PASS,) * 6 + (Verdict.LOST_ACKED, Verdict.CORRUPT, Verdict.EXPECTED_LOSS, Verdict.ERROR)


def synthetic_run(trials: int) -> RunResult:
    """A matrix run of ``trials`` trials: two presets (so the comparison is drawn), six fault
    combinations, every verdict, and a timeline of MAX_POINTS points on every trial."""
    points = tuple((i * 0.1, i * 10) for i in range(48))
    timeline = Timeline(acked=points, failed=points[:8], marks=(Mark(2.0, MarkKind.FAULT, "sigkill"),),
                        lost=(1.5, 1.6), lost_total=2, duration=4.8, files=(("state.db", 4096), ("state.db-wal", 0)))
    records = []
    for i in range(trials):
        faults = _FAULTS[i % len(_FAULTS)]
        preset = ("legacy", "ns506")[(i // len(_FAULTS)) % 2]
        verdict = _VERDICTS[(i * 7) % len(_VERDICTS)]
        tid = f"fly-256.{'+'.join(faults)}.{preset}.{i + 1}"
        records.append(TrialRecord(
            id=tid, profile="fly-256", faults=faults, preset=preset, journal_mode="wal", synchronous="1",
            seed=1000 + i, verdict=verdict, integrity="ok" if verdict is not Verdict.CORRUPT else "failed: page 3",
            acked=400, lost_acked=2 if verdict in (Verdict.LOST_ACKED, Verdict.EXPECTED_LOSS) else 0, phantom=0,
            indeterminate=1, oom_killed=False, exit_code=137, duration_s=1.25, expected=verdict is Verdict.PASS,
            promised_safe=preset == "ns506", detail=f"detail {i}", artifacts_dir=f"runs/r/trials/{tid}",
            replay=f"repro replay runs/r {tid}", timeline=timeline))
    meta = RunMeta(run_id="bench", seed=42, started_at="2026-07-01T10:00:00Z",
                   command="repro matrix --presets legacy,ns506", compare=True, planned=trials)
    return RunResult(meta, tuple(records))


def renderers(out: pathlib.Path) -> dict[str, Callable[[RunResult], object]]:
    """Each report format on its own, as `repro run` and `repro report` produce it."""

    def terminal(run: RunResult) -> None:
        console = Console(file=io.StringIO(), width=140)
        print_table(run.trials, console)
        print_outcome(outcome(run), console)

    return {
        "terminal": terminal,
        "json": report_json,
        "markdown": lambda run: render_markdown(run, outcome(run)),
        "junit": lambda run: junit_element(run, outcome(run)),
        "html": lambda run: render_html(run, out, outcome(run)),
        "write_all": lambda run: write_all(out, run),
    }


def timed(trials: int, out: pathlib.Path) -> dict[str, float]:
    """Seconds per renderer for a run of ``trials`` trials (the run is built outside the clock)."""
    run = synthetic_run(trials)
    seconds: dict[str, float] = {}
    for name, render in renderers(out).items():
        started = time.perf_counter()
        render(run)
        seconds[name] = time.perf_counter() - started
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=TARGET_TRIALS)
    parser.add_argument("--scale", type=int, default=4, help="also time N x scale trials, for the growth ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        small = timed(args.trials, pathlib.Path(tmp) / "a")
        big = timed(args.trials * args.scale, pathlib.Path(tmp) / "b") if args.scale > 1 else {}
    print(f"{'renderer':<10} {args.trials:>8} trials" + (f" {args.trials * args.scale:>8} trials   ratio" if big else ""))
    for name, s in small.items():
        line = f"{name:<10} {s:>12.2f} s"
        if big:
            line += f" {big[name]:>12.2f} s {big[name] / max(s, 1e-6):>7.1f}x"
        print(line)
    total = small["write_all"] + small["terminal"]  # what `repro run` does after the trials
    print(f"all formats for {args.trials} trials: {total:.2f} s (target < {TARGET_S:g} s for {TARGET_TRIALS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
