"""When the store under test is unusable: the workload's rule, so a broken store is noted once, not logged flat out.

A store that hit a malformed database and closed itself (this repository's store does, after
its one repair) raises on every call at once; a workload that kept calling it flat out printed
an invoke and a fail line per call -- hundreds of MB of machine log per trial, more than the
engine keeps, so the ledger lost its beginning and the trial could not be judged.

The rule, from the store's errors alone (stdlib only; any store, ours or upstream's):

- Only *writes* decide: the workload is a writer. A read's outcome neither counts nor resets.
- A failed write *counts* unless its error says the store will recover on its own or that the
  call's own arguments were refused: SQLite's BUSY, LOCKED, FULL or CONSTRAINT, read from the
  ``sqlite_errorcode`` of the exception or of any exception in its cause/context chain (a store
  that wraps sqlite3's errors keeps it there), or, for a store that drops the code, from those
  words in the messages. Such a failure neither counts nor resets: a full disk is waited out
  (the disk-fill faults need the failed writes and the writes after the disk is cleared), and a
  busy or locked database is another process's transaction.
- An acknowledged write resets the count.
- The store is *unusable* once REFUSALS_LIMIT counting failures of writes came in a row. Closed,
  malformed, not a database, read-only, an I/O error that persists: all count.

Once unusable, the workload keeps its ledger exactly as before (every call it makes is recorded,
invoke -> ok/fail/info) but makes at most one call per PROBE_EVERY_S: a bounded probe, so that a
store that comes back (a repair, space freed, a passing I/O error) is written to again within a
second, and the lab's stop still finds a live workload to stop. One EVENT line says when the
store became unusable, one when it works again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# Consecutive counting failures of writes after which the store is unusable. A store that works
# fails no write this way; one that refuses everything reaches it in milliseconds flat out.
REFUSALS_LIMIT = 50
# Seconds between the calls of a workload whose store is unusable (each call: two ledger lines).
PROBE_EVERY_S = 1.0
# How many different error messages of the failures in a row an event keeps (each cut to ERROR_CHARS).
ERRORS_KEPT = 5
ERROR_CHARS = 200


class SqliteCode(enum.IntEnum):
    """The primary SQLite result codes (sqlite.org/rescode.html) of failures a working store has."""

    BUSY = 5
    LOCKED = 6
    FULL = 13
    CONSTRAINT = 19


_PASSING_CODES = frozenset(int(code) for code in SqliteCode)
_PASSING_WORDS = ("database or disk is full", "locked", "busy", "constraint")
_CHAIN_LIMIT = 16  # exceptions followed along __cause__/__context__ (a cycle ends it too)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or during, each once."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < _CHAIN_LIMIT and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def sqlite_codes(exc: BaseException) -> frozenset[int]:
    """The primary SQLite result codes anywhere in the exception's chain."""
    codes = (getattr(e, "sqlite_errorcode", None) for e in _chain(exc))
    return frozenset(code & 0xFF for code in codes if isinstance(code, int))


def is_passing(exc: BaseException) -> bool:
    """Does this failure say the store works and will take writes again by itself (busy, locked, a full
    disk) or refused only this call's arguments (a constraint)? Such failures never make it unusable."""
    if sqlite_codes(exc) & _PASSING_CODES:
        return True
    text = " ".join(str(e).lower() for e in _chain(exc))
    return any(word in text for word in _PASSING_WORDS)


class Change(str, enum.Enum):
    """What a call's outcome changed about the store's usability."""

    UNUSABLE = "unusable"
    RECOVERED = "recovered"


@dataclass
class Refusals:
    """The count of writes refused in a row, and whether the store is unusable (see the module's rule)."""

    limit: int = REFUSALS_LIMIT
    streak: int = 0  # counting failures of writes since the last acknowledged write
    since: int = 0  # the ledger index of the streak's first failure
    errors: list[str] = field(default_factory=list)  # the streak's different messages (the first ERRORS_KEPT)
    unusable: bool = False
    probes: int = 0  # calls made while unusable

    def acknowledged(self, is_write: bool) -> Change | None:
        """An ok call; a write resets the count and, if the store was unusable, it has recovered."""
        if self.unusable:
            self.probes += 1
        if not is_write:
            return None
        self.streak, self.since, self.errors = 0, 0, []
        if self.unusable:
            self.unusable = False
            return Change.RECOVERED
        return None

    def refused(self, index: int, is_write: bool, exc: BaseException, message: str) -> Change | None:
        """A call that raised ``exc`` (recorded in the ledger as ``message``); UNUSABLE when it is the limit-th."""
        if self.unusable:
            self.probes += 1
        if not is_write or is_passing(exc):
            return None
        if self.streak == 0:
            self.since = index
        self.streak += 1
        short = message[:ERROR_CHARS]
        if short not in self.errors and len(self.errors) < ERRORS_KEPT:
            self.errors.append(short)
        if not self.unusable and self.streak >= self.limit:
            self.unusable = True
            self.probes = 0
            return Change.UNUSABLE
        return None
