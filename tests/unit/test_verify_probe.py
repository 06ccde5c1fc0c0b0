"""The probe reports the file as found: raw checks before the store, errors recorded, one PROBE line.

Covers repro.verify.probe (the raw checks), repro.verify.sandbox (the store under test)
and repro.verify.facts (the PROBE line's codec).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import repro.verify.probe as probe_module
from repro.protocol import frame
from repro.verify.facts import (
    PROBE_FORMAT,
    ChangedSession,
    MessageRow,
    Preexisting,
    Check,
    CheckStatus,
    ProbeError,
    ProbeFacts,
    SessionRow,
    StoreFacts,
    parse_probe_output,
)
from repro.verify.probe import collect, content_sha256
from repro.verify.sandbox import interpret_health
from test_verify_support import FakeWorkload, sha, standard_run, tear_page

REPO = pathlib.Path(__file__).resolve().parents[2]


def write_store(root: pathlib.Path, body: str) -> pathlib.Path:
    """A stand-in store package ``hermes_state`` under ``root`` (for --store-path)."""
    pkg = root / "hermes_state"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    return root


def test_content_hash_matches_the_ledger_convention() -> None:
    assert content_sha256("h\u00e9") == hashlib.sha256("h\u00e9".encode()).hexdigest()
    assert content_sha256(None) == hashlib.sha256(b"").hexdigest()
    assert content_sha256(b"\x00\x01") == hashlib.sha256(b"\x00\x01").hexdigest()


def test_missing_database_is_reported_and_not_created(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    facts = collect(db)
    assert facts.exists is False
    assert facts.integrity.status is CheckStatus.UNAVAILABLE
    assert not db.exists()
    assert facts.store.opened is False


def test_healthy_database_rows_and_checks(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    w = standard_run(db)
    facts = collect(db, open_store=False)
    w.close()
    assert facts.integrity.status is CheckStatus.OK
    assert facts.foreign_keys.status is CheckStatus.OK and facts.fk_violations == 0
    assert facts.fts.status is CheckStatus.OK and facts.fts.messages == ("messages_fts: ok",)
    assert facts.journal_mode == "wal"
    assert [f.name for f in facts.files][:1] == ["state.db"]
    by_session = {}
    for m in facts.messages:
        by_session.setdefault(m.session_id, []).append(m.sha)
    assert by_session["s2"][0] == sha(None)
    assert len(by_session["s1"]) == 6
    s2 = next(s for s in facts.sessions if s.id == "s2")
    assert (s2.message_count, s2.input_tokens, s2.output_tokens, s2.end_reason) == (2, 5, 7, "user_exit")
    assert facts.messages_error is None and facts.sessions_error is None


def test_sidecar_sizes_are_taken_before_recovery(tmp_path: pathlib.Path) -> None:
    """A live WAL is reported as found, though the probe's own connection checkpoints it away."""
    db = tmp_path / "state.db"
    w = standard_run(db)  # connection still open: the -wal holds the commits
    wal_before = (tmp_path / "state.db-wal").stat().st_size
    facts = collect(db, open_store=False)
    w.close()
    sizes = {f.name: f.size for f in facts.files}
    assert wal_before > 0 and sizes["state.db-wal"] == wal_before


