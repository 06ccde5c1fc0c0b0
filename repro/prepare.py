"""What a run needs before its first trial, from its options: the stores (foreign ones checked out, installed and import-checked), the machines' disks, the starting database (copied or grown) -- and a check that it all fits.

Everything here that is wrong with the input is exit 2 before any trial; machines that start
here are throwaway ones (the store's import check, the database grower).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from repro.errors import ScenarioError, shown
from repro.scenario import OWN_SETTINGS, MachineProfile, Scenario, StartSpec, StoreSpec, format_size, parse_size

if TYPE_CHECKING:
    from repro.options import StoreOptions


def store_spec(options: StoreOptions, preset: str | None, path: str | None, ref: str | None,
               sqlite: str = "system") -> StoreSpec:
    """A store configuration from the options every store shares and this store's preset, source and SQLite;
    a foreign store runs its own settings unless a preset is named."""
    from repro.source.refs import StoreRef

    if ref is not None:
        StoreRef.parse(ref)
    if path is not None and ref is None:
        check_store_path(path)
    requirements = options.store_requirements
    if requirements not in (None, "auto"):
        if not os.path.isfile(requirements):
            raise ScenarioError(f"--store-requirements {shown(requirements)} is not a file (or say auto)")
        requirements = os.path.abspath(requirements)
    return StoreSpec(preset or (OWN_SETTINGS if path or ref else "ns506"), options.journal_mode, options.synchronous,
                     path, options.checkpoint_mode, store_ref=ref, requirements=requirements,
                     wal_autocheckpoint=options.wal_autocheckpoint, sqlite=sqlite.strip(),
                     sqlite_assisted=options.sqlite_assisted)


def check_store_path(path: str) -> None:
    """A --store-path holds exactly one hermes_state package or module (a ref's checkout is made, and
    checked, by preparation): bad input before anything starts."""
    from repro.source.layout import store_layout

    store_layout(path)


def size_option(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except ScenarioError as exc:
        raise ScenarioError(f"{option}: {exc}") from None


def check_filesystems(given: tuple[str, ...], *, one: bool) -> tuple[str, ...]:
    """--fs, checked before any machine: known, in this kernel (its size: with the profile; a free loop device:
    ``require_loop_device``, once the scenarios are checked); ``one``: at most one (run; a matrix: an axis)."""
    from repro.filesystems import parse
    from repro.machine import loops

    if len(given) > 1 and one:
        raise ScenarioError("repro run takes one --fs; a matrix takes several (an axis)")
    for text in given:
        fs = parse(text)
        if not loops.kernel_has(fs.kind.value):
            raise ScenarioError(f"this machine's kernel has no {fs.kind.value} (not in /proc/filesystems): load its "
                                f"module (modprobe {fs.kind.value}) or choose another --fs")
    return given


def require_loop_device() -> None:
    """ScenarioError unless the engine is this host's and one of its loop devices is free (--fs)."""
    from repro.machine import engine, loops

    loops.require_devices(str(engine.client().api.base_url), 1)


def with_disk(profile: MachineProfile, disk: str | None) -> MachineProfile:
    """The profile with ``--disk-size`` instead of its own disk (and a name that says so)."""
    size = size_option(disk, "--disk-size")
    if size is None:
        return profile
    return dataclasses.replace(profile, disk=size, name=f"{profile.name}+disk={format_size(size)}")


def prepare_run(stores: list[StoreSpec], machines: list[MachineProfile], start: StartSpec, seed: int, *,
                jobs: int, image: str | None) -> tuple[list[StoreSpec], dict[StoreSpec, StartSpec]]:
    """Foreign stores checked out, installed and import-checked; the start's database copied or grown; every
    disk checked to fit with ``jobs`` machines at once (machines start here: throwaway ones, before any trial),
    in the ``image`` asked for (None: the lab's)."""
    from repro.machine import engine
    from repro.source.prepare import prepare_stores
    from repro.startdb.prepare import check_fit, estimated_size, prepare_start

    for machine in machines:  # before anything starts: with the size asked for
        check_fit(machine, start, estimated_size(start))
    cli = engine.client()
    host_memory = int(cli.info().get("MemTotal", 0))
    for machine in machines:
        check_fit(machine, start, estimated_size(start), jobs=jobs, host_memory=host_memory)
    chosen = _image(image)
    stores = prepare_stores(stores, image=chosen, profile=machines[0])
    starts = {store: prepare_start(start, store, seed=seed, image=chosen, note=_note)
              for store in dict.fromkeys(stores)}
    for machine in machines:
        for ready in starts.values():
            check_fit(machine, ready, jobs=jobs, host_memory=host_memory)
    return stores, starts


def _note(text: str) -> None:
    print(f"repro: note: {text}", file=sys.stderr, flush=True)


def _image(given: str | None) -> str:
    """The image trials run in (decided in one place: repro.machine.engine.trial_image)."""
    from repro.machine import engine

    return engine.trial_image(engine.client(), given)


def prepare_replay(scenario: Scenario) -> Scenario:
    """A stored scenario made ready again: its store's checkout, image and import check (cache hits, unless
    the cache was cleared), and its starting database (made again if the cache lost it)."""
    from repro.source.prepare import prepare_stores
    from repro.startdb.files import load
    from repro.startdb.prepare import prepare_start

    if not (scenario.store.foreign or scenario.start.database):
        return scenario
    image = _image(None)
    store = prepare_stores([scenario.store], image=image, profile=scenario.profile)[0]
    start = scenario.start
    if start.database and (start.files is None or load(start.files) is None):
        start = prepare_start(dataclasses.replace(start, files=None), store, seed=scenario.seed, image=image)
    return dataclasses.replace(scenario, store=store, start=start)
