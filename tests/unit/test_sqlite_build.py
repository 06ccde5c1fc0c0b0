"""Building SQLite without a compiler: option translation, the assist patch, the cache and resolve."""

from __future__ import annotations

import pathlib
from typing import Sequence

import pytest

import repro.sqlite as lab_sqlite
from repro.sqlite import build, options, runtime
from repro.sqlite.sources import Amalgamation, SourceRelease, SourceStore, SqliteVersionError

# SQLite's own default ahead of its compile-options list (so listed for every build), and one
# after it (listed only when the build defines it), as in the 3.40 to 3.54 amalgamations
SOURCE_DEFAULTS = (b"#ifndef SQLITE_DEFAULT_AUTOVACUUM\n  #define SQLITE_DEFAULT_AUTOVACUUM 0\n#endif\n"
                   b"#ifdef SQLITE_DEFAULT_AUTOVACUUM\n  \"DEFAULT_AUTOVACUUM\",\n#endif\n"
                   b"#ifdef SQLITE_USE_URI\n  \"USE_URI\",\n#endif\n"
                   b"#ifndef SQLITE_USE_URI\n# define SQLITE_USE_URI 0\n#endif\n")


def test_translation_of_compile_options_to_flags() -> None:
    flags = options.translate(["ENABLE_FTS5", "THREADSAFE=1", "COMPILER=gcc-12.2.0", "ATOMIC_INTRINSICS=1",
                               "HAVE_ISNAN", "MAX_MMAP_SIZE=0x7fff0000", "MUTEX_PTHREADS",
                               "DEFAULT_AUTOVACUUM", "OMIT_LOOKASIDE", "USE_URI"], SOURCE_DEFAULTS)
    assert flags == ("-DSQLITE_ENABLE_FTS5", "-DSQLITE_THREADSAFE=1", "-DHAVE_ISNAN=1",
                     "-DSQLITE_MAX_MMAP_SIZE=0x7fff0000", "-DSQLITE_OMIT_LOOKASIDE", "-DSQLITE_USE_URI")
    # without SQLite's own default in the source, a name-only option is passed on
    assert options.translate(["DEFAULT_AUTOVACUUM"], b"") == ("-DSQLITE_DEFAULT_AUTOVACUUM",)


def test_the_system_library_is_debians_and_its_options_translate() -> None:
    system = options.system_compile_options()
    assert "ENABLE_FTS5" in system and "THREADSAFE=1" in system
    flags = options.translate(system, SOURCE_DEFAULTS)
    assert "-DSQLITE_ENABLE_FTS5" in flags and not any("COMPILER" in f for f in flags)


def test_differences_ignore_compiler_names_and_show_value_changes() -> None:
    missing, extra = options.differences(["ENABLE_FTS5", "COMPILER=gcc-12", "MAX_COLUMN=2000"],
                                         ["ENABLE_FTS5", "COMPILER=gcc-14", "MAX_COLUMN=100", "DIRECT_OVERFLOW_READ"])
    assert missing == ("MAX_COLUMN=2000",) and extra == ("DIRECT_OVERFLOW_READ", "MAX_COLUMN=100")


CHECKPOINT_BODY = (b"  int rc;\n  rc = walIndexReadHdr(pWal, &isChanged);\n"
                   b"  /* Copy data from the log to the database file. */\n  if( rc==SQLITE_OK ){\n"
                   b"    rc = walCheckpoint(pWal, db, eMode2);\n  }\n  return rc;\n}\n")
AMALGAMATION = (b"SQLITE_PRIVATE int sqlite3WalCheckpoint(\n  Wal *pWal,\n  int eMode\n);\n"
                b"/* ... */\nSQLITE_PRIVATE int sqlite3WalCheckpoint(\n  Wal *pWal,   /* Wal */\n  int eMode\n){\n"
                + CHECKPOINT_BODY + b"static int other(void){\n  /* Copy data from the log to the database file. */\n"
                b"  if( rc==SQLITE_OK ){\n  }\n}\n")


