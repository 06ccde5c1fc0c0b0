"""A machine's stdout as it comes: every line kept, parsed once, and waited for with a deadline.

The console is how the lab sees inside a machine without touching its disk: the ledger,
READY, EVENT, FINISH and LOSSYFS lines (repro/protocol.py). ``LineWait`` makes "a line
like this has appeared" a testcontainers wait strategy, so readiness is declared on the
container (``waiting_for``) the way testcontainers modules declare theirs.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable

import docker.errors
from testcontainers.core.wait_strategies import WaitStrategy

from repro.errors import TrialError
from repro.protocol import Line, Tag, parse_line

if TYPE_CHECKING:
    from docker.models.containers import Container

# How much of the machine's output a trial error carries as a note.
NOTE_LINES = 30


class Console:
    """Follows one container's output in a thread; ``wait_for`` blocks until a line matches."""

    def __init__(self, container: "Container") -> None:
        self._container = container
        self._raw: list[str] = []
        self._parsed: list[Line] = []
        self._acks = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="machine-console")
        self._thread.start()

    def _follow(self) -> None:
        buffer = b""
        try:
            for chunk in self._container.logs(stream=True, follow=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if lines:
                    self._add([line.decode("utf-8", "replace") for line in lines])
        except docker.errors.DockerException:
            pass
        self._add([buffer.decode("utf-8", "replace")] if buffer else [])

    def _add(self, lines: list[str]) -> None:
        parsed = [p for p in map(_parse_quietly, lines) if p is not None]
        with self._cond:
            self._raw.extend(lines)
            self._parsed.extend(parsed)
            self._acks += sum(1 for p in parsed if p.tag is Tag.LEDGER and p.payload.get("t") == "ok")
            self._cond.notify_all()

    @property
    def ended(self) -> bool:
        """The machine's output has ended (it is down, or removed)."""
        return not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def lines(self) -> list[str]:
        with self._cond:
            return list(self._raw)

    def parsed(self) -> list[Line]:
        with self._cond:
            return list(self._parsed)

    def acks(self) -> int:
        """Acknowledged operations so far (ledger ``ok`` lines)."""
        with self._cond:
            return self._acks

    def wait_for(self, match: Callable[[Line], bool], timeout: float, what: str) -> Line:
        """The first line (from the start of the output) that matches; TrialError after ``timeout``
        seconds or when the output ends without one."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._parsed[seen:]:
                    if match(line):
                        return line
                seen = len(self._parsed)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.error(f"timed out after {timeout:.0f} s waiting for {what}")
                if self.ended and seen == len(self._parsed):
                    raise self.error(f"the machine ended before {what}")
                self._cond.wait(min(left, 0.2))

    def error(self, message: str) -> TrialError:
        """A TrialError carrying the machine's last lines as a note."""
        error = TrialError(message)
        error.add_note(f"machine output (last {NOTE_LINES} lines):\n" + "\n".join(self.lines()[-NOTE_LINES:]))
        return error


def _parse_quietly(text: str) -> Line | None:
    """A line a broken service printed is not the lab's to crash on; the ledger parser reports it."""
    try:
        return parse_line(text)
    except ValueError:
        return None


class LineWait(WaitStrategy):
    """Ready when the machine prints a line that matches (e.g. ``LAB BOOT`` from PID 1)."""

    def __init__(self, match: Callable[[Line], bool], what: str) -> None:
        super().__init__()
        self.match = match
        self.what = what

    def wait_until_ready(self, container: object) -> None:
        console = getattr(container, "console")
        console.wait_for(self.match, self._startup_timeout, self.what)
