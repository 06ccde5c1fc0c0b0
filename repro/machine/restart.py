"""The restarted machine: the crash state kept as evidence, then the database reopened on the same disk.

The disk's holder is the restarted machine (repro/machine/disk.py): it has the machine's
limits, no capability, uid 1000, and the same store and SQLite. Once the machine is down, the
crash state is copied first, as the crash left it (opening the files replays the WAL or rolls
back a hot journal, and the store may repair the file): by root, read-only and hashed, so the
store's user can neither change the evidence nor go unnoticed if it could. Then the probe
gathers facts as uid 1000, and every process of that user left in the holder (something the
store forked) is killed before the holder may serve another trial; a holder that is not
clean afterwards is not kept. It returns facts and never judges them: the oracle does that.
"""

from __future__ import annotations

import hashlib
import pathlib
import shlex
from dataclasses import dataclass
from typing import Mapping

from repro.errors import TrialError
from repro.machine.disk import snapshot_dir, snapshot_script
from repro.machine.container import ConstrainedHost
from repro.machine.inputs import InputKind, machine_path
from repro.verify.baseline import BASELINE_FILE
from repro.verify.facts import ProbeFacts, parse_probe_output

# The files of the database, as a crash leaves them.
DB_FILES = ("state.db", "state.db-wal", "state.db-shm", "state.db-journal")
PROBE_MODULE = "repro.verify.probe"
PROBE_TIMEOUT_S = 120.0
LEFT_TAG = "holder processes left: "  # the probe's shell counts what the kill left in the holder
KILL_WAIT_S = 2.0  # the longest the probe's shell waits for the processes it killed to be gone


@dataclass(frozen=True)
class Restart:
    """What the restarted machine found, and what it printed."""

    facts: ProbeFacts
    output: str
    exit_code: int
    kept: Mapping[str, str]  # the crash-state files kept as evidence: name -> sha256 when taken


def restart(machine: ConstrainedHost, timeout: float = PROBE_TIMEOUT_S, baseline: bool = False) -> Restart:
    """Bring the machine down if it is up, then in the restarted machine keep the crash state and
    probe the database with the same store and SQLite. ``baseline``: the machine's inputs hold the
    starting database's baseline (repro/startdb/restore.py), which the probe checks; the probe is
    killed after ``timeout`` seconds."""
    if machine.is_running():
        machine.kill()
    if machine.disk is None:
        raise machine.console.error("the machine has no data disk to restart on")
    argv = ["timeout", "-s", "KILL", f"{timeout:.0f}", "python3", "-m", PROBE_MODULE, f"{machine.disk_db_dir}/state.db"]
    if machine.store_mount:
        argv += ["--store-mount", machine.store_mount]
    if baseline:
        argv += ["--baseline", f"{machine_path(InputKind.START)}/{BASELINE_FILE}"]
    target = snapshot_dir(machine.get_wrapped_container().id)
    code, taken = machine.disk.run(["sh", "-c", snapshot_script(machine.disk_db_dir, DB_FILES, target)], {}, user="0:0")
    if code != 0:
        raise machine.console.error(f"the crash state could not be kept: {taken.strip()[-300:]}")
    kept = {name: digest for digest, _, name in (line.partition("  ") for line in taken.splitlines()) if name in DB_FILES}
    # The holder may have served an earlier trial of the run: its /tmp (SQLite's temporary files) starts
    # empty. After the probe, every process of uid 1000 but the holder's own PID 1 and this shell is killed
    # (kill -1 spares both), and whatever is still there after up to KILL_WAIT_S is counted: a killed process
    # leaves /proc only once the kernel has torn it down, which a loaded host can take longer than a moment for.
    polls = int(KILL_WAIT_S / 0.05)
    script = (f"find /tmp -mindepth 1 -delete 2>/dev/null; {shlex.join(argv)}; code=$?; kill -KILL -1 2>/dev/null; "
              f"i=0; while :; do left=0; for p in /proc/[0-9]*; do n=${{p#/proc/}}; "
              f"[ \"$n\" = 1 ] || [ \"$n\" = $$ ] || left=$((left+1)); done; "
              f"if [ $left = 0 ] || [ $i -ge {polls} ]; then break; fi; i=$((i+1)); sleep 0.05; done; "
              f"echo \"{LEFT_TAG}$left\"; exit $code")
    code, output = machine.disk.run(["sh", "-c", script], environment=machine.environment())
    left = [line for line in output.splitlines() if line.startswith(LEFT_TAG)]
    if left != [f"{LEFT_TAG}0"]:  # a process of the store outlived the probe: no later trial gets this holder
        machine.disk.reusable = False
    try:
        facts = parse_probe_output(output.splitlines())
    except ValueError as exc:
        error = machine.console.error(f"the verifier printed no facts (exit {code}): {exc}")
        error.add_note("verifier output:\n" + output[-3000:])
        raise error from None
    return Restart(facts=facts, output=output, exit_code=code, kept=kept)


def fetch_database(machine: ConstrainedHost, dest: pathlib.Path, kept: Mapping[str, str] | None = None) -> list[str]:
    """Copy the database files into ``dest``: as the crash left them, when ``restart`` kept them (``kept``:
    their hashes when taken, checked again here; ``evidence.sha256`` beside them for ``sha256sum -c``),
    or as they are on the disk now."""
    if machine.disk is None:
        return []
    container = machine.get_wrapped_container()
    if kept and container is not None:
        taken = machine.disk.fetch(snapshot_dir(container.id), dest)
        (dest / "evidence.sha256").write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(kept.items())))
        changed = sorted(name for name in taken
                         if hashlib.sha256((dest / name).read_bytes()).hexdigest() != kept.get(name))
        if changed or set(taken) != set(kept):
            raise TrialError(f"the kept crash state changed after it was taken: {', '.join(changed) or 'files'}")
        return taken
    copied: list[str] = []
    for name in DB_FILES:
        copied += machine.disk.fetch(f"{machine.disk_db_dir}/{name}", dest)
    return copied
