"""SessionDB: the agent's session store over one SQLite writer connection."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from . import queries as q
from .backup import backup_live, register_open, sidecar, unregister_open
from .config import DurabilityConfig
from .errors import (
    CorruptDatabaseError,
    InvalidInputError,
    StoreClosedError,
    is_busy_error,
    is_malformed_db_error,
    translate,
)
from .health import HealthReport, check_connection
from .pragmas import PragmaState, apply_durability, read_pragmas
from .repair import RepairResult, repair_state_db
from .retry import RetryPolicy
from .schema import FTS_TABLE, create_schema, fts5_available, has_fts_table
from .transaction import checkpoint_if_due, run_transaction

logger = logging.getLogger("hermes_state")

T = TypeVar("T")

_healed_paths: set[str] = set()
_healed_lock = threading.Lock()

def _close_quietly(conn: sqlite3.Connection, path: str) -> None:
    try:
        conn.close()
    finally:
        unregister_open(path)


class SessionDB:
    """Sessions and their messages in one SQLite file, written through `self._conn`.

    `config=None` reads the HERMES_STATE_* environment variables (see DurabilityConfig).
    `retry` sets the locked/busy retry policy (seed its rng to replay jitter);
    `connection_factory` is the sqlite3.Connection subclass to connect with (a test seam);
    `heal=False` opens without the once-per-process repair of a malformed database
    (a verifier that must see corruption as it is should pass it).
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        config: DurabilityConfig | None = None,
        retry: RetryPolicy | None = None,
        connection_factory: type[sqlite3.Connection] = sqlite3.Connection,
        heal: bool = True,
    ) -> None:
        self.db_path = Path(db_path)
        self.config = config if config is not None else DurabilityConfig.from_env(os.environ)
        self._retry = retry if retry is not None else RetryPolicy()
        self._factory = connection_factory
        self._heal_enabled = heal
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._writes = 0
        self._closed = False
        self._finalizer: weakref.finalize[[sqlite3.Connection, str], SessionDB] | None = None
        self.healed: RepairResult | None = None
        self.pragmas: PragmaState
        self.fts_enabled = False
        try:
            self._open_retrying()
        except sqlite3.Error as exc:
            if not (heal and is_malformed_db_error(exc)):
                raise translate(exc, f"opening {self.db_path}") from exc
            self._heal(exc)
            try:
                self._open_retrying()
            except sqlite3.Error as again:
                raise translate(again, f"reopening {self.db_path} after repair") from again

    # -- connection lifecycle ---------------------------------------------------------------

    def _open_retrying(self) -> None:
        """Open under the write retry policy: opening writes too (the switch to WAL, the schema),
        and two processes opening one fresh file at once can get SQLITE_BUSY without the busy
        handler being consulted (seen: a gateway and a cron job starting together)."""
        policy = self._retry
        deadline = policy.clock() + policy.budget_s
        while True:
            try:
                self._open()
                return
            except sqlite3.Error as exc:
                if not (is_busy_error(exc) and policy.clock() < deadline):
                    raise
            policy.sleep(policy.jitter())

    def _open(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.db_path),
            timeout=self.config.connect_timeout_s,
            isolation_level=None,
            check_same_thread=False,
            factory=self._factory,
        )
        try:
            conn.row_factory = sqlite3.Row
            pragmas = apply_durability(
                conn, self.config, db_label=str(self.db_path), wal_path=str(sidecar(self.db_path, "-wal"))
            )
            self._init_schema(conn)
        except BaseException:
            conn.close()
            raise
        key = str(self.db_path)
        register_open(key)
        self._conn = conn
        self.pragmas = pragmas
        self.fts_enabled = has_fts_table(conn)
        self._finalizer = weakref.finalize(self, _close_quietly, conn, key)

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            had_fts = has_fts_table(conn)
            create_schema(conn, with_fts=fts5_available())
            if not had_fts and has_fts_table(conn):
                conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _detach(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # closes the connection and unregisters it
            self._finalizer = None

    def _heal(self, cause: BaseException) -> None:
        """Repair a malformed database once per path per process (connection already closed)."""
        key = os.path.realpath(self.db_path)
        with _healed_lock:
            if key in _healed_paths:
                raise CorruptDatabaseError(
                    f"{self.db_path}: malformed again after a repair in this process: {cause}"
                ) from cause
            _healed_paths.add(key)
        logger.warning("hermes_state: %s is malformed (%s); repairing", self.db_path, cause)
        result = repair_state_db(self.db_path, backup=True)
        self.healed = result
        if not result.ok:
            kept = result.backup[0] if result.backup else "none"
            raise CorruptDatabaseError(
                f"{self.db_path}: malformed and not repairable ({result.error}); backup kept: {kept}"
            ) from cause

    def _heal_in_place(self, cause: BaseException) -> None:
        self._detach()
        try:
            self._heal(cause)
            self._open()
        except sqlite3.Error as exc:
            self._closed = True
            raise translate(exc, f"reopening {self.db_path} after repair") from exc
        except BaseException:
            self._closed = True
            raise

    def _live(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError(f"{self.db_path}: the store is closed")
        if os.getpid() != self._pid:
            raise StoreClosedError(f"{self.db_path}: a SessionDB cannot be used across fork(); open a new one")
        return self._conn

    def close(self) -> None:
        """Close the connection (idempotent). The last close checkpoints the WAL."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._pid:
                self._detach()

    def __enter__(self) -> SessionDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the write and read helpers -----------------------------------------------------------

    def _execute_write(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run *fn* in one BEGIN IMMEDIATE transaction; roll back on any error.

        Locked/busy errors are retried after a jittered pause until the retry budget is
        spent; a malformed database is repaired once per process and the write retried.
        """
        policy = self._retry
        deadline = policy.clock() + policy.budget_s
        healed = False
        while True:
            with self._lock:
                conn = self._live()
                try:
                    result = run_transaction(conn, fn)
                except sqlite3.Error as exc:
                    if is_busy_error(exc) and policy.clock() < deadline:
                        pass  # sleep outside the lock, then retry
                    elif is_malformed_db_error(exc) and self._heal_enabled and not healed:
                        self._heal_in_place(exc)
                        healed = True
                        continue
                    else:
                        raise translate(exc, what) from exc
                else:
                    self._after_commit(conn)
                    return result
            policy.sleep(policy.jitter())

    def _after_commit(self, conn: sqlite3.Connection) -> None:
        self._writes += 1
        checkpoint_if_due(conn, self.config, self.pragmas.journal_mode, self._writes)

    def _read(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        healed = False
        while True:
            with self._lock:
                conn = self._live()
                try:
                    return fn(conn)
                except sqlite3.Error as exc:
                    if is_malformed_db_error(exc) and self._heal_enabled and not healed:
                        self._heal_in_place(exc)
                        healed = True
                        continue
                    raise translate(exc, what) from exc

    # -- sessions -----------------------------------------------------------------------------

    def create_session(
        self,
        session_id: str,
        source: str,
        model: str | None = None,
        model_config: dict[str, object] | None = None,
        system_prompt: str | None = None,
        user_id: str | None = None,
        parent_session_id: str | None = None,
        title: str | None = None,
    ) -> str:
        """Create a session, or fill the missing fields of an existing one (never overwrites)."""
        q.require_text(session_id, "session_id")
        q.require_text(source, "source")
        config_json = json.dumps(model_config) if model_config is not None else None
        params = (session_id, source, user_id, model, config_json, system_prompt, parent_session_id, title)
        self._execute_write("create_session", lambda c: q.upsert_session(c, params))
        return session_id

    def ensure_session(self, session_id: str, source: str = "unknown", model: str | None = None) -> str:
        """Create the session if it does not exist; an existing one is left untouched."""
        q.require_text(session_id, "session_id")
        q.require_text(source, "source")
        self._execute_write("ensure_session", lambda c: q.insert_session_if_missing(c, session_id, source, model))
        return session_id

    def end_session(self, session_id: str, end_reason: str) -> None:
        """Mark a session ended; the first end reason wins (later calls are no-ops)."""
        self._execute_write("end_session", lambda c: q.mark_session_ended(c, session_id, end_reason))

    def update_token_counts(
        self,
        session_id: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        model: str | None = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        api_call_count: int = 0,
        absolute: bool = False,
    ) -> None:
        """Add the given counts to the session's counters (as upstream; `absolute=True` sets them).

        Raises UnknownSessionError when the session does not exist, so an acknowledged
        increment is always an applied one.
        """
        values = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
                  api_call_count)
        q.check_token_values(values)
        sql = q.token_update_sql(absolute)
        params = (*values, model, session_id)
        self._execute_write("update_token_counts", lambda c: q.apply_token_update(c, sql, params, session_id))

    def get_session(self, session_id: str) -> dict[str, object] | None:
        return self._read("get_session", lambda c: q.select_session(c, session_id))

    def session_count(self, source: str | None = None) -> int:
        return self._read("session_count", lambda c: q.count_sessions(c, source))

    # -- messages -----------------------------------------------------------------------------

    def append_message(
        self,
        session_id: str,
        role: str,
        content: str | None = None,
        tool_name: str | None = None,
        tool_calls: object = None,
        tool_call_id: str | None = None,
        token_count: int | None = None,
        finish_reason: str | None = None,
    ) -> int:
        """Store one message (content verbatim) and bump the session's counters, in one transaction.

        Returns the message id. `tool_calls` may be a JSON string or a JSON-serialisable value.
        """
        if content is not None and not isinstance(content, str):
            raise InvalidInputError(f"content must be a str or None, not {type(content).__name__}")
        q.require_text(role, "role")
        calls_json, n_calls = q.encode_tool_calls(tool_calls)
        params = (session_id, role, content, tool_call_id, calls_json, tool_name, time.time(), token_count,
                  finish_reason)
        return self._execute_write("append_message", lambda c: q.insert_message(c, params, n_calls, session_id))

    def get_messages(self, session_id: str) -> list[dict[str, object]]:
        """The session's messages in insertion order, `tool_calls` decoded from JSON."""
        return self._read("get_messages", lambda c: q.select_messages(c, session_id))

    def message_count(self, session_id: str | None = None) -> int:
        return self._read("message_count", lambda c: q.count_messages(c, session_id))

    def search_messages(self, query: str, limit: int = 20, session_id: str | None = None) -> list[dict[str, object]]:
        """Messages matching every word of *query* (FTS5, or LIKE where FTS5 is missing)."""
        found = q.search_sql(query, fts=self.fts_enabled, limit=limit, session_id=session_id)
        if found is None:
            return []
        sql, params = found
        rows = self._read("search_messages", lambda c: c.execute(sql, params).fetchall())
        return [dict(r) for r in rows]

    # -- operations ----------------------------------------------------------------------------

    def pragmas_in_force(self) -> PragmaState:
        """Read the pragmas in force on the writer connection now."""
        return self._read("pragmas_in_force", read_pragmas)

    def check_health(self) -> HealthReport:
        """Run the health check on the writer connection (the write probe is rolled back)."""
        return self._read("check_health", lambda c: check_connection(c, path=str(self.db_path)))

    def checkpoint(self) -> tuple[int, int, int]:
        """Run a WAL checkpoint in the configured mode now: (busy, wal frames, checkpointed)."""
        row = self._read(
            "checkpoint",
            lambda c: c.execute(f"PRAGMA wal_checkpoint({self.config.checkpoint_mode.value})").fetchone(),
        )
        return (int(row[0]), int(row[1]), int(row[2]))

    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """A consistent copy of the live database via SQLite's backup API (safe while open)."""
        return self._read("backup", lambda c: backup_live(c, dest))
