"""A broken store floods no log: the workload notes an unusable store once, then only probes it (real store, real errors)."""

from __future__ import annotations

import dataclasses
import pathlib
import sqlite3
import time

import pytest

import hermes_state
from framing import framed

from repro.ledger import Ledger, Outcome, parse_lines
from repro.protocol import EventKind, Tag, parse_line
from repro.verify.diff import diff
from repro.verify.probe import collect
from repro.workload.__main__ import Workload
from repro.workload.config import WorkloadConfig
from repro.workload.spec import DEFAULT_MIX
from repro.workload.refusals import PROBE_EVERY_S, REFUSALS_LIMIT, Change, Refusals, is_passing, sqlite_codes

STORE_ROOT = pathlib.Path(__file__).resolve().parents[2]


def workload(tmp: pathlib.Path, mix: str = DEFAULT_MIX, ops: int = 0, seed: int = 3) -> Workload:
    cfg = WorkloadConfig(seed=seed, db_path=str(tmp / "state.db"), mix=mix, ops=ops)
    return Workload(cfg, hermes_state, None)


def run_for(w: Workload, seconds: float) -> float:
    """Run the workload's own loop until its stop time (as after a stop signal); the seconds it really ran."""
    w.cfg = dataclasses.replace(w.cfg, ops=0)
    start = time.monotonic()
    w.stop_at = start + seconds
    w.run()
    return time.monotonic() - start


def events(out: str, kind: EventKind) -> list[dict[str, object]]:
    lines = (parse_line(raw) for raw in out.splitlines())
    return [dict(line.payload) for line in lines if line is not None and line.is_event(kind)]


def ledger_lines(out: str) -> int:
    return sum(1 for line in map(parse_line, out.splitlines()) if line is not None and line.tag is Tag.LEDGER)


