"""A store laid out as upstream ships it -- ``hermes_state.py`` at a project's root, beside the modules it imports -- written by the tests.

Upstream's module imports ``hermes_constants`` (a sibling module) and ``agent.memory_manager``
(a sibling package); this one does the same, and implements the public API the workload
drives (docs/FACTS.md, section 2) the way upstream does: WAL, its own settings, one
BEGIN IMMEDIATE transaction per message, an FTS5 index kept by triggers, a PASSIVE
checkpoint every 50 writes. Variants model what the tests need: a release that needs a
third-party package, and one that deletes an old row when it opens a database.
"""

from __future__ import annotations

import os
import pathlib
import textwrap

STORE = '''
"""Session store (an upstream-like release: a single module at the project root)."""
import json
import sqlite3
import threading
import time
from pathlib import Path

from agent.memory_manager import sanitize_context
from hermes_constants import get_hermes_home
{extra_import}
RELEASE = {release!r}
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, source TEXT NOT NULL, model TEXT, started_at REAL NOT NULL,
    ended_at REAL, end_reason TEXT, message_count INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL, content TEXT, tool_call_id TEXT, tool_calls TEXT, tool_name TEXT, timestamp REAL NOT NULL,
    token_count INTEGER, finish_reason TEXT);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(content, content='messages', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;
CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END;
"""


class SessionDB:
    def __init__(self, db_path=None):
        self.db_path = Path(db_path or get_hermes_home() / "state.db")
        self._lock = threading.Lock()
        self._writes = 0
        self._conn = sqlite3.connect(str(self.db_path), isolation_level=None, check_same_thread=False, timeout=1.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=1000")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)
{on_open}

    def _write(self, fn):
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn()
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._writes += 1
            if self._writes % 50 == 0:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            return result

    def create_session(self, session_id, source, model=None, **_):
        self._write(lambda: self._conn.execute(
            "INSERT INTO sessions (id, source, model, started_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
            (session_id, source, model, time.time())))
        return session_id

    def append_message(self, session_id, role, content=None, tool_name=None, tool_calls=None, tool_call_id=None,
                       token_count=None, finish_reason=None):
        def insert():
            cur = self._conn.execute(
                "INSERT INTO messages (session_id, role, content, tool_call_id, tool_calls, tool_name, timestamp, "
                "token_count, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, role, sanitize_context(content), tool_call_id,
                 json.dumps(tool_calls) if tool_calls else None, tool_name, time.time(), token_count, finish_reason))
            self._conn.execute("UPDATE sessions SET message_count = message_count + 1 WHERE id = ?", (session_id,))
            return cur.lastrowid
        return self._write(insert)

    def update_token_counts(self, session_id, input_tokens=0, output_tokens=0, **_):
        self._write(lambda: self._conn.execute(
            "UPDATE sessions SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ? WHERE id = ?",
            (input_tokens, output_tokens, session_id)))

    def end_session(self, session_id, end_reason):
        self._write(lambda: self._conn.execute(
            "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?", (time.time(), end_reason, session_id)))

    def search_messages(self, query):
        with self._lock:
            return self._conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? LIMIT 20",
                                      (query,)).fetchall()

    def close(self):
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
'''

# A release that "cleans up" on open: deletes the oldest message (and fixes its session's counter), the
# kind of data migration that loses a row of every existing database.
DROP_OLDEST = '''
        oldest = self._conn.execute("SELECT id, session_id FROM messages ORDER BY id LIMIT 1").fetchone()
        if oldest is not None:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM messages WHERE id = ?", (oldest[0],))
            self._conn.execute("UPDATE sessions SET message_count = message_count - 1 WHERE id = ?", (oldest[1],))
            self._conn.execute("COMMIT")'''

