"""Before any trial: the store imported once in a throwaway machine (the trial's image and mounts, uid 1000, no network).

A store that cannot be imported -- a missing module, a syntax error, no ``SessionDB``, a file the
machine's user cannot read, a ``SessionDB`` that cannot open a new database -- is refused here in
one line naming the module or the file (exit 2), instead of every trial ending as an ``error``
or, worse, running on the lab's bundled store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from repro.errors import LabError, ScenarioError
from repro.scenario import MachineProfile, StoreSpec
from repro.report.summary import synchronous_name

CHECK_MODULE = "repro.verify.importcheck"
CHECK_TIMEOUT_S = 120


@dataclass(frozen=True)
class StoreCheck:
    """What the throwaway machine found: the module, whether it reads the lab's settings, the pragmas in force."""

    file: str
    reads_lab_settings: bool
    journal_mode: str
    synchronous: str
    imported: tuple[str, ...] = ()  # the store's files loaded as modules, relative to its directory, sorted

    @property
    def in_force(self) -> str:
        """``wal/normal``."""
        return f"{self.journal_mode}/{synchronous_name(self.synchronous)}"


def problem_line(store: StoreSpec, result: dict[str, object]) -> str:
    """The one line that says why the store cannot be used (paths on the host, not in the machine)."""
    name = store.source
    detail = str(result.get("detail", ""))
    problem = str(result.get("problem", ""))
    here = store.store_path or ""
    if problem == "unreadable":
        path = here if detail == "." else os.path.join(here, detail)
        return (f"store {name}: {path} cannot be read by the machine's user (uid 1000): make the store readable "
                f"to all (chmod -R a+rX {here})")
    if problem == "missing-module":
        module = str(result.get("module") or "")
        hint = (f"; {shown_module(module)} is not installed by --store-requirements {store.requirements}"
                if store.requirements else
                "; a third-party package? install it with --store-requirements FILE (or auto: the store's "
                "requirements.txt or pyproject.toml)")
        return f"store {name} cannot be imported: {detail}{hint}"
    if problem == "syntax-error":
        where, _, message = detail.partition(": ")
        return f"store {name}: syntax error at {os.path.join(here, where)}: {message}"
    if problem == "no-session-db":
        return f"store {name}: {os.path.join(here, detail.split(' ')[0])} defines no SessionDB"
    if problem == "open-failed":
        return f"store {name}: SessionDB cannot open a new database: {detail}"
    if problem == "exited":
        doing = "opening a new database" if result.get("stage") == "open" else "being imported"
        how = detail or f"exit {result.get('exit', '?')}, without a word (os._exit, or a signal)"
        return f"store {name}: the store exited while {doing}: {how}; a store must not end the process it runs in"
    return f"store {name} cannot be imported: {detail}"


def shown_module(module: str) -> str:
    return repr(module) if module else "it"


def check_store(store: StoreSpec, *, image: str, profile: MachineProfile) -> StoreCheck:
    """Import and open the store once, as a trial will; ScenarioError (one line) if it cannot be used."""
    import docker.errors
    import requests.exceptions

    from repro.machine.container import ConstrainedHost
    from repro.protocol import Tag, parse_all

    from repro.sqlite import for_store

    machine = ConstrainedHost(profile, store=store, sqlite=for_store(store)[1], image=store.image or image,
                              role="store-check")
    machine.with_entrypoint(["python3", "-m", CHECK_MODULE, machine.store_mount], user="1000:1000")
    with machine:  # entering starts it
        container = machine.get_wrapped_container()
        try:
            code = int(container.wait(timeout=CHECK_TIMEOUT_S)["StatusCode"])
        except (requests.exceptions.RequestException, docker.errors.DockerException):
            raise ScenarioError(f"store {store.source}: importing and opening it took more than {CHECK_TIMEOUT_S} s "
                                "in a throwaway machine") from None
        output = container.logs().decode("utf-8", "replace")
    found = [line.payload for line in parse_all(output.splitlines()) if line.tag is Tag.STORE_CHECK]
    if not found:
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise LabError(f"the store check printed no result (exit {code}): {tail[-400:]}")
    result = {**found[-1], "exit": code}  # the last line stands: earlier ones say what ends the process (importcheck)
    if not result.get("ok"):
        raise ScenarioError(problem_line(store, result))
    return StoreCheck(file=str(result.get("file", "")), reads_lab_settings=bool(result.get("reads_lab_settings")),
                      journal_mode=str(result.get("journal_mode", "?")), synchronous=str(result.get("synchronous", "?")),
                      imported=imported_list(result.get("imported")))


def imported_list(value: object) -> tuple[str, ...]:
    """The check's ``imported`` list, kept only if it names relative paths inside the store (the store's own
    code wrote nothing into it, but a path that climbs out must never be hashed from the host)."""
    if not isinstance(value, list):
        return ()
    paths = [str(item) for item in value]
    if any(os.path.isabs(p) or ".." in p.split("/") for p in paths):
        raise LabError(f"the store check named files outside the store: {paths[:3]}")
    return tuple(sorted(set(paths)))
