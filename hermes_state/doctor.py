"""The doctor: health, journal mode, pragmas, SQLite version and WAL size of one database file,
and the offline fixes (--fix: repair a copy, swap it in; --salvage: readable rows into a new file)."""

from __future__ import annotations

import enum
import os
import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .backup import is_open_in_process, sidecar
from .errors import DatabaseNotFoundError, NotADatabaseError
from .health import HealthReport, check_connection, open_existing
from .pragmas import PragmaState, read_pragmas
from .repair import ApplyMode, RepairOutcome, RepairResult, repair_state_db
from .salvage import SalvageResult, salvage_state_db
from .versions import in_wal_reset_bug_range
from .workcopy import working_copy

DETAIL_LINES = 10  # integrity/error lines printed before "... N more"
_HEADER_WAL = (2, 2)  # file format write/read version bytes (offsets 18, 19) of a WAL database


class ExitCode(enum.IntEnum):
    HEALTHY = 0
    UNHEALTHY = 1
    BAD_INPUT = 2


@dataclass(frozen=True)
class DoctorReport:
    path: str
    sqlite_version: str
    wal_reset_bug_version: bool  # this SQLite is in the bug's range
    wal_mode: bool | None  # None: could not tell
    pragmas: PragmaState | None
    db_bytes: int
    wal_bytes: int | None
    health: HealthReport  # of the database at `path` after any repair
    repair: RepairResult | None
    salvage: SalvageResult | None
    warnings: tuple[str, ...]
    next_steps: tuple[str, ...]

    @property
    def wal_reset_bug(self) -> bool:
        """Whether the WAL-reset bug applies here: an affected SQLite and a WAL database."""
        return self.wal_reset_bug_version and self.wal_mode is True

    @property
    def exit_code(self) -> ExitCode:
        if self.salvage is not None:  # the command's product is the new database
            return ExitCode.HEALTHY if self.salvage.health.healthy else ExitCode.UNHEALTHY
        return ExitCode.HEALTHY if self.health.healthy else ExitCode.UNHEALTHY

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "healthy": self.health.healthy,
            "exit_code": int(self.exit_code),
            "sqlite_version": self.sqlite_version,
            "wal_reset_bug_version": self.wal_reset_bug_version,
            "wal_reset_bug": self.wal_reset_bug,
            "journal_mode": self.health.journal_mode,
            "wal_mode": self.wal_mode,
            "pragmas": None if self.pragmas is None else self.pragmas.as_dict(),
            "db_bytes": self.db_bytes,
            "wal_bytes": self.wal_bytes,
            "health": self.health.to_dict(),
            "repair": None if self.repair is None else self.repair.to_dict(),
            "salvage": None if self.salvage is None else self.salvage.to_dict(),
            "warnings": list(self.warnings),
            "next_steps": list(self.next_steps),
        }


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size  # stat only: never open() a live database file
    except FileNotFoundError:
        return None


def _header_says_wal(path: Path) -> bool | None:
    """Whether the file header marks a WAL database; None when unreadable (or open here: reading
    it would drop this process's locks on it)."""
    if is_open_in_process(path):
        return None
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError:
        return None
    return (header[18], header[19]) == _HEADER_WAL if len(header) >= 20 else None


def _examine(file: Path, label: str) -> tuple[PragmaState | None, HealthReport, bool | None]:
    header_wal = _header_says_wal(file)  # before any connection: a malformed file may hide its mode
    conn = open_existing(file, label=label)  # a working copy's path is gone once the doctor returns
    try:
        try:
            pragmas: PragmaState | None = read_pragmas(conn)
        except sqlite3.Error:
            pragmas = None
        health = check_connection(conn, path=label)
    finally:
        conn.close()
    wal = health.journal_mode == "wal" if health.journal_mode is not None else header_wal
    return pragmas, health, wal


def run_doctor(
    path: str | os.PathLike[str], *, fix: bool = False, salvage: bool = False,
    out: str | os.PathLike[str] | None = None,
) -> DoctorReport:
    """Examine *path*. *fix*: repair a structurally broken database on a copy and swap the copy in
    only once it is verified. *salvage*: write its readable rows into the new database *out*.
    Both are offline and never change *path* unless a repair succeeded.

    Raises DatabaseNotFoundError / NotADatabaseError for bad input, OutputExistsError when *out* exists.
    """
    db = Path(path)
    if not db.exists():
        raise DatabaseNotFoundError(f"no such file: {db}")
    if not db.is_file():
        raise NotADatabaseError(f"not a regular file: {db}")
    db_bytes, wal_bytes = _size(db) or 0, _size(sidecar(db, "-wal"))
    if fix or salvage:  # offline: opening the original could change it (WAL recovery, checkpoint)
        with working_copy(db) as work:
            pragmas, health, wal = _examine(work, str(db))
    else:
        pragmas, health, wal = _examine(db, str(db))
    warnings: list[str] = []
    affected = in_wal_reset_bug_range(sqlite3.sqlite_version)
    if affected and wal:
        warnings.append(
            f"SQLite {sqlite3.sqlite_version} has the WAL-reset bug (3.7.0-3.51.2 except 3.44.6+ and 3.50.7+; "
            "fixed in 3.51.3): two connections writing and checkpointing this WAL database concurrently can "
            "corrupt it"
        )
    if pragmas is not None and pragmas.journal_mode in ("off", "memory"):
        warnings.append(f"journal_mode={pragmas.journal_mode}: a crash in the middle of a write can corrupt")
    repair: RepairResult | None = None
    salvaged: SalvageResult | None = None
    if fix and not health.structurally_ok:
        repair = repair_state_db(db, backup=True, apply=ApplyMode.SWAP)
        if repair.outcome is RepairOutcome.REPAIRED and repair.after is not None:
            health = repair.after
    elif fix and not health.healthy:
        warnings.append("--fix repairs structure only; foreign-key or counter mismatches need row edits")
    if salvage:
        salvaged = salvage_state_db(db, out)
    return DoctorReport(
        path=str(db),
        sqlite_version=sqlite3.sqlite_version,
        wal_reset_bug_version=affected,
        wal_mode=wal,
        pragmas=pragmas,
        db_bytes=db_bytes,
        wal_bytes=wal_bytes,
        health=health,
        repair=repair,
        salvage=salvaged,
        warnings=tuple(warnings),
        next_steps=_next_steps(str(db), health, repair, salvaged),
    )


