"""The probe: facts about a database after the crash, gathered inside the restarted machine (stdlib only).

Run as ``python3 -m repro.verify.probe DB_PATH [--store-mount DIR]``; prints one line
``PROBE {json}`` (repro.protocol). The host parses it back with
:func:`repro.verify.facts.parse_probe_output`.

Order matters and is fixed:

1. the sizes of the database and its sidecars (-wal, -shm, -journal) exactly as found;
2. raw ``sqlite3`` checks, before the store opens the file (the store heals FTS on open
   and would hide damage): integrity_check, foreign_key_check, FTS integrity, the journal
   mode of the file, every message row as (id, session_id, sha256(content)) and every
   session row. Opening the file runs SQLite's own recovery (WAL replay, hot journal
   rollback), as the restarted service would: copy artifacts before probing;
3. the store under test opens the file (repro.verify.sandbox): can the restarted service
   start, which pragmas are in force on its connection, and what its health check says.

Every step records its error instead of raising, so a malformed file still yields facts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pathlib
import re
import sqlite3
from typing import Any, Callable, Sequence, TypeVar

from repro.channel import close_channel, open_channel
from repro.channel import emit as write_record
from repro.protocol import Tag
from repro.verify.baseline import NO_ROW, Baseline, content_sha256, session_rows, states
from repro.verify.facts import (
    ChangedSession,
    Check,
    CheckStatus,
    PROBE_SOURCE,
    FileInfo,
    MessageRow,
    Preexisting,
    ProbeFacts,
    SessionRow,
    capped,
    describe_error,
    int_or_none,
)
from repro.verify.sandbox import store_facts

SIDECARS = ("", "-wal", "-shm", "-journal")
_FETCH = 500
_R = TypeVar("_R")


def collect(db_path: str | os.PathLike[str], store_mount: str | None = None,
            *, open_store: bool = True, baseline: Baseline | None = None) -> ProbeFacts:
    """Gather all facts about ``db_path``; never raises for a damaged file."""
    path = pathlib.Path(db_path)
    base = ProbeFacts(db_path=str(path), exists=path.is_file(), sqlite_version=sqlite3.sqlite_version,
                      sqlite_source_id=_source_id())
    try:
        if not base.exists:
            return base
        if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
            # recovery (WAL replay, hot journal rollback) needs write access: without it
            # every check would fail and look like corruption, so this is the lab's fault
            return dataclasses.replace(base, files=_files(path), probe_error=(
                f"PermissionError: the probe (uid {os.getuid()}) cannot write {path} or its directory"))
        facts = _raw_facts(base, path, baseline)
        if open_store:
            facts = dataclasses.replace(facts, store=store_facts(path, store_mount))
        return facts
    except Exception as exc:  # the probe itself broke: report it, the host calls it a lab error
        return dataclasses.replace(base, probe_error=describe_error(exc))


def _source_id() -> str:
    """SQLITE_SOURCE_ID of the library this process loaded (a build through LD_LIBRARY_PATH tells
    apart from the system's own even at the same version number)."""
    conn = sqlite3.connect(":memory:")
    try:
        return str(conn.execute("select sqlite_source_id()").fetchone()[0])
    finally:
        conn.close()


# -- raw checks -------------------------------------------------------------------------


def _files(path: pathlib.Path) -> tuple[FileInfo, ...]:
    found = []
    for suffix in SIDECARS:
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            found.append(FileInfo(side.name, side.stat().st_size))  # stat only: no open()
    return tuple(found)


def _raw_facts(base: ProbeFacts, path: pathlib.Path, baseline: Baseline | None = None) -> ProbeFacts:
    files = _files(path)  # before the first connection: recovery may change the sidecars
    try:
        # mode=rw: never create a database that is not there
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=5.0)
    except sqlite3.Error as exc:
        msg = describe_error(exc)
        failed = Check(CheckStatus.ERROR, (msg,))
        return dataclasses.replace(base, files=files, integrity=failed, foreign_keys=failed, fts=failed,
                                   messages_error=msg, sessions_error=msg)
    try:
        integrity = _integrity(conn)
        foreign_keys, fk_violations = _foreign_keys(conn)
        fts = _fts(conn)
        journal_mode = _pragma(conn, "journal_mode")
        messages, messages_error = _messages(conn)
        sessions, sessions_error = _sessions(conn)
        preexisting = None
        if baseline is not None:
            preexisting, messages, sessions = _preexisting(conn, baseline, messages, sessions)
    finally:
        conn.close()
    return dataclasses.replace(base, files=files, integrity=integrity, foreign_keys=foreign_keys,
                               fk_violations=fk_violations, fts=fts, journal_mode=journal_mode,
                               messages=messages, messages_error=messages_error,
                               sessions=sessions, sessions_error=sessions_error, preexisting=preexisting)


