"""Health check of a state database: integrity, foreign keys, FTS, counts, a rolled-back write."""

from __future__ import annotations

import enum
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .errors import DatabaseNotFoundError, NotADatabaseError, is_not_a_database_error
from .schema import FTS_TABLE, has_fts_table, schema_version
from .versions import (  # noqa: F401  (re-exported: the names lived here before)
    WAL_RESET_BUG_FIRST,
    WAL_RESET_BUG_LAST,
    in_wal_reset_bug_range,
    sqlite_version_tuple,
)

PROBE_SESSION_ID = "__hermes_state_health_probe__"


class FtsStatus(enum.Enum):
    """State of the messages FTS index."""

    OK = "ok"
    CORRUPT = "corrupt"
    MISSING = "missing"  # no FTS table (created without FTS5, or dropped)
    UNAVAILABLE = "unavailable"  # could not be checked (e.g. the schema did not load)


@dataclass(frozen=True)
class HealthReport:
    """What check_health found. `healthy` is what the doctor's exit code follows."""

    path: str
    journal_mode: str | None
    integrity: tuple[str, ...]
    foreign_key_violations: int | None
    fts: FtsStatus
    fts_error: str | None
    session_count: int | None
    message_count: int | None
    counter_mismatches: int | None
    write_probe_ok: bool
    write_probe_error: str | None
    schema_version: int | None
    errors: tuple[str, ...]

    @property
    def integrity_ok(self) -> bool:
        return self.integrity == ("ok",)

    @property
    def structurally_ok(self) -> bool:
        """Integrity, FTS, readable counts and a working write: what repair can restore."""
        return (
            self.integrity_ok
            and self.fts in (FtsStatus.OK, FtsStatus.MISSING)
            and self.session_count is not None
            and self.message_count is not None
            and self.write_probe_ok
            and not self.errors
        )

    @property
    def healthy(self) -> bool:
        """Structurally sound and logically consistent (no FK violations, counters match)."""
        return self.structurally_ok and self.foreign_key_violations == 0 and self.counter_mismatches == 0

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "healthy": self.healthy,
            "structurally_ok": self.structurally_ok,
            "journal_mode": self.journal_mode,
            "integrity": list(self.integrity),
            "integrity_ok": self.integrity_ok,
            "foreign_key_violations": self.foreign_key_violations,
            "fts": self.fts.value,
            "fts_error": self.fts_error,
            "session_count": self.session_count,
            "message_count": self.message_count,
            "counter_mismatches": self.counter_mismatches,
            "write_probe_ok": self.write_probe_ok,
            "write_probe_error": self.write_probe_error,
            "schema_version": self.schema_version,
            "errors": list(self.errors),
        }


def open_existing(path: str | os.PathLike[str], *, timeout_s: float = 2.0, label: str | None = None) -> sqlite3.Connection:
    """Open an existing database read-write without creating it and without changing its pragmas.

    Raises DatabaseNotFoundError for a missing path, NotADatabaseError for a directory or
    a file SQLite rejects; their messages name *label* (default: *path*) -- the original of a
    working copy, whose directory is gone by the time anyone reads them.
    """
    p = Path(path)
    name = label if label is not None else str(p)
    if not p.exists():
        raise DatabaseNotFoundError(f"no such file: {name}")
    if not p.is_file():
        raise NotADatabaseError(f"not a regular file: {name}")
    uri = f"file:{quote(str(p.resolve()))}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout_s, check_same_thread=False)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        if is_not_a_database_error(exc):
            conn.close()
            raise NotADatabaseError(f"file is not a database: {name}") from exc
        # A malformed schema still opens; the checks report it.
    return conn


def check_health(path: str | os.PathLike[str], *, label: str | None = None) -> HealthReport:
    """Open *path* (never creating it), check it, close it; the report and errors name *label* (default: *path*)."""
    conn = open_existing(path, label=label)
    try:
        return check_connection(conn, path=label if label is not None else str(path))
    finally:
        conn.close()


def check_connection(conn: sqlite3.Connection, *, path: str = "") -> HealthReport:
    """Run every check on an open connection that is not inside a transaction."""
    errors: list[str] = []

    def attempt(label: str, sql: str) -> list[tuple[object, ...]] | None:
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        except sqlite3.Error as exc:
            errors.append(f"{label}: {exc}")
            return None

    journal = attempt("journal_mode", "PRAGMA journal_mode")
    integrity_rows = _integrity(conn)
    fk_rows = attempt("foreign_key_check", "PRAGMA foreign_key_check")
    sessions = attempt("session count", "SELECT count(*) FROM sessions")
    messages = attempt("message count", "SELECT count(*) FROM messages")
    mismatches = attempt(
        "counter check",
        "SELECT count(*) FROM sessions s WHERE s.message_count != "
        "(SELECT count(*) FROM messages m WHERE m.session_id = s.id)",
    )
    fts, fts_error = _fts_status(conn)
    probe_error = _write_probe(conn)
    try:
        version = schema_version(conn)
    except sqlite3.Error:
        version = None
    return HealthReport(
        path=path,
        journal_mode=str(journal[0][0]).lower() if journal else None,
        integrity=integrity_rows,
        foreign_key_violations=len(fk_rows) if fk_rows is not None else None,
        fts=fts,
        fts_error=fts_error,
        session_count=_scalar(sessions),
        message_count=_scalar(messages),
        counter_mismatches=_scalar(mismatches),
        write_probe_ok=probe_error is None,
        write_probe_error=probe_error,
        schema_version=version,
        errors=tuple(errors),
    )


def _scalar(rows: list[tuple[object, ...]] | None) -> int | None:
    if not rows:
        return None
    value = rows[0][0]
    return int(value) if isinstance(value, int) else None


def _integrity(conn: sqlite3.Connection) -> tuple[str, ...]:
    try:
        rows = conn.execute("PRAGMA integrity_check(100)").fetchall()
    except sqlite3.Error as exc:
        return (str(exc),)
    return tuple(str(r[0]) for r in rows) or ("no result",)


def _fts_status(conn: sqlite3.Connection) -> tuple[FtsStatus, str | None]:
    try:
        if not has_fts_table(conn):
            return FtsStatus.MISSING, None
    except sqlite3.Error as exc:
        return FtsStatus.UNAVAILABLE, str(exc)
    try:
        conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('integrity-check')")
    except sqlite3.Error as exc:
        return FtsStatus.CORRUPT, str(exc)
    return FtsStatus.OK, None


def _write_probe(conn: sqlite3.Connection) -> str | None:
    """Insert a session and a message (FTS triggers fire), then roll back. None when it worked."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return f"begin: {exc}"
    try:
        conn.execute(
            "INSERT INTO sessions(id, source, started_at) VALUES (?, 'health-probe', 0)", (PROBE_SESSION_ID,)
        )
        conn.execute(
            "INSERT INTO messages(session_id, role, content, timestamp) VALUES (?, 'system', 'health probe', 0)",
            (PROBE_SESSION_ID,),
        )
        conn.execute("UPDATE sessions SET message_count = message_count + 1 WHERE id = ?", (PROBE_SESSION_ID,))
        return None
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
