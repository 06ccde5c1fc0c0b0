"""A run's outcome for CI: its exit code, the --fail-on conditions checked, and the line that leads every report.

Exit codes (repro/errors.py): 3 when a trial could not be judged (the run cannot vouch for
anything); else 1 when a trial harmed data where the configuration in force promised it would not
(SQLite's promise broken, when the lab can tell: repro/report/summary.py), or a ``--fail-on`` condition holds
(``regression``: the new store harmed data significantly more often than the old one in some
(profile, faults) group; ``reproduced``: a bug hunt in which no trial harmed data); else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.errors import ExitCode
from repro.report.comparison import Comparison, comparison_of
from repro.report.records import FailOn, RunResult, exit_code
from repro.report.summary import sqlite_at_fault

_EXIT_TEXT = {
    ExitCode.OK: "every trial as the oracle expects",
    ExitCode.TRIAL_FAILED: "a trial failed: corruption or lost acknowledged writes where SQLite promised none",
    ExitCode.BAD_INPUT: "bad input",
    ExitCode.LAB_FAILED: "the lab failed: at least one trial could not be judged",
}


@dataclass(frozen=True)
class Gate:
    """One --fail-on condition, checked."""

    condition: FailOn
    failed: bool
    reason: str


@dataclass(frozen=True)
class RunOutcome:
    code: ExitCode
    trials_code: ExitCode  # what the trials alone say (no --fail-on)
    gates: tuple[Gate, ...]
    comparison: Comparison | None
    # Whether every failed trial broke SQLite's promise as far as the lab can tell (summary.sqlite_at_fault);
    # if not, the result names the configuration's promise, not SQLite, as the one broken.
    sqlite_blamed: bool = True

    @property
    def result(self) -> str:
        """One sentence: why the run exits as it does."""
        failed = "; ".join(f"--fail-on {g.condition.value}: {g.reason}" for g in self.gates if g.failed)
        text = _EXIT_TEXT[self.code]
        if self.code is ExitCode.TRIAL_FAILED and self.trials_code is ExitCode.TRIAL_FAILED and not self.sqlite_blamed:
            text = ("a trial failed: corruption or lost acknowledged writes where the configuration in force "
                    "promised none (not laid at SQLite's door: the store's own doing cannot be ruled out)")
        if self.code is ExitCode.LAB_FAILED or not failed:
            return text
        if self.trials_code is ExitCode.OK:
            return f"every trial as the oracle expects, but {failed}"
        return f"{text}; {failed}"

    @property
    def headline(self) -> str:
        """What leads report.md and the terminal's last lines: the comparison's verdict when there is one."""
        return self.comparison.headline if self.comparison is not None else self.result


def outcome(run: RunResult) -> RunOutcome:
    trials_code = exit_code(run.trials)
    comparison = comparison_of(run.trials) if run.meta.compare else None
    gates = tuple(_check(condition, run, comparison) for condition in run.meta.fail_on)
    code = trials_code
    if code is ExitCode.OK and any(g.failed for g in gates):
        code = ExitCode.TRIAL_FAILED
    blamed = all(sqlite_at_fault(t) for t in run.trials if t.failed)
    return RunOutcome(code, trials_code, gates, comparison, sqlite_blamed=blamed)


def report_json(run: RunResult) -> str:
    """report.json: the run, with its exit code (the trials' and the --fail-on gates')."""
    return run.to_json(outcome(run).code)


def _check(condition: FailOn, run: RunResult, comparison: Comparison | None) -> Gate:
    if condition is FailOn.REGRESSION:
        if comparison is None:
            return Gate(condition, True, "no comparison: the run did not compare exactly two store configurations")
        worse = [f"{r.profile}/{r.faults} ({r.change_text})" for r in comparison.rows if r.change == "worse"]
        if worse:
            return Gate(condition, True, f"{comparison.new_label} regresses vs {comparison.old_label} in "
                                         + ", ".join(worse))
        return Gate(condition, False, f"no significant regression of {comparison.new_label}")
    judged = [t for t in run.trials if not t.lab_error]
    harmed = [t for t in judged if t.harmed]
    if not harmed:
        return Gate(condition, True, f"not reproduced: none of {len(judged)} judged trials harmed data")
    return Gate(condition, False, f"reproduced in {len(harmed)} of {len(judged)} trials")
