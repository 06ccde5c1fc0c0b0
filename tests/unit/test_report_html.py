"""report.html: self-contained (nothing fetched at view time), heatmap and timelines drawn, links to the
evidence relative to the page, and it renders in a real headless Chromium with no console error."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

from repro.oracle.verdicts import Verdict
from repro.report.records import FailOn
from repro.report.render import write_all
from repro.report.timeline import build_timeline
from test_report import MIXED, run_of
from test_report_outcome import REGRESSION, matrix
from test_timeline import log


def with_timelines(run):  # type: ignore[no-untyped-def]
    tl = build_timeline(log(acks=300, failed=20), faults=[("sigkill", 300, None)], lost_ops=[590, 598, 600],
                        files=[("state.db", 40960), ("state.db-wal", 2 << 20)])
    return dataclasses.replace(run, trials=tuple(dataclasses.replace(t, timeline=tl) for t in run.trials))


def written(tmp_path: pathlib.Path) -> pathlib.Path:
    run = with_timelines(matrix(REGRESSION[6:18], FailOn.REGRESSION))  # 6 legacy, 6 ns506
    out = tmp_path / "run"
    failing = run.trials[6]
    (out / "trials" / failing.id).mkdir(parents=True)
    (out / "trials" / failing.id / "machine.log").write_text("LAB BOOT {}\n")
    write_all(out, run)
    return out / "report.html"


def test_the_page_is_self_contained_and_shows_everything(tmp_path: pathlib.Path) -> None:
    page = written(tmp_path).read_text()
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page fetches something"
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert page.count("<svg") == 1 + 1 + 6 + 1  # heatmap, comparison chart, 6 harmed trials, the passing ones
    assert "fly-256  power-loss" in page and "legacy" in page and "ns506" in page  # heatmap rows and columns
    assert "regression: ns506 harms data more often than legacy" in page
    assert "p (Fisher)" in page and "0.0" in page
    assert "acknowledged writes lost" in page and "disk full" in page and "state.db-wal 2.0 MiB" in page
    failing = REGRESSION[12].id
    assert f'href="trials/{failing}/machine.log"' in page  # relative: the run directory can move
    assert "--fail-on regression</code>: FAILED" in page


def test_the_page_without_comparison_or_timelines(tmp_path: pathlib.Path) -> None:
    write_all(tmp_path / "r", MIXED)  # older records: no timelines, artifacts elsewhere
    page = (tmp_path / "r" / "report.html").read_text()
    assert "no timeline recorded" in page and "not beside this page" in page and "Old vs new" not in page


def test_what_was_tested_leads_the_page_and_an_allowed_regression_is_not_a_red_banner(tmp_path: pathlib.Path) -> None:
    """Issue 21 item 7: the panel names each store, what it ran in force and its counts with an interval; a
    regression made of expected-loss trials (every one as the oracle expects) gets an amber banner that says so."""
    from repro.report.html import render_html

    page = render_html(matrix(REGRESSION))
    tested = page.split("<h2>What was tested</h2>")[1].split("<h2>")[0]
    assert "<b>legacy</b>" in tested and "<b>ns506</b>" in tested
    assert "wal/full" in tested and "wal/normal" in tested  # read back, per store
    assert "0 of 12 harmed data: rate below 22% (95%)" in tested and "12 of 12 harmed data" not in tested
    assert 'class="headline exit-0 allowed"' in page and "not a broken promise" in page
    broken = render_html(matrix(tuple(dataclasses.replace(t, expected=False, verdict=Verdict.LOST_ACKED)
                                      if t.preset == "ns506" else t for t in REGRESSION)))
    assert 'class="headline exit-1"' in broken  # a broken promise keeps its red banner


def test_the_heatmap_columns_say_what_was_in_force() -> None:
    from repro.report import figures
    from repro.report.summary import summarize

    svg = figures.heatmap(summarize(REGRESSION))
    assert "(wal/full)" in svg and "(wal/normal)" in svg  # legacy and ns506 told apart by what ran, not only names
