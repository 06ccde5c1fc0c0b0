"""report.html draws a bounded number of figures, however many trials (that rendering is linear in time is a
benchmark's to show: bench/bench_report.py prints the growth ratio; a timed test fails on a busy machine)."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

import pytest

from repro.report import figures, html
from repro.report.outcome import outcome

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "bench_report.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_draws_a_bounded_number_of_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    drawn: list[int] = []  # per figure: how many trials it draws
    monkeypatch.setattr(figures, "timeline", lambda tl, title, *start: drawn.append(1) or "<svg/>")
    monkeypatch.setattr(figures, "overlay", lambda tls, title: drawn.append(len(tls)) or "<svg/>")
    bench = _bench()
    counts = []
    for trials in (600, 2400):
        drawn.clear()
        run = bench.synthetic_run(trials)
        page = html.render_html(run, tmp_path, outcome(run))
        counts.append((len(drawn), max(drawn)))
        assert "timeline not drawn: the page draws the first 40" in page
    assert counts[0][0] == counts[1][0]  # as many figures for 4x the trials (the groups are the same)
    assert counts[1][1] <= html.MAX_OVERLAY
