"""Starting databases without Docker: the baseline of the rows a trial starts with, the probe's and the oracle's
view of them (a store that deletes or rewrites an old row is data loss), the cache, the upload stream and the
checks that a start fits the machine."""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import shutil
import sqlite3
import tarfile

import pytest

from repro.errors import ScenarioError
from repro.oracle.verdicts import Verdict, judge
from repro.scenario import StartSpec, get_profile
from repro.startdb.files import copy_from_db, load, start_rows
from repro.startdb.prepare import check_fit
from repro.startdb.restore import FILLER, filler_size, tar_bytes
from repro.verify.baseline import BASELINE_FILE, Baseline, take
from repro.verify.probe import collect
from test_verify_support import FakeWorkload, sha

FLY256 = get_profile("fly-256")


def _old_rows(w: FakeWorkload, sessions: int = 3, messages: int = 4) -> None:
    """Rows that were there before the trial (written behind the ledger's back: no ledger line)."""
    for s in range(sessions):
        w.sql("INSERT INTO sessions(id, source, model, started_at, message_count) VALUES (?, 'beta', 'm', 0, ?)",
              (f"old-{s}", messages))
        for m in range(messages):
            w.sql("INSERT INTO messages(session_id, role, content, timestamp) VALUES (?, 'user', ?, 0)",
                  (f"old-{s}", f"old message {s}/{m}"))


def _start(tmp_path: pathlib.Path) -> tuple[FakeWorkload, pathlib.Path]:
    """A database with old rows, copied into a cache as a starting database; the workload goes on writing."""
    db = tmp_path / "state.db"
    w = FakeWorkload(db)
    _old_rows(w)
    w.sql("PRAGMA wal_checkpoint(TRUNCATE)")
    files = copy_from_db(str(db), tmp_path / "cache")
    w.create_session("s1")
    for n in range(5):
        w.append("s1", f"new {n}")
    return w, files.directory


def _verdict(w: FakeWorkload, start_dir: pathlib.Path):  # type: ignore[no-untyped-def]
    baseline = Baseline.from_json((start_dir / BASELINE_FILE).read_text())
    facts = collect(w.path, open_store=False, baseline=baseline)
    return facts, judge(w.ledger(), facts, ("sigkill",), start=start_rows(start_dir))


def test_old_rows_are_checked_apart_from_the_trials_writes(tmp_path: pathlib.Path) -> None:
    w, start = _start(tmp_path)
    facts, judgement = _verdict(w, start)
    assert facts.preexisting is not None and facts.preexisting.checked == 3 and facts.preexisting.changed == ()
    assert {s.id for s in facts.sessions} == {"s1"} and len(facts.messages) == 5  # old rows are no phantoms
    assert judgement.verdict is Verdict.PASS and "the 15 pre-existing rows intact" in judgement.reason
    meta = load(start)
    assert meta is not None and (meta.sessions, meta.messages) == (3, 12)


@pytest.mark.parametrize(("tamper", "lost", "words"), [
    # the counter kept true is a rewrite of the session's row too
    ("DELETE FROM messages WHERE id = 1", 2, "session old-0: row rewritten; session old-0: message(s) 1 missing"),
    ("UPDATE messages SET content = 'edited' WHERE id = 6", 1, "session old-1: message(s) 6 missing"),
    ("UPDATE sessions SET end_reason = 'migrated' WHERE id = 'old-2'", 1, "session old-2: row rewritten"),
    ("DELETE FROM messages WHERE session_id = 'old-0'", 5, "session old-0: message(s) 1, 2, 3, 4 missing"),
])
def test_a_store_that_deletes_or_rewrites_an_old_row_loses_data(tmp_path: pathlib.Path, tamper: str, lost: int,
                                                                  words: str) -> None:
    w, start = _start(tmp_path)
    w.sql(tamper)
    if "DELETE FROM messages" in tamper:  # keep the counter true, as a careful migration would
        w.sql("UPDATE sessions SET message_count = (SELECT count(*) FROM messages m WHERE m.session_id = sessions.id)")
    _, judgement = _verdict(w, start)
    assert judgement.verdict is Verdict.LOST_ACKED and not judgement.expected
    assert judgement.verification is not None and judgement.verification.lost_preexisting == lost
    assert judgement.verification.lost_acked == 0 and words in judgement.reason


def test_losing_an_old_row_is_never_an_expected_loss_under_power_loss(tmp_path: pathlib.Path) -> None:
    w, start = _start(tmp_path)
    w.sql("DELETE FROM messages WHERE id = 2")
    w.sql("UPDATE sessions SET message_count = 3 WHERE id = 'old-0'")
    w.ready = {"journal_mode": "wal", "synchronous": 1}  # NORMAL: the last commits may go, old rows may not
    baseline = Baseline.from_json((start / BASELINE_FILE).read_text())
    judgement = judge(w.ledger(), collect(w.path, open_store=False, baseline=baseline), ("power-loss",),
                      start=start_rows(start))
    assert judgement.verdict is Verdict.LOST_ACKED


