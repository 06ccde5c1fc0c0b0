"""Long preparation is never silence: a step that took a while says what it was and how long, a quick one says nothing."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from repro import steps


def test_a_long_step_says_what_and_how_long_and_a_quick_one_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with steps.step("pip: downloading", console):
        pass
    assert out.getvalue() == ""
    monkeypatch.setattr(steps, "SAY_AFTER_S", 0.01)
    with steps.step("pip: downloading", console):
        time.sleep(0.02)
    assert out.getvalue().startswith("repro: pip: downloading: 0.0") and out.getvalue().endswith(" s\n")


def test_on_a_terminal_the_step_shows_while_it_runs_and_an_error_passes_through() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with pytest.raises(RuntimeError):
        with steps.step("building the store's image", console):
            raise RuntimeError("build failed")
    assert "building the store's image" in out.getvalue()
