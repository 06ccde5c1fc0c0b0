"""What a machine needs to load a built SQLite, and a check of the library actually in force.

Python's `_sqlite3` links `libsqlite3.so.0` by name, so putting a build's directory first on
`LD_LIBRARY_PATH` makes the stdlib `sqlite3` module load it: no rebuild of Python, no change to
the store. `None` (the `system` choice) means the image's own library: no mount, no variable.
The probe never trusts the request: it starts a Python with that environment and asks SQLite.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from typing import TYPE_CHECKING

from repro.errors import LabError

if TYPE_CHECKING:
    from repro.sqlite.build import SqliteBuild

LIBRARY_PATH_ENV = "LD_LIBRARY_PATH"
MACHINE_LIB_DIR = "/opt/hermes-lab/sqlite"  # where a machine mounts a build (read-only)

_PROBE = """
import json, sqlite3
conn = sqlite3.connect(":memory:")
library = ""
with open("/proc/self/maps") as maps:
    for line in maps:
        if "libsqlite3" in line:
            library = line.split()[-1]
            break
print(json.dumps({
    "version": sqlite3.sqlite_version,
    "source_id": conn.execute("select sqlite_source_id()").fetchone()[0],
    "compile_options": [row[0] for row in conn.execute("pragma compile_options")],
    "library": library,
}))
"""


class SqliteLoadError(LabError):
    """A Python given a build's environment did not load that build (exit 3)."""


@dataclasses.dataclass(frozen=True)
class LoadedSqlite:
    """The SQLite a Python process really runs: what a trial records as 'in force'."""

    version: str
    source_id: str
    compile_options: tuple[str, ...]
    library: str  # the file the process mapped


def mount(build: SqliteBuild | None) -> tuple[pathlib.Path, str] | None:
    """(host directory, machine directory) to bind read-only, or None for the system library."""
    return None if build is None else (build.lib_dir, MACHINE_LIB_DIR)


def environment(build: SqliteBuild | None, lib_dir: str = MACHINE_LIB_DIR) -> dict[str, str]:
    """The variables a process needs to load `build` from `lib_dir` (none for the system library)."""
    return {} if build is None else {LIBRARY_PATH_ENV: lib_dir}


def probe(build: SqliteBuild | None, python: str = sys.executable) -> LoadedSqlite:
    """Load the build on this host in a fresh `python` and report the SQLite in force; raise
    unless a build's version and source id are the ones that loaded."""
    env = {k: v for k, v in os.environ.items() if k != LIBRARY_PATH_ENV}
    env.update(environment(build, str(build.lib_dir)) if build is not None else {})
    proc = subprocess.run([python, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SqliteLoadError(f"{python} could not load SQLite from {env.get(LIBRARY_PATH_ENV, 'the system')}: {last}")
    raw = json.loads(proc.stdout)
    loaded = LoadedSqlite(raw["version"], raw["source_id"], tuple(raw["compile_options"]), raw["library"])
    if build is not None and (loaded.version, loaded.source_id) != (build.version, build.source_id):
        raise SqliteLoadError(f"asked for SQLite {build.version} from {build.lib_dir}, "
                              f"but {loaded.version} ({loaded.library}) loaded")
    return loaded