# A release that "repairs" every database it opens by rebuilding the messages table in two transactions
# (copy the rows out and empty the table; then copy them back): nothing is lost when the open completes,
# but a crash between the two commits leaves the table empty -- what only a crash during recovery shows.
REBUILD = '''
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("DROP TABLE IF EXISTS messages_copy")
        self._conn.execute("CREATE TABLE messages_copy AS SELECT * FROM messages")
        self._conn.execute("DELETE FROM messages")
        self._conn.execute("COMMIT")
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("INSERT INTO messages SELECT * FROM messages_copy")
        self._conn.execute("DROP TABLE messages_copy")
        self._conn.execute("COMMIT")'''

# A release that hangs when a restarted service opens its database again (the lab's reopen: LAB_REOPEN=1 in
# the service's environment; the probe that judges crash states is not such a service, so the first level goes on).
HANG = '''
        import os as _os
        if _os.environ.get("LAB_REOPEN") == "1":
            time.sleep(600)'''


# A store that deceives the lab in the reopen: it writes a CLOSED event and a FINISH of its own on the evidence
# channel it shares a process with, then deletes the oldest message a moment later, as a slow "migration" would.
FORGE_END = '''
        import os as _os
        if _os.environ.get("LAB_REOPEN") == "1":
            from repro import channel as _channel
            from repro.protocol import EventKind as _Kind, Tag as _Tag
            _channel.current().write(_Tag.EVENT, {"kind": _Kind.CLOSED.value, "acks": 0, "ops": 0})
            _channel.current().write(_Tag.FINISH, {"service": "session-store", "exit": 0, "signal": None})
            time.sleep(3)''' + DROP_OLDEST


def write_module_store(root: pathlib.Path, *, release: str = "2026.6", needs: str = "",
                       drop_oldest_on_open: bool = False, rebuild_on_open: bool = False,
                       hang_on_reopen: bool = False, forge_end_on_reopen: bool = False) -> pathlib.Path:
    """``root/hermes_state.py`` with its sibling module and package; ``needs``: a third-party module it imports.
    World-readable: the machine's user (uid 1000) reads it through a read-only mount."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "agent").mkdir(exist_ok=True)
    (root / "hermes_state.py").write_text(STORE.format(
        release=release, extra_import=f"import {needs}\n" if needs else "",
        on_open=DROP_OLDEST if drop_oldest_on_open else REBUILD if rebuild_on_open else HANG if hang_on_reopen
        else FORGE_END if forge_end_on_reopen else "        pass"))
    (root / "hermes_constants.py").write_text(textwrap.dedent('''
        import os
        from pathlib import Path

        def get_hermes_home():
            return Path(os.environ.get("HERMES_HOME", "/tmp"))
    '''))
    (root / "agent" / "__init__.py").write_text("")
    (root / "agent" / "memory_manager.py").write_text(textwrap.dedent('''
        def sanitize_context(text):
            return text
    '''))
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return root


def build_wheel(directory: pathlib.Path, name: str = "tinydep", version: str = "1.0",
                source: str = "VALUE = 42\n") -> pathlib.Path:
    """A pure-Python wheel of one package, made by hand (a zip with METADATA, WHEEL and RECORD): no network."""
    import base64
    import hashlib
    import zipfile

    directory.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": source.encode(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: hermes-lab tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
              for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return wheel


def offline_requirements(path: pathlib.Path, wheels: pathlib.Path, *names: str) -> pathlib.Path:
    """A requirements file that pip resolves from ``wheels`` alone (no index)."""
    path.write_text(f"--no-index\n--find-links {wheels}\n" + "".join(f"{n}\n" for n in names))
    return path


def git_releases(repo: pathlib.Path, releases: list[tuple[str, dict[str, object]]]) -> list[str]:
    """A git repository with one commit (and tag) per release of a module store; returns the commit ids."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.email=lab@example.org", "-c", "user.name=lab", *args], cwd=repo,
                              check=True, capture_output=True, text=True).stdout.strip()

    repo.mkdir(parents=True, exist_ok=True)
    git("init", "-q")
    commits = []
    for tag, options in releases:
        write_module_store(repo, **options)  # type: ignore[arg-type]
        git("add", "-A")
        git("commit", "-qm", f"release {tag}")
        git("tag", tag)
        commits.append(git("rev-parse", "HEAD"))
    return commits