def test_a_missing_old_session_row_is_counted(tmp_path: pathlib.Path) -> None:
    w, start = _start(tmp_path)
    w.sql("PRAGMA foreign_keys=OFF")
    w.sql("DELETE FROM messages WHERE session_id = 'old-1'")
    w.sql("DELETE FROM sessions WHERE id = 'old-1'")
    _, judgement = _verdict(w, start)
    assert judgement.verification is not None and judgement.verification.lost_preexisting == 5
    assert "session old-1: row deleted" in judgement.reason


def test_the_users_files_are_copied_with_their_wal_and_only_read(tmp_path: pathlib.Path) -> None:
    user = tmp_path / "beta" / "state.db"
    user.parent.mkdir()
    w = FakeWorkload(user)
    _old_rows(w, sessions=2, messages=3)
    keep = sqlite3.connect(user)  # a second connection keeps the WAL when the first closes
    keep.execute("SELECT 1").fetchall()
    (user.parent / "state.db-wal").stat()
    for side in user.parent.iterdir():
        side.chmod(0o444)  # the user's files: read-only, so any write would fail
    before = {p.name: p.read_bytes() for p in user.parent.iterdir()}
    files = copy_from_db(str(user), tmp_path / "cache")
    assert {p.name: p.read_bytes() for p in user.parent.iterdir()} == before
    assert "state.db-wal" in files.names and (files.sessions, files.messages) == (2, 6)
    assert copy_from_db(str(user), tmp_path / "cache").directory == files.directory  # keyed by the bytes
    keep.close()
    w.close()


