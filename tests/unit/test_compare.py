"""Old vs new: a fix or a regression is claimed only when the counts make chance unlikely."""

from __future__ import annotations

import html
import math

import pytest
from rich.console import Console

from repro.report.comparison import DETECTABLE_LIMIT, compare_runs, comparison_markdown, detectable, fisher_exact, \
    render_comparison
from repro.oracle.verdicts import Verdict
from test_report import rec


def many(verdict: Verdict, n: int, *, faults: tuple[str, ...] = ("sigkill",), store: str = "default",
         expected: bool = True, start: int = 0) -> list:  # type: ignore[type-arg]
    return [rec(start + i, verdict, expected, faults=faults, store=store) for i in range(n)]


@pytest.mark.parametrize(("table", "p"), [
    ((0, 3, 1, 3), 1.0),                 # 1 of 3 against 0 of 3: nothing to see
    ((0, 6, 6, 6), 2 / math.comb(12, 6)),  # all against none: only the two extreme tables
    ((1, 10, 6, 10), 0.0573),            # borderline: not below 0.05 (values checked against scipy)
    ((0, 10, 5, 10), 0.0325),
    ((3, 7, 0, 9), 0.0625),
])
def test_fisher_exact_matches_known_values(table: tuple[int, int, int, int], p: float) -> None:
    assert fisher_exact(*table) == pytest.approx(p, abs=5e-4)
    a, na, b, nb = table
    assert fisher_exact(b, nb, a, na) == pytest.approx(fisher_exact(a, na, b, nb))  # symmetric


def test_fisher_exact_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        fisher_exact(4, 3, 0, 3)


def test_a_few_trials_are_inconclusive_not_a_fix() -> None:
    old = many(Verdict.CORRUPT, 1, expected=False) + many(Verdict.PASS, 2, start=10)
    new = many(Verdict.PASS, 3, store="new", start=20)
    comparison = compare_runs(old, new, "v1", "v2")
    (row,) = comparison.rows
    assert row.change == "inconclusive" and row.p_value == pytest.approx(1.0)
    assert comparison.headline.startswith("no significant difference between v1 and v2")
    assert "v1 lost or corrupted data where its configuration promised none in fly-256/sigkill (1)" \
        in comparison.headline  # no control ran: SQLite is not named (tests/unit/test_whose_fault.py)


def test_enough_trials_make_a_fix_and_the_reverse_a_regression() -> None:
    old = many(Verdict.CORRUPT, 6, expected=False)
    new = many(Verdict.PASS, 6, store="new", start=10) + many(Verdict.PASS, 2, faults=("oom",), store="new", start=30)
    fixed = compare_runs(old + many(Verdict.PASS, 2, faults=("oom",), start=40), new, "v1", "v2")
    assert fixed.headline.startswith("v2 fixes fly-256/sigkill (vs v1)")
    assert [r.change for r in fixed.rows] == ["better", "same"]
    worse = compare_runs(new, old, "v2", "v1")
    assert worse.headline.startswith("regression: v1 harms data more often than v2 in fly-256/sigkill")
    assert compare_runs(old, old, "v1", "v2").headline.startswith(  # 6/6 vs 6/6: 5 of 6 fewer would show
        "inconclusive at this trial count: no difference seen between v1 and v2, but 6 trials per side could "
        "not detect a difference below 83% (fly-256/sigkill)")
    assert "inconclusive at this trial count: 2 trials per side could not detect any difference, not even 100% " \
           "(fly-256/oom)" in fixed.headline  # the fix stands; the group beside it is not called safe
    plenty = many(Verdict.PASS, 40, start=100)
    assert compare_runs(plenty, plenty, "v1", "v2").headline == "no difference between v1 and v2"


def test_no_difference_at_three_trials_a_side_is_inconclusive_everywhere() -> None:
    old = many(Verdict.PASS, 3)
    new = many(Verdict.PASS, 3, store="new", start=10)
    comparison = compare_runs(old, new, "v1", "v2")
    (row,) = comparison.rows
    assert row.detectable is None and row.underpowered
    weak = "inconclusive at this trial count: 3 trials per side could not detect any difference, not even 100%"
    assert comparison.headline == ("inconclusive at this trial count: no difference seen between v1 and v2, but "
                                   "3 trials per side could not detect any difference, not even 100% "
                                   "(fly-256/sigkill)")
    assert row.change_text == weak
    assert weak in comparison_markdown(comparison)
    console = Console(record=True, width=300)
    console.print(render_comparison(comparison))
    assert weak in console.export_text()
    from repro.report.html import _comparison
    assert html.escape(weak) in _comparison(comparison)


def test_the_detectable_difference_shrinks_with_more_trials() -> None:
    assert detectable(0, 3, 3) is None
    assert detectable(0, 10, 10) == pytest.approx(0.5)  # 0/10 vs 5/10: p = 0.033; 4/10: p = 0.087
    assert detectable(0, 30, 30) == pytest.approx(0.2)
    assert detectable(0, 100, 100) is not None and detectable(0, 100, 100) < DETECTABLE_LIMIT  # type: ignore[operator]


def test_expected_loss_is_still_data_lost_between_presets() -> None:
    ns506 = many(Verdict.EXPECTED_LOSS, 8, faults=("power-loss",)) + many(Verdict.PASS, 2, faults=("power-loss",), start=10)
    durable = many(Verdict.PASS, 10, faults=("power-loss",), store="durable", start=20)
    comparison = compare_runs(ns506, durable, "ns506", "durable")
    assert comparison.headline == "durable fixes fly-256/power-loss (vs ns506)"  # no promise was broken
    text = comparison_markdown(comparison)
    assert "| pass 2, expected-loss 8, writes lost 16 (n=10) | pass 10 (n=10) | better (p<0.001) |" in text
    console = Console(record=True, width=200)
    console.print(render_comparison(comparison))
    assert "better (p<0.001)" in console.export_text()


def test_errors_are_not_compared() -> None:
    only_errors = many(Verdict.ERROR, 2, expected=False)
    assert compare_runs(only_errors, many(Verdict.PASS, 2, store="new")).headline.startswith("nothing to compare")


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 10, 13, 20, 30])
def test_the_quick_power_test_agrees_with_the_full_search(n: int) -> None:
    from repro.report.comparison import could_detect

    for harmed in range(n + 1):
        for n_new in (n, n + 3):
            found = detectable(harmed, n, n_new)
            assert could_detect(harmed, n, n_new) == (found is not None and found <= DETECTABLE_LIMIT + 1e-12)
