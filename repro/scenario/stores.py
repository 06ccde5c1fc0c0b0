"""Which store runs under the faults and how it is configured: preset, pragmas, another release (a path or a git ref), SQLite build."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from repro.errors import ScenarioError, shown

# "own": pass no HERMES_STATE_* variable at all -- the store runs its own settings (a foreign store's
# default, since it does not read the lab's variables; see repro/source/prepare.py for the rule).
OWN_SETTINGS = "own"
PRESETS = ("ns506", "legacy", "durable", OWN_SETTINGS)
JOURNAL_MODES = ("wal", "delete", "truncate", "persist", "memory", "off")
SYNCHRONOUS = ("off", "normal", "full", "extra")
CHECKPOINT_MODES = ("passive", "truncate")
SYSTEM_SQLITE = "system"  # the image's own libsqlite3 (Debian bookworm's 3.40.1)
VERSION_FORM = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class SqliteVersionError(ScenarioError):
    """The user asked for a SQLite version the lab cannot name or find a source for (exit 2)."""


def parse_version(text: str) -> tuple[int, int, int]:
    """'3.53.2' -> (3, 53, 2); anything else is bad input (whether a registry ships it: repro/sqlite)."""
    match = VERSION_FORM.fullmatch(text.strip())
    if match is None:
        raise SqliteVersionError(f"SQLite version {text!r} is not 'system' or a version like 3.53.2")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclass(frozen=True)
class StoreSpec:
    """Which store runs and how it is configured (passed to it as HERMES_STATE_* variables)."""

    preset: str = "ns506"
    journal_mode: str | None = None
    synchronous: str | None = None
    store_path: str | None = None  # a directory holding another hermes_state (package or module)
    checkpoint_mode: str | None = None  # the store's periodic checkpoint: passive (default) or truncate
    store_ref: str | None = None  # REPO@REV as the user typed it; store_path is then its checkout
    store_commit: str | None = None  # the commit REV resolved to (the checkout's cache key)
    requirements: str | None = None  # a requirements file (absolute) or "auto": installed into `image`
    image: str | None = None  # the image derived from the lab's with those requirements installed
    wal_autocheckpoint: int | None = None  # PRAGMA wal_autocheckpoint in pages (None: SQLite's 1000)
    sqlite: str = SYSTEM_SQLITE  # the SQLite the store loads: "system" or a version the lab builds (repro/sqlite)
    sqlite_assisted: bool = False  # the lab's assisted build of that version (a delay in each checkpoint)

    def __post_init__(self) -> None:
        if self.sqlite != SYSTEM_SQLITE:
            parse_version(self.sqlite)  # the form only: whether a registry ships it is known when it is built
        elif self.sqlite_assisted:
            raise ScenarioError("an assisted SQLite build needs a version (--sqlite 3.51.2), not 'system'")
        if self.wal_autocheckpoint is not None and not 0 <= self.wal_autocheckpoint < 2**31:
            raise ScenarioError(f"--wal-autocheckpoint must be a number of pages >= 0, not {self.wal_autocheckpoint}")
        if self.checkpoint_mode is not None and self.checkpoint_mode.lower() not in CHECKPOINT_MODES:
            raise ScenarioError(f"unknown checkpoint mode {shown(self.checkpoint_mode)}; known: {', '.join(CHECKPOINT_MODES)}")
        if self.preset not in PRESETS:
            raise ScenarioError(f"unknown preset {shown(self.preset)}; known: {', '.join(PRESETS)}")
        if self.journal_mode is not None and self.journal_mode.lower() not in JOURNAL_MODES:
            raise ScenarioError(f"unknown journal mode {shown(self.journal_mode)}; known: {', '.join(JOURNAL_MODES)}")
        if self.synchronous is not None and self.synchronous.lower() not in SYNCHRONOUS:
            raise ScenarioError(f"unknown synchronous {shown(self.synchronous)}; known: {', '.join(SYNCHRONOUS)}")
        if self.requirements is not None and not (self.store_path or self.store_ref):
            raise ScenarioError("--store-requirements needs --store-path or --store-ref: the lab's own store needs none")

    @property
    def foreign(self) -> bool:
        """Not the lab's bundled store: a directory or a git ref the user named."""
        return bool(self.store_path or self.store_ref)

    @property
    def overrides(self) -> tuple[str, ...]:
        """The settings asked for beyond the preset, as options (a foreign store must read them to honour them)."""
        return tuple(f"--{name.replace('_', '-')} {value}" for name, value in
                     (("journal_mode", self.journal_mode), ("synchronous", self.synchronous),
                      ("checkpoint_mode", self.checkpoint_mode), ("wal_autocheckpoint", self.wal_autocheckpoint))
                     if value is not None)

    @property
    def source(self) -> str:
        """Where the store comes from, in full (never cut: two stores never share it): the path, or the ref
        as typed with the short commit id; "default" for the lab's own."""
        if self.store_ref:
            return f"{self.store_ref} ({self.store_commit[:7]})" if self.store_commit else self.store_ref
        return self.store_path or "default"

    @property
    def label(self) -> str:
        """Short and path-safe, for trial ids; distinct sources give distinct labels (a hash of the source)."""
        parts = [self.preset]
        if self.journal_mode:
            parts.append(f"jm={self.journal_mode.lower()}")
        if self.synchronous:
            parts.append(f"sync={self.synchronous.lower()}")
        if self.checkpoint_mode:
            parts.append(f"ckpt={self.checkpoint_mode.lower()}")
        if self.wal_autocheckpoint is not None:
            parts.append(f"wac={self.wal_autocheckpoint}")
        if self.foreign:
            tag = hashlib.sha256(self.source.encode()).hexdigest()[:6]
            if self.store_ref:
                name = ref_name(self.store_ref.rpartition("@")[2], self.store_commit)
            else:
                name = os.path.basename(os.path.normpath(str(self.store_path)))
            parts.append(f"store={name}-{tag}")
        if self.sqlite != SYSTEM_SQLITE:
            parts.append(f"sqlite={self.sqlite_label}")
        return ",".join(parts)

    @property
    def sqlite_label(self) -> str:
        """`system`, `3.53.2` or `3.51.2-assisted`: how every report names the library."""
        return f"{self.sqlite}-assisted" if self.sqlite_assisted else self.sqlite

    def environment(self) -> dict[str, str]:
        env = {} if self.preset == OWN_SETTINGS else {"HERMES_STATE_PRESET": self.preset}
        if self.journal_mode:
            env["HERMES_STATE_JOURNAL_MODE"] = self.journal_mode.lower()
        if self.synchronous:
            env["HERMES_STATE_SYNCHRONOUS"] = self.synchronous.lower()
        if self.checkpoint_mode:
            env["HERMES_STATE_CHECKPOINT_MODE"] = self.checkpoint_mode.upper()
        if self.wal_autocheckpoint is not None:
            env["HERMES_STATE_WAL_AUTOCHECKPOINT"] = str(self.wal_autocheckpoint)
        return env


def ref_name(rev: str, commit: str | None) -> str:
    """A ref's short name for ids and JUnit suites: ``v2026.6@1a2b3c4`` for a tag or branch, the resolved
    commit alone for anything else (``9aba95b05^`` made path-safe would read as the child's hash)."""
    if not commit:
        return rev
    plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", rev) and ".." not in rev
    if not plain or re.fullmatch(r"[0-9a-fA-F]{4,40}", rev):
        return commit[:7]
    return f"{rev}@{commit[:7]}"