def _preexisting(conn: sqlite3.Connection, baseline: Baseline, messages: tuple[MessageRow, ...],
                 sessions: tuple[SessionRow, ...]) -> tuple[Preexisting, tuple[MessageRow, ...], tuple[SessionRow, ...]]:
    """Split the rows of the starting database's sessions off: their digests against the baseline (the
    changed ones with their messages as they are now), and the rest, which the trial may have written."""
    old = baseline.sessions
    try:
        rows = session_rows(conn, baseline.columns, only=old)
    except sqlite3.Error:
        rows = {}  # an unreadable table: every old session reads as changed
    now = states(rows, ((m.id, m.session_id, m.sha) for m in messages), only=old)
    changed = tuple(ChangedSession(sid, now[sid].row if sid in now else NO_ROW)
                    for sid in sorted(old) if sid not in now or now[sid].digest != old[sid])
    changed_ids = {c.id for c in changed}
    facts = Preexisting(checked=len(old), changed=changed,
                        rows=tuple(m for m in messages if m.session_id in changed_ids))
    return (facts, tuple(m for m in messages if str(m.session_id) not in old),
            tuple(s for s in sessions if s.id not in old))


def _integrity(conn: sqlite3.Connection) -> Check:
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        return Check(CheckStatus.ERROR, (describe_error(exc),))
    if rows == ["ok"]:
        return Check(CheckStatus.OK)
    return Check(CheckStatus.FAILED, capped(rows))


def _foreign_keys(conn: sqlite3.Connection) -> tuple[Check, int | None]:
    try:
        rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.Error as exc:
        return Check(CheckStatus.ERROR, (describe_error(exc),)), None
    if not rows:
        return Check(CheckStatus.OK), 0
    text = [f"{r[0]} rowid={r[1]} -> {r[2]}" for r in rows]
    return Check(CheckStatus.FAILED, capped(text)), len(rows)


_FTS_SQL = re.compile(r"\busing\s+(fts[345])\b", re.IGNORECASE)


def _fts(conn: sqlite3.Connection) -> Check:
    """Every FTS table's own integrity check, whatever it is named; unavailable if none."""
    try:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='table' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
        ).fetchall()
    except sqlite3.Error as exc:
        return Check(CheckStatus.ERROR, (describe_error(exc),))
    results: list[str] = []
    failed = False
    checked = 0
    for name, sql in tables:
        match = _FTS_SQL.search(str(sql or ""))
        if match is None:
            continue
        checked += 1
        quoted = '"' + str(name).replace('"', '""') + '"'
        if match.group(1).lower() == "fts5":
            # rank=1 also checks the index against an external content table (3.40 has it)
            stmt = f"INSERT INTO {quoted}({quoted}, rank) VALUES('integrity-check', 1)"
        else:
            stmt = f"INSERT INTO {quoted}({quoted}) VALUES('integrity-check')"
        try:
            conn.execute("BEGIN")
            try:
                conn.execute(stmt)
            finally:
                conn.execute("ROLLBACK")
            results.append(f"{name}: ok")
        except sqlite3.Error as exc:
            failed = True
            results.append(f"{name}: {describe_error(exc)}")
    if checked == 0:
        return Check(CheckStatus.UNAVAILABLE, ("no FTS table",))
    return Check(CheckStatus.FAILED if failed else CheckStatus.OK, tuple(results))


