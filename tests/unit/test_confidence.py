"""How sure: Clopper-Pearson bounds against published values, the trial count --trials auto chooses, the
detectable difference a comparison prints, --fail-on inconclusive, and the "same settings" note of two releases."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from repro.commands import trial_count
from repro.errors import ScenarioError
from repro.options import RunOptions
from repro.oracle.verdicts import Verdict
from repro.report.comparison import compare_runs, comparison_markdown
from repro.report.confidence import RateBound, binom_cdf, interval, trials_for
from repro.report.markdown import render_markdown
from repro.report.outcome import outcome, report_json
from repro.report.records import FailOn, RunMeta, RunResult, TrialRecord
from repro.report.summary import summarize, table_rows
from test_report import rec


# R's binom.test(x, n)$conf.int (exact Clopper-Pearson, two-sided 95%), and the one-sided 1 - 0.05^(1/n) at x = 0.
@pytest.mark.parametrize(("count", "trials", "low", "high"), [
    (1, 10, 0.002528579, 0.4450161),
    (5, 10, 0.1870860, 0.8129140),
    (2, 3, 0.09429932, 0.99159624),
    (7, 20, 0.1539092, 0.5921885),
    (0, 3, 0.0, 1 - 0.05 ** (1 / 3)),
    (0, 59, 0.0, 0.04951),
    (3, 3, 0.05 ** (1 / 3), 1.0),
])
def test_clopper_pearson_matches_published_values(count: int, trials: int, low: float, high: float) -> None:
    found = interval(count, trials)
    assert found == (pytest.approx(low, abs=2e-6), pytest.approx(high, abs=2e-5))


def test_the_binomial_cdf_is_the_sum_of_its_terms() -> None:
    for n, k, p in [(10, 3, 0.2), (5, 0, 0.5), (20, 7, 0.9), (100, 50, 0.5), (400, 12, 0.01)]:
        direct = math.fsum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1))
        assert binom_cdf(k, n, p) == pytest.approx(direct, rel=1e-9)


def test_a_bound_reads_as_the_issue_asks() -> None:
    assert RateBound("corrupt", 0, 3).text == "0 of 3 corrupt: rate below 63% (95%)"
    assert RateBound("lost writes", 3, 3).text == "3 of 3 lost writes: rate above 37% (95%)"
    assert RateBound("corrupt", 1, 10).text == "1 of 10 corrupt: rate 0.3% to 45% (95%)"
    with pytest.raises(ValueError):
        interval(4, 3)


@pytest.mark.parametrize(("target", "count"), [(0.05, 59), (0.10, 29), (0.01, 299), (0.5, 5)])
def test_the_trial_count_for_a_target_rate_is_the_least_that_bounds_it(target: float, count: int) -> None:
    assert trials_for(target) == count
    assert interval(0, count)[1] <= target < interval(0, count - 1)[1]  # fewer would not bound it


def test_trials_auto_takes_the_documented_count_and_refuses_a_stray_rate(capsys: pytest.CaptureFixture[str]) -> None:
    assert trial_count(RunOptions(trials="auto")) == 59
    assert "59 trials per scenario" in capsys.readouterr().err
    assert trial_count(RunOptions(trials="auto", target_rate="10%")) == 29
    assert trial_count(RunOptions(trials=4)) == 4
    for bad in (RunOptions(trials=4, target_rate="5%"), RunOptions(trials="auto", target_rate="0%"),
                RunOptions(trials="auto", target_rate="five")):
        with pytest.raises(ScenarioError):
            trial_count(bad)


def test_trials_auto_expands_the_documented_count_per_scenario() -> None:
    from repro.cli import parse
    from repro.commands import _scenarios

    scenarios = _scenarios(parse(["matrix", "--faults", "sigkill", "--trials", "auto", "--target-rate", "50%"]), 7,
                           build=False)
    assert len(scenarios) == 2 * 5  # sigkill and the control, ceil(ln 0.05 / ln 0.5) = 5 each


def test_every_group_states_each_bad_outcome_with_its_interval() -> None:
    trials = (rec(1, Verdict.PASS), rec(2, Verdict.PASS), rec(3, Verdict.CORRUPT, expected=False))
    (group,) = summarize(trials)
    assert [b.text for b in group.rates] == ["1 of 3 corrupt: rate 0.8% to 91% (95%)",
                                             "0 of 3 lost writes: rate below 63% (95%)",
                                             "1 of 3 harmed data: rate 0.8% to 91% (95%)"]
    (_, cells), = table_rows(trials)
    assert cells["harmed data"] == "1 of 3 (0.8% to 91%)"
    run = RunResult(RunMeta(run_id="r", seed=1, started_at="now", command="repro run"), trials)
    assert "1 of 3 corrupt: rate 0.8% to 91% (95%)" in render_markdown(run)
    data = json.loads(report_json(run))
    assert data["intervals"]["method"] == "Clopper-Pearson"
    assert data["groups"][0]["lost writes"] == [0, 3, 0.0, 0.6316]


def release(i: int, store: str, verdict: Verdict = Verdict.PASS, synchronous: str = "1") -> TrialRecord:
    return dataclasses.replace(rec(i, verdict, store=store), synchronous=synchronous, sqlite_version="3.40.1",
                               sqlite_source_id="2022-12-28 abc", pragmas={"journal_mode": "wal",
                                                                           "synchronous": synchronous,
                                                                           "fullfsync": "0"})


def test_zero_of_three_against_zero_of_three_is_inconclusive_with_its_bounds_and_gates() -> None:
    old = [release(i, "/x/old") for i in range(3)]
    new = [release(i + 10, "/x/new") for i in range(3)]
    comparison = compare_runs(old, new, "old", "new")
    assert comparison.rows[0].inconclusive
    assert "inconclusive at this trial count" in comparison.headline
    meta = RunMeta(run_id="m", seed=1, started_at="now", command="repro matrix", compare=True,
                   fail_on=(FailOn.INCONCLUSIVE,))
    run = RunResult(meta, (*old, *new))
    result = outcome(run)
    assert result.code == 1 and result.gates[0].failed and "fly-256/sigkill" in result.gates[0].reason
    assert "0 of 3 harmed data: rate below 63% (95%)" in render_markdown(run, result)


def test_enough_trials_with_no_difference_print_what_they_could_have_detected_and_pass_the_gate() -> None:
    old = [release(i, "/x/old") for i in range(40)]
    new = [release(i + 100, "/x/new") for i in range(40)]
    row = compare_runs(old, new).rows[0]
    assert not row.inconclusive and row.change_text == "same (could have detected 15%)"  # 0/40 vs 6/40: p=0.026
    meta = RunMeta(run_id="m", seed=1, started_at="now", command="repro matrix", compare=True,
                   fail_on=(FailOn.INCONCLUSIVE,))
    assert outcome(RunResult(meta, (*old, *new))).code == 0


def test_two_releases_with_the_same_settings_say_so_and_different_ones_do_not() -> None:
    old = [release(i, "/x/old") for i in range(3)]
    same = compare_runs(old, [release(i + 10, "/x/new") for i in range(3)], "old", "new")
    assert same.same_settings == "the two releases ran the same durability settings on these machines " \
                                 "(wal/normal 3.40.1 (system))"
    assert same.same_settings in same.headline and same.same_settings in comparison_markdown(same)
    differ = compare_runs(old, [release(i + 10, "/x/new", synchronous="2") for i in range(3)], "old", "new")
    assert differ.same_settings == "" and "same durability" not in differ.headline
    assert "new: wal/full 3.40.1 (system) [2022-12-28 abc]" in comparison_markdown(differ)  # each side's, read back
    other_build = [dataclasses.replace(r, sqlite_source_id="2022-12-28 def") for r in old]
    assert compare_runs(old, other_build).same_settings == ""  # one version, another build: not the same SQLite
    presets = compare_runs([rec(i, Verdict.PASS) for i in range(3)], [rec(i, Verdict.PASS) for i in range(3)])
    assert presets.same_settings == ""  # the lab's own presets: their settings are their names


def test_a_control_group_never_makes_a_comparison_inconclusive_but_its_difference_counts() -> None:
    old = [release(i, "/x/old") for i in range(12)]
    new = [release(i + 100, "/x/new") for i in range(12)]
    ctl = [dataclasses.replace(release(i + 200, side), faults=("clean-stop",)) for i, side in
           enumerate(["/x/old"] * 3 + ["/x/new"] * 3)]
    comparison = compare_runs([*old, *ctl[:3]], [*new, *ctl[3:]], "old", "new")
    control = comparison.rows[1]
    assert control.is_control and not control.inconclusive
    assert control.change_text.startswith("control: same (3 trials per side could not detect")
    assert "clean-stop" not in comparison.headline
    dropped = [dataclasses.replace(t, verdict=Verdict.LOST_ACKED, expected=False, lost_preexisting=1) for t in
               (dataclasses.replace(release(i + 300, "/x/new"), faults=("clean-stop",)) for i in range(12))]
    worse = compare_runs([*old, *[dataclasses.replace(t, store="/x/old", verdict=Verdict.PASS, expected=True,
                                                      lost_preexisting=0) for t in dropped]], [*new, *dropped])
    assert "regression" in worse.headline and "fly-256/clean-stop" in worse.headline  # a control's harm still counts
