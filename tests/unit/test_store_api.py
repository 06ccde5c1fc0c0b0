"""The upstream-compatible API: semantics the lab's verifier relies on, retries and typed errors."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hermes_state import (
    DatabaseBusyError,
    DatabaseInUseError,
    DurabilityConfig,
    InvalidInputError,
    RetryPolicy,
    SessionDB,
    StoreClosedError,
    UnknownSessionError,
    backup_files,
)
from hermes_state import schema as schema_module
from hermes_state.config import ENV_VARS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[SessionDB]:
    store = SessionDB(str(tmp_path / "state.db"))  # a str path works as well as a Path
    yield store
    store.close()


def test_sessions_upsert_end_and_token_increments(db: SessionDB) -> None:
    assert db.ensure_session("s1") == "s1"
    assert db.create_session("s1", "cli", model="m1", title="first") == "s1"
    db.create_session("s1", "telegram", model="m2")  # fills gaps only, never overwrites
    db.create_session("child", "cli", parent_session_id="s1")
    s = db.get_session("s1")
    assert s is not None and (s["source"], s["model"], s["title"]) == ("cli", "m1", "first")
    assert db.session_count() == 2 and db.session_count("cli") == 2

    acked = [(random.Random(i).randint(0, 500), random.Random(-i).randint(0, 500)) for i in range(25)]
    for inp, out in acked:
        db.update_token_counts("s1", input_tokens=inp, output_tokens=out)
    s = db.get_session("s1")
    assert s is not None
    assert (s["input_tokens"], s["output_tokens"]) == (sum(a for a, _ in acked), sum(b for _, b in acked))
    db.update_token_counts("s1", input_tokens=7, output_tokens=9, absolute=True)
    s = db.get_session("s1")
    assert s is not None and (s["input_tokens"], s["output_tokens"]) == (7, 9)

    db.end_session("s1", "user_exit")
    db.end_session("s1", "compression")
    s = db.get_session("s1")
    assert s is not None and s["end_reason"] == "user_exit" and s["ended_at"] is not None
    assert db.get_session("nope") is None

    with pytest.raises(UnknownSessionError):
        db.update_token_counts("nope", input_tokens=1)
    with pytest.raises(UnknownSessionError):
        db.append_message("nope", "user", "orphan")
    with pytest.raises(UnknownSessionError):
        db.create_session("x", "cli", parent_session_id="missing-parent")
    with pytest.raises(InvalidInputError):
        db.update_token_counts("s1", input_tokens="5")  # type: ignore[arg-type]
    assert db.message_count() == 0 and db.session_count() == 2


def test_messages_verbatim_counted_and_searchable(db: SessionDB) -> None:
    db.create_session("s", "cli")
    contents = ["plain", "", None, "ünïcødé 🚀 \x00 nul and\nnewlines", "x" * 200_000, "  padded  "]
    ids = [db.append_message("s", "user", c) for c in contents]
    tool_id = db.append_message("s", "assistant", None, tool_calls=[{"id": "t1"}, {"id": "t2"}],
                                finish_reason="tool_calls", token_count=12)
    db.append_message("s", "tool", "result", tool_name="grep", tool_call_id="t1")
    msgs = db.get_messages("s")
    assert [m["content"] for m in msgs[: len(contents)]] == contents
    assert ids == sorted(ids) and msgs[len(contents)]["id"] == tool_id
    assert msgs[len(contents)]["tool_calls"] == [{"id": "t1"}, {"id": "t2"}]
    s = db.get_session("s")
    assert s is not None and s["message_count"] == len(msgs) == db.message_count("s")
    assert s["tool_call_count"] == 2
    assert [m["id"] for m in db.search_messages("newlines")] == [ids[3]]
    assert db.search_messages('AND OR "(') == []  # query syntax never leaks into FTS
    with pytest.raises(InvalidInputError):
        db.append_message("s", "user", b"bytes")  # type: ignore[arg-type]


def test_like_search_when_fts5_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_module, "_fts5", False)
    db = SessionDB(tmp_path / "nofts.db")
    try:
        assert not db.fts_enabled
        db.create_session("s", "cli")
        db.append_message("s", "user", "100% of the_cat")
        db.append_message("s", "user", "1000 cats")
        assert [m["content"] for m in db.search_messages("100% the_cat")] == ["100% of the_cat"]
        assert db.check_health().healthy
    finally:
        db.close()


def test_busy_writes_retry_with_seeded_jitter_then_give_up(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sleeps: list[float] = []
    now = [0.0]
    blocker = sqlite3.connect(path, isolation_level=None)

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == 3 and blocker.in_transaction:
            blocker.execute("COMMIT")  # the other writer finishes

    policy = RetryPolicy(budget_s=1.0, rng=random.Random(42), sleep=fake_sleep, clock=lambda: now[0])
    config = DurabilityConfig().with_overrides(busy_timeout_ms=0)
    db = SessionDB(path, config=config, retry=policy)
    try:
        db.create_session("s", "cli")
        blocker.execute("BEGIN IMMEDIATE")
        assert db.append_message("s", "user", "after retries") == 1
        expected = random.Random(42)
        assert sleeps == [expected.uniform(0.02, 0.15) for _ in range(3)]

        blocker.execute("BEGIN IMMEDIATE")  # now it never lets go
        with pytest.raises(DatabaseBusyError):
            db.append_message("s", "user", "never written")
        assert now[0] >= 1.0 and not db._conn.in_transaction
        blocker.execute("ROLLBACK")
        assert db.message_count() == 1
    finally:
        db.close()
        blocker.close()


def test_threads_share_one_store(db: SessionDB) -> None:
    db.create_session("t", "cli")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                db.append_message("t", "user", f"thread {n} msg {i}")
                db.update_token_counts("t", input_tokens=1)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = db.get_session("t")
    assert s is not None and s["message_count"] == 160 == db.message_count("t") and s["input_tokens"] == 160


def test_backups_never_copy_an_open_database(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = SessionDB(path)
    db.create_session("s", "cli")
    db.append_message("s", "user", "kept")
    with pytest.raises(DatabaseInUseError):
        backup_files(path)
    snap = db.backup(tmp_path / "snap.db")
    db.close()
    with pytest.raises(StoreClosedError):
        db.message_count()
    copy = sqlite3.connect(snap)
    assert copy.execute("SELECT content FROM messages").fetchall() == [("kept",)]
    copy.close()
    written = backup_files(path)  # closed now: a file copy is allowed
    assert written[0].exists()


def test_opening_while_another_process_holds_the_file_retries_then_gives_up(tmp_path: Path) -> None:
    """Opening writes (the switch to WAL, the schema), so a busy start-up is retried like a write:
    a gateway and a cron job creating one fresh state.db together must both come up."""
    path = tmp_path / "state.db"
    sleeps: list[float] = []
    now = [0.0]
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the other process, in the middle of creating the file

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == 2 and blocker.in_transaction:
            blocker.execute("COMMIT")

    policy = RetryPolicy(budget_s=1.0, rng=random.Random(7), sleep=fake_sleep, clock=lambda: now[0])
    config = dataclasses.replace(DurabilityConfig().with_overrides(busy_timeout_ms=0), connect_timeout_s=0.0)
    db = SessionDB(path, config=config, retry=policy)
    try:
        assert len(sleeps) == 2 and db.pragmas.journal_mode == "wal"
        db.create_session("s", "cli")
    finally:
        db.close()
    blocker.execute("BEGIN EXCLUSIVE")  # now it never lets go: the budget runs out, a typed error
    with pytest.raises(DatabaseBusyError):
        SessionDB(path, config=config, retry=policy)
    assert now[0] >= 1.0
    blocker.execute("ROLLBACK")
    blocker.close()