def test_torn_page_fails_integrity_and_is_recorded_not_raised(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    w = FakeWorkload(db, journal_mode="delete")
    w.create_session("s1")
    for n in range(300):
        w.append("s1", f"row {n} " + "y" * 400)
    w.close()
    tear_page(db)
    facts = collect(db, open_store=False)
    assert facts.integrity.status in (CheckStatus.FAILED, CheckStatus.ERROR)
    assert facts.integrity.messages
    assert facts.probe_error is None


def test_not_a_database(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not sqlite" * 300)
    facts = collect(db, open_store=False)
    assert facts.integrity.status is CheckStatus.ERROR
    assert "not a database" in facts.integrity.messages[0]
    assert facts.messages_error and facts.sessions_error
    assert facts.probe_error is None


def test_fts_out_of_step_with_its_content_is_caught(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    w = standard_run(db)
    w.sql("DROP TRIGGER messages_fts_au")
    w.sql("UPDATE messages SET content = 'rewritten behind the index' WHERE id = 1")
    w.close()
    facts = collect(db, open_store=False)
    assert facts.fts.status is CheckStatus.FAILED
    assert facts.integrity.status is CheckStatus.OK  # only the FTS check sees it


def test_fts_named_otherwise_or_absent(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "a.db"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE sessions(id TEXT PRIMARY KEY); CREATE TABLE messages(id INTEGER PRIMARY KEY,"
                       " session_id TEXT, content TEXT); CREATE VIRTUAL TABLE search_idx USING fts5(content);")
    conn.close()
    facts = collect(db, open_store=False)
    assert facts.fts.status is CheckStatus.OK and facts.fts.messages == ("search_idx: ok",)
    # sessions without the counter columns still reads, as NULLs
    assert facts.sessions_error is None

    db2 = tmp_path / "b.db"
    conn = sqlite3.connect(db2)
    conn.executescript("CREATE TABLE sessions(id TEXT PRIMARY KEY); CREATE TABLE other(x);")
    conn.close()
    facts2 = collect(db2, open_store=False)
    assert facts2.fts.status is CheckStatus.UNAVAILABLE
    assert facts2.messages_error is not None and "messages" in facts2.messages_error


def test_raw_checks_run_before_the_store_heals(tmp_path: pathlib.Path) -> None:
    """A store that rebuilds FTS on open must not hide the damage from the probe."""
    db = tmp_path / "state.db"
    w = standard_run(db)
    w.sql("DROP TRIGGER messages_fts_au")
    w.sql("UPDATE messages SET content = 'drift' WHERE id = 2")
    w.close()
    store = write_store(tmp_path / "store", """
        import sqlite3
        class SessionDB:
            def __init__(self, path):
                self._conn = sqlite3.connect(path, isolation_level=None)
                self._conn.execute("INSERT INTO messages_fts(messages_fts) VALUES('rebuild')")
            def close(self):
                self._conn.close()
    """)
    facts = collect(db, str(store))
    assert facts.fts.status is CheckStatus.FAILED
    assert facts.store.opened is True
    after = sqlite3.connect(db)
    after.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES('integrity-check', 1)")  # healed now
    after.close()


def test_store_pragmas_and_doctor_from_a_stand_in_store(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    standard_run(db).close()
    store = write_store(tmp_path / "store", """
        import sqlite3
        class Report:
            healthy = False
            errors = ("counter check: 1 mismatch",)
        class SessionDB:
            def __init__(self, path):
                self._conn = sqlite3.connect(path, isolation_level=None, timeout=3.5)
                self._conn.execute("PRAGMA synchronous=1")
                self._conn.execute("PRAGMA foreign_keys=ON")
            def check_health(self):
                return Report()
            def close(self):
                self._conn.close()
    """)
    facts = collect(db, str(store))
    s = facts.store
    assert s.opened and s.error is None
    assert s.module is not None and s.module.startswith(str(store))
    assert (s.journal_mode, s.synchronous, s.busy_timeout, s.foreign_keys) == ("wal", 1, 3500, 1)
    assert s.doctor.status is CheckStatus.FAILED
    assert s.doctor.messages == ("counter check: 1 mismatch",)
    assert "hermes_state" not in sys.modules or not str(sys.modules["hermes_state"].__file__).startswith(str(store))


def test_store_without_doctor_and_store_that_cannot_open(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    standard_run(db).close()
    plain = write_store(tmp_path / "plain", """
        import sqlite3
        class SessionDB:
            def __init__(self, path):
                self._conn = sqlite3.connect(path)
            def close(self):
                self._conn.close()
    """)
    assert collect(db, str(plain)).store.doctor.status is CheckStatus.UNAVAILABLE
    broken = write_store(tmp_path / "broken", """
        class SessionDB:
            def __init__(self, path):
                raise RuntimeError("database disk image is malformed")
    """)
    s = collect(db, str(broken)).store
    assert s.opened is False and s.error == "RuntimeError: database disk image is malformed"
    assert s.import_failed is False
    bad = write_store(tmp_path / "bad", "def (:\n")
    s2 = collect(db, str(bad)).store
    # a store that cannot even be imported is the lab's problem (the import check refuses it before any trial)
    assert s2.opened is False and s2.error == "ImportError: syntax-error: hermes_state/__init__.py:1: invalid syntax"
    assert s2.import_failed


def test_import_failure_is_flagged_as_such(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    standard_run(db).close()
    store = write_store(tmp_path / "store", "import module_that_does_not_exist_anywhere\n")
    s = collect(db, str(store)).store
    assert s.import_failed is True


def test_real_store_opens_and_reports_pragmas(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hermes_state

    for var in getattr(hermes_state, "ENV_VARS", ()):
        monkeypatch.delenv(var, raising=False)
    db = tmp_path / "state.db"
    store = hermes_state.SessionDB(db)
    store.create_session("s1", "cli")
    msg_id = store.append_message("s1", "user", "hello")
    store.close()
    facts = collect(db, str(REPO))
    assert facts.store.opened, facts.store.error
    # the NS-506 preset: WAL + NORMAL, busy_timeout 2000, foreign keys on
    assert (facts.store.journal_mode, facts.store.synchronous, facts.store.busy_timeout,
            facts.store.foreign_keys) == ("wal", 1, 2000, 1)
    assert facts.store.doctor.status is CheckStatus.OK
    assert [(m.id, m.session_id, m.sha) for m in facts.messages] == [(msg_id, "s1", sha("hello"))]


def test_interpret_health_shapes() -> None:
    assert interpret_health(True).status is CheckStatus.OK
    assert interpret_health("ok").status is CheckStatus.OK
    assert interpret_health("fts corrupt").messages == ("fts corrupt",)
    assert interpret_health([]).status is CheckStatus.OK
    assert interpret_health({"ok": False, "problems": ["x"]}).messages == ("x",)
    assert interpret_health(42).status is CheckStatus.ERROR


def test_facts_round_trip_through_the_probe_line(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    standard_run(db).close()
    facts = collect(db, open_store=False)
    assert parse_probe_output(["noise", facts.to_line()]) == facts
    # every field away from its default, so a field the codec dropped or mangled shows
    store = StoreFacts(opened=True, error="E: x", attempted=True, module="/opt/store/hermes_state/__init__.py",
                       journal_mode="wal", synchronous=1, busy_timeout=2000, foreign_keys=1,
                       doctor=Check(CheckStatus.FAILED, ("fts: corrupt",)), healed="rebuilt")
    full = dataclasses.replace(facts, fk_violations=3, journal_mode="delete", messages_error="partial read",
                               sessions_error="E: y", store=store, probe_error="E: z",
                               sessions=facts.sessions + (SessionRow("s9", None, None, None, None),),
                               preexisting=Preexisting(3, (ChangedSession("old-1", ""),),
                                                       (MessageRow(7, "old-1", "ab" * 32),)))
    assert {f.name for f in dataclasses.fields(full) if getattr(full, f.name) == f.default} == set()
    assert parse_probe_output([full.to_line()]) == full


def test_parse_errors_are_typed() -> None:
    with pytest.raises(ProbeError):
        parse_probe_output(["nothing here"])
    with pytest.raises(ProbeError):
        parse_probe_output([frame("probe", 1, "PROBE {not json")])
    with pytest.raises(ProbeError):
        parse_probe_output([frame("probe", 1, 'PROBE {"format": 99}')])
    line = ProbeFacts(db_path="state.db", exists=True).to_line()
    with pytest.raises(ProbeError):  # a second PROBE record: which one is the probe's is not clear
        parse_probe_output([line, line])
    with pytest.raises(ProbeError):  # a PROBE record from another source is not the probe's
        parse_probe_output([frame("gateway", 1, line.partition(" ")[2])])
    with pytest.raises(ProbeError):
        ProbeFacts.from_obj({"format": 1, "messages": [["x"]]})
    good = ProbeFacts(db_path="state.db", exists=True).to_obj()
    assert ProbeFacts.from_obj(good) == ProbeFacts(db_path="state.db", exists=True)
    for bad in ({"messages": [["x"]]}, {"messages": [[1, "s1"]]}, {"exists": 1}, {"integrity": {"status": "meh"}},
                {"store": {"opened": True, "doctor": {"messages": ["no status"]}}}):
        with pytest.raises(ProbeError):
            ProbeFacts.from_obj({**good, **bad})
    with pytest.raises(ProbeError):
        ProbeFacts.from_obj({k: v for k, v in good.items() if k != "db_path"})
    assert good["format"] == PROBE_FORMAT


def test_module_runs_under_debian_python_stdlib_only(tmp_path: pathlib.Path) -> None:
    """`python3 -m repro.verify.probe` with the system interpreter (no venv packages) prints one PROBE line."""
    debian = pathlib.Path("/usr/bin/python3")
    if not debian.exists():
        pytest.skip("no /usr/bin/python3")
    db = tmp_path / "state.db"
    standard_run(db).close()
    store = write_store(tmp_path / "store", """
        import sqlite3
        class SessionDB:
            def __init__(self, path):
                self._conn = sqlite3.connect(path)
            def close(self):
                self._conn.close()
    """)
    proc = subprocess.run([str(debian), "-s", "-E", "-m", "repro.verify.probe", str(db), "--store-mount", str(store)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("@probe/1/")
    facts = parse_probe_output(lines)
    assert facts.integrity.ok and len(facts.messages) == 8 and facts.store.opened


def test_store_path_without_a_store_is_an_import_failure(tmp_path: pathlib.Path) -> None:
    """--store-path pointing nowhere must not silently test whatever hermes_state is installed."""
    db = tmp_path / "state.db"
    standard_run(db).close()
    (tmp_path / "empty").mkdir()
    s = collect(db, str(tmp_path / "empty")).store
    assert s.opened is False and s.import_failed is True


def test_unwritable_database_is_a_probe_error_not_corruption(tmp_path: pathlib.Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "state.db"
    standard_run(db).close()
    monkeypatch.setattr(probe_module.os, "access", lambda *args: False)
    facts = collect(db)
    assert facts.probe_error is not None and "cannot write" in facts.probe_error
    assert facts.integrity.status is CheckStatus.UNAVAILABLE
