"""`doctor --fix` never damages (a failed repair leaves every byte; a good one is swapped in whole),
`doctor --salvage` copies the readable rows into a new file, and the output says what to run next."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hermes_state import RepairError, SessionDB, check_health
from hermes_state.config import ENV_VARS
from hermes_state.doctor import DETAIL_LINES, format_text, run_doctor
from hermes_state.health import HealthReport
from hermes_state.workcopy import Fingerprint, swap_in

REPO = Path(__file__).resolve().parents[2]
SIDES = ("", "-wal", "-shm", "-journal")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _doctor(*args: str, path_env: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONPATH"] = str(REPO)
    if path_env is not None:
        env["PATH"] = path_env
    return subprocess.run([sys.executable, "-m", "hermes_state", "doctor", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _digests(db: Path) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for suffix in SIDES:
        p = Path(f"{db}{suffix}")
        out[suffix] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    return out


def _populate(path: Path, n: int = 300) -> None:
    db = SessionDB(path)
    try:
        db.create_session("a", "cli")
        db.create_session("b", "telegram")
        for i in range(n):
            db.append_message("a" if i % 3 else "b", "user", f"message {i} about lighthouse keepers " + "z" * (i * 37 % 900))
    finally:
        db.close()


def _truncated_with_wal(tmp_path: Path) -> Path:
    """A database of 300 messages plus 20 more still in its -wal (the writer died), whose main file
    then lost its last 6 pages and 1000 bytes (no longer a multiple of the page size)."""
    path = tmp_path / "state.db"
    _populate(path)
    child = textwrap.dedent(
        """
        import os, sys
        from hermes_state import SessionDB
        db = SessionDB(sys.argv[1])
        for i in range(20):
            db.append_message("a", "assistant", f"wal message {i}")
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", child, str(path)], check=True, cwd=REPO, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    assert Path(f"{path}-wal").stat().st_size > 0 and Path(f"{path}-shm").exists()
    size = path.stat().st_size
    os.truncate(path, size - 4096 * 6 - 1000)  # no connection is open: raw writes are safe here
    return path


