"""Long preparation shown as it happens, as the trials are: pip, a derived image, a SQLite build, a grown database,
a fetched ref -- a rich spinner with the step and its elapsed time on a terminal, and one line with its time when
it took a while (on a terminal or not), so a minute and a half of pip is never silence."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

SAY_AFTER_S = 2.0  # a step that took longer says so in one line when it ends


@contextlib.contextmanager
def step(what: str, console: Console | None = None) -> Iterator[None]:
    """Show ``what`` while the block runs (a spinner on a terminal), then ``repro: what: 97.3 s`` if it was long."""
    console = console or Console(stderr=True)
    started = time.monotonic()
    if console.is_terminal:
        with Progress(SpinnerColumn(), TextColumn("repro: {task.description}"), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            progress.add_task(what, total=None)
            yield
    else:
        yield
    took = time.monotonic() - started
    if took >= SAY_AFTER_S:
        console.print(f"repro: {what}: {took:.1f} s", highlight=False, soft_wrap=True)


__all__ = ["SAY_AFTER_S", "step"]