def _pragma(conn: sqlite3.Connection, name: str) -> str | None:
    try:
        row = conn.execute(f"PRAGMA {name}").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _scan(conn: sqlite3.Connection, sql: str, convert: Callable[[Any], _R]) -> tuple[list[_R], str | None]:
    rows: list[_R] = []
    try:
        cur = conn.execute(sql)
        while True:
            batch = cur.fetchmany(_FETCH)
            if not batch:
                return rows, None
            rows.extend(convert(r) for r in batch)
    except sqlite3.Error as exc:
        return rows, describe_error(exc)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in cur.description]


def _salvage(conn: sqlite3.Connection, table: str, key: str, select: str,
             convert: Callable[[Any], _R], ident: Callable[[_R], object]) -> tuple[tuple[_R, ...], str | None]:
    """All rows in key order; on a read error, also scan backwards to rescue rows past the damage."""
    forward, error = _scan(conn, f"SELECT {select} FROM {table} ORDER BY {key}", convert)
    if error is None:
        return tuple(forward), None
    backward, _ = _scan(conn, f"SELECT {select} FROM {table} ORDER BY {key} DESC", convert)
    seen = {ident(r) for r in forward}
    merged = forward + [r for r in reversed(backward) if ident(r) not in seen]
    return tuple(merged), f"partial read ({len(merged)} rows): {error}"


def _messages(conn: sqlite3.Connection) -> tuple[tuple[MessageRow, ...], str | None]:
    try:
        cols = _columns(conn, "messages")
    except sqlite3.Error as exc:
        return (), describe_error(exc)
    missing = [c for c in ("id", "session_id", "content") if c not in cols]
    if missing:
        return (), f"messages has no column {', '.join(missing)}"

    def convert(r: Any) -> MessageRow:
        return MessageRow(int(r[0]), None if r[1] is None else str(r[1]), content_sha256(r[2]))

    return _salvage(conn, "messages", "id", "id, session_id, content", convert, lambda m: m.id)


_SESSION_COLUMNS = ("id", "message_count", "input_tokens", "output_tokens", "end_reason")


def _sessions(conn: sqlite3.Connection) -> tuple[tuple[SessionRow, ...], str | None]:
    try:
        cols = _columns(conn, "sessions")
    except sqlite3.Error as exc:
        return (), describe_error(exc)
    if "id" not in cols:
        return (), "sessions has no column id"
    # a store version without one of the counters still reports the others (as NULL)
    select = ", ".join(c if c in cols else "NULL" for c in _SESSION_COLUMNS)

    def convert(r: Any) -> SessionRow:
        return SessionRow(str(r[0]), int_or_none(r[1]), int_or_none(r[2]), int_or_none(r[3]),
                          None if r[4] is None else str(r[4]))

    return _salvage(conn, "sessions", "id", select, convert, lambda s: s.id)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m repro.verify.probe", description=__doc__.splitlines()[0])
    parser.add_argument("db_path")
    parser.add_argument("--store-mount", default=None, help="directory prepended to sys.path for hermes_state")
    parser.add_argument("--no-store", action="store_true", help="raw checks only; do not open the store")
    parser.add_argument("--baseline", default=None, help="the starting database's digests (repro/verify/baseline.py)")
    args = parser.parse_args(argv)
    open_channel(PROBE_SOURCE)  # before the store is imported: what it prints becomes OUTPUT records
    baseline = Baseline.from_json(pathlib.Path(args.baseline).read_text()) if args.baseline else None
    facts = collect(args.db_path, args.store_mount, open_store=not args.no_store, baseline=baseline)
    write_record(Tag.PROBE, facts.to_obj())
    close_channel()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
