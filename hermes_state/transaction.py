"""One write transaction and the periodic checkpoint after it: the store's hot path, kept in one place."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from .config import DurabilityConfig

logger = logging.getLogger("hermes_state")

T = TypeVar("T")


def run_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run *fn* between BEGIN IMMEDIATE and COMMIT; roll back on any error and re-raise it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as rb:  # SQLite may already have rolled back (SQLITE_FULL)
                logger.debug("hermes_state: rollback failed: %s", rb)
        raise
    return result


def checkpoint_if_due(conn: sqlite3.Connection, config: DurabilityConfig, journal_mode: str, writes: int) -> None:
    """Checkpoint the WAL every `config.checkpoint_every` commits; a failure is logged, never raised."""
    every = config.checkpoint_every
    if every and writes % every == 0 and journal_mode == "wal":
        try:
            conn.execute(f"PRAGMA wal_checkpoint({config.checkpoint_mode.value})").fetchall()
        except sqlite3.Error as exc:  # the commit stands; a checkpoint is only housekeeping
            logger.debug("hermes_state: checkpoint failed: %s", exc)