def _corrupt_fts(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(
            "UPDATE messages_fts_data SET block = CAST(replace(hex(zeroblob(length(block))), '00', 'FF') AS BLOB) "
            "WHERE id > 10"
        )
    finally:
        conn.close()


def _rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        sessions = conn.execute("SELECT id, source FROM sessions ORDER BY id").fetchall()
        messages = conn.execute("SELECT id, session_id, content FROM messages ORDER BY id").fetchall()
        return sessions, messages
    finally:
        conn.close()


def test_failed_fix_leaves_the_database_and_its_wal_byte_for_byte(tmp_path: Path) -> None:
    path = _truncated_with_wal(tmp_path)
    before = _digests(path)
    assert before["-wal"] is not None and before["-shm"] is not None

    proc = _doctor(str(path), "--fix")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _digests(path) == before  # db, -wal and -shm untouched; no -journal appeared
    out = proc.stdout
    assert "repair: failed" in out and "was not changed" in out
    assert f"next: python -m hermes_state doctor {path} --salvage" in out
    assert len(out.splitlines()) < 40, out  # capped, not a page of "invalid page number"
    assert not list(tmp_path.glob(".state.db.work-*"))  # the private copy is gone
    backup = next(tmp_path.glob("state.db.bak-*-wal"))
    assert hashlib.sha256(backup.read_bytes()).hexdigest() == before["-wal"]

    again = _doctor(str(path), "--fix")  # and it stays that way: no second attempt has more to work on
    assert again.returncode == 1 and _digests(path) == before


def test_successful_fix_swaps_in_a_verified_copy_with_every_row(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _populate(path, n=120)
    rows = _rows(path)
    _corrupt_fts(path)
    inode = path.stat().st_ino
    assert _doctor(str(path)).returncode == 1

    proc = _doctor(str(path), "--fix", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["repair"]["outcome"] == "repaired" and report["healthy"] is True
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not edited in place
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    health = check_health(path)
    assert health.healthy and health.message_count == 120
    assert _rows(path) == rows
    assert Path(report["repair"]["backup"][0]).exists()
    assert not list(tmp_path.glob(".state.db.work-*"))


def test_swap_refuses_when_the_original_changed_or_the_copy_has_a_wal(tmp_path: Path) -> None:
    db, work = tmp_path / "state.db", tmp_path / "work.db"
    _populate(db, n=3)
    shutil.copyfile(db, work)
    stamp = Fingerprint.of(db)
    Path(f"{db}-wal").write_bytes(b"")  # someone opened it meanwhile
    with pytest.raises(RepairError, match="changed while"):
        swap_in(work, db, expected=stamp)
    stamp = Fingerprint.of(db)
    Path(f"{work}-wal").write_bytes(b"x")
    with pytest.raises(RepairError, match="still has -wal"):
        swap_in(work, db, expected=stamp)
    assert work.exists() and Path(f"{db}-wal").exists()  # nothing moved, nothing deleted


def _fake_shell(bin_dir: Path, sql: str) -> None:
    """A stand-in `sqlite3` whose `.recover` prints *sql* (the shell's output format, its plumbing tested)."""
    bin_dir.mkdir()
    (bin_dir / "recover.sql").write_text(sql)
    script = bin_dir / "sqlite3"
    script.write_text(textwrap.dedent(
        f"""\
        #!{sys.executable}
        import os, sys
        assert sys.argv[2:] == [".recover"], sys.argv
        assert ".work-" in sys.argv[1], "must run on the private copy, not the original"
        sys.stdout.write(open(os.path.join(os.path.dirname(__file__), "recover.sql")).read())
        """
    ))
    script.chmod(0o755)


def test_salvage_row_by_row_without_a_shell_keeps_the_original(tmp_path: Path) -> None:
    path = _truncated_with_wal(tmp_path)
    before = _digests(path)
    out = tmp_path / "saved.db"
    proc = _doctor(str(path), "--salvage", "--out", str(out), "--json", path_env=str(tmp_path / "no-bin"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)["salvage"]
    assert report["method"] == "row-by-row" and report["recover_error"] == "no sqlite3 shell on PATH"
    assert _digests(path) == before
    sessions, messages = _rows(out)
    assert [s[0] for s in sessions] == ["a", "b"]
    assert report["tables"]["sessions"]["written"] == 2
    assert report["tables"]["messages"]["written"] == len(messages) and 250 < len(messages) < 320
    assert report["tables"]["messages"]["read_errors"] >= 1
    ids = [m[0] for m in messages]
    assert ids == sorted(set(ids)) and ids[0] == 1
    assert all(str(m[2]).startswith(("message ", "wal message ")) for m in messages)
    assert check_health(out).healthy

    text = _doctor(str(path), "--salvage", "--out", str(tmp_path / "again.db"), path_env=str(tmp_path / "no-bin"))
    assert "salvage: method row-by-row" in text.stdout and "salvage: messages:" in text.stdout
    assert "was not changed" in text.stdout
    exists = _doctor(str(path), "--salvage", "--out", str(out))  # never overwrites
    assert exists.returncode == 2 and "exists" in exists.stderr
    assert _doctor(str(path), "--out", str(tmp_path / "x.db")).returncode == 2  # --out needs --salvage
    assert _doctor(str(path), "--fix", "--salvage").returncode == 2


def test_salvage_uses_the_shells_recover_when_it_works(tmp_path: Path) -> None:
    path = _truncated_with_wal(tmp_path)
    before = _digests(path)
    _fake_shell(tmp_path / "bin", textwrap.dedent(
        """\
        BEGIN;
        PRAGMA writable_schema = on;
        CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT NOT NULL, started_at REAL NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id TEXT NOT NULL, role TEXT NOT NULL,
            content TEXT, timestamp REAL NOT NULL);
        INSERT INTO 'sessions'(rowid, id, source, started_at, message_count) VALUES (1, 'a', 'cli', 1.0, 9);
        INSERT INTO 'messages'(id, session_id, role, content, timestamp) VALUES (1, 'a', 'user', 'kept', 2.0);
        INSERT INTO 'messages'(id, session_id, role, content, timestamp) VALUES (7, 'gone', 'user', 'orphan', 3.0);
        PRAGMA writable_schema = off;
        COMMIT;
        """
    ))
    out = tmp_path / "saved.db"
    proc = _doctor(str(path), "--salvage", "--out", str(out), "--json",
                   path_env=f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)["salvage"]
    assert report["method"] == "sqlite3 .recover" and report["recover_error"] is None
    assert report["tables"]["messages"]["written"] == 2 and report["stub_sessions"] == 1
    assert _rows(out) == ([("a", "cli"), ("gone", "salvaged")], [(1, "a", "kept"), (7, "gone", "orphan")])
    assert check_health(out).healthy  # message_count recomputed from the rows salvaged
    assert _digests(path) == before


def test_salvage_with_the_real_shell_falls_back_when_recover_fails(tmp_path: Path) -> None:
    shell = shutil.which("sqlite3")
    if shell is None:
        pytest.skip("no sqlite3 shell on this machine")
    path = _truncated_with_wal(tmp_path)
    before = _digests(path)
    proc = _doctor(str(path), "--salvage", "--out", str(tmp_path / "saved.db"), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)["salvage"]
    # Debian's shell (3.40.1) is built without sqlite_dbpage: ".recover" fails with "SQL logic error".
    if report["method"] == "row-by-row":
        assert ".recover failed" in report["recover_error"]
    else:
        assert report["method"] == "sqlite3 .recover" and report["recover_error"] is None
    assert report["tables"]["messages"]["written"] > 250 and report["tables"]["sessions"]["written"] == 2
    assert _digests(path) == before


def test_unhealthy_text_caps_detail_and_names_the_next_command(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _populate(path, n=5)
    report = run_doctor(path)
    bad = HealthReport(**{**vars(report.health), "integrity": tuple(f"invalid page number {i}" for i in range(108)),
                          "errors": tuple(f"error {i}" for i in range(25))})
    text = format_text(type(report)(**{**vars(report), "health": bad}))
    assert text.count("invalid page number") == DETAIL_LINES and "... 98 more integrity lines" in text
    assert "... 15 more error lines" in text
    assert "UNHEALTHY" in text and "next: python -m hermes_state doctor" not in text  # hints come from run_doctor
    _corrupt_fts(path)
    text = format_text(run_doctor(path))
    assert f"next: python -m hermes_state doctor {path} --fix" in text and "--salvage" in text


def test_library_repair_that_fails_leaves_the_original_too(tmp_path: Path) -> None:
    from hermes_state import RepairOutcome, repair_state_db  # SessionDB's heal path (replay mode)

    path = _truncated_with_wal(tmp_path)
    before = _digests(path)
    result = repair_state_db(path)
    assert result.outcome is RepairOutcome.FAILED and result.error
    assert _digests(path) == before


def test_a_repair_that_loses_rows_is_refused(tmp_path: Path) -> None:
    from hermes_state.repair import RowCounts, _problem

    path = tmp_path / "state.db"
    _populate(path, n=3)
    sound = check_health(path)
    assert _problem(sound, RowCounts(2, 3), RowCounts(2, 3)) is None
    assert "row counts changed" in (_problem(sound, RowCounts(2, 3), RowCounts(2, 2)) or "")
    assert "row counts changed" in (_problem(sound, RowCounts(2, 3), None) or "")


@pytest.mark.parametrize("action", [["--fix"], ["--salvage"], ["--fix", "--json"], ["--salvage", "--json"]])
def test_no_output_names_the_deleted_working_copy(tmp_path: Path, action: list[str]) -> None:
    """--fix and --salvage work on a copy in a directory that is gone when they return: what they print
    names the user's file."""
    path = tmp_path / "state.db"
    path.write_bytes(os.urandom(8192))  # not a database
    proc = _doctor(str(path), *action)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"file is not a database: {path}" in proc.stderr and ".work-" not in proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def test_a_failed_recover_and_a_failed_repair_name_the_original(tmp_path: Path) -> None:
    from hermes_state import repair_state_db

    path = _truncated_with_wal(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shell = bin_dir / "sqlite3"  # fails as the real shell does, naming the file it was given
    shell.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(f'Error: unable to open database \"{{sys.argv[1]}}\"')\n")
    shell.chmod(0o755)
    proc = _doctor(str(path), "--salvage", "--out", str(tmp_path / "saved.db"), "--json",
                   path_env=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)["salvage"]
    assert report["method"] == "row-by-row" and f'unable to open database "{path}"' in report["recover_error"]
    assert ".work-" not in proc.stdout + proc.stderr
    result = repair_state_db(path)
    assert result.before is not None and result.after is not None
    assert (result.before.path, result.after.path) == (str(path), str(path))
    assert ".work-" not in json.dumps(result.to_dict(), default=str)
