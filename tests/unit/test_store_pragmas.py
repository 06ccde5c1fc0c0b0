"""The durability settings: the seed's pragma assertions, the DELETE fallback, presets and overrides."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hermes_state import (
    ConfigError,
    DurabilityConfig,
    JournalMode,
    PragmaState,
    Preset,
    SessionDB,
    Synchronous,
    WalUnsupportedError,
    apply_wal_with_fallback,
    compiled_default_synchronous,
)
from hermes_state.config import ENV_VARS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


class NoWalConnection(sqlite3.Connection):
    """A connection on a filesystem where WAL locking fails (NFS, SMB, some FUSE mounts)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql.replace(" ", "").upper() == "PRAGMAJOURNAL_MODE=WAL":
            raise sqlite3.OperationalError("locking protocol")
        return super().execute(sql, parameters)


def test_seed_fresh_store_pragmas(tmp_path: Path) -> None:
    db = SessionDB(tmp_path / "state.db")
    try:
        conn = db._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.pragmas == PragmaState("wal", 1, 2000, 1) == db.pragmas_in_force()
    finally:
        db.close()


def test_seed_delete_fallback_is_full_and_never_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = SessionDB(tmp_path / "nfs.db", connection_factory=NoWalConnection)
    try:
        assert db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert db._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
        db.create_session("s", "cli")
        assert db.append_message("s", "user", "still writes") == 1
    finally:
        db.close()
    # One warning per database, however often it is opened.
    SessionDB(tmp_path / "nfs.db", connection_factory=NoWalConnection).close()
    warnings = [r for r in caplog.records if "WAL is not supported" in r.getMessage()]
    assert len(warnings) == 1


def test_fallback_never_downgrades_an_existing_wal_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SessionDB(path).close()  # a WAL database
    conn = sqlite3.connect(path, isolation_level=None, factory=NoWalConnection)
    try:
        assert apply_wal_with_fallback(conn, "state.db") == "wal"
    finally:
        conn.close()

    class WalLockingBroken(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            if "JOURNAL_MODE" in sql.upper():
                raise sqlite3.OperationalError("locking protocol")
            return super().execute(sql, parameters)

    broken = sqlite3.connect(path, isolation_level=None, factory=WalLockingBroken)
    try:
        with pytest.raises(WalUnsupportedError):
            apply_wal_with_fallback(broken, "state.db")
    finally:
        broken.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    check.close()


def _fresh_sync(tmp_path: Path, *, wal: bool) -> int:
    """synchronous on a fresh, unconfigured connection (the compiled-in default)."""
    conn = sqlite3.connect(tmp_path / f"fresh-{wal}.db", isolation_level=None)
    try:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (DurabilityConfig(), PragmaState("wal", 1, 2000, 1)),
        (DurabilityConfig.preset_named("durable"), PragmaState("wal", 2, 2000, 1)),
        (DurabilityConfig().with_overrides(synchronous="OFF"), PragmaState("wal", 0, 2000, 1)),
        (DurabilityConfig().with_overrides(synchronous="extra"), PragmaState("wal", 3, 2000, 1)),
        (DurabilityConfig().with_overrides(busy_timeout_ms=1234), PragmaState("wal", 1, 1234, 1)),
        (DurabilityConfig().with_overrides(journal_mode="DELETE"), PragmaState("delete", 2, 2000, 1)),
        (DurabilityConfig().with_overrides(journal_mode="truncate"), PragmaState("truncate", 2, 2000, 1)),
        (DurabilityConfig().with_overrides(journal_mode="persist"), PragmaState("persist", 2, 2000, 1)),
        (DurabilityConfig().with_overrides(journal_mode="memory"), PragmaState("memory", 2, 2000, 1)),
        (DurabilityConfig().with_overrides(journal_mode="off", synchronous="off"), PragmaState("off", 0, 2000, 1)),
        (DurabilityConfig.preset_named("durable").with_overrides(journal_mode="delete"),
         PragmaState("delete", 3, 2000, 1)),
    ],
    ids=lambda v: v.preset.value + "/" + v.journal_mode.value if isinstance(v, DurabilityConfig) else "",
)
def test_each_preset_and_override_sets_exactly_what_it_names(
    tmp_path: Path, config: DurabilityConfig, expected: PragmaState
) -> None:
    db = SessionDB(tmp_path / "state.db", config=config)
    try:
        assert db.pragmas_in_force() == expected
        db.create_session("s", "cli")
        db.append_message("s", "user", "x")
        assert db.message_count() == 1
    finally:
        db.close()


