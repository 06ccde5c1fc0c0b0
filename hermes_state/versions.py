"""Which SQLite releases have the WAL-reset bug, so the doctor warns only where it applies."""

from __future__ import annotations

import sqlite3

# SQLite's WAL documentation ("walresetbug"): 3.7.0 through 3.51.2 are affected; fixed in
# 3.51.3, and backported to 3.44.6 (3.44.x) and 3.50.7 (3.50.x).
WAL_RESET_BUG_FIRST = (3, 7, 0)
WAL_RESET_BUG_LAST = (3, 51, 2)
WAL_RESET_BUG_BACKPORTS = {(3, 44): 6, (3, 50): 7}  # (major, minor) -> first fixed patch release


def sqlite_version_tuple(version: str = sqlite3.sqlite_version) -> tuple[int, int, int]:
    """"3.40.1" -> (3, 40, 1); missing parts are 0, anything after the third is ignored."""
    parts = [int(p) for p in version.strip().split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2])


def in_wal_reset_bug_range(version: str = sqlite3.sqlite_version) -> bool:
    """Whether this SQLite version has the WAL-reset bug (3.7.0-3.51.2 less the 3.44.6+/3.50.7+ backports)."""
    v = sqlite_version_tuple(version)
    if not WAL_RESET_BUG_FIRST <= v <= WAL_RESET_BUG_LAST:
        return False
    fixed_patch = WAL_RESET_BUG_BACKPORTS.get((v[0], v[1]))
    return fixed_patch is None or v[2] < fixed_patch
