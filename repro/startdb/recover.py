"""A hot rollback journal beside ``--from-db`` rolled back as SQLite would, in a sandbox, never on the host.

A ``state.db-journal`` left by a crash in the middle of a transaction holds the pages as they
were before it; the database file may already hold some of the uncommitted ones (a cache spill
writes them before COMMIT). Copied without its journal, the database would start the trials with
rows that were never committed -- or half-written pages. SQLite rolls a hot journal back at the
next open, so the lab lets SQLite do exactly that, on a copy of the user's files: in a throwaway
container of the lab image (no network, no capability, uid 1000, a read-only root), whose only
writable place is a volume of its own holding the copy. The database comes back without its
journal; the journal itself is never kept. A journal that SQLite finds is not hot (a zeroed
header, a database it does not belong to) is left unused, as SQLite leaves it.
"""

from __future__ import annotations

import io
import json
import pathlib
import tarfile
import time

from repro.errors import LabError, ScenarioError, shown

JOURNAL = "state.db-journal"  # a rollback journal beside --from-db: copied only to be rolled back here, never kept
SANDBOX_DIR = "/opt/out"  # the image makes it uid 1000's, so a fresh volume mounted there is too
RECOVER_TIMEOUT_S = 120
RESULT = "RECOVERED "
# Run by the image's python3 as uid 1000: the first read of the database rolls a hot journal back.
RECOVER_CODE = f"""
import json, os, sqlite3, sys
path = os.path.join({SANDBOX_DIR!r}, "state.db")
journal = path + "-journal"
before = os.path.getsize(journal)
try:
    conn = sqlite3.connect("file:" + path + "?mode=rw", uri=True, isolation_level=None)
    conn.execute("PRAGMA schema_version").fetchone()
    quick = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    conn.close()
    result = {{"ok": True, "journal_bytes": before, "quick_check": quick, "sqlite": sqlite3.sqlite_version}}
except sqlite3.Error as exc:
    result = {{"ok": False, "error": str(exc), "sqlite": sqlite3.sqlite_version}}
print({RESULT!r} + json.dumps(result), flush=True)
"""


def _tar(directory: pathlib.Path, names: list[str]) -> bytes:
    """The files as uid 1000's (the sandbox's user must write them: a rollback rewrites pages)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tar.gettarinfo(str(directory / name), arcname=name)
            info.uid = info.gid = 1000
            info.uname = info.gname = "hermes"
            info.mode = 0o644
            with open(directory / name, "rb") as src:
                tar.addfile(info, src)
    return buf.getvalue()


def roll_back(directory: pathlib.Path, *, image: str, source: str) -> str:
    """Open the copy in ``directory`` (``state.db`` with its ``-journal``, and ``-wal``/``-shm`` when there) in a
    sandbox so that SQLite rolls the journal back; the files in ``directory`` become the rolled-back database
    without a journal. Returns how it went, in a clause; ScenarioError when SQLite cannot open the pair
    (``source``: the user's path, for the message), LabError when the engine fails."""
    import docker.errors
    import requests.exceptions
    from docker.types import Mount

    from repro.machine import engine
    from repro.machine.disk import copy_out
    from repro.machine.labels import labels
    from repro.machine.limits import WRITABLE, read_only_root

    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    cli = engine.client()
    container = volume = None
    started = time.monotonic()
    try:
        volume = cli.volumes.create(driver="local", labels=labels("start-recover")).name
        container = cli.containers.create(
            image, entrypoint=["python3", "-c", RECOVER_CODE], user="1000:1000", network_mode="none",
            mounts=[Mount(target=SANDBOX_DIR, source=volume, type="volume")], tmpfs=dict(WRITABLE),
            mem_limit=512 << 20, memswap_limit=512 << 20, pids_limit=64, cap_drop=["ALL"],
            security_opt=["no-new-privileges=true"], labels=labels("start-recover"), **read_only_root())
        container.put_archive(SANDBOX_DIR, _tar(directory, names))
        container.start()
        code = int(container.wait(timeout=RECOVER_TIMEOUT_S)["StatusCode"])
        output = container.logs().decode("utf-8", "replace")
        for name in names:
            (directory / name).unlink()
        copy_out(container, SANDBOX_DIR, directory)
    except requests.exceptions.RequestException:
        raise LabError(f"rolling back the hot journal of --from-db took more than {RECOVER_TIMEOUT_S} s") from None
    except docker.errors.DockerException as exc:
        raise LabError(f"cannot roll back the hot journal of --from-db in a sandbox: {engine._short(exc)}") from None
    finally:
        engine.discard(container, [volume] if volume else [])
    found = [line[len(RESULT):] for line in output.splitlines() if line.startswith(RESULT)]
    if code != 0 or not found:
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise LabError(f"the sandbox that rolls back --from-db's hot journal failed (exit {code}): {tail[-300:]}")
    result = json.loads(found[-1])
    if not result.get("ok"):
        raise ScenarioError(f"--from-db {shown(source)}: SQLite {result.get('sqlite')} cannot open it with the "
                            f"journal beside it: {result.get('error')}")
    (directory / JOURNAL).unlink(missing_ok=True)  # not hot (SQLite left it): unused, as SQLite leaves it unused
    if result.get("quick_check") != "ok":
        raise ScenarioError(f"--from-db {shown(source)}: after SQLite rolled back the journal beside it, the "
                            f"database is damaged: {str(result.get('quick_check'))[:200]}")
    return (f"opened with its {int(result.get('journal_bytes', 0)):,}-byte rollback journal by SQLite "
            f"{result.get('sqlite')} in a sandbox, which rolls a hot one back ({time.monotonic() - started:.1f} s)")