def test_a_store_that_closed_itself_is_noted_once_and_probed_not_flooded(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The hunt's 3.51.2 trials: the store closed itself after a failed repair, and the workload called
    it flat out (854,172 calls in 59 s of one trial: 208 MB of log). Now: REFUSALS_LIMIT refused writes,
    one event, then one call per PROBE_EVERY_S, alive until the stop."""
    w = workload(tmp_path, ops=60)
    w.run()
    healthy = capsys.readouterr().out
    w.db.close()  # what the store does itself when its repair fails: every later call raises StoreClosedError
    ran = run_for(w, 2.5)
    broken = capsys.readouterr().out

    assert ran >= 2.5  # alive until the stop, not ended by the broken store
    after = parse_lines(broken.splitlines())
    assert len(after.operations) < 2 * REFUSALS_LIMIT + ran / PROBE_EVERY_S  # (before: 108,391 calls in 2.5 s)
    assert events(healthy, EventKind.STORE_UNUSABLE) == []
    [unusable] = events(broken, EventKind.STORE_UNUSABLE)
    refused = [op for op in after.operations if op.outcome is not Outcome.OK]
    assert len(refused) == len(after.operations)  # nothing succeeds on a closed store
    writes_to_limit = [op for op in refused if op.is_write][:REFUSALS_LIMIT]
    assert unusable["role"] == "gateway" and unusable["refused"] == REFUSALS_LIMIT
    assert unusable["since"] == writes_to_limit[0].index and unusable["i"] == writes_to_limit[-1].index
    errors = unusable["errors"]
    assert unusable["acks"] == w.acks and isinstance(errors, list) and any("StoreClosedError" in e for e in errors)
    probes = [op for op in refused if op.index > int(str(unusable["i"]))]
    assert 1 <= len(probes) <= ran / PROBE_EVERY_S + 1  # a bounded rate, not thousands a second
    assert len(refused) <= REFUSALS_LIMIT * 1.2 + len(probes)  # the few reads among the refused writes
    assert ledger_lines(broken) == 2 * len(refused)  # every call made is still recorded: invoke + info

    # The oracle's view: every acknowledged write of the healthy part is in the merged ledger and the file.
    whole = parse_lines(healthy.splitlines() + broken.splitlines())
    v = diff(whole, collect(tmp_path / "state.db", str(STORE_ROOT)))
    assert v.acked == w.acks > 40 and v.lost_acked == 0 and not v.corrupt, v.problems()


def test_a_store_that_refuses_writes_then_takes_them_again_recovers_at_full_pace(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only store (SQLITE_READONLY: a counting refusal) becomes unusable; once it takes writes
    again, the next probe is acknowledged, one event says so and the workload is back at full pace."""
    w = workload(tmp_path, mix="append=1", ops=20)
    w.run()
    capsys.readouterr()
    w.db._conn.execute("PRAGMA query_only = 1")  # the store's own connection refuses every write
    run_for(w, 1.2)
    refusing = capsys.readouterr().out
    w.db._conn.execute("PRAGMA query_only = 0")
    run_for(w, 1.5)
    working = capsys.readouterr().out

    [unusable] = events(refusing, EventKind.STORE_UNUSABLE)
    failed = parse_lines(refusing.splitlines()).operations
    assert all(op.outcome is Outcome.FAIL and "readonly" in op.error for op in failed)  # recorded as before
    assert REFUSALS_LIMIT <= len(failed) <= REFUSALS_LIMIT + 3 and unusable["since"] == failed[0].index
    [recovered] = events(working, EventKind.STORE_RECOVERED)
    first_ok = parse_lines(working.splitlines()).operations[0]
    assert first_ok.outcome is Outcome.OK and recovered["i"] == first_ok.index and recovered["probes"] >= 1
    assert len(parse_lines(working.splitlines()).acked) > 50  # flat out again, not one a second
    assert events(working, EventKind.STORE_UNUSABLE) == []


def test_a_full_disk_is_waited_out_and_never_makes_the_store_unusable(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SQLITE_FULL (the disk-fill faults) passes when space is freed: the workload keeps writing into
    the full disk at its pace, every failure in the ledger, and writes again once there is room."""
    w = workload(tmp_path, mix="append=1", ops=10)
    w.run()
    capsys.readouterr()
    pages = w.db._conn.execute("PRAGMA page_count").fetchone()[0]
    w.db._conn.execute(f"PRAGMA max_page_count = {pages}")  # the store's file cannot grow: "disk is full"
    w.cfg = dataclasses.replace(w.cfg, ops=10 + REFUSALS_LIMIT + 20)
    w.run()
    full = capsys.readouterr().out
    failed = [op for op in parse_lines(full.splitlines()).operations if op.outcome is Outcome.FAIL]
    assert len(failed) > REFUSALS_LIMIT and all("DiskFullError" in op.error for op in failed[:5])
    assert events(full, EventKind.STORE_UNUSABLE) == []
    w.db._conn.execute("PRAGMA max_page_count = 1073741823")
    w.cfg = dataclasses.replace(w.cfg, ops=w.index + 10)
    w.run()
    assert all(op.acked for op in parse_lines(capsys.readouterr().out.splitlines()).operations)


# -- the rule, on errors SQLite really raises ----------------------------------------------------------


def _error(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the error is the subject
        return exc
    raise AssertionError("no error")


def test_busy_full_and_constraint_errors_pass_malformed_and_not_a_database_count(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "x.db"
    first = sqlite3.connect(db, isolation_level=None)
    first.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    first.execute("BEGIN EXCLUSIVE")
    second = sqlite3.connect(db, timeout=0, isolation_level=None)
    locked = _error(lambda: second.execute("INSERT INTO t (v) VALUES ('x')"))
    first.execute("ROLLBACK")
    constraint = _error(lambda: first.execute("INSERT INTO t (v) VALUES (NULL)"))
    first.execute("PRAGMA max_page_count = 2")
    full = _error(lambda: first.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 2000,)] * 50))
    assert sqlite_codes(locked) == {5} and sqlite_codes(full) == {13} and sqlite_codes(constraint) == {19}
    assert is_passing(locked) and is_passing(full) and is_passing(constraint)

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is no database " * 400)
    not_a_db = _error(lambda: sqlite3.connect(junk).execute("SELECT * FROM sqlite_schema").fetchall())
    assert sqlite_codes(not_a_db) == {26} and not is_passing(not_a_db)

    broken = tmp_path / "broken.db"
    conn = sqlite3.connect(broken, isolation_level=None)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("y" * 300,)] * 200)
    conn.close()
    raw = bytearray(broken.read_bytes())
    raw[4096:8192] = b"\xa5" * 4096  # the table's root page: garbage
    broken.write_bytes(bytes(raw))
    malformed = _error(lambda: sqlite3.connect(broken).execute("SELECT count(*) FROM t").fetchall())
    assert sqlite_codes(malformed) == {11} and not is_passing(malformed)


def test_the_store_s_own_errors_keep_sqlite_s_code_in_their_chain(tmp_path: pathlib.Path) -> None:
    """hermes_state raises its own errors *from* sqlite3's: the rule reads the code there; a closed store has none."""
    db = hermes_state.SessionDB(tmp_path / "s.db")
    db.create_session("a", "cli")
    db._conn.execute("PRAGMA max_page_count = 1")
    full = _error(lambda: db.append_message("a", "user", "z" * 9000))
    assert type(full).__name__ == "DiskFullError" and is_passing(full)
    db._conn.execute("PRAGMA max_page_count = 1073741823")
    db.close()
    closed = _error(lambda: db.append_message("a", "user", "z"))
    assert type(closed).__name__ == "StoreClosedError" and not is_passing(closed)
    # a store that drops the code (upstream's may re-raise plain exceptions): the words decide
    assert is_passing(RuntimeError("database is locked")) and not is_passing(RuntimeError("disk I/O error"))


def test_only_writes_count_passing_failures_neither_count_nor_reset_and_an_ack_resets() -> None:
    bad, full = RuntimeError("database disk image is malformed"), RuntimeError("database or disk is full")
    r = Refusals(limit=3)
    assert r.refused(1, True, bad, "e1") is None and r.refused(2, False, bad, "read") is None
    assert r.refused(3, True, full, "full") is None and r.acknowledged(False) is None  # a read's ok: no reset
    assert (r.streak, r.since) == (1, 1)
    assert r.refused(4, True, bad, "e1") is None
    assert r.refused(5, True, bad, "e2") is Change.UNUSABLE and r.unusable
    assert (r.since, r.errors) == (1, ["e1", "e2"])
    assert r.refused(6, True, bad, "e3") is None and r.probes == 1  # noted once
    assert r.acknowledged(True) is Change.RECOVERED and not r.unusable and r.probes == 2
    assert (r.streak, r.errors) == (0, [])
    assert r.refused(7, True, bad, "e1") is None and r.acknowledged(True) is None and r.streak == 0


def test_the_ledger_reads_the_new_events_as_events() -> None:
    lines = ['READY {"journal_mode":"wal"}', 'LEDGER {"i":1,"t":"invoke","op":"append_message","args":{}}',
             'LEDGER {"i":1,"t":"info","err":"StoreClosedError: closed"}',
             'EVENT {"kind":"store-unusable","role":"gateway","i":1,"since":1,"refused":1,"errors":[],"acks":0}']
    ledger: Ledger = parse_lines(framed(lines))
    assert [e["kind"] for e in ledger.events] == [EventKind.STORE_UNUSABLE.value]
    assert len(ledger.operations) == 1 and ledger.operations[0].outcome is Outcome.INFO
