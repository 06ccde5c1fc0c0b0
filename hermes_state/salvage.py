"""Salvage: copy the session and message rows that can still be read into a new database.

For a database the repair ladder cannot fix (pages lost or overwritten), what is left is
to read what can be read. The original is never opened: the work is done on a private
copy (see workcopy). Two readers, best first:

- SQLite's `.recover` in the `sqlite3` command-line shell, when one is on PATH: it walks
  every page, also those no longer reachable from the b-tree. It needs the sqlite_dbpage
  virtual table; a shell built without it fails ("SQL logic error"), and then
- the store's own reader: each table scanned in rowid order, and where a scan hits a
  damaged page, resumed at the next rowid that can be read (errors skipped, counted).

The rows are inserted into a fresh database with the store's schema (FTS rebuilt by its
triggers). Messages whose session row was lost get a stub session (source 'salvaged'), and
each session's message_count is set to the messages salvaged for it, so the new database
passes the health check. The new file appears only once complete (written beside it, then
renamed).
"""

from __future__ import annotations

import enum
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from .errors import OutputExistsError, SalvageError
from .health import HealthReport, check_health
from .schema import create_schema, fts5_available
from .workcopy import as_original, fsync_dir, fsync_file, working_copy

TABLES = ("sessions", "messages")
STUB_SOURCE = "salvaged"
RECOVER_TIMEOUT_S = 600.0
# Give up on a table after this many rowids in a row that cannot be read (only when its
# largest rowid is unreadable too; otherwise the scan stops there).
MAX_UNREADABLE_RUN = 100_000


class SalvageMethod(enum.Enum):
    RECOVER = "sqlite3 .recover"
    ROWS = "row-by-row"


@dataclass(frozen=True)
class TableSalvage:
    """Rows of one table: read from the damaged copy, and written into the new database."""

    table: str
    read: int
    written: int
    read_errors: int  # damaged stretches the scan stopped at (each resumed further on, if it could be)


@dataclass(frozen=True)
class SalvageResult:
    source: str
    out: str
    method: SalvageMethod
    recover_error: str | None  # why .recover was not used (no shell, or it failed), None when it was
    tables: tuple[TableSalvage, ...]
    stub_sessions: int
    health: HealthReport

    def table(self, name: str) -> TableSalvage:
        return next(t for t in self.tables if t.table == name)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "out": self.out,
            "method": self.method.value,
            "recover_error": self.recover_error,
            "tables": {t.table: {"read": t.read, "written": t.written, "read_errors": t.read_errors}
                       for t in self.tables},
            "stub_sessions": self.stub_sessions,
            "healthy": self.health.healthy,
        }


