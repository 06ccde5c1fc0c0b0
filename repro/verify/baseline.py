"""What a trial's database held before the trial, per session, so the verifier can tell that every pre-existing row survived (stdlib only).

A trial that starts from a given database (``--from-db``, ``--initial-size``) must leave every
row that was there intact, as well as every acknowledged write. The starting database is
digested once, on the host: per session, a digest of its row (the columns it had at the start,
typed) and of its messages (id and sha256 of the content, in id order). The probe computes the
same digests after the crash; a session whose digest differs had a row deleted or rewritten.
The host keeps every session's message list too (``BaselineRows``) to count exactly which
rows went; the machine needs only the digests (``Baseline``, a small file mounted read-only).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from repro.verify.facts import Preexisting

BASELINE_FORMAT = 1
BASELINE_FILE = "baseline.json"  # what the probe reads (digests)
ROWS_FILE = "rows.json"          # what the host keeps (every session's message ids and hashes)
MISSING_COLUMN = "<missing column>"
NO_ROW = ""  # the digest of a session row that is not there (messages without their session)


def content_sha256(content: object) -> str:
    """sha256 hex of a message's content: UTF-8 of the string, b"" for NULL, bytes as they are."""
    if content is None:
        data = b""
    elif isinstance(content, bytes):
        data = content
    else:
        data = str(content).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def row_digest(values: Sequence[object]) -> str:
    """A session row's values, typed (1 and "1" differ), as one sha256."""
    typed = [[type(v).__name__, v.hex() if isinstance(v, bytes) else v] for v in values]
    return hashlib.sha256(json.dumps(typed, default=str).encode()).hexdigest()


def session_digest(row: str, messages: Iterable[tuple[int, str]]) -> str:
    """The session's row digest and its messages (id, content sha256) in id order."""
    hasher = hashlib.sha256(row.encode())
    for mid, sha in sorted(messages):
        hasher.update(f"|{mid}:{sha}".encode())
    return hasher.hexdigest()


def session_columns(conn: sqlite3.Connection) -> tuple[str, ...]:
    cur = conn.execute("SELECT * FROM sessions LIMIT 0")
    return tuple(str(d[0]) for d in cur.description)


def session_rows(conn: sqlite3.Connection, columns: Sequence[str], only: Mapping[str, object] | None = None) -> dict[str, str]:
    """id -> row digest over ``columns`` (a column the table lost digests as MISSING_COLUMN), for the
    sessions in ``only`` (all when None)."""
    present = set(session_columns(conn))
    select = ", ".join(f'"{c}"' if c in present else "NULL" for c in columns)
    missing = [i for i, c in enumerate(columns) if c not in present]
    out: dict[str, str] = {}
    for row in conn.execute(f"SELECT id, {select} FROM sessions"):
        sid = str(row[0])
        if only is not None and sid not in only:
            continue
        values = list(row[1:])
        for i in missing:
            values[i] = MISSING_COLUMN
        out[sid] = row_digest(values)
    return out


@dataclass(frozen=True)
class Baseline:
    """The starting database's digests: what the probe compares (sessions: id -> session digest)."""

    columns: tuple[str, ...]
    sessions: Mapping[str, str]
    messages: int  # rows in messages at the start

    def to_json(self) -> str:
        return json.dumps({"format": BASELINE_FORMAT, "columns": list(self.columns), "sessions": dict(self.sessions),
                           "messages": self.messages}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Baseline":
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
            raise ValueError("not a baseline of this format")
        return cls(tuple(str(c) for c in data["columns"]), {str(k): str(v) for k, v in data["sessions"].items()},
                   int(data["messages"]))

    @property
    def rows(self) -> int:
        """Session rows and message rows at the start."""
        return len(self.sessions) + self.messages


@dataclass(frozen=True)
class SessionState:
    """One session at the start: its row digest (NO_ROW: none) and its messages (id, content sha256)."""

    row: str
    messages: tuple[tuple[int, str], ...]

    @property
    def digest(self) -> str:
        return session_digest(self.row, self.messages)


def states(rows: Mapping[str, str], messages: Iterable[tuple[int, str | None, str]],
           only: Mapping[str, object] | None = None) -> dict[str, SessionState]:
    """Per session (those in ``only``, or every one with a row or a message), its state; messages are
    (id, session_id, sha). Messages whose session has no row form a session of their own (NO_ROW)."""
    grouped: dict[str, list[tuple[int, str]]] = {}
    for mid, sid, sha in messages:
        key = str(sid)
        if only is None or key in only:
            grouped.setdefault(key, []).append((mid, sha))
    keys = set(grouped) | (set(rows) if only is None else {k for k in rows if k in only})
    return {k: SessionState(rows.get(k, NO_ROW), tuple(sorted(grouped.get(k, ())))) for k in keys}


def take(conn: sqlite3.Connection) -> tuple[Baseline, dict[str, SessionState]]:
    """Digest a (copy of a) starting database: the probe's baseline and the host's rows."""
    columns = session_columns(conn)
    rows = session_rows(conn, columns)
    messages = [(int(r[0]), None if r[1] is None else str(r[1]), content_sha256(r[2]))
                for r in conn.execute("SELECT id, session_id, content FROM messages ORDER BY id")]
    found = states(rows, messages)
    return Baseline(columns, {k: s.digest for k, s in found.items()}, len(messages)), found


def rows_to_json(found: Mapping[str, SessionState]) -> str:
    return json.dumps({k: {"row": s.row, "messages": [list(m) for m in s.messages]} for k, s in found.items()})


def rows_from_json(text: str) -> dict[str, SessionState]:
    data = json.loads(text)
    return {str(k): SessionState(str(v["row"]), tuple((int(m[0]), str(m[1])) for m in v["messages"]))
            for k, v in data.items()}


@dataclass(frozen=True)
class PreexistingLoss:
    """The rows the trial started with: how many, and how many are gone or rewritten."""

    rows: int
    lost: int
    detail: tuple[str, ...] = ()  # the first few, as "session X: message 12 missing"

    @property
    def problem(self) -> str:
        return f"{self.lost} of {self.rows} pre-existing rows lost or rewritten: " + "; ".join(self.detail[:3])


MAX_DETAIL = 20


def preexisting_loss(found: Preexisting, start: Mapping[str, SessionState] | None) -> PreexistingLoss:
    """Count the starting database's rows that are gone or rewritten: per changed session, its row (if it
    had one and it differs now) and every message whose id and content hash are no longer there.
    Without the host's rows (``start``) a changed session counts as one lost row."""
    start = start or {}
    rows = sum(1 for s in start.values() if s.row != NO_ROW) + sum(len(s.messages) for s in start.values()) \
        if start else found.checked
    now: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for m in found.rows:
        now[str(m.session_id)].add((m.id, m.sha))
    lost = 0
    detail: list[str] = []
    for changed in found.changed:
        before = start.get(changed.id)
        if before is None:
            lost += 1
            detail.append(f"session {changed.id}: changed")
            continue
        if before.row != NO_ROW and changed.row != before.row:
            lost += 1
            detail.append(f"session {changed.id}: row " + ("deleted" if changed.row == NO_ROW else "rewritten"))
        gone = [mid for mid, sha in before.messages if (mid, sha) not in now[changed.id]]
        lost += len(gone)
        if gone:
            detail.append(f"session {changed.id}: message(s) {', '.join(map(str, gone[:5]))}"
                          + (f" and {len(gone) - 5} more" if len(gone) > 5 else "") + " missing or rewritten")
    return PreexistingLoss(rows=rows, lost=lost, detail=tuple(detail[:MAX_DETAIL]))
