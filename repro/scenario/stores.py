"""Which store runs under the faults and how it is configured: preset, pragmas, another package."""

from __future__ import annotations

import os
from dataclasses import dataclass

from repro.errors import ScenarioError, shown

PRESETS = ("ns506", "legacy", "durable")
JOURNAL_MODES = ("wal", "delete", "truncate", "persist", "memory", "off")
SYNCHRONOUS = ("off", "normal", "full", "extra")
CHECKPOINT_MODES = ("passive", "truncate")


@dataclass(frozen=True)
class StoreSpec:
    """Which store runs and how it is configured (passed to it as HERMES_STATE_* variables)."""

    preset: str = "ns506"
    journal_mode: str | None = None
    synchronous: str | None = None
    store_path: str | None = None  # a directory holding another hermes_state package
    checkpoint_mode: str | None = None  # the store's periodic checkpoint: passive (default) or truncate

    def __post_init__(self) -> None:
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
        if self.store_path:
            parts.append(f"store={os.path.basename(os.path.normpath(self.store_path))}")
        return ",".join(parts)

    def environment(self) -> dict[str, str]:
        env = {"HERMES_STATE_PRESET": self.preset}
        if self.journal_mode:
            env["HERMES_STATE_JOURNAL_MODE"] = self.journal_mode.lower()
        if self.synchronous:
            env["HERMES_STATE_SYNCHRONOUS"] = self.synchronous.lower()
        if self.checkpoint_mode:
            env["HERMES_STATE_CHECKPOINT_MODE"] = self.checkpoint_mode.upper()
        return env
