"""Applying the durability config to a connection, and reading back what is really in force."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import asdict, dataclass

from .config import DurabilityConfig, JournalMode
from .errors import PragmaNotAppliedError, WalUnsupportedError, is_wal_incompatible_error

logger = logging.getLogger("hermes_state")

_warned_labels: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class PragmaState:
    """The pragmas in force on one connection, as SQLite reports them."""

    journal_mode: str
    synchronous: int
    busy_timeout: int
    foreign_keys: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def read_pragmas(conn: sqlite3.Connection) -> PragmaState:
    """Read journal_mode, synchronous, busy_timeout and foreign_keys back from *conn*."""

    def one(sql: str) -> str:
        return str(conn.execute(sql).fetchone()[0])

    return PragmaState(
        journal_mode=one("PRAGMA journal_mode").lower(),
        synchronous=int(one("PRAGMA synchronous")),
        busy_timeout=int(one("PRAGMA busy_timeout")),
        foreign_keys=int(one("PRAGMA foreign_keys")),
    )


def compile_option(conn: sqlite3.Connection, name: str) -> str | None:
    """The value of compile option *name* (e.g. "DEFAULT_SYNCHRONOUS"), None if not listed."""
    for (option,) in conn.execute("PRAGMA compile_options"):
        key, _, value = str(option).partition("=")
        if key == name:
            return value
    return None


def compiled_default_synchronous(conn: sqlite3.Connection, *, wal: bool) -> int:
    """SQLite's compiled-in synchronous level (2 = FULL when the option is not listed)."""
    value = compile_option(conn, "DEFAULT_WAL_SYNCHRONOUS" if wal else "DEFAULT_SYNCHRONOUS")
    if value is None and wal:
        value = compile_option(conn, "DEFAULT_SYNCHRONOUS")
    return int(value) if value is not None else 2


def _warn_once(db_label: str, message: str) -> None:
    with _warned_lock:
        if db_label in _warned_labels:
            return
        _warned_labels.add(db_label)
    logger.warning(message)


def apply_wal_with_fallback(conn: sqlite3.Connection, db_label: str = "state.db", *, wal_path: str | None = None) -> str:
    """Put *conn*'s database in WAL mode, falling back to DELETE where WAL locking fails.

    Returns the mode in force: "wal" or "delete" (or what SQLite keeps for special
    databases, e.g. "memory" for ":memory:"). A database that is already WAL is never
    downgraded: if its WAL cannot be used here, WalUnsupportedError is raised instead.
    *wal_path* (the -wal sidecar) is checked with stat() only, never opened.
    """
    try:
        current = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    except sqlite3.OperationalError as exc:
        if is_wal_incompatible_error(exc):
            # Only a WAL database needs WAL locking merely to read its journal mode.
            raise WalUnsupportedError(
                f"{db_label}: database is in WAL mode but WAL locking fails here ({exc}); refusing to downgrade it"
            ) from exc
        raise
    if current == "wal":
        return "wal"
    try:
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
    except sqlite3.OperationalError as exc:
        if not is_wal_incompatible_error(exc):
            raise
        if wal_path is not None and os.path.exists(wal_path):
            raise WalUnsupportedError(
                f"{db_label}: WAL locking fails here ({exc}) and a -wal file exists; refusing to downgrade"
            ) from exc
        _warn_once(
            db_label,
            f"{db_label}: WAL is not supported on this filesystem ({exc}); using journal_mode=DELETE",
        )
        mode = str(conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]).lower()
    return mode


def apply_durability(
    conn: sqlite3.Connection,
    config: DurabilityConfig,
    *,
    db_label: str = "state.db",
    wal_path: str | None = None,
) -> PragmaState:
    """Set the journal mode, then synchronous / busy_timeout / foreign_keys as *config* names.

    Pragmas *config* leaves as None are not issued at all (wal_autocheckpoint: set whatever
    the journal mode, SQLite ignores it outside WAL). Returns what is in force.
    """
    if config.journal_mode is JournalMode.WAL and config.wal_fallback:
        mode = apply_wal_with_fallback(conn, db_label, wal_path=wal_path)
    else:
        wanted = config.journal_mode.value
        mode = str(conn.execute(f"PRAGMA journal_mode={wanted.upper()}").fetchone()[0]).lower()
        if mode != wanted:
            raise PragmaNotAppliedError(f"{db_label}: journal_mode={wanted} could not be set (SQLite kept {mode})")
    level = config.synchronous_for(mode)
    if level is not None:
        conn.execute(f"PRAGMA synchronous={int(level)}")
    if config.busy_timeout_ms is not None:
        conn.execute(f"PRAGMA busy_timeout={int(config.busy_timeout_ms)}")
    if config.foreign_keys:
        conn.execute("PRAGMA foreign_keys=ON")
    if config.wal_autocheckpoint is not None:
        conn.execute(f"PRAGMA wal_autocheckpoint={int(config.wal_autocheckpoint)}")
    return read_pragmas(conn)
