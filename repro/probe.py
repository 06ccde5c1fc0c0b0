"""Facts about a database after the crash, gathered inside the restarted machine (stdlib only).

Run as ``python3 -m repro.probe DB_PATH [--store-path DIR]``; prints one line
``PROBE {json}``. The host parses it back with :func:`parse_probe_output`.

Order matters and is fixed:

1. the sizes of the database and its sidecars (-wal, -shm, -journal) exactly as found;
2. raw ``sqlite3`` checks, before the store opens the file (the store heals FTS on open
   and would hide damage): integrity_check, foreign_key_check, FTS integrity, the journal
   mode of the file, every message row as (id, session_id, sha256(content)) and every
   session row. Opening the file runs SQLite's own recovery (WAL replay, hot journal
   rollback), as the restarted service would: copy artifacts before probing;
3. the store under test opens the file: can the restarted service start, which pragmas
   are in force on its connection, and what its health check says if it has one.

Every step records its error instead of raising, so a malformed file still yields facts.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import hashlib
import importlib
import json
import os
import pathlib
import re
import sqlite3
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

PROBE_TAG = "PROBE "
PROBE_FORMAT = 1
SIDECARS = ("", "-wal", "-shm", "-journal")
_MAX_MESSAGES = 50  # per check: keep the PROBE line compact when a file is badly damaged
_FETCH = 500
_DOCTOR_METHODS = ("health_check", "doctor", "check_health")


class ProbeError(ValueError):
    """PROBE output that is missing or cannot be parsed (the lab's fault, not the store's)."""


class CheckStatus(str, enum.Enum):
    """How a check ended: passed, found problems, could not run, or does not apply."""

    OK = "ok"
    FAILED = "failed"
    ERROR = "error"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Check:
    """One check's status and what it said (problem list, or the error that stopped it)."""

    status: CheckStatus
    messages: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is CheckStatus.OK

    @property
    def bad(self) -> bool:
        """The check ran into damage: it failed, or raised while reading the file."""
        return self.status in (CheckStatus.FAILED, CheckStatus.ERROR)

    def to_obj(self) -> dict[str, object]:
        return {"status": self.status.value, "messages": list(self.messages)}

    @classmethod
    def from_obj(cls, obj: object) -> Check:
        data = _mapping(obj, "check")
        try:
            status = CheckStatus(str(data.get("status")))
        except ValueError as exc:
            raise ProbeError(f"unknown check status {data.get('status')!r}") from exc
        return cls(status, tuple(str(m) for m in _list(data.get("messages", []), "messages")))


UNAVAILABLE = Check(CheckStatus.UNAVAILABLE)


@dataclass(frozen=True)
class FileInfo:
    """A database file or sidecar as found before anything opened it."""

    name: str
    size: int


@dataclass(frozen=True)
class MessageRow:
    """One message row: its id, session and the sha256 hex of its content."""

    id: int
    session_id: str | None
    sha: str


@dataclass(frozen=True)
class SessionRow:
    """One session row: the counters the verifier compares with the ledger."""

    id: str
    message_count: int | None
    input_tokens: int | None
    output_tokens: int | None
    end_reason: str | None


@dataclass(frozen=True)
class StoreFacts:
    """What the store under test did when the restarted machine opened the file."""

    opened: bool
    error: str | None = None
    attempted: bool = True
    module: str | None = None
    journal_mode: str | None = None
    synchronous: int | None = None
    busy_timeout: int | None = None
    foreign_keys: int | None = None
    doctor: Check = UNAVAILABLE
    healed: str | None = None  # the store repaired the file while opening it (what it said)

    @property
    def import_failed(self) -> bool:
        """The store package itself could not be imported (a lab problem)."""
        return self.error is not None and self.error.startswith(("ModuleNotFoundError", "ImportError"))


NOT_TRIED = StoreFacts(opened=False, attempted=False)


