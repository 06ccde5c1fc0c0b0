"""The dashboard hazard: a second process opens the store, reads, and closes it, again and again.

Upstream's gateway shared state.db with a dashboard, cron jobs and `doctor`, each a process of
its own (docs/FACTS.md section 2). Each open/close cycle is what matters: the last connection
to close checkpoints the WAL and deletes it, and it decides it is the last by taking an
exclusive lock on the database file -- which it gets if the gateway's locks were dropped (the
raw-open hazard). Run by the s6 ``dashboard`` service as the unprivileged user, with the
same store as the workload (LAB_STORE_MOUNT) and the same settings (HERMES_STATE_*).
Standard library only. Prints ``EVENT`` lines (never ledger lines: it writes nothing).
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

from repro.channel import emit_event, open_channel
from repro.protocol import EventKind
from repro.verify.importcheck import import_store
from repro.workload import sqlite_in_force


def main() -> int:
    db_path = pathlib.Path(os.environ.get("LAB_DB_PATH", "/opt/data/state.db"))
    every_s = int(os.environ.get("LAB_DASHBOARD_EVERY_MS", "20")) / 1000.0
    open_channel("dashboard")  # before the store is imported: what it prints becomes OUTPUT records
    store = import_store(os.environ.get("LAB_STORE_MOUNT") or None)
    emit_event(EventKind.DASHBOARD_STARTED, every_ms=int(every_s * 1000), **sqlite_in_force())
    cycles = errors = 0
    while True:
        try:
            db = store.SessionDB(db_path)
            try:
                db.session_count()
                db.message_count()
            finally:
                db.close()
            cycles += 1
        except Exception as exc:  # what the dashboard's user would see; it keeps polling
            errors += 1
            if errors <= 5:  # the first few are the story; the rest would only flood the log
                emit_event(EventKind.DASHBOARD_ERROR, cycle=cycles, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        time.sleep(every_s)


if __name__ == "__main__":
    sys.exit(main())
