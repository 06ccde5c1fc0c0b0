"""Session databases as a crash in the middle of a transaction leaves them: a child process writes, is SIGKILLed
before COMMIT, and its rollback journal (or its uncommitted WAL frames) stays beside the database."""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import textwrap

from hermes_state.schema import create_schema

COMMITTED = 12  # messages in 3 sessions, committed before the crash
UNCOMMITTED = 400  # messages written by the cut-off transaction: far more pages than its cache holds


def _committed(db: pathlib.Path, journal_mode: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={journal_mode}")
    create_schema(conn, with_fts=True)
    for s in range(3):
        conn.execute("INSERT INTO sessions(id, source, model, started_at, message_count) VALUES (?, 'beta', 'm', 0, 4)",
                     (f"old-{s}",))
        for m in range(4):
            conn.execute("INSERT INTO messages(session_id, role, content, timestamp) VALUES (?, 'user', ?, 0)",
                         (f"old-{s}", f"old message {s}/{m}"))
    if journal_mode == "wal":
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def crashed(directory: pathlib.Path, journal_mode: str = "delete") -> pathlib.Path:
    """``directory/state.db`` with COMMITTED messages, then a transaction of UNCOMMITTED more cut off by SIGKILL
    before COMMIT, with a cache of a few pages so that SQLite spills them to the database file (DELETE: the
    journal is hot) or the WAL (WAL: frames without a commit) before the kill."""
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "state.db"
    _committed(db, journal_mode)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        conn = sqlite3.connect({str(db)!r}, isolation_level=None)
        conn.execute("PRAGMA journal_mode={journal_mode}")
        conn.execute("PRAGMA cache_size=4")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO sessions(id, source, model, started_at) VALUES ('uncommitted', 'beta', 'm', 0)")
        for m in range({UNCOMMITTED}):
            conn.execute("INSERT INTO messages(session_id, role, content, timestamp) VALUES ('uncommitted', 'user', ?, 0)",
                         ("never committed %d " % m + "x" * 1500,))
        print("written", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    side = directory / ("state.db-journal" if journal_mode == "delete" else "state.db-wal")
    assert side.is_file() and side.stat().st_size > 0, "the crash left no journal: the test would prove nothing"
    return db


def messages_without_the_journal(db: pathlib.Path, scratch: pathlib.Path) -> str:
    """What the database file alone says (a copy, without its journal): a count, or SQLite's error. The crash
    must have put uncommitted pages into it, or a test that copies the file alone could not fail."""
    scratch.mkdir(parents=True, exist_ok=True)
    alone = scratch / "state.db"
    alone.write_bytes(db.read_bytes())
    try:
        conn = sqlite3.connect(alone)
        try:
            return str(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