@dataclass(frozen=True)
class ProbeFacts:
    """Everything the probe saw. ``probe_error`` is set when the probe itself broke."""

    db_path: str
    exists: bool
    files: tuple[FileInfo, ...] = ()
    sqlite_version: str = ""
    integrity: Check = UNAVAILABLE
    foreign_keys: Check = UNAVAILABLE
    fk_violations: int | None = None
    fts: Check = UNAVAILABLE
    journal_mode: str | None = None
    messages: tuple[MessageRow, ...] = ()
    messages_error: str | None = None
    sessions: tuple[SessionRow, ...] = ()
    sessions_error: str | None = None
    store: StoreFacts = NOT_TRIED
    probe_error: str | None = None

    def to_obj(self) -> dict[str, object]:
        store = self.store
        return {
            "format": PROBE_FORMAT,
            "db": self.db_path,
            "exists": self.exists,
            "files": [[f.name, f.size] for f in self.files],
            "sqlite": self.sqlite_version,
            "integrity": self.integrity.to_obj(),
            "foreign_keys": self.foreign_keys.to_obj(),
            "fk_violations": self.fk_violations,
            "fts": self.fts.to_obj(),
            "journal_mode": self.journal_mode,
            "messages": [[m.id, m.session_id, m.sha] for m in self.messages],
            "messages_error": self.messages_error,
            "sessions": [
                [s.id, s.message_count, s.input_tokens, s.output_tokens, s.end_reason]
                for s in self.sessions
            ],
            "sessions_error": self.sessions_error,
            "store": {
                "opened": store.opened,
                "attempted": store.attempted,
                "error": store.error,
                "module": store.module,
                "journal_mode": store.journal_mode,
                "synchronous": store.synchronous,
                "busy_timeout": store.busy_timeout,
                "foreign_keys": store.foreign_keys,
                "doctor": store.doctor.to_obj(),
                "healed": store.healed,
            },
            "probe_error": self.probe_error,
        }

    def to_line(self) -> str:
        """The one line the probe prints."""
        return PROBE_TAG + json.dumps(self.to_obj(), separators=(",", ":"))

    @classmethod
    def from_obj(cls, obj: object) -> ProbeFacts:
        data = _mapping(obj, "probe facts")
        if data.get("format") != PROBE_FORMAT:
            raise ProbeError(f"unsupported PROBE format {data.get('format')!r}")
        try:
            store = _mapping(data.get("store", {}), "store")
            messages = tuple(
                MessageRow(int(str(r[0])), _str_or_none(r[1]), str(r[2]))
                for r in (_list(x, "message row") for x in _list(data.get("messages", []), "messages"))
            )
            sessions = tuple(
                SessionRow(str(r[0]), _int_or_none(r[1]), _int_or_none(r[2]), _int_or_none(r[3]),
                           _str_or_none(r[4]))
                for r in (_list(x, "session row") for x in _list(data.get("sessions", []), "sessions"))
            )
            files = tuple(
                FileInfo(str(r[0]), int(str(r[1])))
                for r in (_list(x, "file") for x in _list(data.get("files", []), "files"))
            )
            return cls(
                db_path=str(data.get("db", "")),
                exists=bool(data.get("exists")),
                files=files,
                sqlite_version=str(data.get("sqlite", "")),
                integrity=Check.from_obj(data.get("integrity", UNAVAILABLE.to_obj())),
                foreign_keys=Check.from_obj(data.get("foreign_keys", UNAVAILABLE.to_obj())),
                fk_violations=_int_or_none(data.get("fk_violations")),
                fts=Check.from_obj(data.get("fts", UNAVAILABLE.to_obj())),
                journal_mode=_str_or_none(data.get("journal_mode")),
                messages=messages,
                messages_error=_str_or_none(data.get("messages_error")),
                sessions=sessions,
                sessions_error=_str_or_none(data.get("sessions_error")),
                store=StoreFacts(
                    opened=bool(store.get("opened", False)),
                    attempted=bool(store.get("attempted", False)),
                    error=_str_or_none(store.get("error")),
                    module=_str_or_none(store.get("module")),
                    journal_mode=_str_or_none(store.get("journal_mode")),
                    synchronous=_int_or_none(store.get("synchronous")),
                    busy_timeout=_int_or_none(store.get("busy_timeout")),
                    foreign_keys=_int_or_none(store.get("foreign_keys")),
                    doctor=Check.from_obj(store.get("doctor", UNAVAILABLE.to_obj())),
                    healed=_str_or_none(store.get("healed")),
                ),
                probe_error=_str_or_none(data.get("probe_error")),
            )
        except (IndexError, TypeError, ValueError) as exc:
            if isinstance(exc, ProbeError):
                raise
            raise ProbeError(f"malformed PROBE facts: {exc}") from exc


def parse_probe_output(lines: Iterable[str]) -> ProbeFacts:
    """The facts from the probe's output (the last PROBE line wins); ProbeError if none."""
    payload: str | None = None
    for raw in lines:
        pos = raw.find(PROBE_TAG)
        if pos != -1:
            payload = raw[pos + len(PROBE_TAG):].strip()
    if payload is None:
        raise ProbeError("no PROBE line in the probe's output")
    try:
        obj = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ProbeError(f"PROBE line is not JSON: {exc}") from exc
    return ProbeFacts.from_obj(obj)


