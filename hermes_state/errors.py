"""Typed errors of the store, so callers (and only the CLI) decide how to report them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Primary SQLite result codes (sqlite.org/rescode.html); extended codes keep these in the low byte.
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_PROTOCOL = 15
SQLITE_CONSTRAINT = 19
SQLITE_AUTH = 23
SQLITE_NOTADB = 26

_MALFORMED_MARKERS = ("malformed database schema", "database disk image is malformed")


class StateError(Exception):
    """Base class of every error the store raises on purpose."""


class ConfigError(StateError, ValueError):
    """An invalid durability setting (argument or environment variable)."""


class InvalidInputError(StateError, ValueError):
    """An argument of a store method has the wrong type or value."""


class StoreClosedError(StateError):
    """The store was used after close() (or in a child process after fork())."""


class DiskFullError(StateError):
    """SQLITE_FULL: the write was rolled back; the store is usable once space is freed."""


class DatabaseBusyError(StateError):
    """The database stayed locked/busy for longer than the write retry budget."""


class UnknownSessionError(StateError, LookupError):
    """A write referred to a session id that does not exist (foreign key failure)."""


class ConstraintError(StateError):
    """Any other constraint failure (NOT NULL, CHECK, UNIQUE)."""


class CorruptDatabaseError(StateError):
    """The database (schema, index or FTS) is malformed and was not healed."""


class NotADatabaseError(StateError):
    """The file exists but is not an SQLite database."""


class DatabaseNotFoundError(StateError, FileNotFoundError):
    """An operation that must not create a database was pointed at a missing file."""


class WalUnsupportedError(StateError):
    """The database is already in WAL mode but WAL locking fails here; refusing to downgrade."""


class PragmaNotAppliedError(StateError):
    """SQLite refused a journal mode the config asked for (e.g. another connection holds WAL)."""


class DatabaseInUseError(StateError):
    """An offline operation (file backup, repair) found the database open in this process."""


class RepairError(StateError):
    """A repair could not be carried out; `backup` names the kept backup, if one was taken."""

    def __init__(self, message: str, *, backup: Path | None = None) -> None:
        super().__init__(message)
        self.backup = backup


class SalvageError(StateError):
    """Salvage could not write a new database (nothing of the damaged one could be read)."""


class OutputExistsError(StateError, FileExistsError):
    """An operation that writes a new file was pointed at one that exists (it never overwrites)."""


def primary_code(exc: BaseException) -> int | None:
    """The primary SQLite result code of *exc*, or None when it carries none."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_malformed_db_error(exc: BaseException) -> bool:
    """True for "malformed database schema" / "database disk image is malformed" (SQLITE_CORRUPT)."""
    if isinstance(exc, CorruptDatabaseError):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if primary_code(exc) == SQLITE_CORRUPT:
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _MALFORMED_MARKERS)


def is_not_a_database_error(exc: BaseException) -> bool:
    """True for SQLITE_NOTADB ("file is not a database")."""
    if isinstance(exc, NotADatabaseError):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    return primary_code(exc) == SQLITE_NOTADB or "file is not a database" in str(exc).lower()


def is_disk_full_error(exc: BaseException) -> bool:
    """True for SQLITE_FULL ("database or disk is full")."""
    if not isinstance(exc, sqlite3.Error):
        return False
    return primary_code(exc) == SQLITE_FULL or "database or disk is full" in str(exc).lower()


def is_busy_error(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED ("database is locked", "... is busy")."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    if primary_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED):
        return True
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def is_wal_incompatible_error(exc: BaseException) -> bool:
    """True when WAL cannot work on this filesystem: "locking protocol" or "not authorized"."""
    if not isinstance(exc, sqlite3.Error):
        return False
    if primary_code(exc) in (SQLITE_PROTOCOL, SQLITE_AUTH):
        return True
    text = str(exc).lower()
    return "locking protocol" in text or "not authorized" in text


def translate(exc: sqlite3.Error, what: str) -> StateError:
    """Map an sqlite3 error raised while doing *what* to the store's typed error."""
    if is_disk_full_error(exc):
        return DiskFullError(f"{what}: database or disk is full (rolled back)")
    if is_malformed_db_error(exc):
        return CorruptDatabaseError(f"{what}: {exc}")
    if is_not_a_database_error(exc):
        return NotADatabaseError(f"{what}: file is not a database")
    if is_busy_error(exc):
        return DatabaseBusyError(f"{what}: {exc}")
    if isinstance(exc, sqlite3.IntegrityError):
        if "foreign key" in str(exc).lower():
            return UnknownSessionError(f"{what}: unknown session (foreign key constraint failed)")
        return ConstraintError(f"{what}: {exc}")
    return StateError(f"{what}: {exc}")
