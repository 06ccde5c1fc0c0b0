"""report.html renders in a real headless Chromium with no console error (and the console check sees a broken
page). Slow (a browser), so not a unit test; the page's content is checked in tests/unit/test_report_html.py."""

from __future__ import annotations

import functools
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "unit"))  # the unit tests' report helpers
from test_report_html import written  # noqa: E402

pytestmark = pytest.mark.slow


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


def test_the_page_renders_in_headless_chromium_without_console_errors(tmp_path: pathlib.Path) -> None:
    page = written(tmp_path)
    assert console_messages(page.as_uri(), tmp_path) == []
    shot = tmp_path / "page.png"
    assert console_messages(page.as_uri(), tmp_path, screenshot=shot) == []
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 30_000  # drawn, not a blank page
