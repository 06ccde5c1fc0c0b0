"""The store's SQL as functions of a connection, so SessionDB keeps only lifecycle, retries and healing."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Sequence

from .errors import InvalidInputError, UnknownSessionError
from .schema import FTS_TABLE

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
                 "api_call_count")

_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, role, content, tool_call_id, tool_calls, tool_name, timestamp, "
    "token_count, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BUMP_COUNTERS = (
    "UPDATE sessions SET message_count = message_count + 1, tool_call_count = tool_call_count + ? WHERE id = ?"
)
_UPSERT_SESSION = (
    "INSERT INTO sessions (id, source, user_id, model, model_config, system_prompt, "
    "parent_session_id, title, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET "
    "source = CASE WHEN sessions.source = 'unknown' THEN excluded.source ELSE sessions.source END, "
    "user_id = COALESCE(sessions.user_id, excluded.user_id), "
    "model = COALESCE(sessions.model, excluded.model), "
    "model_config = COALESCE(sessions.model_config, excluded.model_config), "
    "system_prompt = COALESCE(sessions.system_prompt, excluded.system_prompt), "
    "parent_session_id = COALESCE(sessions.parent_session_id, excluded.parent_session_id), "
    "title = COALESCE(sessions.title, excluded.title)"
)


# -- writes (each runs inside the caller's BEGIN IMMEDIATE transaction) -----------------------


def upsert_session(conn: sqlite3.Connection, params: tuple[object, ...]) -> None:
    """Insert a session, or fill the missing fields of an existing one (never overwrites)."""
    conn.execute(_UPSERT_SESSION, (*params, time.time()))


def insert_session_if_missing(conn: sqlite3.Connection, session_id: str, source: str, model: str | None) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO sessions (id, source, model, started_at) VALUES (?, ?, ?, ?)",
        (session_id, source, model, time.time()),
    )


def mark_session_ended(conn: sqlite3.Connection, session_id: str, end_reason: str) -> None:
    conn.execute(
        "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
        (time.time(), end_reason, session_id),
    )


def token_update_sql(absolute: bool) -> str:
    """The UPDATE adding (or with *absolute*, setting) every token counter of one session."""
    assignments = ", ".join(f"{c} = ?" if absolute else f"{c} = {c} + ?" for c in TOKEN_COLUMNS)
    return f"UPDATE sessions SET {assignments}, model = COALESCE(model, ?) WHERE id = ?"


def apply_token_update(conn: sqlite3.Connection, sql: str, params: tuple[object, ...], session_id: str) -> None:
    if conn.execute(sql, params).rowcount == 0:
        raise UnknownSessionError(f"update_token_counts: no session {session_id!r}")


def insert_message(conn: sqlite3.Connection, params: tuple[object, ...], n_calls: int, session_id: str) -> int:
    """Insert one message (the FTS triggers fire) and bump its session's counters."""
    message_id = conn.execute(_INSERT_MESSAGE, params).lastrowid
    conn.execute(_BUMP_COUNTERS, (n_calls, session_id))
    return int(message_id) if message_id is not None else 0


# -- reads ----------------------------------------------------------------------------------


def select_session(conn: sqlite3.Connection, session_id: str) -> dict[str, object] | None:
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return dict(row) if row is not None else None


def count_sessions(conn: sqlite3.Connection, source: str | None) -> int:
    if source is None:
        return int(conn.execute("SELECT count(*) FROM sessions").fetchone()[0])
    return int(conn.execute("SELECT count(*) FROM sessions WHERE source = ?", (source,)).fetchone()[0])


def select_messages(conn: sqlite3.Connection, session_id: str) -> list[dict[str, object]]:
    """The session's messages in insertion order, `tool_calls` decoded from JSON."""
    rows = conn.execute("SELECT * FROM messages WHERE session_id = ? ORDER BY id", (session_id,)).fetchall()
    out = []
    for row in rows:
        msg = dict(row)
        raw = msg.get("tool_calls")
        if isinstance(raw, str):
            try:
                msg["tool_calls"] = json.loads(raw)
            except ValueError:
                pass
        out.append(msg)
    return out


def count_messages(conn: sqlite3.Connection, session_id: str | None) -> int:
    if session_id is None:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    return int(conn.execute("SELECT count(*) FROM messages WHERE session_id = ?", (session_id,)).fetchone()[0])


def search_sql(
    query: str, *, fts: bool, limit: int, session_id: str | None
) -> tuple[str, tuple[object, ...]] | None:
    """(SQL, params) finding messages that match every word of *query*; None for no words.

    FTS5 when the index exists, LIKE otherwise.
    """
    words = re.findall(r"\w+", query or "")
    if not words:
        return None
    if fts:
        match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        sql = (
            f"SELECT m.id, m.session_id, m.role, m.content, m.timestamp, "
            f"snippet({FTS_TABLE}, 0, '>>>', '<<<', '...', 16) AS snippet "
            f"FROM {FTS_TABLE} JOIN messages m ON m.id = {FTS_TABLE}.rowid "
            f"WHERE {FTS_TABLE} MATCH ?" + (" AND m.session_id = ?" if session_id else "")
            + " ORDER BY rank LIMIT ?"
        )
        params: tuple[object, ...] = (match, session_id, limit) if session_id else (match, limit)
        return sql, params
    likes = " AND ".join("m.content LIKE ? ESCAPE '\\'" for _ in words)
    sql = (
        "SELECT m.id, m.session_id, m.role, m.content, m.timestamp, NULL AS snippet FROM messages m "
        f"WHERE {likes}" + (" AND m.session_id = ?" if session_id else "") + " ORDER BY m.id DESC LIMIT ?"
    )
    patterns = tuple("%" + re.sub(r"([\\%_])", r"\\\1", w) + "%" for w in words)
    return sql, ((*patterns, session_id, limit) if session_id else (*patterns, limit))


# -- argument checks -------------------------------------------------------------------------


def require_text(value: object, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{name} must be a non-empty str, not {value!r}")


def check_token_values(values: tuple[object, ...]) -> None:
    for name, value in zip(TOKEN_COLUMNS, values):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"{name} must be an int, not {value!r}")


def encode_tool_calls(tool_calls: object) -> tuple[str | None, int]:
    """(JSON text, number of calls) for the tool_calls argument."""
    if tool_calls is None:
        return None, 0
    if isinstance(tool_calls, str):
        try:
            decoded = json.loads(tool_calls)
        except ValueError:
            return tool_calls, 1
        return tool_calls, len(decoded) if isinstance(decoded, list) else 1
    try:
        text = json.dumps(tool_calls)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"tool_calls is not JSON-serialisable: {exc}") from exc
    return text, len(tool_calls) if isinstance(tool_calls, Sequence) else 1
