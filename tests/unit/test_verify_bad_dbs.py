"""Every checker of ``repro.verify.diff.health`` against a real known-bad database, end to end to a verdict.

Each database is made by the real store (``hermes_state.SessionDB``) with a ledger recorded
the way the workload records it, damaged behind the store's back, then probed by the real
probe (``python -m repro.verify.probe DB --store-path REPO``, its PROBE line parsed as the host
does) and judged by the oracle. The undamaged control must pass, so a ``corrupt`` verdict
below comes from the damage; each test also names the finding its checker must produce.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
import subprocess
import sys

import pytest

from framing import framed

from repro.ledger import Ledger, encode, parse_lines
from repro.oracle.verdicts import Judgement, Verdict, judge
from repro.protocol import Tag, format_line
from repro.verify.facts import CheckStatus, ProbeFacts, parse_probe_output
from test_verify_support import sha

hermes_state = pytest.importorskip("hermes_state")

REPO = pathlib.Path(__file__).resolve().parents[2]
MESSAGES = 60


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's default preset (ns506: WAL + NORMAL) for the run and for the probe."""
    for name in hermes_state.ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def store_run(db: pathlib.Path) -> Ledger:
    """Drive the real store as the workload does and return the ledger it would print."""
    lines: list[str] = []
    index = 0

    def call(op: str, args: dict[str, object], result: dict[str, object] | None = None) -> None:
        nonlocal index
        index += 1
        lines.append(format_line(Tag.LEDGER, {"i": index, "t": "invoke", "op": op, "args": args}))
        lines.append(format_line(Tag.LEDGER, {"i": index, "t": "ok", "result": result or {}}))

    store = hermes_state.SessionDB(db)
    try:
        for sid in ("s1", "s2"):
            store.create_session(sid, "cli", model="m")
            call("create_session", {"session_id": sid, "source": "cli", "model": "m"})
        for n in range(MESSAGES):
            sid = "s1" if n % 3 else "s2"
            text = f"message {n} about lighthouse keepers " + "z" * (n * 37 % 900)
            msg_id = store.append_message(sid, "user", text)
            call("append_message", {"session_id": sid, "role": "user", "sha": sha(text), "length": len(text),
                                    "tool_calls": False}, {"id": msg_id})
        store.update_token_counts("s1", input_tokens=30, output_tokens=40)
        call("update_token_counts", {"session_id": "s1", "input_tokens": 30, "output_tokens": 40})
        store.end_session("s2", "user_exit")
        call("end_session", {"session_id": "s2", "end_reason": "user_exit"})
        ready = {name: store._conn.execute(f"PRAGMA {name}").fetchone()[0]
                 for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")}
    finally:
        store.close()
    return parse_lines(framed(lines + [format_line(Tag.READY, ready)]))


def probe(db: pathlib.Path, *, open_store: bool = True) -> ProbeFacts:
    """The real probe in its own process, as the restarted machine runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_STATE_")}
    cmd = [sys.executable, "-m", "repro.verify.probe", str(db), "--store-mount", str(REPO)]
    proc = subprocess.run(cmd + ([] if open_store else ["--no-store"]), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    facts = parse_probe_output(proc.stdout.splitlines())
    assert facts.probe_error is None, facts.probe_error
    return facts


def sql(db: pathlib.Path, *statements: str) -> None:
    """Damage the file behind the store's back (no store connection is open)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def verdict(ledger: Ledger, facts: ProbeFacts) -> Judgement:
    """A process crash under the store's WAL: SQLite promised a consistent file."""
    j = judge(ledger, facts, ["sigkill"])
    assert j.promise is not None and j.promise.consistent
    return j


def problems(j: Judgement) -> tuple[str, ...]:
    assert j.verification is not None
    return j.verification.health.problems


def test_undamaged_store_passes(tmp_path: pathlib.Path) -> None:
    """The control: the ledger and the probe agree on an untouched file, and the store is healthy."""
    db = tmp_path / "state.db"
    ledger = store_run(db)
    facts = probe(db)
    assert ledger.ready["journal_mode"] == "wal"
    assert facts.store.opened and facts.store.doctor.status is CheckStatus.OK and facts.store.healed is None
    j = verdict(ledger, facts)
    assert (j.verdict, j.expected) == (Verdict.PASS, True), j.reason
    assert j.verification is not None and j.verification.acked == 2 + MESSAGES + 2


def test_damaged_fts_index_is_corrupt(tmp_path: pathlib.Path) -> None:
    """Garbage in the FTS shadow table: integrity_check is blind to it, the FTS check is not."""
    db = tmp_path / "state.db"
    ledger = store_run(db)
    sql(db, "UPDATE messages_fts_data SET block = CAST(replace(hex(zeroblob(length(block))), '00', 'FF') AS BLOB)"
            " WHERE id > 10")
    facts = probe(db)
    assert facts.integrity.status is CheckStatus.OK and facts.fts.status is CheckStatus.FAILED
    j = verdict(ledger, facts)
    assert (j.verdict, j.expected) == (Verdict.CORRUPT, False)
    assert any(p.startswith("FTS integrity failed: messages_fts:") for p in problems(j))
    assert j.lost_acked == 0

    # without the store (and its health check) the FTS checker alone still says corrupt
    alone = verdict(ledger, probe(db, open_store=False))
    assert alone.verdict is Verdict.CORRUPT
    assert [p.split(":")[0] for p in problems(alone)] == ["FTS integrity failed"]


def test_torn_page_under_wal_is_corrupt(tmp_path: pathlib.Path) -> None:
    """A message leaf page overwritten with garbage: integrity_check fails and rows cannot be read."""
    db = tmp_path / "state.db"
    ledger = store_run(db)
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    leaf = conn.execute("SELECT pageno FROM dbstat WHERE name='messages' AND pagetype='leaf'"
                        " LIMIT 1 OFFSET 2").fetchone()[0]
    conn.close()
    with open(db, "r+b") as fh:  # no connection is open: a raw write is safe here
        fh.seek((leaf - 1) * page_size + 8)
        fh.write(b"\xa5" * (page_size - 8))
    facts = probe(db)
    assert facts.integrity.status is CheckStatus.FAILED and facts.messages_error is not None
    j = verdict(ledger, facts)
    assert (j.verdict, j.expected, j.promised_safe) == (Verdict.CORRUPT, False, True)
    found = problems(j)
    assert any(p.startswith("integrity_check failed:") for p in found)
    assert any(p.startswith("read error: partial read") for p in found)


def test_foreign_key_violation_is_corrupt(tmp_path: pathlib.Path) -> None:
    """A session whose parent does not exist: no orphan message, no counter off, only the FK check."""
    db = tmp_path / "state.db"
    ledger = store_run(db)
    sql(db, "UPDATE sessions SET parent_session_id = 'gone' WHERE id = 's1'")
    facts = probe(db)
    assert facts.integrity.ok and facts.fk_violations == 1
    j = verdict(ledger, facts)
    assert (j.verdict, j.expected) == (Verdict.CORRUPT, False)
    assert "foreign_key_check: 1 violation(s)" in problems(j)

    alone = verdict(ledger, probe(db, open_store=False))
    assert alone.verdict is Verdict.CORRUPT
    assert problems(alone) == ("foreign_key_check: 1 violation(s)",)


def test_store_that_cannot_open_the_file_is_corrupt(tmp_path: pathlib.Path) -> None:
    """Every raw check passes and every row is there, but the restarted store refuses the file."""
    db = tmp_path / "state.db"
    ledger = store_run(db)
    # state_meta without its primary key: the store's schema upsert fails on every open
    sql(db, "CREATE TABLE meta_copy AS SELECT * FROM state_meta", "DROP TABLE state_meta",
        "ALTER TABLE meta_copy RENAME TO state_meta")
    facts = probe(db)
    assert facts.integrity.ok and facts.fts.ok and facts.fk_violations == 0
    assert facts.store.attempted and not facts.store.opened and not facts.store.import_failed
    j = verdict(ledger, facts)
    assert (j.verdict, j.expected) == (Verdict.CORRUPT, False)
    assert j.verification is not None and j.verification.lost_acked == 0
    assert [p.split(":")[0] for p in problems(j)] == ["the restarted store cannot open the database"]


def test_failed_store_health_check_is_corrupt(tmp_path: pathlib.Path) -> None:
    """The store opens and every raw check passes, but its health check's write probe fails."""
    db = tmp_path / "state.db"
    ledger = store_run(db)
    sql(db, "CREATE TRIGGER refuse_messages BEFORE INSERT ON messages BEGIN"
            " SELECT RAISE(ABORT, 'messages refused'); END")
    facts = probe(db)
    assert facts.integrity.ok and facts.fts.ok and facts.fk_violations == 0 and facts.store.opened
    assert facts.store.doctor.status is CheckStatus.FAILED
    j = verdict(ledger, facts)
    assert (j.verdict, j.expected) == (Verdict.CORRUPT, False)
    assert problems(j) == ("store health check failed: write probe: messages refused",)


def test_store_that_had_to_repair_the_file_is_corrupt(tmp_path: pathlib.Path) -> None:
    """A duplicated schema row: the store repairs it on open; the repair itself is a finding."""
    db = tmp_path / "state.db"
    ledger = store_run(db)
    sql(db, "PRAGMA writable_schema=ON",
        "INSERT INTO sqlite_master SELECT * FROM sqlite_master WHERE name='idx_messages_session'",
        "PRAGMA writable_schema=OFF")
    facts = probe(db)
    assert facts.store.opened and facts.store.healed == "repaired"
    j = verdict(ledger, facts)
    assert (j.verdict, j.expected) == (Verdict.CORRUPT, False)
    assert "the restarted store had to repair the database: repaired" in problems(j)
    # the repaired file now looks healthy: only the probe's record of the repair kept the damage visible
    assert verdict(ledger, probe(db)).verdict is Verdict.PASS