def content_sha256(content: object) -> str:
    """sha256 hex of a message's content: UTF-8 of the string, b"" for NULL, bytes as they are."""
    if content is None:
        data = b""
    elif isinstance(content, bytes):
        data = content
    else:
        data = str(content).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def collect(db_path: str | os.PathLike[str], store_path: str | None = None,
            *, open_store: bool = True) -> ProbeFacts:
    """Gather all facts about ``db_path``; never raises for a damaged file."""
    path = pathlib.Path(db_path)
    base = ProbeFacts(db_path=str(path), exists=path.is_file(), sqlite_version=sqlite3.sqlite_version)
    try:
        if not base.exists:
            return base
        if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
            # recovery (WAL replay, hot journal rollback) needs write access: without it
            # every check would fail and look like corruption, so this is the lab's fault
            return ProbeFacts(db_path=str(path), exists=True, files=_files(path),
                              sqlite_version=sqlite3.sqlite_version,
                              probe_error=f"PermissionError: the probe (uid {os.getuid()}) cannot write {path}"
                                          " or its directory")
        raw = _raw_facts(path)
        facts = ProbeFacts(**{**_fields(base), **raw})  # type: ignore[arg-type]
        if open_store:
            facts = _replace_store(facts, _store_facts(path, store_path))
        return facts
    except Exception as exc:  # the probe itself broke: report it, the host calls it a lab error
        return ProbeFacts(db_path=str(path), exists=base.exists, sqlite_version=sqlite3.sqlite_version,
                          probe_error=_err(exc))


# -- raw checks -------------------------------------------------------------------------


def _files(path: pathlib.Path) -> tuple[FileInfo, ...]:
    found = []
    for suffix in SIDECARS:
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            found.append(FileInfo(side.name, side.stat().st_size))  # stat only: no open()
    return tuple(found)


def _raw_facts(path: pathlib.Path) -> dict[str, object]:
    files = _files(path)  # before the first connection: recovery may change the sidecars
    out: dict[str, object] = {"files": files}
    try:
        # mode=rw: never create a database that is not there
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=5.0)
    except sqlite3.Error as exc:
        msg = _err(exc)
        for key in ("integrity", "foreign_keys", "fts"):
            out[key] = Check(CheckStatus.ERROR, (msg,))
        out["messages_error"] = out["sessions_error"] = msg
        return out
    try:
        out["integrity"] = _integrity(conn)
        out["foreign_keys"], out["fk_violations"] = _foreign_keys(conn)
        out["fts"] = _fts(conn)
        out["journal_mode"] = _pragma(conn, "journal_mode")
        out["messages"], out["messages_error"] = _messages(conn)
        out["sessions"], out["sessions_error"] = _sessions(conn)
    finally:
        conn.close()
    return out


def _integrity(conn: sqlite3.Connection) -> Check:
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        return Check(CheckStatus.ERROR, (_err(exc),))
    if rows == ["ok"]:
        return Check(CheckStatus.OK)
    return Check(CheckStatus.FAILED, _cap(rows))


def _foreign_keys(conn: sqlite3.Connection) -> tuple[Check, int | None]:
    try:
        rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.Error as exc:
        return Check(CheckStatus.ERROR, (_err(exc),)), None
    if not rows:
        return Check(CheckStatus.OK), 0
    text = [f"{r[0]} rowid={r[1]} -> {r[2]}" for r in rows]
    return Check(CheckStatus.FAILED, _cap(text)), len(rows)


_FTS_SQL = re.compile(r"\busing\s+(fts[345])\b", re.IGNORECASE)


def _fts(conn: sqlite3.Connection) -> Check:
    """Every FTS table's own integrity check, whatever it is named; unavailable if none."""
    try:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='table' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
        ).fetchall()
    except sqlite3.Error as exc:
        return Check(CheckStatus.ERROR, (_err(exc),))
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
            results.append(f"{name}: {_err(exc)}")
    if checked == 0:
        return Check(CheckStatus.UNAVAILABLE, ("no FTS table",))
    return Check(CheckStatus.FAILED if failed else CheckStatus.OK, tuple(results))


def _pragma(conn: sqlite3.Connection, name: str) -> str | None:
    try:
        row = conn.execute(f"PRAGMA {name}").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _scan(conn: sqlite3.Connection, sql: str, convert: Callable[[sqlite3.Row], object]) -> tuple[list[object], str | None]:
    rows: list[object] = []
    try:
        cur = conn.execute(sql)
        while True:
            batch = cur.fetchmany(_FETCH)
            if not batch:
                return rows, None
            rows.extend(convert(r) for r in batch)
    except sqlite3.Error as exc:
        return rows, _err(exc)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in cur.description]