def test_legacy_leaves_synchronous_at_the_compiled_default(tmp_path: Path) -> None:
    db = SessionDB(tmp_path / "state.db", config=DurabilityConfig.preset_named(Preset.LEGACY))
    try:
        got = db.pragmas_in_force()
        assert got.journal_mode == "wal"
        assert got.synchronous == compiled_default_synchronous(db._conn, wal=True)
        assert got.synchronous == _fresh_sync(tmp_path, wal=True)
        assert got.busy_timeout == 1000  # only the 1 s connect timeout
        assert got.foreign_keys == 1
    finally:
        db.close()
    legacy_delete = DurabilityConfig.preset_named("legacy").with_overrides(journal_mode="delete")
    db = SessionDB(tmp_path / "legacy-delete.db", config=legacy_delete)
    try:
        assert db.pragmas_in_force().synchronous == _fresh_sync(tmp_path, wal=False)
    finally:
        db.close()


def test_config_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "HERMES_STATE_PRESET": "durable",
        "HERMES_STATE_JOURNAL_MODE": "DELETE",
        "HERMES_STATE_BUSY_TIMEOUT_MS": "750",
        "HERMES_STATE_CHECKPOINT_MODE": "truncate",
        "HERMES_STATE_CHECKPOINT_EVERY": "7",
    }
    cfg = DurabilityConfig.from_env(env)
    assert cfg.journal_mode is JournalMode.DELETE
    assert cfg.synchronous_other is Synchronous.EXTRA
    assert (cfg.busy_timeout_ms, cfg.checkpoint_every, cfg.checkpoint_mode.value) == (750, 7, "TRUNCATE")
    assert DurabilityConfig.from_env({"HERMES_STATE_PRESET": ""}) == DurabilityConfig()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db = SessionDB(tmp_path / "state.db")  # config=None reads the environment
    try:
        assert db.pragmas_in_force() == PragmaState("delete", 3, 750, 1)
    finally:
        db.close()


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("HERMES_STATE_PRESET", "fast"),
        ("HERMES_STATE_JOURNAL_MODE", "wal2"),
        ("HERMES_STATE_SYNCHRONOUS", "sometimes"),
        ("HERMES_STATE_BUSY_TIMEOUT_MS", "-5"),
        ("HERMES_STATE_CHECKPOINT_MODE", "RESTART"),
        ("HERMES_STATE_CHECKPOINT_EVERY", "ten"),
        ("HERMES_STATE_WAL_AUTOCHECKPOINT", "-1"),
    ],
)
def test_invalid_environment_value_is_a_clear_config_error(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        DurabilityConfig.from_env({var: value})
    assert var in str(info.value) and repr(value) in str(info.value)


def test_wal_autocheckpoint_is_left_alone_unless_asked_and_set_when_asked(tmp_path: Path) -> None:
    """The WAL-reset hunt asks for a small wal_autocheckpoint (frequent checkpoints by writers);
    by default the store leaves SQLite's own value (1000 pages)."""
    def wal_frames_after_40_writes(cfg: DurabilityConfig, name: str) -> tuple[int, int]:
        db = SessionDB(tmp_path / name, config=cfg)
        try:
            db.create_session("s1", "cli")
            for n in range(40):  # about a page each
                db.append_message("s1", role="user", content="x" * 3000 + str(n))
            setting = int(db._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            return setting, int(db._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        finally:
            db.close()

    no_periodic = DurabilityConfig(checkpoint_every=0)  # the store's own checkpoint would blur it
    setting, frames = wal_frames_after_40_writes(no_periodic, "default.db")
    assert setting == 1000 and frames > 500  # nobody checkpointed: every frame is still in the WAL
    cfg = no_periodic.with_overrides(wal_autocheckpoint="8")
    assert DurabilityConfig.from_env({"HERMES_STATE_WAL_AUTOCHECKPOINT": "8"}).wal_autocheckpoint == 8
    assert cfg.describe()["wal_autocheckpoint"] == 8
    setting, frames = wal_frames_after_40_writes(cfg, "small.db")
    assert setting == 8 and frames < 40  # writers checkpointed and the WAL restarted from its start
    with pytest.raises(ConfigError):
        DurabilityConfig(wal_autocheckpoint=True)  # type: ignore[arg-type]
