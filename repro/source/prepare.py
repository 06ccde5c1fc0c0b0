"""Every foreign store made ready before the trials: its ref checked out, its requirements installed, its import checked, its settings rule applied.

The settings rule: a store that is not the lab's own ignores HERMES_STATE_PRESET unless it reads
the lab's variables (its module says so: ``ENV_PRESET == "HERMES_STATE_PRESET"``, as the lab's
own store and copies of it do). So with a foreign store the lab passes no settings by default and
reports "own settings" with the pragmas actually in force; ``--preset`` or an override
(``--journal-mode``, ``--synchronous``, ``--checkpoint-mode``) is refused (exit 2) for a store
that would ignore it, rather than reported as a configuration that never ran.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

from repro.errors import ScenarioError, shown
from repro.report.provenance import StoreProvenance
from repro.scenario import OWN_SETTINGS, MachineProfile, StoreSpec
from repro.source.check import StoreCheck, check_store
from repro.source.layout import store_layout
from repro.source.provenance import store_provenance
from repro.source.refs import StoreRef, checkout
from repro.source.wheels import derived_image, requirements_text, wheelhouse


def resolve_refs(stores: Sequence[StoreSpec]) -> list[StoreSpec]:
    """Each store given by git ref with the commit its REV names (``git rev-parse``, once per ref; no checkout,
    no machine), so that its label -- and every trial id -- is final before the matrix is expanded."""
    from repro.source.refs import resolve as resolve_ref
    from repro.sqlite.build import cache_root

    commits: dict[str, str] = {}
    out = []
    for store in stores:
        if store.store_ref and not store.store_commit:
            if store.store_ref not in commits:
                commits[store.store_ref] = resolve_ref(StoreRef.parse(store.store_ref), cache_root())[1]
            store = dataclasses.replace(store, store_commit=commits[store.store_ref])
        out.append(store)
    return out


def resolve(store: StoreSpec, *, image: str) -> StoreSpec:
    """The store with its ref checked out (store_path, store_commit) and its requirements' image built."""
    from repro.machine import engine
    from repro.sqlite.build import cache_root

    if store.store_ref:
        commit, path = checkout(StoreRef.parse(store.store_ref), cache_root(), store.store_commit)
        store = dataclasses.replace(store, store_path=str(path), store_commit=commit)
    assert store.store_path is not None
    store_layout(store.store_path)
    if store.requirements:
        text, cwd = requirements_text(store.requirements, store.store_path)
        cli = engine.client()
        arch = str(cli.info().get("Architecture", "x86_64"))
        wheels = wheelhouse(text, cwd, cache_root(), arch)
        store = dataclasses.replace(store, image=derived_image(cli, image, wheels))
    return store


def settings_rule(store: StoreSpec, check: StoreCheck) -> None:
    """ScenarioError when settings were asked of a store that would ignore them."""
    asked = ([f"--preset {store.preset}"] if store.preset != OWN_SETTINGS else []) + list(store.overrides)
    if asked and not check.reads_lab_settings:
        raise ScenarioError(f"store {store.source} does not read the lab's HERMES_STATE_* settings (it runs its own: "
                            f"{check.in_force}), so {shown(', '.join(asked), quote=False)} would be ignored; leave "
                            "them out")


def prepare_stores(stores: Sequence[StoreSpec], *, image: str, profile: MachineProfile) -> list[StoreSpec]:
    """Each store ready to run (the lab's own as it is), in order; a store that cannot be used is exit 2."""
    from repro.machine import engine

    prepared: dict[StoreSpec, StoreSpec] = {}
    for store in stores:
        if store in prepared or not store.foreign:
            prepared.setdefault(store, store)
            continue
        engine.ensure_image(image=image)
        ready = resolve(store, image=image)
        check = check_store(ready, image=image, profile=profile)
        settings_rule(ready, check)
        _FOUND[ready] = store_provenance(ready, check.imported)  # now: the files as the check imported them
        prepared[store] = ready
    return [prepared[s] for s in stores]


# What preparation found about each foreign store in this process (its import check's files, hashed when the
# check ran), for the run's report: the trials' scenarios carry the stores, not what their checks saw.
_FOUND: dict[StoreSpec, StoreProvenance] = {}


def provenance(stores: Iterable[StoreSpec]) -> tuple[StoreProvenance, ...]:
    """Each distinct store's provenance, in order: as its preparation found it, else found now (the lab's
    bundled store; a foreign store this process did not prepare records no imported files)."""
    return tuple(_FOUND.get(store) or store_provenance(store) for store in dict.fromkeys(stores))
