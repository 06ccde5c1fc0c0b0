"""A trial's start made ready before any trial: the starting database in the cache, and a check that it (and the filler) fit the machine.

Memory and the disk: the data disk is a tmpfs volume. What the machine itself writes to it is
charged to the machine's memory cgroup; what the lab restores before the workload starts is
written by the engine and charged to the engine's (docs/FACTS.md, section 5). So the starting
database and the filler take no memory from the machine, but the rest of the disk -- what the
workload and a disk-fill fault can write -- does: it must stay within half the machine's memory,
or a full disk would be an OOM kill instead. Every disk is host memory, too: the trials running
at once must fit it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from repro.caches import touch
from repro.errors import ScenarioError
from repro.scenario import MachineProfile, StartSpec, StoreSpec, format_size
from repro.startdb.files import copy_from_db, initial_cache, load
from repro.startdb.grow import grow_database, grown_key
from repro.startdb.restore import BLOCK, filler_size
from repro.steps import step

HOST_SHARE = 0.8  # of the engine's memory that the trials' disks and machines together may use


def prepare_start(start: StartSpec, store: StoreSpec, *, seed: int, image: str,
                  note: Callable[[str], None] = lambda text: None) -> StartSpec:
    """The start with its database files in the cache (copied, or grown by ``store`` from ``seed``); ``note``
    hears about a database about to be grown (it takes a while, once)."""
    if not start.database:
        return start
    cache = initial_cache()
    if start.from_db:
        files = copy_from_db(start.from_db, cache, image=image)
    else:
        assert start.initial_size is not None
        key = cache / grown_key(start.initial_size, seed, store)
        if load(key) is None:
            note(f"growing a {format_size(start.initial_size)} starting database with "
                 f"{store.source if store.foreign else 'the lab store'} (seed {seed}), once: cached in {key}")
        with step(f"the {format_size(start.initial_size)} starting database (grown once, then cached)"):
            files, _ = grow_database(start.initial_size, seed, store, image=store.image or image, cache=cache)
    touch(files.directory)  # a use: `repro clean --caches --older-than` keeps it
    return dataclasses.replace(start, files=str(files.directory))


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.0f} MB"


def estimated_size(start: StartSpec) -> int:
    """The starting database's size before it is made: the user's files, or the size asked for."""
    if start.from_db:
        return sum(os.path.getsize(start.from_db + suffix) for suffix in ("", "-wal", "-shm")
                   if os.path.isfile(start.from_db + suffix))
    return start.initial_size or 0


def check_fit(profile: MachineProfile, start: StartSpec, database: int | None = None, *, jobs: int = 1,
              host_memory: int = 0) -> None:
    """ScenarioError (exit 2) unless the starting database (``database`` bytes; default: its prepared files)
    and the filler fit the disk, the rest of the disk fits the machine's memory, and ``jobs`` such machines
    fit the engine's memory (0: not checked)."""
    if database is None:
        files = load(start.files) if start.files else None
        database = files.bytes if files is not None else 0
    if database + BLOCK > profile.disk:
        wanted = format_size(-(-(database * 3 // 2) // (1 << 20)) << 20)
        raise ScenarioError(f"the starting database ({_mb(database)}) does not fit {profile.name}'s "
                            f"{format_size(profile.disk)} disk: give --disk-size (e.g. {wanted})")
    writable = profile.disk - database - filler_size(start, profile.disk, database)
    if writable > profile.memory // 2:
        raise ScenarioError(
            f"{profile.name} with a {format_size(profile.disk)} disk: the machine could write {_mb(writable)} to it, "
            f"more than half its memory ({format_size(profile.memory)}); the disk is tmpfs and what the machine "
            "writes there is charged to its memory, so it would be OOM-killed before the disk filled: use a smaller "
            "--disk-size, --disk-fill-to, or a larger profile")
    if host_memory and jobs * (profile.disk + profile.memory) > host_memory * HOST_SHARE:
        raise ScenarioError(f"{jobs} {profile.name} machine(s) with {format_size(profile.disk)} disks need "
                            f"{_mb(jobs * (profile.disk + profile.memory))} of the engine's "
                            f"{_mb(host_memory)} memory (disks are tmpfs): use fewer --jobs or a smaller disk")
