"""The store under test imported as the machine's user would import it, or the one reason it cannot be (stdlib only).

Every in-machine import of a store from ``--store-path``/``--store-ref`` goes through
``import_store`` (the workload, the dashboard, the grower, the probe's sandbox): the store's
directory comes first on ``sys.path``, and a ``hermes_state`` found anywhere else -- the lab's
bundled copy on PYTHONPATH, when the store's directory cannot be read -- is refused, never used.

Run as ``python3 -m repro.verify.importcheck STORE_DIR`` in a throwaway machine before any
trial (the trial's image, the store mounted read-only, uid 1000, no network), it prints one
``STORE CHECK {json}`` line: the module it imported, whether it reads the lab's HERMES_STATE_*
variables, the pragmas in force when it opens a new database and the store's files it imported
(``imported``) -- or the problem. Before it
imports the store and before it opens a database, it prints the result that stands if the store
ends the process there (``os._exit`` runs no handler); the last line is the result.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import importlib
import os
import pathlib
import sys
import tempfile
import traceback
from types import ModuleType, TracebackType
from typing import Callable, Sequence

from repro.errors import LabError
from repro.channel import close_channel, open_channel
from repro.channel import emit as write_record
from repro.protocol import Tag

STORE_NAME = "hermes_state"
# What the lab's own store calls its preset variable: a store exposing it reads the lab's settings.
LAB_PRESET_VARIABLE = "HERMES_STATE_PRESET"
_SCAN_LIMIT = 20_000  # entries looked at when naming an unreadable file


class Problem(str, enum.Enum):
    """Why a store cannot be used."""

    UNREADABLE = "unreadable"        # a file or directory the machine's user cannot read
    MISSING_MODULE = "missing-module"  # it imports a module the machine does not have
    SYNTAX_ERROR = "syntax-error"
    IMPORT_ERROR = "import-error"    # its import raised something else
    NO_SESSION_DB = "no-session-db"
    OPEN_FAILED = "open-failed"      # SessionDB cannot open a new database
    EXITED = "exited"                # it ended the process (os._exit, sys.exit, a signal) before the check ended


class Stage(str, enum.Enum):
    """What the check was doing with the store when the process ended (an ``exited`` problem's ``stage``)."""

    IMPORT = "import"
    OPEN = "open"


class StoreImportError(LabError):
    """The store cannot be imported from its directory; ``problem`` says why, ``detail`` names the file."""

    def __init__(self, problem: Problem, detail: str, module: str = "") -> None:
        super().__init__(f"{problem.value}: {detail}")
        self.problem = problem
        self.detail = detail
        self.module = module  # the missing module's name (MISSING_MODULE)


def _drop_cached() -> None:
    for name in [k for k in sys.modules if k == STORE_NAME or k.startswith(STORE_NAME + ".")]:
        del sys.modules[name]


def import_store(store_mount: str | None) -> ModuleType:
    """``hermes_state`` from ``store_mount`` (first on sys.path), or the image's own when None."""
    if store_mount is None:
        return importlib.import_module(STORE_NAME)
    sys.path[:] = [store_mount, *(p for p in sys.path if p != store_mount)]
    _drop_cached()
    try:
        module = importlib.import_module(STORE_NAME)
    except SyntaxError as exc:
        where = f"{_rel(exc.filename, store_mount)}:{exc.lineno}" if exc.filename else "?"
        raise StoreImportError(Problem.SYNTAX_ERROR, f"{where}: {exc.msg}") from None
    except ModuleNotFoundError as exc:
        unreadable = _unreadable(store_mount, exc.name or "")
        if unreadable:
            raise StoreImportError(Problem.UNREADABLE, unreadable) from None
        name = exc.name or str(exc)
        raise StoreImportError(Problem.MISSING_MODULE, f"no module named {name!r}{_where(exc.__traceback__, store_mount)}",
                               module=name.split(".")[0]) from None
    except PermissionError as exc:
        raise StoreImportError(Problem.UNREADABLE, _rel(str(exc.filename), store_mount)) from None
    except SystemExit as exc:  # sys.exit() in its module-level code: the process would end here
        raise StoreImportError(Problem.EXITED, f"sys.exit({exc.code!r}){_where(exc.__traceback__, store_mount)}") \
            from None
    except Exception as exc:  # anything else its module-level code raised
        raise StoreImportError(Problem.IMPORT_ERROR, f"{type(exc).__name__}: {exc}"[:300]
                               + _where(exc.__traceback__, store_mount)) from None
    found = getattr(module, "__file__", None)
    if not under(found, store_mount):
        _drop_cached()
        unreadable = _unreadable(store_mount, STORE_NAME)
        if unreadable:
            raise StoreImportError(Problem.UNREADABLE, unreadable)
        raise StoreImportError(Problem.IMPORT_ERROR, f"{STORE_NAME} came from {found}, not from the store")
    return module


def under(path: str | None, directory: str) -> bool:
    if path is None:
        return False
    return pathlib.Path(path).resolve().is_relative_to(pathlib.Path(directory).resolve())


def _rel(path: str, store_mount: str) -> str:
    """A path inside the store as relative to it (the host adds its own directory); others as they are."""
    if path and under(path, store_mount):
        return pathlib.Path(path).resolve().relative_to(pathlib.Path(store_mount).resolve()).as_posix() or "."
    return path


def _where(tb: TracebackType | None, store_mount: str) -> str:
    """`` (at agent/memory.py:3)``: the deepest line of the store's own code in the traceback."""
    frames = [f for f in traceback.extract_tb(tb) if under(f.filename, store_mount)]
    return f" (at {_rel(frames[-1].filename, store_mount)}:{frames[-1].lineno})" if frames else ""


def _readable(path: pathlib.Path) -> bool:
    return os.access(path, os.R_OK | os.X_OK) if path.is_dir() else os.access(path, os.R_OK)


def _unreadable(store_mount: str, module: str) -> str:
    """The first file or directory on the way to ``module`` (then anywhere in the store) that this user
    cannot read, relative to the store ("." for the store's directory itself); "" if there is none."""
    root = pathlib.Path(store_mount)
    if not _readable(root):
        return "."
    path = root
    for part in module.split(".") if module else []:
        for candidate in (path / part, path / f"{part}.py", path / part / "__init__.py"):
            if candidate.exists() and not _readable(candidate):
                return candidate.relative_to(root).as_posix()
        path = path / part
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        base = pathlib.Path(dirpath)
        for name in sorted(dirnames):
            if not _readable(base / name):
                return (base / name).relative_to(root).as_posix()
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in sorted(filenames):
            seen += 1
            if name.endswith(".py") and not _readable(base / name):
                return (base / name).relative_to(root).as_posix()
        if seen > _SCAN_LIMIT:
            break
    return ""


def exited(stage: Stage, detail: str = "") -> dict[str, object]:
    """The result that stands if the process ends during ``stage`` (``os._exit`` cannot be caught: this is
    printed before the stage, and a later result replaces it)."""
    return {"ok": False, "problem": Problem.EXITED.value, "stage": stage.value, "detail": detail}


def check(store_mount: str | None, scratch: str | None = None,
          before: Callable[[dict[str, object]], None] = lambda result: None) -> dict[str, object]:
    """Import the store and open a new database with it; the facts, or the problem, as a JSON object.
    ``before`` hears, before each stage, the result that stands if the store ends the process in it."""
    before(exited(Stage.IMPORT))
    try:
        module = import_store(store_mount)
    except StoreImportError as exc:
        if exc.problem is Problem.EXITED:
            return exited(Stage.IMPORT, exc.detail)
        return {"ok": False, "problem": exc.problem.value, "detail": exc.detail, "module": exc.module}
    where = _rel(str(getattr(module, "__file__", "?")), store_mount) if store_mount else str(module.__file__)
    facts: dict[str, object] = {"ok": True, "file": where,
                                "reads_lab_settings": getattr(module, "ENV_PRESET", None) == LAB_PRESET_VARIABLE}
    session_db = getattr(module, "SessionDB", None)
    if not callable(session_db):
        return {"ok": False, "problem": Problem.NO_SESSION_DB.value, "detail": f"{where} defines no SessionDB"}
    before(exited(Stage.OPEN))
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        try:
            db = session_db(pathlib.Path(tmp) / "state.db")
        except SystemExit as exc:
            return exited(Stage.OPEN, f"sys.exit({exc.code!r})" + (_where(exc.__traceback__, store_mount) if store_mount else ""))
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"[:300] + (_where(exc.__traceback__, store_mount) if store_mount else "")
            return {"ok": False, "problem": Problem.OPEN_FAILED.value, "detail": detail}
        conn = getattr(db, "_conn", None)
        for pragma in ("journal_mode", "synchronous"):
            with contextlib.suppress(Exception):
                facts[pragma] = conn.execute(f"PRAGMA {pragma}").fetchone()[0]  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            db.close()
    if store_mount:
        facts["imported"] = imported_files(store_mount)
    return facts


def imported_files(store_mount: str) -> list[str]:
    """Every file of the store's directory that is loaded as a module now (relative, sorted): what the
    host hashes as the code that ran (repro/source/provenance.py)."""
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and under(path, store_mount):
            found.add(_rel(path, store_mount))
    return sorted(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m repro.verify.importcheck", description=__doc__.splitlines()[0])
    parser.add_argument("store_mount", nargs="?", default=None, help="the store's directory (default: the image's own)")
    parser.add_argument("--scratch", default="/tmp", help="where the new database is opened")
    args = parser.parse_args(argv)
    open_channel("store-check")  # before the store is imported: what it prints becomes OUTPUT records
    write_record(Tag.STORE_CHECK, check(args.store_mount, args.scratch,
                                        before=lambda result: write_record(Tag.STORE_CHECK, result)))
    close_channel()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
