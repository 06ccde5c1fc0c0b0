"""Debian's libsqlite3 compile options, read from the system library and turned into gcc flags.

`PRAGMA compile_options` names each option without its `SQLITE_` prefix (`ENABLE_FTS5`,
`THREADSAFE=1`); the build passes it back as `-DSQLITE_ENABLE_FTS5`, `-DSQLITE_THREADSAFE=1`.
Three kinds are not passed back:
- options that describe the compiler, not a feature (SKIPPED): `COMPILER=gcc-12.2.0` is a
  string SQLite records, `ATOMIC_INTRINSICS=1` is SQLite's own finding that the compiler has
  `__atomic` builtins, `MUTEX_PTHREADS` is SQLite's own pick of mutex for THREADSAFE on unix
  (the built library reports all three by itself; passing the last one only redefines it);
- name-only options SQLite defines itself ahead of its compile-options list (`#ifndef
  SQLITE_X / #define SQLITE_X 0`): compile_options shows `DEFAULT_AUTOVACUUM` for a library
  that never defined it, and `-DSQLITE_DEFAULT_AUTOVACUUM` would mean =1 and turn auto-vacuum
  on (seen on this machine); these are read from the amalgamation being built
  (self_defaulted). USE_URI's default comes after the list, so it is passed (=1, as Debian);
- nothing else: default-valued options (DEFAULT_CACHE_SIZE=-2000, ...) are passed explicitly
  so the build does not depend on what a newer SQLite's defaults became.
`HAVE_ISNAN` is a configure result and keeps its name (`-DHAVE_ISNAN=1`, no prefix).

Debian's library is also built by configure, which defines `HAVE_*` macros that never show in
compile_options but change behaviour: without HAVE_USLEEP a busy wait sleeps whole seconds,
without HAVE_FDATASYNC SQLite syncs with fsync. PLATFORM_DEFINES lists the ones the system
library shows it used (it imports usleep, fdatasync, localtime_r, strchrnul and utime from libc,
and not posix_fallocate nor malloc_usable_size, so those two stay undefined). SQLite 3.47 and
later sleep with nanosleep whenever it exists, so their builds import nanosleep, not usleep:
the same sub-second busy wait.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from typing import Iterable, Sequence

# PRAGMA compile_options names that describe the build, with the reason they are not passed on.
SKIPPED: dict[str, str] = {
    "COMPILER": "names the compiler that built the library, not a feature",
    "ATOMIC_INTRINSICS": "SQLite's own test for the compiler's __atomic builtins, not a setting",
    "MUTEX_PTHREADS": "SQLite's own choice of mutex on unix when THREADSAFE>0, not a setting",
}

# configure results Debian's build had (shown by the libc functions its library imports).
PLATFORM_DEFINES: tuple[str, ...] = (
    "-DHAVE_USLEEP=1", "-DHAVE_FDATASYNC=1", "-DHAVE_LOCALTIME_R=1", "-DHAVE_STRCHRNUL=1",
    "-DHAVE_UTIME=1",
)

# libc functions whose presence in a library's imports shows which configure results it used.
PLATFORM_SYMBOLS: frozenset[str] = frozenset({
    "usleep", "nanosleep", "fdatasync", "localtime_r", "gmtime_r", "strchrnul", "utime",
    "posix_fallocate", "posix_fallocate64", "malloc_usable_size", "pread64", "pwrite64",
})


def system_compile_options() -> tuple[str, ...]:
    """`PRAGMA compile_options` of the library this Python process loaded (Debian's, on the host
    and in the lab image -- unless someone started the lab with LD_LIBRARY_PATH pointing elsewhere)."""
    with sqlite3.connect(":memory:") as conn:
        return tuple(row[0] for row in conn.execute("PRAGMA compile_options"))


def option_name(option: str) -> str:
    return option.partition("=")[0]


def self_defaulted(source: bytes, name: str) -> bool:
    """Did SQLite itself define SQLITE_<name> before its compile-options list, so that the list
    names it for every build? (`#ifndef SQLITE_X` / `#define SQLITE_X 0` ahead of `"X",`.) One
    defined after the list (USE_URI's default, say) is named only when the build defined it."""
    n = re.escape(name.encode())
    default = re.search(rb"#\s*ifndef\s+SQLITE_" + n + rb"\s*\n\s*#\s*define\s+SQLITE_" + n + rb"\s+\S", source)
    listed = re.search(rb'^\s*"' + n + rb'",\s*$', source, re.M)
    return default is not None and listed is not None and default.start() < listed.start()


def translate(options: Iterable[str], source: bytes) -> tuple[str, ...]:
    """compile_options entries -> gcc -D flags for this amalgamation (see the module docstring)."""
    flags = []
    for option in options:
        name, has_value, value = option.partition("=")
        if name in SKIPPED or (not has_value and self_defaulted(source, name)):
            continue
        macro = name if name.startswith("HAVE_") else f"SQLITE_{name}"
        flags.append(f"-D{macro}={value}" if has_value else f"-D{macro}=1" if name.startswith("HAVE_")
                     else f"-D{macro}")
    return tuple(flags)


# Bump when the translation rules change: builds made under the old rules are then not reused.
RECIPE = "recipe-2"


def options_hash(options: Sequence[str], extra: Sequence[str] = ()) -> str:
    """A short, stable name for the options a build follows (the cache's key with the version)."""
    return hashlib.sha256("\n".join([RECIPE, *options, *PLATFORM_DEFINES, *extra]).encode()).hexdigest()[:12]


def differences(system: Iterable[str], built: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(options the system library has and the build lacks, options only the build has),
    ignoring SKIPPED names; a value change shows on both sides."""
    wanted = {o for o in system if option_name(o) not in SKIPPED}
    got = {o for o in built if option_name(o) not in SKIPPED}
    return tuple(sorted(wanted - got)), tuple(sorted(got - wanted))
