"""Durability settings as one small typed value: named presets plus explicit overrides."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from .errors import ConfigError

_E = TypeVar("_E", bound=enum.Enum)

ENV_PRESET = "HERMES_STATE_PRESET"
ENV_JOURNAL_MODE = "HERMES_STATE_JOURNAL_MODE"
ENV_SYNCHRONOUS = "HERMES_STATE_SYNCHRONOUS"
ENV_BUSY_TIMEOUT_MS = "HERMES_STATE_BUSY_TIMEOUT_MS"
ENV_CHECKPOINT_MODE = "HERMES_STATE_CHECKPOINT_MODE"
ENV_CHECKPOINT_EVERY = "HERMES_STATE_CHECKPOINT_EVERY"
ENV_WAL_AUTOCHECKPOINT = "HERMES_STATE_WAL_AUTOCHECKPOINT"
ENV_VARS = (
    ENV_PRESET,
    ENV_JOURNAL_MODE,
    ENV_SYNCHRONOUS,
    ENV_BUSY_TIMEOUT_MS,
    ENV_CHECKPOINT_MODE,
    ENV_CHECKPOINT_EVERY,
    ENV_WAL_AUTOCHECKPOINT,
)


class Preset(enum.Enum):
    """The named starting points; `CUSTOM` marks a config changed by an override."""

    NS506 = "ns506"
    LEGACY = "legacy"
    DURABLE = "durable"
    CUSTOM = "custom"


class JournalMode(enum.Enum):
    """SQLite journal modes. OFF and MEMORY can corrupt on a crash mid-write (positive controls)."""

    WAL = "wal"
    DELETE = "delete"
    TRUNCATE = "truncate"
    PERSIST = "persist"
    MEMORY = "memory"
    OFF = "off"


class Synchronous(enum.IntEnum):
    """PRAGMA synchronous levels, valued as SQLite reports them."""

    OFF = 0
    NORMAL = 1
    FULL = 2
    EXTRA = 3


class CheckpointMode(enum.Enum):
    """The periodic WAL checkpoint the store issues every `checkpoint_every` writes."""

    PASSIVE = "PASSIVE"
    TRUNCATE = "TRUNCATE"


@dataclass(frozen=True)
class DurabilityConfig:
    """What the store sets on its connection. `None` means "leave SQLite's value alone".

    journal_mode: the mode asked for; WAL falls back to DELETE where WAL locking fails
        (when `wal_fallback`), any other mode is set as asked.
    synchronous_wal / synchronous_other: the level set when WAL / any other mode is in force.
    connect_timeout_s: the `timeout` of sqlite3.connect (which sets busy_timeout itself).
    busy_timeout_ms: an explicit PRAGMA busy_timeout after the journal setup.
    checkpoint_mode / checkpoint_every: periodic checkpoint after N commits (0 = never).
    wal_autocheckpoint: PRAGMA wal_autocheckpoint (pages; 0 = off), None: SQLite's own (1000).
    """

    preset: Preset = Preset.NS506
    journal_mode: JournalMode = JournalMode.WAL
    wal_fallback: bool = True
    synchronous_wal: Synchronous | None = Synchronous.NORMAL
    synchronous_other: Synchronous | None = Synchronous.FULL
    connect_timeout_s: float = 1.0
    busy_timeout_ms: int | None = 2000
    foreign_keys: bool = True
    checkpoint_mode: CheckpointMode = CheckpointMode.PASSIVE
    checkpoint_every: int = 50
    wal_autocheckpoint: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.preset, Preset):
            raise ConfigError(f"preset must be a Preset, not {self.preset!r}")
        if not isinstance(self.journal_mode, JournalMode):
            raise ConfigError(f"journal_mode must be a JournalMode, not {self.journal_mode!r}")
        for name in ("synchronous_wal", "synchronous_other"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Synchronous):
                raise ConfigError(f"{name} must be a Synchronous or None, not {value!r}")
        if not isinstance(self.checkpoint_mode, CheckpointMode):
            raise ConfigError(f"checkpoint_mode must be a CheckpointMode, not {self.checkpoint_mode!r}")
        if self.busy_timeout_ms is not None and (
            isinstance(self.busy_timeout_ms, bool) or not isinstance(self.busy_timeout_ms, int) or self.busy_timeout_ms < 0
        ):
            raise ConfigError(f"busy_timeout_ms must be a non-negative int or None, not {self.busy_timeout_ms!r}")
        if isinstance(self.checkpoint_every, bool) or not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be a non-negative int, not {self.checkpoint_every!r}")
        if self.wal_autocheckpoint is not None and (
            isinstance(self.wal_autocheckpoint, bool) or not isinstance(self.wal_autocheckpoint, int)
            or self.wal_autocheckpoint < 0
        ):
            raise ConfigError(f"wal_autocheckpoint must be a non-negative int or None, not {self.wal_autocheckpoint!r}")
        if not isinstance(self.connect_timeout_s, (int, float)) or self.connect_timeout_s < 0:
            raise ConfigError(f"connect_timeout_s must be a non-negative number, not {self.connect_timeout_s!r}")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def preset_named(cls, name: Preset | str) -> DurabilityConfig:
        """The config of a named preset (`ns506`, `legacy`, `durable`)."""
        preset = _parse_enum(Preset, name, "preset", exclude=(Preset.CUSTOM,))
        if preset is Preset.NS506:
            return cls()
        if preset is Preset.LEGACY:
            # The store before NS-506: WAL with fallback, foreign keys, a 1 s connect
            # timeout; synchronous left at the compiled-in default, nothing else set.
            return cls(
                preset=Preset.LEGACY,
                synchronous_wal=None,
                synchronous_other=None,
                busy_timeout_ms=None,
            )
        return cls(
            preset=Preset.DURABLE,
            synchronous_wal=Synchronous.FULL,
            synchronous_other=Synchronous.EXTRA,
        )

    def with_overrides(
        self,
        *,
        journal_mode: JournalMode | str | None = None,
        synchronous: Synchronous | str | int | None = None,
        busy_timeout_ms: int | str | None = None,
        checkpoint_mode: CheckpointMode | str | None = None,
        checkpoint_every: int | str | None = None,
        wal_autocheckpoint: int | str | None = None,
    ) -> DurabilityConfig:
        """A copy with explicit overrides; `None` keeps the current value.

        An explicit synchronous applies whatever journal mode ends up in force.
        An explicit journal mode other than WAL is set as asked (no fallback).
        """
        if all(v is None for v in (journal_mode, synchronous, busy_timeout_ms, checkpoint_mode, checkpoint_every,
                                   wal_autocheckpoint)):
            return self
        level = None if synchronous is None else _parse_synchronous(synchronous)
        return dataclasses.replace(
            self,
            preset=Preset.CUSTOM,
            journal_mode=self.journal_mode if journal_mode is None
            else _parse_enum(JournalMode, journal_mode, "journal mode"),
            synchronous_wal=self.synchronous_wal if level is None else level,
            synchronous_other=self.synchronous_other if level is None else level,
            busy_timeout_ms=self.busy_timeout_ms if busy_timeout_ms is None
            else _parse_nonneg_int(busy_timeout_ms, "busy timeout (ms)"),
            checkpoint_mode=self.checkpoint_mode if checkpoint_mode is None
            else _parse_enum(CheckpointMode, checkpoint_mode, "checkpoint mode"),
            checkpoint_every=self.checkpoint_every if checkpoint_every is None
            else _parse_nonneg_int(checkpoint_every, "checkpoint interval"),
            wal_autocheckpoint=self.wal_autocheckpoint if wal_autocheckpoint is None
            else _parse_nonneg_int(wal_autocheckpoint, "wal_autocheckpoint (pages)"),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DurabilityConfig:
        """Read HERMES_STATE_* variables; unset or empty means "the preset's value"."""

        def get(name: str) -> str | None:
            value = environ.get(name)
            return value.strip() if value is not None and value.strip() else None

        try:
            base = cls.preset_named(get(ENV_PRESET) or Preset.NS506.value)
        except ConfigError as exc:
            raise ConfigError(f"{ENV_PRESET}: {exc}") from None
        current = base
        for var, key in (
            (ENV_JOURNAL_MODE, "journal_mode"),
            (ENV_SYNCHRONOUS, "synchronous"),
            (ENV_BUSY_TIMEOUT_MS, "busy_timeout_ms"),
            (ENV_CHECKPOINT_MODE, "checkpoint_mode"),
            (ENV_CHECKPOINT_EVERY, "checkpoint_every"),
            (ENV_WAL_AUTOCHECKPOINT, "wal_autocheckpoint"),
        ):
            value = get(var)
            if value is None:
                continue
            try:
                current = current.with_overrides(**{key: value})
            except ConfigError as exc:
                raise ConfigError(f"{var}: {exc}") from None
        return current

    # -- queries ------------------------------------------------------------------------

    def synchronous_for(self, journal_mode: str) -> Synchronous | None:
        """The synchronous level to set when *journal_mode* is in force (None: leave it)."""
        return self.synchronous_wal if journal_mode.lower() == "wal" else self.synchronous_other

    def describe(self) -> dict[str, object]:
        """A JSON-ready description (enums as their names/values)."""
        return {
            "preset": self.preset.value,
            "journal_mode": self.journal_mode.value,
            "wal_fallback": self.wal_fallback,
            "synchronous_wal": None if self.synchronous_wal is None else self.synchronous_wal.name,
            "synchronous_other": None if self.synchronous_other is None else self.synchronous_other.name,
            "connect_timeout_s": self.connect_timeout_s,
            "busy_timeout_ms": self.busy_timeout_ms,
            "foreign_keys": self.foreign_keys,
            "checkpoint_mode": self.checkpoint_mode.value,
            "checkpoint_every": self.checkpoint_every,
            "wal_autocheckpoint": self.wal_autocheckpoint,
        }


def _parse_enum(kind: type[_E], value: object, what: str, *, exclude: tuple[_E, ...] = ()) -> _E:
    allowed = [m for m in kind if m not in exclude]
    if isinstance(value, kind) and value in allowed:
        return value
    if isinstance(value, str):
        for member in allowed:
            if value.strip().lower() in (member.name.lower(), str(member.value).lower()):
                return member
    names = ", ".join(str(m.value) for m in allowed)
    raise ConfigError(f"invalid {what} {value!r}; expected one of: {names}")


def _parse_synchronous(value: object) -> Synchronous:
    if isinstance(value, Synchronous):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value in (0, 1, 2, 3):
            return Synchronous(value)
    elif isinstance(value, str):
        text = value.strip().upper()
        if text in Synchronous.__members__:
            return Synchronous[text]
        if text in ("0", "1", "2", "3"):
            return Synchronous(int(text))
    raise ConfigError(f"invalid synchronous {value!r}; expected one of: OFF, NORMAL, FULL, EXTRA (or 0-3)")


def _parse_nonneg_int(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ConfigError(f"invalid {what} {value!r}; expected a non-negative integer")