def _salvage(conn: sqlite3.Connection, table: str, key: str, select: str,
             convert: Callable[[sqlite3.Row], object], ident: Callable[[object], object]) -> tuple[tuple[object, ...], str | None]:
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
        return (), _err(exc)
    missing = [c for c in ("id", "session_id", "content") if c not in cols]
    if missing:
        return (), f"messages has no column {', '.join(missing)}"

    def convert(r: sqlite3.Row) -> object:
        return MessageRow(int(r[0]), None if r[1] is None else str(r[1]), content_sha256(r[2]))

    rows, error = _salvage(conn, "messages", "id", "id, session_id, content", convert,
                           lambda m: m.id)  # type: ignore[attr-defined]
    return tuple(r for r in rows if isinstance(r, MessageRow)), error


_SESSION_COLUMNS = ("id", "message_count", "input_tokens", "output_tokens", "end_reason")


def _sessions(conn: sqlite3.Connection) -> tuple[tuple[SessionRow, ...], str | None]:
    try:
        cols = _columns(conn, "sessions")
    except sqlite3.Error as exc:
        return (), _err(exc)
    if "id" not in cols:
        return (), "sessions has no column id"
    # a store version without one of the counters still reports the others (as NULL)
    select = ", ".join(c if c in cols else "NULL" for c in _SESSION_COLUMNS)

    def convert(r: sqlite3.Row) -> object:
        return SessionRow(str(r[0]), _int_or_none(r[1]), _int_or_none(r[2]), _int_or_none(r[3]),
                          _str_or_none(r[4]))

    rows, error = _salvage(conn, "sessions", "id", select, convert,
                           lambda s: s.id)  # type: ignore[attr-defined]
    return tuple(r for r in rows if isinstance(r, SessionRow)), error


# -- the store under test ---------------------------------------------------------------


@contextlib.contextmanager
def _store_module(store_path: str | None) -> Iterator[object]:
    """Import ``hermes_state`` with ``store_path`` first on sys.path; restore the import state after."""
    saved_path = list(sys.path)
    saved_mods = {k: v for k, v in sys.modules.items() if k == "hermes_state" or k.startswith("hermes_state.")}
    if store_path is not None:
        sys.path.insert(0, str(store_path))
        for name in saved_mods:
            del sys.modules[name]
    try:
        yield importlib.import_module("hermes_state")
    finally:
        if store_path is not None:
            sys.path[:] = saved_path
            for name in [k for k in sys.modules if k == "hermes_state" or k.startswith("hermes_state.")]:
                del sys.modules[name]
            sys.modules.update(saved_mods)


