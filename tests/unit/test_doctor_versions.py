"""The WAL-reset bug warning: the version range (with its backports) and only for WAL databases."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from hermes_state import SessionDB, in_wal_reset_bug_range
from hermes_state.__main__ import main as cli_main
from hermes_state.config import ENV_VARS, DurabilityConfig, JournalMode
from hermes_state.doctor import _header_says_wal, run_doctor
from hermes_state.versions import sqlite_version_tuple


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("3.6.23", False), ("3.6.99", False), ("3.7.0", True), ("3.7", True), ("3.40.1", True),
        ("3.44.0", True), ("3.44.5", True), ("3.44.6", False), ("3.44.9", False), ("3.45.0", True),
        ("3.50.6", True), ("3.50.7", False), ("3.51.0", True), ("3.51.2", True), ("3.51.3", False),
        ("3.53.0", False), ("3.53.2", False), ("4.0.0", False), ("2.8.17", False),
    ],
)
def test_wal_reset_bug_range_boundaries(version: str, affected: bool) -> None:
    assert in_wal_reset_bug_range(version) is affected
    if version.count(".") == 2:  # the lab's own copy of the range (repro/sqlite/bugs.py) agrees
        from repro.sqlite.bugs import in_wal_reset_bug_range as lab_says

        assert lab_says(version) is affected


def test_version_parsing() -> None:
    assert sqlite_version_tuple("3.40.1") == (3, 40, 1)
    assert sqlite_version_tuple("3.7") == (3, 7, 0)
    assert sqlite_version_tuple("3.44.6.1") == (3, 44, 6)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _make(path: Path, mode: JournalMode) -> None:
    db = SessionDB(path, config=DurabilityConfig(journal_mode=mode))
    try:
        db.create_session("a", "cli")
        db.append_message("a", "user", "hello")
    finally:
        db.close()


def test_warning_only_for_wal_databases_on_an_affected_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wal, delete = tmp_path / "wal.db", tmp_path / "delete.db"
    _make(wal, JournalMode.WAL)
    _make(delete, JournalMode.DELETE)
    assert _header_says_wal(wal) is True and _header_says_wal(delete) is False

    monkeypatch.setattr(sqlite3, "sqlite_version", "3.40.1")  # what the doctor reports as in force
    flagged = run_doctor(wal)
    assert flagged.wal_reset_bug and any("WAL-reset bug" in w for w in flagged.warnings)
    quiet = run_doctor(delete)
    assert quiet.wal_mode is False and not quiet.wal_reset_bug
    assert not any("WAL-reset" in w for w in quiet.warnings)

    monkeypatch.setattr(sqlite3, "sqlite_version", "3.50.7")
    fixed = run_doctor(wal)
    assert fixed.wal_mode is True and not fixed.wal_reset_bug_version and not fixed.warnings

    assert cli_main(["doctor", str(wal), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sqlite_version"] == "3.50.7" and report["wal_reset_bug"] is False
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.44.5")
    assert cli_main(["doctor", str(wal)]) == 0
    out = capsys.readouterr().out
    assert "sqlite 3.44.5" in out and "warning: SQLite 3.44.5 has the WAL-reset bug" in out


def test_wal_mode_of_a_malformed_database_comes_from_its_header(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    _make(path, JournalMode.WAL)
    os.truncate(path, 4096 + 100)  # the schema's pages are gone: PRAGMA journal_mode fails too
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.51.2")
    report = run_doctor(path)
    assert not report.health.healthy and report.health.journal_mode is None
    assert report.wal_mode is True and report.wal_reset_bug
