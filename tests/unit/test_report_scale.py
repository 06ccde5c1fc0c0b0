"""Rendering reports is linear: 4x the trials takes well under 8x the time, and report.html draws a bounded number of figures."""

from __future__ import annotations

import importlib.util
import pathlib
import time
from types import ModuleType
from typing import Callable

import pytest

from repro.report import figures, html
from repro.report.outcome import outcome
from repro.report.records import RunResult

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "bench_report.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu_seconds(render: Callable[[RunResult], object], run: RunResult) -> float:
    """CPU time of one rendering (steadier than wall time on a shared machine), at least 20 ms."""
    started = time.process_time()
    render(run)
    return max(time.process_time() - started, 0.02)


@pytest.mark.parametrize("name", ["terminal", "json", "markdown", "junit"])
def test_rendering_four_times_the_trials_takes_less_than_eight_times_as_long(name: str,
                                                                           tmp_path: pathlib.Path) -> None:
    bench = _bench()
    render = bench.renderers(tmp_path)[name]
    small, large = bench.synthetic_run(1000), bench.synthetic_run(4000)
    render(small)  # warm up (imports, caches) outside the clock
    ratio = _cpu_seconds(render, large) / _cpu_seconds(render, small)
    assert ratio < 8, f"{name}: 4x the trials took {ratio:.1f}x the time"


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
