"""The commands that read finished runs' reports and start no machine: merge shards, re-render or re-gate a report."""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import TYPE_CHECKING

from repro.errors import ExitCode, ScenarioError, shown
from repro.options import MergeOptions, ReportOptions

if TYPE_CHECKING:
    from repro.report.records import RunResult


def merge(args: MergeOptions) -> int:
    """Shards' reports -> one report directory, tables and comparison recomputed; the merged run's exit code."""
    from repro.machine.labels import RUN_ID
    from repro.report import outdir
    from repro.report.records import ResultsError
    from repro.report.render import read_run
    from repro.shards import check_shards, merge_runs

    dirs = [pathlib.Path(d) for d in args.run_dirs]
    if any(d.resolve() == pathlib.Path(args.out).resolve() for d in dirs):
        raise ScenarioError("--out must be a new directory, not one of the shards")
    target = outdir.plan(args.out, RUN_ID, force=args.force)  # the rule `repro run --out` follows
    try:
        runs = [(d, read_run(d)) for d in dirs]
    except ResultsError as exc:
        raise ScenarioError(str(exc)) from None
    from repro.report.outcome import parse_fail_on

    fail_on = parse_fail_on(args.fail_on) if args.fail_on else None
    check_shards(runs)  # every input checked before --out is made or cleared
    out = outdir.claim(target, RUN_ID)
    return _show_and_write(merge_runs(runs, out, fail_on), out)


def report(args: ReportOptions) -> int:
    """Re-render report.md, junit.xml and report.html of a run directory from its report.json. With --fail-on,
    the finished run is gated again (those conditions replace the ones it ran with, in every report) and the
    command exits as the run would have: no trial runs again."""
    from repro.report.comparison import comparison_of
    from repro.report.outcome import parse_fail_on
    from repro.report.records import FailOn, ResultsError
    from repro.report.render import read_run, write_all

    run_dir = pathlib.Path(args.run_dir)
    fail_on = parse_fail_on(args.fail_on) if args.fail_on else None
    try:
        run_result = read_run(run_dir)
    except ResultsError as exc:
        raise ScenarioError(str(exc)) from None
    if fail_on is None:
        written = write_all(run_dir, run_result)
        print(f"reports: {', '.join(str(p) for p in written)}")
        return ExitCode.OK
    if not fail_on:
        raise ScenarioError("--fail-on needs a condition: " + ", ".join(f.value for f in FailOn))
    matrix = run_result.meta.command.split()[1:2] == ["matrix"]  # as `repro run` refuses these gates elsewhere
    for gate in (FailOn.REGRESSION, FailOn.INCONCLUSIVE):
        if gate in fail_on and not (matrix and run_result.meta.compare and comparison_of(run_result.trials)):
            raise ScenarioError(f"--fail-on {gate.value} needs the report of a `repro matrix` of exactly two stores; "
                                f"{shown(run_dir, quote=False)} has none")
    return _show_and_write(dataclasses.replace(run_result, meta=dataclasses.replace(run_result.meta, fail_on=fail_on)),
                           run_dir)


def _show_and_write(run: RunResult, out: pathlib.Path) -> ExitCode:
    """The run's table and outcome on stdout, its four reports in ``out``; the run's exit code."""
    from rich.console import Console

    from repro.report.outcome import outcome
    from repro.report.render import write_all
    from repro.report.terminal import print_outcome, print_table

    result = outcome(run)
    stdout = Console(width=None if sys.stdout.isatty() else 140)
    print_table(run.trials, stdout, stores=run.meta.stores)
    print_outcome(result, stdout)
    written = write_all(out, run)
    print(f"reports: {', '.join(str(p) for p in written)}; exit {int(result.code)}", file=sys.stderr)
    return result.code
