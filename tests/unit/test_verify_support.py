"""Hand-made state databases with a matching ledger, shared by the probe/verify/oracle tests.

The schema is the colleague's ``hermes_state.schema`` when it imports, else a mirror of
upstream's; writes follow the store's hot path (one transaction per append: the message
row, its FTS entry by trigger, and the session counter).
"""

from __future__ import annotations

import hashlib
import pathlib
import sqlite3

from repro.ledger import Ledger, encode, parse_lines
from repro.protocol import Tag, format_line, frame
from repro.verify.probe import collect

MIRROR_SCHEMA = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, model TEXT, parent_session_id TEXT REFERENCES sessions(id),
    started_at REAL NOT NULL, ended_at REAL, end_reason TEXT,
    message_count INTEGER NOT NULL DEFAULT 0, tool_call_count INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id), role TEXT NOT NULL,
    content TEXT, tool_call_id TEXT, tool_calls TEXT, tool_name TEXT, timestamp REAL NOT NULL,
    token_count INTEGER, finish_reason TEXT, active INTEGER NOT NULL DEFAULT 1
);
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');
CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
"""


def sha(content: str | None) -> str:
    return hashlib.sha256(b"" if content is None else content.encode("utf-8")).hexdigest()


def create_schema(conn: sqlite3.Connection) -> str:
    """Create the store's schema; returns which one was used."""
    try:
        from hermes_state.schema import create_schema as store_schema
    except ImportError:
        conn.executescript(MIRROR_SCHEMA)
        return "mirror"
    conn.execute("BEGIN")
    store_schema(conn, with_fts=True)
    conn.execute("COMMIT")
    return "hermes_state"


class FakeWorkload:
    """Writes rows the way the store does and the ledger lines the workload would print."""

    def __init__(self, path: pathlib.Path, *, journal_mode: str = "wal", synchronous: int = 2) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute(f"PRAGMA journal_mode={journal_mode}")
        self.schema = create_schema(self.conn)
        self.lines: list[str] = []  # framed ledger records, as on the channel
        self.ready = {"journal_mode": journal_mode, "synchronous": synchronous}
        self._i = 0

    def _record(self, record: dict[str, object]) -> None:
        self.lines.append(encode(record, seq=len(self.lines) + 1))

    def _invoke(self, op: str, args: dict[str, object]) -> int:
        self._i += 1
        self._record({"i": self._i, "t": "invoke", "op": op, "args": args})
        return self._i

    def _finish(self, i: int, outcome: str, result: dict[str, object] | None = None) -> None:
        if outcome == "ok":
            self._record({"i": i, "t": "ok", "result": result or {}})
        elif outcome == "fail":
            self._record({"i": i, "t": "fail", "err": "DiskFullError: database or disk is full"})
        # "info": cut off, no completion line

    def create_session(self, sid: str, outcome: str = "ok", *, applied: bool | None = None) -> None:
        i = self._invoke("create_session", {"session_id": sid, "source": "test", "model": "m"})
        if applied if applied is not None else outcome == "ok":
            self.conn.execute("INSERT INTO sessions(id, source, model, started_at) VALUES (?, 'test', 'm', 0)", (sid,))
        self._finish(i, outcome)

    def append(self, sid: str, content: str | None, outcome: str = "ok", *, applied: bool | None = None) -> int | None:
        i = self._invoke("append_message", {"session_id": sid, "role": "user", "sha": sha(content),
                                            "length": len(content or ""), "tool_calls": False})
        msg_id = None
        if applied if applied is not None else outcome == "ok":
            self.conn.execute("BEGIN IMMEDIATE")
            msg_id = self.conn.execute(
                "INSERT INTO messages(session_id, role, content, timestamp) VALUES (?, 'user', ?, 0)", (sid, content)
            ).lastrowid
            self.conn.execute("UPDATE sessions SET message_count = message_count + 1 WHERE id = ?", (sid,))
            self.conn.execute("COMMIT")
        self._finish(i, outcome, {"id": msg_id})
        return msg_id

    def tokens(self, sid: str, inp: int, out: int, outcome: str = "ok", *, applied: bool | None = None) -> None:
        i = self._invoke("update_token_counts", {"session_id": sid, "input_tokens": inp, "output_tokens": out})
        if applied if applied is not None else outcome == "ok":
            self.conn.execute("UPDATE sessions SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?"
                              " WHERE id = ?", (inp, out, sid))
        self._finish(i, outcome)

    def end(self, sid: str, reason: str, outcome: str = "ok", *, applied: bool | None = None) -> None:
        i = self._invoke("end_session", {"session_id": sid, "end_reason": reason})
        if applied if applied is not None else outcome == "ok":
            self.conn.execute("UPDATE sessions SET ended_at = 1, end_reason = ? WHERE id = ? AND ended_at IS NULL",
                              (reason, sid))
        self._finish(i, outcome)

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> None:
        """Tamper with the file behind the ledger's back."""
        self.conn.execute(statement, params)

    def ledger(self) -> Ledger:
        return parse_lines(self.log())

    def log(self) -> list[str]:
        """A machine's log: its boot record, then the ledger's records and READY, numbered as the workload numbers them."""
        boot = frame("boot", 1, format_line(Tag.BOOT, {"disk_entries": 0, "services": "session-store"}))
        return [boot, *self.lines, frame("gateway", len(self.lines) + 1, format_line(Tag.READY, self.ready))]

    def close(self) -> None:
        self.conn.close()


def standard_run(path: pathlib.Path, **kwargs: object) -> FakeWorkload:
    """Two sessions, a few messages (one NULL content), token updates, one ended session."""
    w = FakeWorkload(path, **kwargs)  # type: ignore[arg-type]
    w.create_session("s1")
    w.create_session("s2")
    for n in range(6):
        w.append("s1", f"message {n} " + "x" * (50 * n))
        w.tokens("s1", 10, 20)
    w.append("s2", None)
    w.append("s2", '{"tool_calls": [{"name": "search"}]} \u00e9\u2603')
    w.tokens("s2", 5, 7)
    w.end("s2", "user_exit")
    return w


def tear_page(db: pathlib.Path, table: str = "messages") -> None:
    """Zero the second half of a table's root page, as a torn 4 KiB write would leave it."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size + page_size // 2)
        f.write(b"\x00" * (page_size // 2))


def test_standard_run_is_clean_for_the_probe(tmp_path: pathlib.Path) -> None:
    """The baseline every 'bad database' test departs from really is healthy and complete."""
    w = standard_run(tmp_path / "state.db")
    w.close()
    facts = collect(tmp_path / "state.db", open_store=False)
    assert facts.integrity.ok and facts.fts.ok and facts.fk_violations == 0
    assert len(facts.messages) == 8 and len(facts.sessions) == 2
    assert w.ledger().acked and len(w.ledger().acked) == 2 + 12 + 2 + 1 + 1