def test_the_assist_delay_goes_after_the_header_is_read_in_the_definition() -> None:
    """Once sqlite3WalCheckpoint has read the wal-index header and before it copies frames back:
    the WAL-reset race's window (3.51.3 put its test hook there), not the prototype, not elsewhere."""
    patched = build.assist_patch(AMALGAMATION)
    delay = patched.index(b"usleep(LAB_ASSIST_CHECKPOINT_US)")
    assert patched.index(b"walIndexReadHdr") < delay < patched.index(b"walCheckpoint(pWal")
    assert patched.index(b"if( rc==SQLITE_OK ){") < delay  # only when the header was read
    assert patched.count(b"#ifdef LAB_ASSIST_CHECKPOINT_US") == 1 and delay < patched.index(b"static int other")
    assert patched.replace(build._ASSIST_BLOCK, b"") == AMALGAMATION


@pytest.mark.parametrize("source", [b"int main(){}\n", AMALGAMATION + AMALGAMATION,
                                    AMALGAMATION.replace(b"/* Copy data from the log", b"/* Copy pages from the log")])
def test_the_assist_patch_refuses_a_source_it_does_not_understand(source: bytes) -> None:
    with pytest.raises(build.SqliteBuildError, match="sqlite3WalCheckpoint"):
        build.assist_patch(source)


def test_cache_keys_separate_assisted_builds_and_their_delay() -> None:
    plain = build.build_dir_name("3.51.2", ["ENABLE_FTS5"], False, 1000)
    assisted = build.build_dir_name("3.51.2", ["ENABLE_FTS5"], True, 1000)
    assert plain.startswith("3.51.2-") and assisted == plain.split("-")[0] + "-" + assisted.split("-")[1] + "-assisted"
    assert assisted != build.build_dir_name("3.51.2", ["ENABLE_FTS5"], True, 5000)
    key = build.opts.options_hash(["ENABLE_FTS5"], ("-DLAB_ASSIST_CHECKPOINT_US=1000",))
    assert assisted != f"3.51.2-{key}-assisted"  # a delay placed elsewhere (the first recipe's) is not reused
    assert plain != build.build_dir_name("3.51.2", ["ENABLE_FTS4"], False, 1000)
    with pytest.raises(SqliteVersionError):
        build.build_dir_name("3.51.2", [], True, 0)


@pytest.fixture
def fake_compile(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, tuple[str, ...]]]:
    """Replace gcc: write a stand-in library and record what would have been compiled."""
    calls: list[tuple[bytes, tuple[str, ...]]] = []

    def compile_(amalgamation: Amalgamation, source: bytes, flags: Sequence[str], workdir: pathlib.Path) -> str:
        calls.append((source, tuple(flags)))
        (workdir / build.LIB_NAME).write_bytes(b"\x7fELF stand-in")
        return "fake-cc 1.0"

    monkeypatch.setattr(build, "_compile", compile_)
    return calls


RELEASE = SourceRelease("3.53.2", "6.0.0", "https://fake/6.0.0.tgz", "sha512-unused", "")


class NoRegistry:
    """The registry of a test whose sources are already cached: any use of it is a failure."""

    def document(self) -> dict[str, object]:
        raise AssertionError("the registry was asked for its document")

    def tarball(self, url: str) -> bytes:
        raise AssertionError(f"the registry was asked for {url}")


def _cached_store(tmp_path: pathlib.Path, source: bytes) -> SourceStore:
    """A source store already holding better-sqlite3@6.0.0's sqlite3.c (SQLite 3.53.2)."""
    store = SourceStore(tmp_path / "sqlite", NoRegistry())
    path = store.dir / "better-sqlite3-6.0.0" / "sqlite3.c"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'#define SQLITE_VERSION        "3.53.2"\n'
                     b'#define SQLITE_SOURCE_ID      "2026-06-03 fake"\n' + source)
    return store