def _store_facts(path: pathlib.Path, store_path: str | None) -> StoreFacts:
    try:
        with _store_module(store_path) as module:
            module_file = getattr(module, "__file__", None)
            if store_path is not None and not _under(module_file, store_path):
                return StoreFacts(opened=False, module=module_file,
                                  error=f"ImportError: hermes_state came from {module_file}, not from {store_path}")
            try:
                db = module.SessionDB(path)  # type: ignore[attr-defined]
            except Exception as exc:
                return StoreFacts(opened=False, error=_err(exc), module=module_file)
            try:
                conn = getattr(db, "_conn", None)
                pragmas = {name: _store_pragma(conn, name)
                           for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")}
                doctor = _doctor(module, db, path)
                healed = getattr(db, "healed", None)
            finally:
                with contextlib.suppress(Exception):
                    db.close()
            return StoreFacts(
                opened=True,
                module=module_file,
                journal_mode=None if pragmas["journal_mode"] is None else str(pragmas["journal_mode"]),
                synchronous=_int_or_none(pragmas["synchronous"]),
                busy_timeout=_int_or_none(pragmas["busy_timeout"]),
                foreign_keys=_int_or_none(pragmas["foreign_keys"]),
                doctor=doctor,
                healed=None if healed is None else _describe_heal(healed),
            )
    except Exception as exc:  # ImportError and friends: the store could not even be loaded
        return StoreFacts(opened=False, error=_err(exc))


def _under(module_file: str | None, directory: str) -> bool:
    if module_file is None:
        return False
    return pathlib.Path(module_file).resolve().is_relative_to(pathlib.Path(directory).resolve())


def _describe_heal(result: object) -> str:
    outcome = getattr(result, "outcome", None)
    text = str(getattr(outcome, "value", outcome) if outcome is not None else result)
    return text[:200]


def _store_pragma(conn: object, name: str) -> object:
    if conn is None:
        return None
    try:
        row = conn.execute(f"PRAGMA {name}").fetchone()  # type: ignore[attr-defined]
    except Exception:
        return None
    return None if row is None else row[0]


def _doctor(module: object, db: object, path: pathlib.Path) -> Check:
    """The store's own health check if it has one (a method on the db, or a package-level
    function taking the path); "unavailable" for a store without one, like upstream's."""
    for name in _DOCTOR_METHODS:
        method = getattr(db, name, None)
        if callable(method):
            return _run_doctor(lambda: method())
    for name in _DOCTOR_METHODS:
        func = getattr(module, name, None)
        if callable(func):
            return _run_doctor(lambda: func(path))
    return Check(CheckStatus.UNAVAILABLE, ("store has no health check",))


def _run_doctor(call: Callable[[], object]) -> Check:
    try:
        result = call()
    except Exception as exc:
        return Check(CheckStatus.ERROR, (_err(exc),))
    return interpret_health(result)


def interpret_health(result: object) -> Check:
    """Map a health check's return value onto a Check, whatever shape the store returns.

    Understood: a bool; an object or mapping with ``ok``/``healthy`` and optional
    ``problems``/``issues``/``messages``/``errors``; a string ("ok" or a problem); a list of problems.
    """
    if isinstance(result, bool):
        return Check(CheckStatus.OK if result else CheckStatus.FAILED)
    if isinstance(result, str):
        return Check(CheckStatus.OK) if result.strip().lower() == "ok" else Check(CheckStatus.FAILED, (result,))
    if isinstance(result, (list, tuple)):
        return Check(CheckStatus.FAILED, _cap([str(x) for x in result])) if result else Check(CheckStatus.OK)

    def get(name: str) -> object:
        if isinstance(result, dict):
            return result.get(name)
        return getattr(result, name, None)

    ok = get("ok")
    if ok is None:
        ok = get("healthy")
    details: list[str] = []
    for name in ("problems", "issues", "messages", "errors"):
        value = get(name)
        if isinstance(value, (list, tuple)):
            details.extend(str(v) for v in value)
        elif isinstance(value, str) and value:
            details.append(value)
    if ok is False:
        details.extend(_health_findings(get))
    if isinstance(ok, bool):
        return Check(CheckStatus.OK if ok else CheckStatus.FAILED, _cap(details))
    return Check(CheckStatus.ERROR, (f"unrecognised health check result: {result!r}"[:200],))


def _health_findings(get: Callable[[str], object]) -> list[str]:
    """Named findings of a report shaped like hermes_state's HealthReport (absent fields are skipped)."""
    out: list[str] = []
    integrity = get("integrity")
    if isinstance(integrity, (list, tuple)) and list(integrity) != ["ok"]:
        out.append("integrity: " + "; ".join(str(x) for x in integrity[:3]))
    for name in ("foreign_key_violations", "counter_mismatches"):
        value = get(name)
        if isinstance(value, int) and value:
            out.append(f"{name}: {value}")
    fts = get("fts")
    fts_value = getattr(fts, "value", fts)
    if isinstance(fts_value, str) and fts_value not in ("ok", "missing"):
        out.append(f"fts: {fts_value} {get('fts_error') or ''}".strip())
    probe_error = get("write_probe_error")
    if probe_error:
        out.append(f"write probe: {probe_error}")
    return out


# -- helpers ----------------------------------------------------------------------------


def _fields(facts: ProbeFacts) -> dict[str, object]:
    return {name: getattr(facts, name) for name in facts.__dataclass_fields__}


def _replace_store(facts: ProbeFacts, store: StoreFacts) -> ProbeFacts:
    return ProbeFacts(**{**_fields(facts), "store": store})  # type: ignore[arg-type]


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _cap(items: Sequence[str]) -> tuple[str, ...]:
    if len(items) <= _MAX_MESSAGES:
        return tuple(items)
    return tuple(items[:_MAX_MESSAGES]) + (f"... {len(items) - _MAX_MESSAGES} more",)


def _int_or_none(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _mapping(obj: object, what: str) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise ProbeError(f"{what} is not a JSON object")
    return obj


def _list(obj: object, what: str) -> list[object]:
    if not isinstance(obj, list):
        raise ProbeError(f"{what} is not a JSON array")
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m repro.probe", description=__doc__.splitlines()[0])
    parser.add_argument("db_path")
    parser.add_argument("--store-path", default=None, help="directory prepended to sys.path for hermes_state")
    parser.add_argument("--no-store", action="store_true", help="raw checks only; do not open the store")
    args = parser.parse_args(argv)
    facts = collect(args.db_path, args.store_path, open_store=not args.no_store)
    sys.stdout.write(facts.to_line() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
