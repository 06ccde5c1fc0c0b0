"""``--initial-size``: a starting database grown once per (size, seed, store) by the store under test itself, in a throwaway machine.

The grower (repro/workload/grow.py) runs in the trial's image with the store and the SQLite the
trials load (sent through the engine, as in a trial: repro/machine/inputs.py), as uid 1000,
without network, on a tmpfs of its own (fsyncs cost what they cost on the trial's disk), with
the store's own settings; it copies the finished database to a volume, from which the lab
fetches it into the cache through the engine, and the baseline is taken (repro/startdb/files.py). A second run
with the same size, seed and store finds it there and grows nothing.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import time

from repro.caches import make_partial
from repro.errors import LabError, ScenarioError
from repro.scenario import StoreSpec, format_size
from repro.scenario.stores import SYSTEM_SQLITE
from repro.source.layout import content_hash
from repro.startdb.files import StartFiles, finish, load

GROW_MODULE = "repro.workload.grow"
OUT_MOUNT = "/opt/out"  # the image makes it uid 1000's, so a fresh volume mounted there is too
GROW_RATE = 1 << 20  # bytes per second the deadline allows at least (measured: ~6 MB/s on one CPU)
GROW_MARGIN_S = 300


def store_fingerprint(store: StoreSpec) -> str:
    """What identifies the store's code: the commit of a ref, the content of a directory, the bundled store's
    files; and the image its requirements went into."""
    if store.store_commit:
        code = store.store_commit
    elif store.store_path:
        code = content_hash(store.store_path)
    else:
        from repro.machine import context

        code = content_hash(context.find_sources().store_dir)
    built = f"|sqlite={store.sqlite_label}" if store.sqlite_label != SYSTEM_SQLITE else ""  # the image's own: no suffix
    return f"{code}|{store.image or ''}{built}"


def grown_key(size: int, seed: int, store: StoreSpec) -> str:
    return "grown-" + hashlib.sha256(f"{size}|{seed}|{store_fingerprint(store)}".encode()).hexdigest()[:24]


def grow_database(size: int, seed: int, store: StoreSpec, *, image: str, cache: pathlib.Path) -> tuple[StartFiles, bool]:
    """The cached database of that size, seed and store, grown now if there is none; (files, grown now)."""
    target = cache / grown_key(size, seed, store)
    found = load(target)
    if found is not None:
        return found, False
    partial = make_partial(cache, "grown-")
    try:
        partial.chmod(0o777)  # the grower writes here as uid 1000
        started = time.monotonic()
        facts = _run_grower(size, seed, store, image=image, out=partial)
        made = (f"grown by {store.source if store.foreign else 'the lab store'} on SQLite "
                f"{facts.get('sqlite_version', '?')} from seed {seed} to {format_size(size)} in "
                f"{time.monotonic() - started:.0f} s")
        if not (partial / "state.db").is_file():
            raise LabError(f"the grower printed {facts} but left no database")
        return finish(partial, target, made), True
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _run_grower(size: int, seed: int, store: StoreSpec, *, image: str, out: pathlib.Path) -> dict[str, object]:
    import docker.errors
    import requests.exceptions
    from docker.types import Mount

    from repro import sqlite as lab_sqlite
    from repro.machine import engine
    from repro.machine.disk import copy_out
    from repro.machine.inputs import INPUTS_DIR, InputKind, archive, code_inputs, machine_path
    from repro.machine.labels import labels
    from repro.machine.limits import WRITABLE, read_only_root
    from repro.protocol import Tag, parse_all
    from repro.sqlite import runtime as sqlite_runtime

    _, build = lab_sqlite.for_store(store)  # grown with the library the trials load
    env = {"LAB_STORE_MOUNT": machine_path(InputKind.STORE) if store.foreign else "",
           **sqlite_runtime.environment(build)}
    inputs = code_inputs(str(store.store_path) if store.foreign else None, sqlite_runtime.library_dir(build))
    payload = archive(inputs)
    disk = size + size // 2 + (64 << 20)  # the database, its WAL, and room
    argv = ["python3", "-m", GROW_MODULE, "--size", str(size), "--seed", str(seed), "--out", OUT_MOUNT]
    cli = engine.client()
    container = None
    volumes: list[str] = []
    try:
        # Inputs in and the grown database out both travel through the engine (a remote one too):
        # volumes of the grower's own, removed with it.
        for role in ("grow-inputs", "grow-out"):  # one at a time: a failure leaves none unlisted
            volumes.append(cli.volumes.create(driver="local", labels=labels(role)).name)
        mounts = [Mount(target=INPUTS_DIR, source=volumes[0], type="volume"),
                  Mount(target=OUT_MOUNT, source=volumes[1], type="volume")]
        container = cli.containers.create(
            store.image or image, entrypoint=argv, user="1000:1000", environment=env, network_mode="none",
            mounts=mounts, tmpfs={**WRITABLE, "/opt/data": f"rw,size={disk},uid=1000,gid=1000,mode=0755"},
            mem_limit=disk + (512 << 20), memswap_limit=disk + (512 << 20), cap_drop=["ALL"],
            security_opt=["no-new-privileges=true"], labels=labels("grow"), **read_only_root())
        if payload:
            container.put_archive(INPUTS_DIR, payload)
        container.start()
        code = int(container.wait(timeout=size / GROW_RATE + GROW_MARGIN_S)["StatusCode"])
        output = container.logs().decode("utf-8", "replace")
        if code == 0:
            copy_out(container, OUT_MOUNT, out)
    except requests.exceptions.RequestException:
        raise LabError(f"growing a {format_size(size)} starting database took more than "
                       f"{size / GROW_RATE + GROW_MARGIN_S:.0f} s") from None
    except docker.errors.DockerException as exc:
        raise LabError(f"cannot grow the starting database: {engine._short(exc)}") from None
    finally:
        engine.discard(container, volumes)
    grown = [line.payload for line in parse_all(output.splitlines()) if line.tag is Tag.GROWN]
    if code != 0 or not grown:
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise ScenarioError(f"the store could not grow a starting database (exit {code}): {tail[-400:]}")
    return dict(grown[-1])