def test_a_second_resolve_is_a_cache_hit(tmp_path: pathlib.Path, fake_compile: list[object],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "INDEX", (RELEASE,))
    first = lab_sqlite.resolve("3.53.2", root=tmp_path, store=_cached_store(tmp_path, b""))
    assert first is not None and len(fake_compile) == 1
    lib = first.lib_dir / build.LIB_NAME
    stat = lib.stat()
    meta = build.BuildMetadata.from_json((first.lib_dir / build.META_NAME).read_text())
    assert (meta.version, meta.source, meta.compiler, meta.assisted) == ("3.53.2", "better-sqlite3@6.0.0",
                                                                       "fake-cc 1.0", False)
    assert meta.compile_options == options.system_compile_options()
    assert "-DHAVE_USLEEP=1" in meta.flags and "-DSQLITE_ENABLE_FTS5" in meta.flags
    assert meta.source_id == first.source_id == "2026-06-03 fake"
    (meta_path := first.lib_dir / build.META_NAME).touch()
    meta_mtime = meta_path.stat().st_mtime_ns

    empty = SourceStore(tmp_path / "elsewhere", NoRegistry())  # a hit must not even read the source
    second = lab_sqlite.resolve("3.53.2", root=tmp_path, store=empty)
    assert second == first and len(fake_compile) == 1
    assert (lib.stat().st_ino, lib.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert meta_path.stat().st_mtime_ns == meta_mtime
    assert lab_sqlite.cached_builds(tmp_path) == [first]
    assert "3.53.2" in lab_sqlite.available_versions(tmp_path)
    assert not [p for p in (tmp_path / "sqlite").iterdir() if p.name.startswith(".build-")]  # no temp left
    assert first.lib_dir.stat().st_mode & 0o777 == 0o755  # a machine's uid 1000 reads the bind mount
    first.lib_dir.chmod(0o700)  # as builds made before the lab mounted them into machines were
    assert lab_sqlite.resolve("3.53.2", root=tmp_path, store=empty) == first and len(fake_compile) == 1
    assert first.lib_dir.stat().st_mode & 0o777 == 0o755


def test_an_assisted_build_is_patched_labelled_and_cached_apart(tmp_path: pathlib.Path, fake_compile: list[
        tuple[bytes, tuple[str, ...]]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "INDEX", (RELEASE,))
    store = _cached_store(tmp_path, AMALGAMATION)
    assisted = lab_sqlite.resolve("3.53.2", assisted=True, assist_us=250, root=tmp_path, store=store)
    plain = lab_sqlite.resolve("3.53.2", root=tmp_path, store=store)
    assert assisted is not None and plain is not None and assisted != plain
    assert assisted.assisted and assisted.lib_dir.name.endswith("-assisted") and assisted.label == "3.53.2-assisted"
    (patched_source, patched_flags), (plain_source, plain_flags) = fake_compile
    assert b"usleep(LAB_ASSIST_CHECKPOINT_US)" in patched_source and b"usleep(" not in plain_source
    assert "-DLAB_ASSIST_CHECKPOINT_US=250" in patched_flags and not any("LAB_" in f for f in plain_flags)


def test_system_needs_no_build_and_cannot_be_assisted(tmp_path: pathlib.Path) -> None:
    assert lab_sqlite.resolve("system", root=tmp_path) is None
    assert runtime.library_dir(None) is None and runtime.environment(None) == {}
    with pytest.raises(SqliteVersionError, match="assisted"):
        lab_sqlite.resolve("system", assisted=True, root=tmp_path)
    assert not (tmp_path / "sqlite").exists()


@pytest.mark.parametrize("text", ["abc", "3.53", "latest"])
def test_garbage_versions_fail_before_any_work(tmp_path: pathlib.Path, text: str) -> None:
    with pytest.raises(SqliteVersionError) as info:
        lab_sqlite.resolve(text, root=tmp_path, store=SourceStore(tmp_path, NoRegistry()))
    assert "\n" not in str(info.value) and not (tmp_path / "sqlite").exists()


def test_a_machine_mounts_the_build_directory_and_points_the_loader_at_it(tmp_path: pathlib.Path) -> None:
    b = build.SqliteBuild("3.53.2", tmp_path, "better-sqlite3@12.11.1", ("ENABLE_FTS5",), False, "id")
    assert runtime.library_dir(b) == tmp_path
    assert runtime.environment(b) == {"LD_LIBRARY_PATH": runtime.MACHINE_LIB_DIR}


def test_the_probe_reports_the_system_library_in_force() -> None:
    loaded = runtime.probe(None)
    assert loaded.version == __import__("sqlite3").sqlite_version
    assert "ENABLE_FTS5" in loaded.compile_options and "libsqlite3" in loaded.library


def test_the_probe_refuses_a_directory_that_does_not_hold_the_build(tmp_path: pathlib.Path) -> None:
    b = build.SqliteBuild("3.53.2", tmp_path, "better-sqlite3@12.11.1", (), False, "id")
    with pytest.raises(runtime.SqliteLoadError, match="asked for SQLite 3.53.2"):
        runtime.probe(b)  # an empty directory: the system library loads instead, and that is refused
