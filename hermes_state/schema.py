"""The store's tables, indexes, FTS index and triggers, and the schema version."""

from __future__ import annotations

import sqlite3
import threading

SCHEMA_VERSION = 1
FTS_TABLE = "messages_fts"

TABLES_SQL = """
CREATE TABLE IF NOT EXISTS state_meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    user_id TEXT,
    model TEXT,
    model_config TEXT,
    system_prompt TEXT,
    title TEXT,
    parent_session_id TEXT REFERENCES sessions(id),
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    message_count INTEGER NOT NULL DEFAULT 0,
    tool_call_count INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    api_call_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL,
    content TEXT,
    tool_call_id TEXT,
    tool_calls TEXT,
    tool_name TEXT,
    timestamp REAL NOT NULL,
    token_count INTEGER,
    finish_reason TEXT,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS idx_messages_session ON messages(session_id, id);
CREATE INDEX IF NOT EXISTS idx_sessions_started ON sessions(started_at DESC);
CREATE INDEX IF NOT EXISTS idx_sessions_source ON sessions(source, started_at DESC);
CREATE INDEX IF NOT EXISTS idx_sessions_parent ON sessions(parent_session_id);
"""

# External-content FTS5: the index holds no copy of the text, so 'rebuild' recreates it
# from `messages` alone and repairing it never touches a message row.
FTS_SQL = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
    content, content='messages', content_rowid='id'
);
CREATE TRIGGER IF NOT EXISTS messages_fts_ai AFTER INSERT ON messages BEGIN
    INSERT INTO {FTS_TABLE}(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_ad AFTER DELETE ON messages BEGIN
    INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_au AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO {FTS_TABLE}(rowid, content) VALUES (new.id, new.content);
END;
"""

FTS_TRIGGERS = ("messages_fts_ai", "messages_fts_ad", "messages_fts_au")
INDEXES = ("idx_messages_session", "idx_sessions_started", "idx_sessions_source", "idx_sessions_parent")

_fts5: bool | None = None
_fts5_lock = threading.Lock()


def fts5_available() -> bool:
    """Whether this process's SQLite has FTS5 (checked once, on a private :memory: db)."""
    global _fts5
    with _fts5_lock:
        if _fts5 is None:
            probe = sqlite3.connect(":memory:")
            try:
                probe.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
                _fts5 = True
            except sqlite3.OperationalError:
                _fts5 = False
            finally:
                probe.close()
        return _fts5


def has_fts_table(conn: sqlite3.Connection) -> bool:
    """Whether the database has the messages FTS table."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (FTS_TABLE,)).fetchone()
    return row is not None


def create_schema(conn: sqlite3.Connection, *, with_fts: bool) -> None:
    """Create every missing table, index, FTS table and trigger (inside the caller's transaction)."""
    for statement in split_statements(TABLES_SQL):
        conn.execute(statement)
    if with_fts:
        for statement in split_statements(FTS_SQL):
            conn.execute(statement)
    conn.execute(
        "INSERT INTO state_meta(key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value "
        "WHERE CAST(state_meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
        (str(SCHEMA_VERSION),),
    )


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The schema version recorded in state_meta (None when absent)."""
    try:
        row = conn.execute("SELECT value FROM state_meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0]) if row is not None else None


def split_statements(script: str) -> list[str]:
    """Split a DDL script into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    buf: list[str] = []
    for line in script.strip().splitlines():
        buf.append(line)
        candidate = "\n".join(buf).strip()
        if candidate and sqlite3.complete_statement(candidate):
            statements.append(candidate)
            buf = []
    return statements
