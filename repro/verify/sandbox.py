"""The store under test, imported and opened inside the restarted machine: can it start, what does it say (stdlib only).

The probe imports ``hermes_state`` from ``--store-mount`` (the store's source mounted into
the machine), opens the database with it as the restarted service would, reads the
pragmas in force on its connection and runs its own health check if it has one. The
import is undone afterwards, so the probe never keeps a store it did not ask for.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
from typing import Callable, Iterator

from repro.verify.importcheck import StoreImportError, import_store
from repro.verify.facts import Check, CheckStatus, StoreFacts, capped, describe_error, int_or_none

_DOCTOR_METHODS = ("health_check", "doctor", "check_health")


@contextlib.contextmanager
def _store_module(store_mount: str | None) -> Iterator[object]:
    """Import ``hermes_state`` with ``store_mount`` first on sys.path (never another copy: see
    repro/verify/importcheck.py); restore the import state after."""
    saved_path = list(sys.path)
    saved_mods = {k: v for k, v in sys.modules.items() if k == "hermes_state" or k.startswith("hermes_state.")}
    try:
        yield import_store(store_mount)
    finally:
        if store_mount is not None:
            sys.path[:] = saved_path
            for name in [k for k in sys.modules if k == "hermes_state" or k.startswith("hermes_state.")]:
                del sys.modules[name]
            sys.modules.update(saved_mods)


def store_facts(path: pathlib.Path, store_mount: str | None) -> StoreFacts:
    """Open ``path`` with the store imported from ``store_mount``; never raises."""
    try:
        with _store_module(store_mount) as module:
            module_file = getattr(module, "__file__", None)
            try:
                db = module.SessionDB(path)  # type: ignore[attr-defined]
            except Exception as exc:
                return StoreFacts(opened=False, error=describe_error(exc), module=module_file)
            try:
                conn = getattr(db, "_conn", None)
                pragmas = {name: _store_pragma(conn, name)
                           for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")}
                doctor = _doctor(module, db, path)
                healed = getattr(db, "healed", None)
            finally:
                with contextlib.suppress(Exception):
                    db.close()
            return StoreFacts(
                opened=True,
                module=module_file,
                journal_mode=None if pragmas["journal_mode"] is None else str(pragmas["journal_mode"]),
                synchronous=int_or_none(pragmas["synchronous"]),
                busy_timeout=int_or_none(pragmas["busy_timeout"]),
                foreign_keys=int_or_none(pragmas["foreign_keys"]),
                doctor=doctor,
                healed=None if healed is None else _describe_heal(healed),
            )
    except StoreImportError as exc:  # not the store under test: a lab problem, never a verdict on a store
        return StoreFacts(opened=False, error=f"ImportError: {exc}")
    except Exception as exc:  # ImportError and friends: the store could not even be loaded
        return StoreFacts(opened=False, error=describe_error(exc))


def _describe_heal(result: object) -> str:
    outcome = getattr(result, "outcome", None)
    text = str(getattr(outcome, "value", outcome) if outcome is not None else result)
    return text[:200]


def _store_pragma(conn: object, name: str) -> object:
    if conn is None:
        return None
    try:
        row = conn.execute(f"PRAGMA {name}").fetchone()  # type: ignore[attr-defined]
    except Exception:
        return None
    return None if row is None else row[0]


def _doctor(module: object, db: object, path: pathlib.Path) -> Check:
    """The store's own health check if it has one (a method on the db, or a package-level
    function taking the path); "unavailable" for a store without one, like upstream's."""
    for name in _DOCTOR_METHODS:
        method = getattr(db, name, None)
        if callable(method):
            return _run_doctor(lambda: method())
    for name in _DOCTOR_METHODS:
        func = getattr(module, name, None)
        if callable(func):
            return _run_doctor(lambda: func(path))
    return Check(CheckStatus.UNAVAILABLE, ("store has no health check",))


def _run_doctor(call: Callable[[], object]) -> Check:
    try:
        result = call()
    except Exception as exc:
        return Check(CheckStatus.ERROR, (describe_error(exc),))
    return interpret_health(result)


def interpret_health(result: object) -> Check:
    """Map a health check's return value onto a Check, whatever shape the store returns.

    Understood: a bool; an object or mapping with ``ok``/``healthy`` and optional
    ``problems``/``issues``/``messages``/``errors``; a string ("ok" or a problem); a list of problems.
    """
    if isinstance(result, bool):
        return Check(CheckStatus.OK if result else CheckStatus.FAILED)
    if isinstance(result, str):
        return Check(CheckStatus.OK) if result.strip().lower() == "ok" else Check(CheckStatus.FAILED, (result,))
    if isinstance(result, (list, tuple)):
        return Check(CheckStatus.FAILED, capped([str(x) for x in result])) if result else Check(CheckStatus.OK)

    def get(name: str) -> object:
        if isinstance(result, dict):
            return result.get(name)
        return getattr(result, name, None)

    ok = get("ok")
    if ok is None:
        ok = get("healthy")
    details: list[str] = []
    for name in ("problems", "issues", "messages", "errors"):
        value = get(name)
        if isinstance(value, (list, tuple)):
            details.extend(str(v) for v in value)
        elif isinstance(value, str) and value:
            details.append(value)
    if ok is False:
        details.extend(_health_findings(get))
    if isinstance(ok, bool):
        return Check(CheckStatus.OK if ok else CheckStatus.FAILED, capped(details))
    return Check(CheckStatus.ERROR, (f"unrecognised health check result: {result!r}"[:200],))


def _health_findings(get: Callable[[str], object]) -> list[str]:
    """Named findings of a report shaped like hermes_state's HealthReport (absent fields are skipped)."""
    out: list[str] = []
    integrity = get("integrity")
    if isinstance(integrity, (list, tuple)) and list(integrity) != ["ok"]:
        out.append("integrity: " + "; ".join(str(x) for x in integrity[:3]))
    for name in ("foreign_key_violations", "counter_mismatches"):
        value = get(name)
        if isinstance(value, int) and value:
            out.append(f"{name}: {value}")
    fts = get("fts")
    fts_value = getattr(fts, "value", fts)
    if isinstance(fts_value, str) and fts_value not in ("ok", "missing"):
        out.append(f"fts: {fts_value} {get('fts_error') or ''}".strip())
    probe_error = get("write_probe_error")
    if probe_error:
        out.append(f"write probe: {probe_error}")
    return out
