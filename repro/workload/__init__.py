"""Code that runs inside the lab's machine: the workload, the cache filler, the fault agent (stdlib only)."""

from __future__ import annotations

import sqlite3

# The pragmas the workload reads back from the store's own connection at READY: what was in force, which the
# report records per trial and an A/B comparison holds side by side (fullfsync: what a macOS-only fix would set).
READY_PRAGMAS = ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "wal_autocheckpoint", "fullfsync",
                 "checkpoint_fullfsync", "locking_mode")


def sqlite_in_force() -> dict[str, str]:
    """The SQLite this process really loaded -- a lab build through LD_LIBRARY_PATH, or the image's
    own -- as every process of a machine reports it (the lab compares them with what it asked for)."""
    conn = sqlite3.connect(":memory:")
    try:
        source_id = str(conn.execute("select sqlite_source_id()").fetchone()[0])
    finally:
        conn.close()
    return {"sqlite_version": sqlite3.sqlite_version, "sqlite_source_id": source_id}
