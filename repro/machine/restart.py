"""The restarted machine: the crash state kept as evidence, then the database reopened on the same disk.

It returns facts (what the probe found) and never judges them: the oracle does that. The
database files are copied first, as the crash left them, because opening them replays
the WAL or rolls back a hot journal, and the store may repair the file.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from docker.types import Mount

from repro.machine.disk import SNAPSHOT_DIR
from repro.machine.host import STORE_MOUNT, ConstrainedHost
from repro.verify.baseline import BASELINE_FILE
from repro.verify.facts import ProbeFacts, parse_probe_output

# The files of the database, as a crash leaves them.
DB_FILES = ("state.db", "state.db-wal", "state.db-shm", "state.db-journal")
PROBE_MODULE = "repro.verify.probe"
PROBE_TIMEOUT_S = 120.0
START_MOUNT = "/opt/start"  # the starting database's baseline, for the probe


@dataclass(frozen=True)
class Restart:
    """What the restarted machine found, and what it printed."""

    facts: ProbeFacts
    output: str
    exit_code: int
    kept: tuple[str, ...]  # the crash-state files kept as evidence


def keep_crash_state(host: ConstrainedHost) -> tuple[str, ...]:
    """Copy the database files as they are now beside the disk, in its holder (fetch them with
    ``fetch_database``). Returns the names kept."""
    if host.disk is None:
        return ()
    return tuple(host.disk.snapshot(host.disk_db_dir, DB_FILES))


def restart(host: ConstrainedHost, timeout: float = PROBE_TIMEOUT_S, start_files: str | None = None) -> Restart:
    """Bring the machine down if it is up, keep the crash state, then run the probe in a fresh
    machine on the same disk with the same store: no capabilities, uid 1000. ``start_files``: the
    starting database's directory in the cache, whose baseline the probe checks (mounted read-only)."""
    if host.is_running():
        host.kill()
    kept = keep_crash_state(host)
    argv = ["python3", "-m", PROBE_MODULE, f"{host.disk_db_dir}/state.db"]
    if host.store.store_path:
        argv += ["--store-path", STORE_MOUNT]
    mounts: tuple[Mount, ...] = ()
    if start_files:
        mounts = (Mount(target=START_MOUNT, source=str(start_files), type="bind", read_only=True),)
        argv += ["--baseline", f"{START_MOUNT}/{BASELINE_FILE}"]
    restarted = ConstrainedHost(host.profile, store=host.store, image=host.image, disk=host.disk, role="verify",
                                mounts=mounts, sqlite=host.sqlite)  # the verifier opens the files with the same library
    restarted.with_entrypoint(argv, user="1000:1000")
    with restarted:
        code = int(restarted.get_wrapped_container().wait(timeout=timeout)["StatusCode"])
        output = restarted.get_wrapped_container().logs().decode("utf-8", "replace")
    try:
        facts = parse_probe_output(output.splitlines())
    except ValueError as exc:
        error = host.console.error(f"the verifier printed no facts (exit {code}): {exc}")
        error.add_note("verifier output:\n" + output[-3000:])
        raise error from None
    return Restart(facts=facts, output=output, exit_code=code, kept=kept)


def fetch_database(host: ConstrainedHost, dest: pathlib.Path, crash_state: bool = True) -> list[str]:
    """Copy the database files into ``dest``: as the crash left them (kept by ``restart``), or
    as they are on the disk now."""
    if host.disk is None:
        return []
    if crash_state:
        kept = host.disk.fetch(SNAPSHOT_DIR, dest)
        if kept:
            return kept
    copied: list[str] = []
    for name in DB_FILES:
        copied += host.disk.fetch(f"{host.disk_db_dir}/{name}", dest)
    return copied