def _next_steps(path: str, health: HealthReport, repair: RepairResult | None,
                salvaged: SalvageResult | None) -> tuple[str, ...]:
    cmd = f"python -m hermes_state doctor {shlex.quote(path)}"
    salvage_hint = (f"{cmd} --salvage [--out NEW.db]   (copies the rows that can be read into a new database; "
                    "the original is left as it is)")
    if salvaged is not None:
        if not salvaged.health.healthy:
            return (f"inspect {salvaged.out}: the salvaged database is not healthy either",)
        return (f"check {salvaged.out}, then, with the gateway stopped, move {path} (and its -wal/-shm) aside "
                f"and move {salvaged.out} into its place",)
    if health.healthy:
        return ()
    if repair is not None and repair.outcome is RepairOutcome.FAILED:
        return ("the repair failed and the database was left unchanged; salvage what can be read:", salvage_hint)
    if not health.structurally_ok:
        return (f"{cmd} --fix   (repairs a copy and swaps it in only if it passes the health check)",
                "or, if --fix fails: " + salvage_hint)
    return ("--fix repairs structure only; to rebuild the counters and lost session rows: " + salvage_hint,)


def _capped(label: str, lines: tuple[str, ...]) -> list[str]:
    out = [f"  {label}: {line}" for line in lines[:DETAIL_LINES]]
    if len(lines) > DETAIL_LINES:
        out.append(f"  ... {len(lines) - DETAIL_LINES} more {label} lines")
    return out


def format_text(report: DoctorReport) -> str:
    h = report.health
    mode = {True: "wal", False: "not wal", None: "unknown"}[report.wal_mode]
    lines = [
        f"{report.path}: {'healthy' if h.healthy else 'UNHEALTHY'}",
        f"  sqlite {report.sqlite_version}; journal_mode={h.journal_mode or mode}; "
        f"db {report.db_bytes} bytes; wal {report.wal_bytes if report.wal_bytes is not None else 'none'}",
    ]
    if report.pragmas is not None:
        p = report.pragmas
        lines.append(
            f"  pragmas on a plain connection: synchronous={p.synchronous} busy_timeout={p.busy_timeout} "
            f"foreign_keys={p.foreign_keys}"
        )
    lines.append(
        f"  integrity={'ok' if h.integrity_ok else f'FAILED ({len(h.integrity)} lines)'}; fts={h.fts.value}; "
        f"fk_violations={h.foreign_key_violations}; sessions={h.session_count}; messages={h.message_count}; "
        f"counter_mismatches={h.counter_mismatches}; write_probe={'ok' if h.write_probe_ok else 'failed'}"
    )
    if not h.integrity_ok:
        lines.extend(_capped("integrity", h.integrity))
    lines.extend(_capped("error", h.errors))
    if not h.write_probe_ok and h.write_probe_error:
        lines.append(f"  write probe: {h.write_probe_error}")
    if report.repair is not None:
        r = report.repair
        steps = ", ".join(f"{s.name}:{'ok' if s.ok else 'failed'}" for s in r.steps) or "none"
        lines.append(f"  repair: {r.outcome.value}; steps: {steps}; backup: {r.backup[0] if r.backup else 'none'}")
        if r.error:
            lines.append(f"  repair error: {r.error[:300]}")
        if r.outcome is RepairOutcome.FAILED:
            lines.append(f"  {report.path} was not changed (the repair ran on a copy)")
    if report.salvage is not None:
        s = report.salvage
        via = s.method.value + (f" ({s.recover_error})" if s.recover_error else "")
        lines.append(f"  salvage: method {via}")
        for t in s.tables:
            lines.append(f"  salvage: {t.table}: {t.read} read, {t.written} written, {t.read_errors} read errors")
        lines.append(f"  salvage: {s.stub_sessions} stub sessions for messages whose session row was lost")
        lines.append(f"  salvage: new database {s.out}: {'healthy' if s.health.healthy else 'UNHEALTHY'}; "
                     f"{report.path} was not changed")
    for w in report.warnings:
        lines.append(f"  warning: {w}")
    for step in report.next_steps:
        lines.append(f"  next: {step}")
    return "\n".join(lines)
