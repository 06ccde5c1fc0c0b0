"""SQLite bugs the lab knows by version range: its own copy of the facts (the store under test has its own, which the lab never imports on the host).

The WAL-reset bug (SQLite's WAL documentation, "walresetbug"; docs/FACTS.md): a checkpoint
racing a writer that resets the WAL can corrupt the database. Affected: 3.7.0 through 3.51.2;
fixed in 3.51.3, and backported to 3.44.6 (3.44.x) and 3.50.7 (3.50.x).
"""

from __future__ import annotations

from repro.sqlite.sources import parse_version

WAL_RESET_BUG_FIRST = (3, 7, 0)
WAL_RESET_BUG_LAST = (3, 51, 2)
WAL_RESET_BUG_BACKPORTS = {(3, 44): 6, (3, 50): 7}  # (major, minor) -> first fixed patch release


def in_wal_reset_bug_range(version: str) -> bool:
    """Whether this SQLite version ("3.40.1") has the WAL-reset bug; SqliteVersionError if it is not a version."""
    v = parse_version(version)
    if not WAL_RESET_BUG_FIRST <= v <= WAL_RESET_BUG_LAST:
        return False
    fixed_patch = WAL_RESET_BUG_BACKPORTS.get((v[0], v[1]))
    return fixed_patch is None or v[2] < fixed_patch
