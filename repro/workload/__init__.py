"""Code that runs inside the lab's machine: the workload, the cache filler, the fault agent (stdlib only)."""

from __future__ import annotations

import sqlite3


def sqlite_in_force() -> dict[str, str]:
    """The SQLite this process really loaded -- a lab build through LD_LIBRARY_PATH, or the image's
    own -- as every process of a machine reports it (the lab compares them with what it asked for)."""
    conn = sqlite3.connect(":memory:")
    try:
        source_id = str(conn.execute("select sqlite_source_id()").fetchone()[0])
    finally:
        conn.close()
    return {"sqlite_version": sqlite3.sqlite_version, "sqlite_source_id": source_id}
