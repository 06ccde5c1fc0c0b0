"""hermes_state: the SQLite session store under test, with the NS-506 durability settings."""

from __future__ import annotations

from .backup import backup_files, backup_live
from .config import (
    ENV_BUSY_TIMEOUT_MS,
    ENV_CHECKPOINT_EVERY,
    ENV_CHECKPOINT_MODE,
    ENV_JOURNAL_MODE,
    ENV_PRESET,
    ENV_SYNCHRONOUS,
    ENV_VARS,
    CheckpointMode,
    DurabilityConfig,
    JournalMode,
    Preset,
    Synchronous,
)
from .errors import (
    ConfigError,
    ConstraintError,
    CorruptDatabaseError,
    DatabaseBusyError,
    DatabaseInUseError,
    DatabaseNotFoundError,
    DiskFullError,
    InvalidInputError,
    NotADatabaseError,
    OutputExistsError,
    PragmaNotAppliedError,
    RepairError,
    SalvageError,
    StateError,
    StoreClosedError,
    UnknownSessionError,
    WalUnsupportedError,
    is_malformed_db_error,
)
from .health import FtsStatus, HealthReport, check_connection, check_health, in_wal_reset_bug_range
from .pragmas import (
    PragmaState,
    apply_durability,
    apply_wal_with_fallback,
    compiled_default_synchronous,
    read_pragmas,
)
from .repair import ApplyMode, RepairOutcome, RepairResult, RepairStep, RowCounts, repair_state_db
from .retry import RetryPolicy
from .salvage import SalvageMethod, SalvageResult, TableSalvage, salvage_state_db
from .schema import SCHEMA_VERSION
from .store import SessionDB

pragmas_in_force = read_pragmas

__all__ = [
    "SCHEMA_VERSION",
    "ApplyMode",
    "OutputExistsError",
    "SalvageError",
    "SalvageMethod",
    "SalvageResult",
    "TableSalvage",
    "salvage_state_db",
    "ENV_BUSY_TIMEOUT_MS",
    "ENV_CHECKPOINT_EVERY",
    "ENV_CHECKPOINT_MODE",
    "ENV_JOURNAL_MODE",
    "ENV_PRESET",
    "ENV_SYNCHRONOUS",
    "ENV_VARS",
    "CheckpointMode",
    "ConfigError",
    "ConstraintError",
    "CorruptDatabaseError",
    "DatabaseBusyError",
    "DatabaseInUseError",
    "DatabaseNotFoundError",
    "DiskFullError",
    "DurabilityConfig",
    "FtsStatus",
    "HealthReport",
    "InvalidInputError",
    "JournalMode",
    "NotADatabaseError",
    "PragmaNotAppliedError",
    "PragmaState",
    "Preset",
    "RepairError",
    "RepairOutcome",
    "RepairResult",
    "RepairStep",
    "RetryPolicy",
    "RowCounts",
    "SessionDB",
    "StateError",
    "StoreClosedError",
    "Synchronous",
    "UnknownSessionError",
    "WalUnsupportedError",
    "apply_durability",
    "apply_wal_with_fallback",
    "backup_files",
    "backup_live",
    "check_connection",
    "check_health",
    "compiled_default_synchronous",
    "in_wal_reset_bug_range",
    "is_malformed_db_error",
    "pragmas_in_force",
    "read_pragmas",
    "repair_state_db",
]
