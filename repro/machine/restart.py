"""The restarted machine: the crash state kept as evidence, then the database reopened on the same disk.

The disk's holder is the restarted machine (repro/machine/disk.py): it has the machine's
limits, no capability, uid 1000, and the same store and SQLite. One program runs in it once
the machine is down: the crash state is copied first, as the crash left it (opening the
files replays the WAL or rolls back a hot journal, and the store may repair the file), then
the probe gathers facts. It returns facts and never judges them: the oracle does that.
"""

from __future__ import annotations

import pathlib
import shlex
from dataclasses import dataclass

from repro.machine.disk import snapshot_dir, snapshot_script
from repro.machine.host import ConstrainedHost
from repro.machine.inputs import InputKind, machine_path
from repro.verify.baseline import BASELINE_FILE
from repro.verify.facts import ProbeFacts, parse_probe_output

# The files of the database, as a crash leaves them.
DB_FILES = ("state.db", "state.db-wal", "state.db-shm", "state.db-journal")
PROBE_MODULE = "repro.verify.probe"
PROBE_TIMEOUT_S = 120.0
SNAPSHOT_FAILED = 97  # the exit code of a restart whose crash-state copy failed (the probe did not run)


@dataclass(frozen=True)
class Restart:
    """What the restarted machine found, and what it printed."""

    facts: ProbeFacts
    output: str
    exit_code: int
    kept: tuple[str, ...]  # the crash-state files kept as evidence


def restart(host: ConstrainedHost, timeout: float = PROBE_TIMEOUT_S, baseline: bool = False) -> Restart:
    """Bring the machine down if it is up, then in the restarted machine keep the crash state and
    probe the database with the same store and SQLite. ``baseline``: the machine's inputs hold the
    starting database's baseline (repro/startdb/restore.py), which the probe checks; the probe is
    killed after ``timeout`` seconds."""
    if host.is_running():
        host.kill()
    if host.disk is None:
        raise host.console.error("the machine has no data disk to restart on")
    argv = ["timeout", "-s", "KILL", f"{timeout:.0f}", "python3", "-m", PROBE_MODULE, f"{host.disk_db_dir}/state.db"]
    if host.store_mount:
        argv += ["--store-path", host.store_mount]
    if baseline:
        argv += ["--baseline", f"{machine_path(InputKind.START)}/{BASELINE_FILE}"]
    target = snapshot_dir(host.get_wrapped_container().id)
    # The holder may have served an earlier trial of the run: its /tmp (SQLite's temporary files) starts empty.
    script = (f"{snapshot_script(host.disk_db_dir, DB_FILES, target)} || exit {SNAPSHOT_FAILED}; "
              f"find /tmp -mindepth 1 -delete 2>/dev/null; exec {shlex.join(argv)}")
    code, output = host.disk.run(["sh", "-c", script], environment=host.environment())
    kept = tuple(line for line in output.splitlines() if line in DB_FILES)
    if code == SNAPSHOT_FAILED:
        raise host.console.error(f"the crash state could not be kept: {output.strip()[-300:]}")
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
    machine = host.get_wrapped_container()
    if crash_state and machine is not None:
        kept = host.disk.fetch(snapshot_dir(machine.id), dest)
        if kept:
            return kept
    copied: list[str] = []
    for name in DB_FILES:
        copied += host.disk.fetch(f"{host.disk_db_dir}/{name}", dest)
    return copied