def default_out(db: Path, *, now: datetime | None = None) -> Path:
    """`state.db` -> `state.salvaged-<UTC timestamp>.db`, beside it."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    return db.with_name(f"{db.stem}.salvaged-{stamp}{db.suffix}")


def salvage_state_db(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, shell: str | None = "sqlite3"
) -> SalvageResult:
    """Write the readable rows of *path* into the new database *out* (default: `default_out`).

    *shell* is the sqlite3 shell to try `.recover` with (looked up on PATH; None: do not try).
    Raises OutputExistsError when *out* exists (nothing is overwritten), SalvageError when
    nothing could be written; *path* and its sidecars are never opened or changed.
    """
    db = Path(path)
    target = Path(out) if out is not None else default_out(db)
    if target.exists() or target.resolve() == db.resolve():
        raise OutputExistsError(f"{target} exists; salvage writes a new database and never overwrites one")
    with working_copy(db) as work:
        recovered, recover_error = _try_recover(work, shell)
        recover_error = as_original(recover_error, work, db) if recover_error else recover_error
        method = SalvageMethod.RECOVER if recovered is not None else SalvageMethod.ROWS
        source = recovered if recovered is not None else work
        partial = Path(tempfile.mkstemp(prefix=f".{target.name}.partial-", dir=target.parent)[1])
        try:
            tables, stubs = _copy_rows(source, partial)
            os.chmod(partial, os.stat(db).st_mode & 0o777)  # mkstemp made it 0600
            fsync_file(partial)
            if target.exists():
                raise OutputExistsError(f"{target} appeared while salvaging; not overwritten")
            os.replace(partial, target)
            fsync_dir(target.parent)
        finally:
            partial.unlink(missing_ok=True)
    return SalvageResult(str(db), str(target), method, recover_error, tables, stubs, check_health(target))


# -- .recover through the shell --------------------------------------------------------------


def _try_recover(work: Path, shell: str | None) -> tuple[Path | None, str | None]:
    """Run `.recover` on the copy and load its SQL into a database beside it; (that db, None) or (None, why not)."""
    exe = shutil.which(shell) if shell else None
    if exe is None:
        return None, "no sqlite3 shell on PATH" if shell else "not tried"
    try:
        proc = subprocess.run([exe, str(work), ".recover"], capture_output=True, timeout=RECOVER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{exe}: {exc}"
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or "error" in stderr.lower():
        last = stderr.splitlines()[-1] if stderr else f"exit {proc.returncode}"
        return None, f"{exe} .recover failed: {last}"
    recovered = work.with_name("recovered.db")
    conn = sqlite3.connect(recovered, isolation_level=None)
    try:
        conn.executescript(proc.stdout.decode("utf-8", "replace"))
    except sqlite3.Error as exc:
        return None, f"loading the .recover output failed: {exc}"
    finally:
        conn.close()
    return recovered, None


# -- reading what can be read ----------------------------------------------------------------


def _open_tolerant(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True, isolation_level=None)
    conn.execute("PRAGMA writable_schema=ON")  # load what can be loaded of a damaged schema
    return conn


def read_rows(conn: sqlite3.Connection, table: str) -> tuple[list[dict[str, object]], int]:
    """Every row of *table* that can be read, in rowid order, and the number of read errors.

    A scan that stops at a damaged page is resumed at the next rowid; where that seek fails
    too, at the rowid after it, and so on, up to the table's largest rowid (or, when that is
    unreadable too, MAX_UNREADABLE_RUN failed seeks in a row).
    """
    rows: list[dict[str, object]] = []
    errors = 0
    try:
        last = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
        top: int | None = int(last) if last is not None else None
    except sqlite3.Error:
        top = None
    lo = -(2**63)
    unreadable_run = 0
    while True:
        progressed = False
        try:
            cur = conn.execute(f"SELECT rowid, * FROM {table} WHERE rowid >= ? ORDER BY rowid", (lo,))
            names = [d[0] for d in cur.description][1:]
            for row in cur:
                rowid = int(row[0])
                if rowid < lo:  # out of order: a zeroed or overwritten page decoded as cells
                    continue
                rows.append(dict(zip(names, row[1:])))
                lo = rowid + 1
                progressed = True
            return rows, errors
        except sqlite3.Error:
            if unreadable_run == 0:
                errors += 1  # one more damaged stretch (failed seeks inside it are not counted)
        if progressed:
            unreadable_run = 0
            continue  # resume right after the last row read
        lo = max(lo + 1, 1)  # the store's rowids start at 1
        unreadable_run += 1
        if (top is not None and lo > top) or unreadable_run > MAX_UNREADABLE_RUN:
            return rows, errors


# -- writing the new database ----------------------------------------------------------------


def _copy_rows(source: Path, dest: Path) -> tuple[tuple[TableSalvage, ...], int]:
    try:
        src = _open_tolerant(source)
    except sqlite3.Error as exc:
        raise SalvageError(f"cannot open the copy of the database: {exc}") from exc
    try:
        read = {}
        for table in TABLES:
            try:
                read[table] = read_rows(src, table)
            except sqlite3.Error:  # the table is not even in the (readable) schema
                read[table] = ([], 1)
    finally:
        src.close()
    out = sqlite3.connect(dest, isolation_level=None)
    try:
        out.execute("PRAGMA foreign_keys=ON")
        out.execute("BEGIN IMMEDIATE")
        create_schema(out, with_fts=fts5_available())
        written = {"sessions": _insert(out, "sessions", read["sessions"][0])}
        stubs = _stub_sessions(out, read["messages"][0])
        written["messages"] = _insert(out, "messages", read["messages"][0])
        out.execute("UPDATE sessions SET message_count = "
                    "(SELECT count(*) FROM messages m WHERE m.session_id = sessions.id)")
        out.execute("COMMIT")
    finally:
        out.close()
    tables = tuple(TableSalvage(t, len(read[t][0]), written[t], read[t][1]) for t in TABLES)
    return tables, stubs


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


def _insert(conn: sqlite3.Connection, table: str, rows: list[dict[str, object]]) -> int:
    """Insert each row (columns the new schema knows); a row that violates a constraint is skipped."""
    known = set(_columns(conn, table))
    written = 0
    for row in rows:
        cols = [c for c in row if c in known]
        sql = f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        try:
            written += conn.execute(sql, [row[c] for c in cols]).rowcount
        except sqlite3.Error:
            continue
    return written


def _stub_sessions(conn: sqlite3.Connection, messages: list[dict[str, object]]) -> int:
    """A 'salvaged' session row for every session id that messages refer to but no row was read for."""
    first_seen: dict[str, float] = {}
    for m in messages:
        sid, ts = m.get("session_id"), m.get("timestamp")
        if isinstance(sid, str) and sid:
            stamp = float(ts) if isinstance(ts, (int, float)) else 0.0
            first_seen[sid] = min(stamp, first_seen.get(sid, stamp))
    made = 0
    for sid, started in _iter_missing(conn, first_seen):
        made += conn.execute("INSERT OR IGNORE INTO sessions (id, source, started_at) VALUES (?, ?, ?)",
                             (sid, STUB_SOURCE, started)).rowcount
    return made


def _iter_missing(conn: sqlite3.Connection, wanted: dict[str, float]) -> Iterator[tuple[str, float]]:
    for sid, started in sorted(wanted.items()):
        if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (sid,)).fetchone() is None:
            yield sid, started
