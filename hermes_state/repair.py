"""Repair ladder for a malformed state database; it never edits session or message rows."""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .backup import backup_files, is_open_in_process
from .errors import DatabaseInUseError, DatabaseNotFoundError, NotADatabaseError, RepairError, StateError
from .health import HealthReport, check_health, open_existing
from .schema import FTS_TABLE, FTS_TRIGGERS, INDEXES, create_schema, fts5_available, has_fts_table
from .workcopy import Fingerprint, swap_in, working_copy

logger = logging.getLogger("hermes_state")


class RepairOutcome(enum.Enum):
    HEALTHY = "healthy"  # nothing needed repair
    REPAIRED = "repaired"
    FAILED = "failed"  # the copy stayed unsound (or the swap was refused): the original is untouched


@dataclass(frozen=True)
class RepairStep:
    name: str
    ok: bool
    error: str | None


@dataclass(frozen=True)
class RowCounts:
    sessions: int
    messages: int


@dataclass(frozen=True)
class RepairResult:
    path: str
    outcome: RepairOutcome
    backup: tuple[str, ...]
    steps: tuple[RepairStep, ...]
    before: HealthReport | None
    after: HealthReport | None
    rows_before: RowCounts | None
    rows_after: RowCounts | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.outcome is not RepairOutcome.FAILED

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "outcome": self.outcome.value,
            "backup": list(self.backup),
            "steps": [{"name": s.name, "ok": s.ok, "error": s.error} for s in self.steps],
            "rows_before": None if self.rows_before is None else vars(self.rows_before),
            "rows_after": None if self.rows_after is None else vars(self.rows_after),
            "after": None if self.after is None else self.after.to_dict(),
            "error": self.error,
        }


class ApplyMode(enum.Enum):
    """How a repair that worked on the private copy reaches the original."""

    REPLAY = "replay"  # the same steps again on the original, under SQLite's locks (SessionDB's heal)
    SWAP = "swap"  # os.replace the verified copy over the original, fsync the directory (offline: doctor --fix)


def repair_state_db(
    path: str | os.PathLike[str], backup: bool = True, *, apply: ApplyMode = ApplyMode.REPLAY
) -> RepairResult:
    """Back up *path* (with -wal/-shm), repair a private copy, and only a verified repair reaches *path*.

    Ladder (on the copy): rebuild the FTS index from `messages`; remove duplicate schema rows
    (and rebuild FTS again); REINDEX; drop everything derived from the rows (FTS, its
    triggers, the indexes), VACUUM and recreate it. Session and message rows are only read;
    the rewriting step (VACUUM) is refused when they cannot all be read. The copy must then
    pass the health check's structural part with the same row counts; otherwise the outcome
    is FAILED and *path* (with its -wal/-shm) is left byte for byte as it was. A verified
    repair is applied by *apply*: SWAP replaces the file atomically (offline use only: a
    process holding the old file would keep writing to it), REPLAY runs the same steps on
    the original through SQLite (what SessionDB's heal uses) and checks it again.
    Offline operation: raises DatabaseInUseError if this process has *path* open.
    """
    db = Path(path)
    if not db.exists():
        raise DatabaseNotFoundError(f"no such file: {db}")
    if is_open_in_process(db):
        raise DatabaseInUseError(f"{db} is open in this process; close it before repairing")
    as_found = Fingerprint.of(db)
    copies = tuple(str(p) for p in backup_files(db)) if backup else ()
    if copies:
        logger.warning("hermes_state: backed up %s to %s before repair", db, copies[0])

    def result(outcome: RepairOutcome, steps: list[RepairStep], before: HealthReport | None,
               after: HealthReport | None, rows_before: RowCounts | None, rows_after: RowCounts | None,
               error: str | None) -> RepairResult:
        return RepairResult(str(db), outcome, copies, tuple(steps), before, after, rows_before, rows_after, error)

    with working_copy(db) as work:
        original = str(db)  # what every message names: the copy's directory is removed on the way out
        try:
            before = check_health(work, label=original)
        except NotADatabaseError as exc:
            return result(RepairOutcome.FAILED, [], None, None, None, None, str(exc))
        rows_before = _row_counts(work)
        if before.structurally_ok:
            return result(RepairOutcome.HEALTHY, [], before, before, rows_before, rows_before, None)
        steps, after = _climb(work, before, label=original)
        rows_after = _row_counts(work)
        problem = _problem(after, rows_before, rows_after)
        if problem is not None:
            return result(RepairOutcome.FAILED, steps, before, after, rows_before, rows_after, problem)
        if apply is ApplyMode.SWAP:
            try:
                swap_in(work, db, expected=as_found)
            except (RepairError, OSError) as exc:
                return result(RepairOutcome.FAILED, steps, before, after, rows_before, rows_after, str(exc))
            after = check_health(db)
            return result(RepairOutcome.REPAIRED, steps, before, after, rows_before, _row_counts(db), None)
    replayed = [_run_step(db, s.name, _ACTIONS[s.name]) for s in steps]
    after = check_health(db)
    rows_after = _row_counts(db)
    problem = _problem(after, rows_before, rows_after)
    if problem is not None:
        return result(RepairOutcome.FAILED, replayed, before, after, rows_before, rows_after,
                      f"the repair worked on a copy but not on the original: {problem}")
    return result(RepairOutcome.REPAIRED, replayed, before, after, rows_before, rows_after, None)


