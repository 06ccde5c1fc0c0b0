"""Detection, backup and repair of malformed databases, and the doctor command's exit codes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hermes_state import (
    CorruptDatabaseError,
    FtsStatus,
    RepairOutcome,
    SessionDB,
    check_health,
    is_malformed_db_error,
    repair_state_db,
)
from hermes_state.__main__ import main as cli_main
from hermes_state.config import ENV_VARS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _populate(path: Path, n: int = 60) -> list[tuple[int, str]]:
    db = SessionDB(path)
    try:
        db.create_session("a", "cli")
        db.create_session("b", "telegram")
        out = []
        for i in range(n):
            content = f"message {i} about lighthouse keepers " + "z" * (i * 37 % 900)
            out.append((db.append_message("a" if i % 3 else "b", "user", content), content))
        return out
    finally:
        db.close()


def _raw_messages(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        return [(int(r[0]), str(r[1])) for r in conn.execute("SELECT id, content FROM messages ORDER BY id")]
    finally:
        conn.close()


def _duplicate_schema_row(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("INSERT INTO sqlite_master SELECT * FROM sqlite_master WHERE name='idx_messages_session'")
    conn.execute("PRAGMA writable_schema=OFF")


def _corrupt_fts(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(
            "UPDATE messages_fts_data SET block = CAST(replace(hex(zeroblob(length(block))), '00', 'FF') AS BLOB) "
            "WHERE id > 10"
        )
    finally:
        conn.close()


def test_duplicate_schema_row_in_wal_is_backed_up_with_sidecars_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    # A writer corrupts the schema and dies without closing: the damage lives in the -wal.
    child = textwrap.dedent(
        """
        import os, sys
        from hermes_state import SessionDB
        db = SessionDB(sys.argv[1], config=None)
        db.create_session("w", "cli")
        for i in range(25):
            db.append_message("w", "assistant", f"wal message {i}")
        c = db._conn
        c.execute("PRAGMA writable_schema=ON")
        c.execute("INSERT INTO sqlite_master SELECT * FROM sqlite_master WHERE name='idx_messages_session'")
        os._exit(0)
        """
    )
    before = _populate(path)
    subprocess.run([sys.executable, "-c", child, str(path)], check=True, cwd=REPO, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    wal_bytes = Path(f"{path}-wal").read_bytes()  # no connection open: reading is safe
    assert wal_bytes and Path(f"{path}-shm").exists()

    # Repair backs up first, before any connection could checkpoint the WAL away.
    result = repair_state_db(path, backup=True)
    assert result.outcome is RepairOutcome.REPAIRED, result.to_dict()
    assert result.before is not None and not result.before.healthy
    backup = Path(result.backup[0])
    assert [Path(p).name for p in result.backup] == [backup.name, f"{backup.name}-wal", f"{backup.name}-shm"]
    assert Path(f"{backup}-wal").read_bytes() == wal_bytes
    kept = sqlite3.connect(backup)  # the evidence, malformed as it was found
    with pytest.raises(sqlite3.DatabaseError) as info:
        kept.execute("SELECT count(*) FROM messages").fetchone()
    kept.close()
    assert is_malformed_db_error(info.value)
    after = _raw_messages(path)
    assert [m for m in after if m[0] in dict(before)] == before
    assert len(after) == len(before) + 25
    report = check_health(path)
    assert report.healthy and report.message_count == len(after)


def test_corrupted_fts_index_is_detected_and_rebuilt_without_touching_messages(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    before = _populate(path)
    _corrupt_fts(path)
    report = check_health(path)
    assert report.fts is FtsStatus.CORRUPT and not report.healthy

    result = repair_state_db(path)
    assert result.outcome is RepairOutcome.REPAIRED
    assert [s.name for s in result.steps] == ["rebuild_fts"]
    assert Path(result.backup[0]).exists()
    assert _raw_messages(path) == before
    assert check_health(path).fts is FtsStatus.OK
    db = SessionDB(path)
    try:
        assert len(db.search_messages("lighthouse keepers")) == 20  # limit
        assert {m["id"] for m in db.search_messages("message 7", limit=100)} >= {before[7][0]}
    finally:
        db.close()


def test_store_heals_a_malformed_database_once_per_process(tmp_path: Path) -> None:
    fts_path, schema_path = tmp_path / "fts.db", tmp_path / "schema.db"
    fts_before = _populate(fts_path)
    _corrupt_fts(fts_path)
    db = SessionDB(fts_path)  # opens fine: FTS damage shows only when the index is read
    try:
        assert db.healed is None
        hits = db.search_messages("lighthouse", limit=1000)  # hits the damage, heals, retries
        assert db.healed is not None and db.healed.outcome is RepairOutcome.REPAIRED
        assert len(hits) == len(fts_before)
    finally:
        db.close()

    schema_before = _populate(schema_path)
    conn = sqlite3.connect(schema_path, isolation_level=None)
    _duplicate_schema_row(conn)
    conn.close()
    db = SessionDB(schema_path)  # the schema fails to load on open: healed there
    try:
        assert db.healed is not None and db.healed.outcome is RepairOutcome.REPAIRED
        got = sorted((int(m["id"]), str(m["content"])) for m in db.get_messages("a") + db.get_messages("b"))
        assert got == schema_before
    finally:
        db.close()
    conn = sqlite3.connect(schema_path, isolation_level=None)
    _duplicate_schema_row(conn)
    conn.close()
    with pytest.raises(CorruptDatabaseError, match="after a repair in this process"):
        SessionDB(schema_path)  # only once per process


def test_unrepairable_file_fails_safe_and_keeps_the_backup(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _populate(path, n=300)
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    leaf = conn.execute("SELECT pageno FROM dbstat WHERE name='messages' AND pagetype='leaf' LIMIT 1 OFFSET 2").fetchone()[0]
    conn.close()
    with open(path, "r+b") as fh:  # no connection is open: raw writes are safe here
        fh.seek((leaf - 1) * page_size + 8)
        fh.write(b"\xa5" * (page_size - 8))
    damaged = path.read_bytes()

    result = repair_state_db(path)
    assert result.outcome is RepairOutcome.FAILED and result.error
    assert Path(result.backup[0]).read_bytes() == damaged
    assert path.exists()
    steps = {s.name: s for s in result.steps}
    vacuum = steps["drop_derived_and_vacuum"]  # refused to rewrite a file whose rows are unreadable
    assert not vacuum.ok and "refusing" in (vacuum.error or "")
    with pytest.raises(CorruptDatabaseError, match="backup kept"):
        db = SessionDB(path)
        db.get_messages("a")
    assert path.exists()


def test_doctor_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.db"
    _populate(path, n=10)
    assert cli_main(["doctor", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] is True and report["exit_code"] == 0
    assert report["journal_mode"] == "wal" and report["sqlite_version"] == sqlite3.sqlite_version
    assert set(report["pragmas"]) == {"journal_mode", "synchronous", "busy_timeout", "foreign_keys"}
    assert report["health"]["message_count"] == 10 and report["repair"] is None

    assert cli_main(["doctor", str(tmp_path / "missing.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err and "Traceback" not in err
    assert not (tmp_path / "missing.db").exists()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an sqlite database" * 200)
    assert cli_main(["doctor", str(junk)]) == 2
    assert "not a database" in capsys.readouterr().err

    _corrupt_fts(path)
    assert cli_main(["doctor", str(path)]) == 1
    assert "UNHEALTHY" in capsys.readouterr().out
    assert cli_main(["doctor", str(path), "--fix", "--json"]) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert fixed["repair"]["outcome"] == "repaired" and fixed["health"]["fts"] == "ok"

    proc = subprocess.run([sys.executable, "-m", "hermes_state", "doctor", str(junk)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_write_hitting_a_corrupt_index_heals_and_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    before = _populate(path, n=400)
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = [r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name='idx_messages_session'")]
    conn.close()
    with open(path, "r+b") as fh:  # no connection is open: raw writes are safe here
        for page in pages:
            fh.seek((page - 1) * page_size)
            fh.write(b"\x0d" + b"\xa5" * (page_size - 1))
    db = SessionDB(path)
    try:
        mid = db.append_message("a", "user", "written after the heal")
        assert db.healed is not None and db.healed.outcome is RepairOutcome.REPAIRED
        assert [(s.name, s.ok) for s in db.healed.steps][-1] == ("drop_derived_and_vacuum", True)
        got = [(int(m["id"]), str(m["content"])) for m in db.get_messages("a") + db.get_messages("b")]
        assert sorted(got) == sorted(before + [(mid, "written after the heal")])
        assert db.check_health().healthy
    finally:
        db.close()
