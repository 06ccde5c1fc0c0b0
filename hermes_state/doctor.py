"""The doctor: health, journal mode, pragmas, SQLite version and WAL size of one database file."""

from __future__ import annotations

import enum
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .backup import sidecar
from .health import HealthReport, check_connection, check_health, in_wal_reset_bug_range, open_existing
from .pragmas import PragmaState, read_pragmas
from .repair import RepairResult, repair_state_db


class ExitCode(enum.IntEnum):
    HEALTHY = 0
    UNHEALTHY = 1
    BAD_INPUT = 2


@dataclass(frozen=True)
class DoctorReport:
    path: str
    sqlite_version: str
    wal_reset_bug: bool
    pragmas: PragmaState | None
    db_bytes: int
    wal_bytes: int | None
    health: HealthReport
    repair: RepairResult | None
    warnings: tuple[str, ...]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.HEALTHY if self.health.healthy else ExitCode.UNHEALTHY

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "healthy": self.health.healthy,
            "exit_code": int(self.exit_code),
            "sqlite_version": self.sqlite_version,
            "wal_reset_bug": self.wal_reset_bug,
            "journal_mode": self.health.journal_mode,
            "pragmas": None if self.pragmas is None else self.pragmas.as_dict(),
            "db_bytes": self.db_bytes,
            "wal_bytes": self.wal_bytes,
            "health": self.health.to_dict(),
            "repair": None if self.repair is None else self.repair.to_dict(),
            "warnings": list(self.warnings),
        }


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size  # stat only: never open() a live database file
    except FileNotFoundError:
        return None


def run_doctor(path: str | os.PathLike[str], *, fix: bool = False) -> DoctorReport:
    """Examine *path*; with *fix*, repair it (backup first) when it is structurally broken.

    Raises DatabaseNotFoundError / NotADatabaseError for bad input.
    """
    db = Path(path)
    conn = open_existing(db)
    try:
        try:
            pragmas: PragmaState | None = read_pragmas(conn)
        except sqlite3.Error:
            pragmas = None
        health = check_connection(conn, path=str(db))
    finally:
        conn.close()
    warnings: list[str] = []
    bug = in_wal_reset_bug_range()
    if bug:
        warnings.append(
            f"SQLite {sqlite3.sqlite_version} has the WAL-reset bug (3.7.0-3.51.2, fixed in 3.51.3): "
            "two connections writing and checkpointing one WAL database concurrently can corrupt it"
        )
    if pragmas is not None and pragmas.journal_mode in ("off", "memory"):
        warnings.append(f"journal_mode={pragmas.journal_mode}: a crash in the middle of a write can corrupt")
    repair: RepairResult | None = None
    if fix and not health.structurally_ok:
        repair = repair_state_db(db, backup=True)
        health = check_health(db)
    elif fix and not health.healthy:
        warnings.append("--fix repairs structure only; foreign-key or counter mismatches need row edits")
    return DoctorReport(
        path=str(db),
        sqlite_version=sqlite3.sqlite_version,
        wal_reset_bug=bug,
        pragmas=pragmas,
        db_bytes=_size(db) or 0,
        wal_bytes=_size(sidecar(db, "-wal")),
        health=health,
        repair=repair,
        warnings=tuple(warnings),
    )


def format_text(report: DoctorReport) -> str:
    h = report.health
    lines = [
        f"{report.path}: {'healthy' if h.healthy else 'UNHEALTHY'}",
        f"  sqlite {report.sqlite_version}; journal_mode={h.journal_mode}; "
        f"db {report.db_bytes} bytes; wal {report.wal_bytes if report.wal_bytes is not None else 'none'}",
    ]
    if report.pragmas is not None:
        p = report.pragmas
        lines.append(
            f"  pragmas on a plain connection: synchronous={p.synchronous} busy_timeout={p.busy_timeout} "
            f"foreign_keys={p.foreign_keys}"
        )
    lines.append(
        f"  integrity={'ok' if h.integrity_ok else '; '.join(h.integrity[:3])}; fts={h.fts.value}; "
        f"fk_violations={h.foreign_key_violations}; sessions={h.session_count}; messages={h.message_count}; "
        f"counter_mismatches={h.counter_mismatches}; write_probe={'ok' if h.write_probe_ok else h.write_probe_error}"
    )
    for err in h.errors:
        lines.append(f"  error: {err}")
    if report.repair is not None:
        r = report.repair
        steps = ", ".join(f"{s.name}:{'ok' if s.ok else 'failed'}" for s in r.steps) or "none"
        lines.append(f"  repair: {r.outcome.value}; steps: {steps}; backup: {r.backup[0] if r.backup else 'none'}")
        if r.error:
            lines.append(f"  repair error: {r.error}")
    for w in report.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)