def test_a_database_that_is_not_a_session_store_is_refused(tmp_path: pathlib.Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.commit()
    with pytest.raises(ScenarioError, match="not a session store's: no such table: sessions"):
        copy_from_db(str(other), tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # nothing half-made left behind


def test_the_upload_is_a_tar_of_the_files_owned_by_the_machines_user(tmp_path: pathlib.Path) -> None:
    w, start = _start(tmp_path)
    w.close()
    files = load(start)
    assert files is not None
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(files, filler=8192))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {*files.names, FILLER}
        assert all((m.uid, m.gid) == (1000, 1000) for m in members.values())
        db = tar.extractfile(members["state.db"])
        assert db is not None and db.read() == (start / "state.db").read_bytes()
        assert members[FILLER].size == 8192


def test_the_filler_brings_the_disk_to_its_share() -> None:
    disk = 1 << 30
    assert filler_size(StartSpec(), disk, 0) == 0
    assert filler_size(StartSpec(fill_pct=94), disk, 0) == disk * 94 // 100 // 4096 * 4096
    assert filler_size(StartSpec(fill_pct=94), disk, 300 << 20) == (disk * 94 // 100 - (300 << 20)) // 4096 * 4096
    assert filler_size(StartSpec(fill_pct=10), disk, 300 << 20) == 0  # the database alone is past it


def test_a_start_must_fit_the_disk_and_the_rest_the_machines_memory() -> None:
    with pytest.raises(ScenarioError, match="does not fit fly-256's 64m disk: give --disk-size"):
        check_fit(FLY256, StartSpec(initial_size=100 << 20), 100 << 20)
    big = dataclasses.replace(FLY256, disk=1 << 30)
    with pytest.raises(ScenarioError, match="more than half its memory"):
        check_fit(big, StartSpec(), 0)
    check_fit(big, StartSpec(fill_pct=94), 0)  # the beta's disk, 94% full: 61 MB left to write
    check_fit(big, StartSpec(initial_size=900 << 20), 900 << 20)
    fly1g = dataclasses.replace(get_profile("fly-1g"), disk=768 << 20)
    check_fit(fly1g, StartSpec(initial_size=300 << 20), 300 << 20)
    with pytest.raises(ScenarioError, match="fewer --jobs"):
        check_fit(fly1g, StartSpec(initial_size=300 << 20), 300 << 20, jobs=2, host_memory=3 << 30)


def test_start_spec_is_checked_up_front(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ScenarioError, match="give one"):
        StartSpec(from_db=str(tmp_path / "x"), initial_size=1 << 30)
    with pytest.raises(ScenarioError, match="not a file"):
        StartSpec(from_db=str(tmp_path / "missing.db"))
    with pytest.raises(ScenarioError, match="from 1 to 99"):
        StartSpec(fill_pct=100)
    with pytest.raises(ScenarioError, match="at least 1m"):
        StartSpec(initial_size=4096)
    assert StartSpec(initial_size=300 << 20, fill_pct=94).describe() == "initial 300m, disk filled to 94%"


def test_the_baseline_digests_typed_values_and_missing_columns(tmp_path: pathlib.Path) -> None:
    w, start = _start(tmp_path)
    w.close()
    conn = sqlite3.connect(start / "state.db")
    baseline, rows = take(conn)
    conn.close()
    assert baseline.columns[0] == "id" and baseline.messages == 12 and set(baseline.sessions) == {"old-0", "old-1", "old-2"}
    assert rows["old-0"].messages[0] == (1, sha("old message 0/0"))
    assert json.loads((start / BASELINE_FILE).read_text())["sessions"] == dict(baseline.sessions)
    shutil.rmtree(start)


def test_a_database_grown_with_another_sqlite_is_another_cache_entry(tmp_path: pathlib.Path) -> None:
    """The grower loads the SQLite the trials load, so the build is part of the key; the image's own adds nothing."""
    from repro.scenario import StoreSpec
    from repro.startdb.grow import grown_key, store_fingerprint

    store = tmp_path / "store"
    store.mkdir()
    (store / "hermes_state.py").write_text("class SessionDB: ...\n")
    system = StoreSpec("ns506", store_path=str(store))
    built = dataclasses.replace(system, sqlite="3.53.2")
    assisted = dataclasses.replace(built, sqlite_assisted=True)
    assert not store_fingerprint(system).endswith("3.40.1") and "sqlite=" not in store_fingerprint(system)
    keys = {grown_key(1 << 20, 1, s) for s in (system, built, assisted)}
    assert len(keys) == 3


def test_uncommitted_wal_frames_never_become_the_start(tmp_path: pathlib.Path) -> None:
    """A -wal cut off mid-transaction is copied with the database: SQLite replays only committed frames, on the
    host's scratch copy as in the machine (and rebuilds the -shm), so the start is the committed rows."""
    from crashed_db import COMMITTED, crashed

    db = crashed(tmp_path / "beta", journal_mode="wal")
    files = copy_from_db(str(db), tmp_path / "cache")
    assert "state.db-wal" in files.names and (files.sessions, files.messages) == (3, COMMITTED)
    assert "uncommitted" not in start_rows(files.directory)


def test_a_hot_journal_is_never_copied_as_if_it_were_the_start(tmp_path: pathlib.Path) -> None:
    """Without an image to roll it back in (the CLI always has one: tests/integration/test_start_db.py), a
    database with a hot journal is refused, never copied without it."""
    from crashed_db import COMMITTED, crashed, messages_without_the_journal

    db = crashed(tmp_path / "beta")
    assert messages_without_the_journal(db, tmp_path / "alone") != str(COMMITTED)  # the file alone is wrong
    with pytest.raises(ScenarioError, match="has a rollback journal beside it"):
        copy_from_db(str(db), tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_an_empty_journal_is_not_hot_and_not_copied(tmp_path: pathlib.Path) -> None:
    (tmp_path / "beta").mkdir()
    w = FakeWorkload(tmp_path / "beta" / "state.db")
    _old_rows(w)
    w.sql("PRAGMA wal_checkpoint(TRUNCATE)")
    w.close()
    (tmp_path / "beta" / "state.db-journal").write_bytes(b"")  # what journal_mode=TRUNCATE leaves
    files = copy_from_db(str(tmp_path / "beta" / "state.db"), tmp_path / "cache")
    assert files.messages == 12 and "journal" not in " ".join(files.names) and files.made == "a copy, read-only"


def test_a_full_cache_is_named_not_the_users_file(tmp_path: pathlib.Path) -> None:
    """ENOSPC for real: the cache on a 64 KB tmpfs (mounted in a user and mount namespace of its own)."""
    import os
    import subprocess
    import sys
    import textwrap

    import shutil as sh

    from crashed_db import crashed

    if sh.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("no unprivileged user and mount namespaces to mount a small tmpfs in")
    db = crashed(tmp_path / "beta", journal_mode="wal")  # ~1 MB of database files
    cache = tmp_path / "cache"
    cache.mkdir()
    code = textwrap.dedent(f"""
        from repro.errors import CacheError, ScenarioError
        from repro.startdb.files import copy_from_db
        try:
            copy_from_db({str(db)!r}, __import__("pathlib").Path({str(cache)!r}) / "initial")
        except (CacheError, ScenarioError) as exc:
            print(type(exc).__name__, exc)
    """)
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=64k tmpfs "$1" && exec "$2" -c "$3"',
                           "sh", str(cache), sys.executable, code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])})
    kind, _, message = proc.stdout.strip().partition(" ")
    assert kind == "CacheError", proc.stdout + proc.stderr
    assert message.startswith(f"the lab's cache at {cache}/initial is full (No space left on device) while copying "
                              f"--from-db '{db}'"), message
    assert "cannot read" not in message and "HERMES_LAB_CACHE" in message
