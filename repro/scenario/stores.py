"""Which store runs under the faults and how it is configured: preset, pragmas, another package, SQLite build."""

from __future__ import annotations

import os
from dataclasses import dataclass

from repro.errors import ScenarioError, shown

PRESETS = ("ns506", "legacy", "durable")
JOURNAL_MODES = ("wal", "delete", "truncate", "persist", "memory", "off")
SYNCHRONOUS = ("off", "normal", "full", "extra")
CHECKPOINT_MODES = ("passive", "truncate")
SYSTEM_SQLITE = "system"  # the image's own libsqlite3 (Debian bookworm's 3.40.1)


@dataclass(frozen=True)
class StoreSpec:
    """Which store runs and how it is configured (passed to it as HERMES_STATE_* variables)."""

    preset: str = "ns506"
    journal_mode: str | None = None
    synchronous: str | None = None
    store_path: str | None = None  # a directory holding another hermes_state package
    checkpoint_mode: str | None = None  # the store's periodic checkpoint: passive (default) or truncate
    wal_autocheckpoint: int | None = None  # PRAGMA wal_autocheckpoint in pages (None: SQLite's 1000)
    sqlite: str = SYSTEM_SQLITE  # the SQLite the store loads: "system" or a version the lab builds (repro/sqlite)
    sqlite_assisted: bool = False  # the lab's assisted build of that version (a delay in each checkpoint)

    def __post_init__(self) -> None:
        from repro.sqlite.sources import parse_version

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
        if self.store_path is not None:
            if not os.path.isdir(os.path.join(self.store_path, "hermes_state")):
                raise ScenarioError(f"store path {shown(self.store_path)} has no hermes_state package in it")

    @property
    def label(self) -> str:
        parts = [self.preset]
        if self.journal_mode:
            parts.append(f"jm={self.journal_mode.lower()}")
        if self.synchronous:
            parts.append(f"sync={self.synchronous.lower()}")
        if self.checkpoint_mode:
            parts.append(f"ckpt={self.checkpoint_mode.lower()}")
        if self.wal_autocheckpoint is not None:
            parts.append(f"wac={self.wal_autocheckpoint}")
        if self.store_path:
            parts.append(f"store={os.path.basename(os.path.normpath(self.store_path))}")
        if self.sqlite != SYSTEM_SQLITE:
            parts.append(f"sqlite={self.sqlite_label}")
        return ",".join(parts)

    @property
    def sqlite_label(self) -> str:
        """`system`, `3.53.2` or `3.51.2-assisted`: how every report names the library."""
        return f"{self.sqlite}-assisted" if self.sqlite_assisted else self.sqlite

    def environment(self) -> dict[str, str]:
        env = {"HERMES_STATE_PRESET": self.preset}
        if self.journal_mode:
            env["HERMES_STATE_JOURNAL_MODE"] = self.journal_mode.lower()
        if self.synchronous:
            env["HERMES_STATE_SYNCHRONOUS"] = self.synchronous.lower()
        if self.checkpoint_mode:
            env["HERMES_STATE_CHECKPOINT_MODE"] = self.checkpoint_mode.upper()
        if self.wal_autocheckpoint is not None:
            env["HERMES_STATE_WAL_AUTOCHECKPOINT"] = str(self.wal_autocheckpoint)
        return env