def _climb(db: Path, before: HealthReport, *, label: str) -> tuple[list[RepairStep], HealthReport]:
    """Run the ladder on *db* (a working copy of *label*) until it is structurally sound; the steps taken and
    the last check."""
    steps: list[RepairStep] = []
    after = before
    for name, action in _LADDER:
        if name == "drop_derived_and_vacuum" and not _core_rows_readable(db):
            steps.append(RepairStep(name, False, "session/message rows are unreadable; refusing to rewrite the file"))
            break
        steps.append(_run_step(db, name, action, label=label))
        after = check_health(db, label=label)
        if after.structurally_ok:
            break
    return steps, after


def _problem(after: HealthReport, rows_before: RowCounts | None, rows_after: RowCounts | None) -> str | None:
    """Why a repaired database must not be used (None when it may)."""
    if rows_before is not None and (rows_after is None or rows_after != rows_before):
        return f"row counts changed during repair: {rows_before} -> {rows_after}"
    if after.structurally_ok:
        return None
    problems = "; ".join(list(after.integrity[:3]) + list(after.errors[:3]) + [after.fts_error or ""]).strip("; ")
    return f"still unhealthy: {problems}"


def _run_step(db: Path, name: str, action: Callable[[sqlite3.Connection], None], *,
              label: str | None = None) -> RepairStep:
    try:
        conn = open_existing(db, timeout_s=5.0, label=label)
    except StateError as exc:
        return RepairStep(name, False, str(exc))
    try:
        action(conn)
        return RepairStep(name, True, None)
    except sqlite3.Error as exc:
        logger.warning("hermes_state: repair step %s failed on %s: %s", name, label or db, exc)
        return RepairStep(name, False, str(exc))
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _rebuild_fts(conn: sqlite3.Connection) -> None:
    if not has_fts_table(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
    conn.execute("COMMIT")


def _dedupe_schema(conn: sqlite3.Connection) -> None:
    # writable_schema lets the connection load a schema with duplicate rows; only
    # sqlite_master is edited (the later copies of a duplicated object are removed).
    conn.execute("PRAGMA writable_schema=ON")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "DELETE FROM sqlite_master WHERE rowid NOT IN "
            "(SELECT min(rowid) FROM sqlite_master GROUP BY type, name)"
        )
        conn.execute("COMMIT")
    finally:
        conn.execute("PRAGMA writable_schema=OFF")


def _reindex(conn: sqlite3.Connection) -> None:
    conn.execute("REINDEX")


def _drop_derived_and_vacuum(conn: sqlite3.Connection) -> None:
    """Drop what is derived from the rows (FTS index, triggers, indexes), VACUUM, recreate it."""
    derived = [(t, "trigger") for t in FTS_TRIGGERS] + [(i, "index") for i in INDEXES]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name, kind in derived:
            conn.execute(f"DROP {kind.upper()} IF EXISTS {name}")
        conn.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
        conn.execute("COMMIT")
    except sqlite3.DatabaseError:
        # Too damaged to drop normally (dropping walks the damaged pages to free them):
        # unlink them from the schema; VACUUM below leaves their orphaned pages behind.
        conn.execute("ROLLBACK")
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute("BEGIN IMMEDIATE")
        for name, kind in derived:
            conn.execute("DELETE FROM sqlite_master WHERE type=? AND name=?", (kind, name))
        conn.execute(
            "DELETE FROM sqlite_master WHERE name = ? OR name LIKE ? ESCAPE '\\'",
            (FTS_TABLE, FTS_TABLE.replace("_", "\\_") + "\\_%"),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA writable_schema=OFF")
    conn.execute("VACUUM")
    conn.execute("BEGIN IMMEDIATE")
    create_schema(conn, with_fts=fts5_available())
    if has_fts_table(conn):
        conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
    conn.execute("COMMIT")


_LADDER: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("rebuild_fts", _rebuild_fts),
    ("dedupe_schema", _dedupe_schema),
    ("rebuild_fts_after_dedupe", _rebuild_fts),
    ("reindex", _reindex),
    ("drop_derived_and_vacuum", _drop_derived_and_vacuum),
)
_ACTIONS = dict(_LADDER)


def _row_counts(db: Path) -> RowCounts | None:
    """Count session and message rows by scanning their tables (schema errors tolerated)."""
    try:
        conn = open_existing(db)
    except StateError:
        return None
    try:
        conn.execute("PRAGMA writable_schema=ON")
        s = conn.execute("SELECT count(*) FROM sessions NOT INDEXED").fetchone()[0]
        m = conn.execute("SELECT count(*) FROM messages NOT INDEXED").fetchone()[0]
        return RowCounts(int(s), int(m))
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _core_rows_readable(db: Path) -> bool:
    """Whether every session and message row can be read in full (before rewriting the file)."""
    try:
        conn = open_existing(db)
    except StateError:
        return False
    try:
        conn.execute("PRAGMA writable_schema=ON")
        for table in ("sessions", "messages"):
            for _ in conn.execute(f"SELECT * FROM {table} NOT INDEXED"):
                pass
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()
