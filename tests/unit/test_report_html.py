"""report.html: self-contained (nothing fetched at view time), heatmap and timelines drawn, links to the
evidence relative to the page, and it renders in a real headless Chromium with no console error."""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import re
import shutil
import subprocess

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


@functools.cache
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def console_messages(url: str, tmp_path: pathlib.Path, screenshot: pathlib.Path | None = None) -> list[str]:
    """What the page logged to the browser console (errors and uncaught exceptions included)."""
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium (docker/setup.sh installs Debian's)")
        pytest.skip("no chromium here (apt-get install chromium)")
    argv = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1400"]
    argv += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*argv, url], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def test_the_console_check_sees_a_broken_page(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    messages = console_messages(bad.as_uri(), tmp_path)
    assert any("notDefined" in m for m in messages), messages


@pytest.mark.slow
def test_the_page_renders_in_headless_chromium_without_console_errors(tmp_path: pathlib.Path) -> None:
    page = written(tmp_path)
    assert console_messages(page.as_uri(), tmp_path) == []
    shot = tmp_path / "page.png"
    assert console_messages(page.as_uri(), tmp_path, screenshot=shot) == []
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 30_000  # drawn, not a blank page


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
