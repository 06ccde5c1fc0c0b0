"""What a machine needs to load a built SQLite, and a check of the library actually in force.

Python's `_sqlite3` links `libsqlite3.so.0` by name, so putting a build's directory first on
`LD_LIBRARY_PATH` makes the stdlib `sqlite3` module load it: no rebuild of Python, no change to
the store. `None` (the `system` choice) means the image's own library: no mount, no variable.
The probe never trusts the request: it starts a Python with that environment and asks SQLite.
In a trial every process of the machine (workload, cron writer, dashboard, checkpointer) and the
restarted machine's verifier report the library they loaded; `check_in_force` compares them with
the request, and a mismatch makes the trial a lab error, never a verdict about the wrong library.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from typing import TYPE_CHECKING, Iterable, Mapping

from repro.errors import LabError
from repro.machine.inputs import LIBRARY_PATH_ENV, InputKind, SqliteLibrary, library_environment, machine_path
from repro.protocol import EventKind, Tag, parse_all

if TYPE_CHECKING:
    from repro.sqlite.build import SqliteBuild

MACHINE_LIB_DIR = machine_path(InputKind.SQLITE)  # where a build is in a machine (its inputs, read-only)

PROBE_CODE = """
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


def library_dir(build: SqliteBuild | None) -> pathlib.Path | None:
    """The build's directory, sent into a machine's inputs (MACHINE_LIB_DIR); None for the system library."""
    return None if build is None else build.lib_dir


def environment(build: SqliteBuild | None, lib_dir: str = MACHINE_LIB_DIR) -> dict[str, str]:
    """The variables a process needs to load `build` from `lib_dir` (none for the system library)."""
    return library_environment(build, lib_dir)


def probe(build: SqliteBuild | None, python: str = sys.executable) -> LoadedSqlite:
    """Load the build on this host in a fresh `python` and report the SQLite in force; raise
    unless a build's version and source id are the ones that loaded."""
    env = {k: v for k, v in os.environ.items() if k != LIBRARY_PATH_ENV}
    env.update(environment(build, str(build.lib_dir)) if build is not None else {})
    proc = subprocess.run([python, "-c", PROBE_CODE], env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SqliteLoadError(f"{python} could not load SQLite from {env.get(LIBRARY_PATH_ENV, 'the system')}: {last}")
    raw = json.loads(proc.stdout)
    loaded = LoadedSqlite(raw["version"], raw["source_id"], tuple(raw["compile_options"]), raw["library"])
    if build is not None and (loaded.version, loaded.source_id) != (build.version, build.source_id):
        raise SqliteLoadError(f"asked for SQLite {build.version} from {build.lib_dir}, "
                              f"but {loaded.version} ({loaded.library}) loaded")
    return loaded


# The machine lines on which a process reports the SQLite it loaded, and who that process is.
_REPORTERS = ((EventKind.DASHBOARD_STARTED, "dashboard"), (EventKind.CHECKPOINTER_STARTED, "checkpointer"))


def machine_reports(lines: Iterable[str]) -> dict[str, tuple[str, str]]:
    """{process: (sqlite_version, sqlite_source_id)} from a machine's READY, writer-ready,
    dashboard-started and checkpointer-started lines (a field missing reads as "")."""
    found: dict[str, tuple[str, str]] = {}
    for line in parse_all(lines):
        if line.tag is Tag.READY:
            who = "workload"
        elif line.is_event(EventKind.WRITER_READY):
            who = f"{line.payload.get('role', 'second')} writer"
        else:
            who = next((name for kind, name in _REPORTERS if line.is_event(kind)), "")
            if not who:
                continue
        found[who] = (str(line.payload.get("sqlite_version", "")), str(line.payload.get("sqlite_source_id", "")))
    return found


def check_in_force(build: SqliteLibrary | None, reports: Mapping[str, tuple[str, str]]) -> None:
    """Raise SqliteLoadError unless every process ran the library asked for: a build's version and
    source id, or -- for the system library -- one and the same library in every process."""
    if not reports:
        raise SqliteLoadError("no process of the trial reported the SQLite it loaded")
    for who, (version, source_id) in reports.items():
        if not version or not source_id:
            raise SqliteLoadError(f"the {who} did not report the SQLite it loaded")
    if build is not None:
        for who, seen in reports.items():
            if seen != (build.version, build.source_id):
                raise SqliteLoadError(f"asked for SQLite {build.label} ({build.source_id[:19]}), but the {who} "
                                      f"ran {seen[0]} ({seen[1][:19]})")
    elif len(set(reports.values())) > 1:
        seen_text = ", ".join(f"{who} {v} ({s[:19]})" for who, (v, s) in sorted(reports.items()))
        raise SqliteLoadError(f"asked for the system SQLite, but the processes ran different libraries: {seen_text}")


def system_check(cli: object, image: str) -> tuple[str, bool, str, bool]:
    """`repro doctor`'s line for the `system` SQLite -- the image's own library when the image is
    there (asked in a throwaway container), else this host's -- with a warning only inside the
    WAL-reset bug's range: (name, ok, detail, required)."""
    import sqlite3

    from repro.sqlite.bugs import in_wal_reset_bug_range

    from repro.machine.labels import labels

    version, where = sqlite3.sqlite_version, "this host's library (no image to ask)"
    if cli is not None:
        try:
            out = cli.containers.run(image, entrypoint=["python3", "-c", PROBE_CODE], remove=True,  # type: ignore[attr-defined]
                                     network_mode="none", labels=labels("doctor"))
            version, where = str(json.loads(out)["version"]), f"the image's own library ({image})"
        except Exception as exc:  # the engine or the image failed: say so, and fall back to the host's
            where = f"this host's library (the image did not answer: {type(exc).__name__})"
    if in_wal_reset_bug_range(version):
        return ("sqlite", False, f"{version}, {where}: inside the WAL-reset bug's range (3.7.0-3.51.2; fixed in "
                "3.51.3, 3.44.6, 3.50.7): `--sqlite 3.53.2` runs a fixed build", False)
    return ("sqlite", True, f"{version}, {where}: outside the WAL-reset bug's range", False)
