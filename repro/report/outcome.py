"""A run's outcome for CI: its exit code, the --fail-on conditions checked, and the line that leads every report.

Exit codes (repro/errors.py): 3 when a trial could not be judged (the run cannot vouch for
anything); else 1 when a trial harmed data where the configuration in force promised it would not
(SQLite's promise broken, when the lab can tell: repro/report/summary.py), or a ``--fail-on`` condition holds
(``regression``: the new store harmed data significantly more often than the old one in some
(profile, faults) group; ``inconclusive``: a compared group where the counts could not tell, see
repro/report/comparison.py; ``reproduced``: a bug hunt in which no trial harmed data); else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Sequence

from repro.errors import ExitCode, ScenarioError, shown
from repro.report.comparison import Comparison, comparison_of
from repro.report.records import FailOn, RunResult, exit_code
from repro.report.confidence import CONFIDENCE, METHOD
from repro.report.jsonfile import indented
from repro.report.blame import Actor, actor, controls_of
from repro.report.summary import summarize

_EXIT_TEXT = {
    ExitCode.OK: "every trial as the oracle expects",
    ExitCode.TRIAL_FAILED: "a trial failed: corruption or lost acknowledged writes where the configuration in force "
                           "promised none",
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
    # Whom the failed trials are laid at (repro/report/blame.py): the result names SQLite only when it is every one's.
    actors: frozenset[Actor] = frozenset()

    @property
    def result(self) -> str:
        """One sentence: why the run exits as it does."""
        failed = "; ".join(f"--fail-on {g.condition.value}: {g.reason}" for g in self.gates if g.failed)
        text = _EXIT_TEXT[self.code]
        if self.code is ExitCode.TRIAL_FAILED and self.trials_code is ExitCode.TRIAL_FAILED:
            text = _failed_text(self.actors)
        if self.code is ExitCode.LAB_FAILED or not failed:
            return text
        if self.trials_code is ExitCode.OK:
            return f"every trial as the oracle expects, but {failed}"
        return f"{text}; {failed}"

    @property
    def headline(self) -> str:
        """What leads report.md and the terminal's last lines: the comparison's verdict when there is one."""
        return self.comparison.headline if self.comparison is not None else self.result


def parse_fail_on(values: Sequence[str] | None) -> tuple[FailOn, ...]:
    """--fail-on's values (repeatable, comma-separated), each once; ScenarioError for an unknown condition."""
    names = [part.strip() for value in values or () for part in value.split(",") if part.strip()]
    try:
        return tuple(dict.fromkeys(FailOn(name) for name in names))
    except ValueError:
        raise ScenarioError(f"--fail-on takes {', '.join(f.value for f in FailOn)}, "
                            f"not {shown(', '.join(names))}") from None


def outcome(run: RunResult) -> RunOutcome:
    trials_code = exit_code(run.trials)
    comparison = comparison_of(run.trials) if run.meta.compare else None
    gates = tuple(_check(condition, run, comparison) for condition in run.meta.fail_on)
    code = trials_code
    if code is ExitCode.OK and any(g.failed for g in gates):
        code = ExitCode.TRIAL_FAILED
    controls = controls_of(run.trials)
    actors = frozenset(a for t in run.trials if (a := actor(t, controls)) is not None)
    return RunOutcome(code, trials_code, gates, comparison, actors=actors)


def _failed_text(actors: frozenset[Actor]) -> str:
    """Why the trials exit 1, naming whom the failures are laid at (blame.actor)."""
    if actors == {Actor.SQLITE}:
        return ("a trial failed: corruption or lost acknowledged writes where SQLite promised none (SQLite below its "
                "documented promise: the store's no-fault control was clean)")
    text = "a trial failed: corruption or lost acknowledged writes where the configuration in force promised none"
    if actors and actors <= {Actor.STORE, Actor.HAZARD}:
        return text + " (" + " and ".join(sorted(a.value for a in actors)) + "'s own doing, not SQLite's)"
    return text + " (not laid at SQLite's door: the store's own doing is not ruled out)"


def report_json(run: RunResult, result: RunOutcome | None = None) -> str:
    """report.json: the run, with its exit code (the trials' and the --fail-on gates'), and per group each bad
    outcome's count with its interval (``groups``: derived from the trials, never read back)."""
    data = run.to_dict((result or outcome(run)).code)
    data["intervals"] = {"method": METHOD, "confidence": CONFIDENCE,
                         "columns": ["count", "judged", "low", "high"]}  # each outcome below: these four numbers
    data["groups"] = [{"profile": g.key.profile, "faults": g.key.faults, "config": g.key.config,
                       **{bound.outcome: bound.numbers for bound in g.rates}} for g in summarize(run.trials)]
    return indented(data)


def _check(condition: FailOn, run: RunResult, comparison: Comparison | None) -> Gate:
    if condition is FailOn.REGRESSION:
        if comparison is None:
            return Gate(condition, True, "no comparison: the run did not compare exactly two store configurations")
        worse = [f"{r.profile}/{r.faults} ({r.change_text})" for r in comparison.rows if r.change == "worse"]
        if worse:
            return Gate(condition, True, f"{comparison.new_label} regresses vs {comparison.old_label} in "
                                         + ", ".join(worse))
        return Gate(condition, False, f"no significant regression of {comparison.new_label}")
    if condition is FailOn.INCONCLUSIVE:
        if comparison is None:
            return Gate(condition, True, "no comparison: the run did not compare exactly two store configurations")
        unsure = [f"{r.profile}/{r.faults} ({r.change_text})" for r in comparison.rows if r.inconclusive]
        if unsure:
            return Gate(condition, True, "inconclusive in " + ", ".join(unsure))
        return Gate(condition, False, "every compared group could show a difference")
    judged = [t for t in run.trials if not t.lab_error]
    harmed = [t for t in judged if t.harmed]
    if not harmed:
        return Gate(condition, True, f"not reproduced: none of {len(judged)} judged trials harmed data")
    return Gate(condition, False, f"reproduced in {len(harmed)} of {len(judged)} trials")
