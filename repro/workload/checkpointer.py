"""The checkpointer hazard: a third process checkpoints the store's WAL with a connection of its own (stdlib only).

SQLite's WAL-reset bug (3.7.0 through 3.51.2; docs/FACTS.md, section 1) needs two connections
that write or checkpoint at the same moment: a checkpoint that emptied the WAL, a second one
started right after it, and a writer that meanwhile restarts the WAL from its start. This
process gives it that: with a plain ``sqlite3`` connection (not the store: none of its
housekeeping) it runs ``PRAGMA wal_checkpoint`` PASSIVE and TRUNCATE alternately every MS
milliseconds, while the gateway and the cron writer commit. Run by the s6 ``checkpointer``
service as the unprivileged user. The machine is killed at the end of a hunt, so there is no
last line to wait for: the running count is printed as an ``EVENT checkpoints`` line once a
second (and at a graceful stop), and the last one seen is the trial's count.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from typing import Iterable

from repro.channel import emit_event, open_channel
from repro.protocol import EventKind, parse_all
from repro.workload import sqlite_in_force

MODES = ("PASSIVE", "TRUNCATE")
REPORT_EVERY_S = 1.0
BUSY_TIMEOUT_S = 0.05  # TRUNCATE waits this long for readers and writers, then reports busy


@dataclass
class Counts:
    """What the checkpointer did so far."""

    checkpoints: int = 0  # PRAGMA wal_checkpoint statements that ran (complete or busy)
    passive: int = 0
    truncate: int = 0
    complete: int = 0  # every WAL frame was copied back (the state after which a writer resets the WAL)
    busy: int = 0  # SQLite reported the checkpoint could not finish (another connection held it back)
    errors: int = 0  # the statement itself failed (locked, I/O, malformed)

    def add(self, mode: str, row: tuple[int, int, int] | None) -> None:
        self.checkpoints += 1
        if mode == "PASSIVE":
            self.passive += 1
        else:
            self.truncate += 1
        if row is not None:
            busy, log, done = row
            self.busy += 1 if busy else 0
            self.complete += 1 if not busy and log == done else 0


def checkpoint_count(lines: Iterable[str]) -> int:
    """The checkpoints a machine's checkpointer reported last (0 when it never ran)."""
    count = 0
    for line in parse_all(lines):
        if line.is_event(EventKind.CHECKPOINTS):
            count = int(str(line.payload.get("checkpoints", 0)))
    return count


def main() -> int:
    db_path = os.environ.get("LAB_DB_PATH", "/opt/data/state.db")
    every_s = int(os.environ.get("LAB_CHECKPOINT_EVERY_MS", "1")) / 1000.0
    open_channel("checkpointer", isolate=False)  # SQLite only, no store: its stdout may stay the channel
    conn = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    counts = Counts()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    emit_event(EventKind.CHECKPOINTER_STARTED, every_ms=int(every_s * 1000), modes=list(MODES), **sqlite_in_force())
    next_report = time.monotonic() + REPORT_EVERY_S
    while not stopping:
        mode = MODES[counts.checkpoints % len(MODES)]
        try:
            row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            counts.add(mode, None if row is None else (int(row[0]), int(row[1]), int(row[2])))
        except sqlite3.Error as exc:  # what a checkpointing job would see; it keeps going
            counts.errors += 1
            if counts.errors <= 5:
                emit_event(EventKind.CHECKPOINTER_ERROR, error=f"{type(exc).__name__}: {exc}"[:300])
        if time.monotonic() >= next_report:
            emit_event(EventKind.CHECKPOINTS, **asdict(counts))
            next_report += REPORT_EVERY_S
        if every_s:
            time.sleep(every_s)
    emit_event(EventKind.CHECKPOINTS, **asdict(counts))
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
