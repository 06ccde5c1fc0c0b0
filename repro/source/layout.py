"""A store as it ships: a directory holding a ``hermes_state`` package or a ``hermes_state.py`` module (and whatever else it imports)."""

from __future__ import annotations

import enum
import hashlib
import os
import pathlib

from repro.errors import ScenarioError, shown

STORE_NAME = "hermes_state"
# Not part of what a store imports: skipped when a directory's content is hashed.
_SKIPPED_DIRS = {".git", "__pycache__", ".mypy_cache", ".pytest_cache", "node_modules", ".venv", "venv", ".tox"}


class StoreLayout(str, enum.Enum):
    """How the store is laid out in its directory."""

    PACKAGE = "package"  # DIR/hermes_state/__init__.py (the lab's own layout)
    MODULE = "module"    # DIR/hermes_state.py beside its sibling modules (upstream's layout)


def store_layout(directory: str | os.PathLike[str]) -> StoreLayout:
    """The layout of the store in ``directory``; ScenarioError (exit 2) when there is none, or two."""
    path = pathlib.Path(directory)
    if not path.is_dir():
        raise ScenarioError(f"store path {shown(str(directory))} is not a directory (one holding hermes_state)")
    package = (path / STORE_NAME).is_dir()
    module = (path / f"{STORE_NAME}.py").is_file()
    if package and module:
        raise ScenarioError(f"store path {shown(str(directory))} has both a {STORE_NAME} package and a "
                            f"{STORE_NAME}.py module: Python would import the package alone; remove one")
    if not (package or module):
        raise ScenarioError(f"store path {shown(str(directory))} has no {STORE_NAME} package and no "
                            f"{STORE_NAME}.py module in it")
    return StoreLayout.PACKAGE if package else StoreLayout.MODULE


def content_hash(directory: str | os.PathLike[str]) -> str:
    """sha256 of every file's relative path and bytes under ``directory`` (caches and VCS data skipped):
    what identifies a store directory's version when it has no commit id."""
    root = pathlib.Path(directory)
    hasher = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS)
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            file = pathlib.Path(dirpath) / name
            try:
                data = file.read_bytes()
            except OSError:
                data = b"<unreadable>"
            hasher.update(f"{file.relative_to(root).as_posix()}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return hasher.hexdigest()
