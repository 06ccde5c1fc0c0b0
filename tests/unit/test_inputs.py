"""What the lab sends into a machine instead of bind-mounting its own paths (repro/machine/inputs.py)."""

from __future__ import annotations

import io
import pathlib
import tarfile

import pytest

from repro.errors import ScenarioError
from repro.machine.inputs import INPUTS_DIR, Input, InputError, InputKind, archive, code_inputs, machine_path


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_a_store_arrives_root_owned_readable_without_byte_code(tmp_path: pathlib.Path) -> None:
    store = tmp_path / "project"
    (store / "pkg" / "__pycache__").mkdir(parents=True)
    (store / "hermes_state.py").write_text("class SessionDB: ...\n")
    (store / "hermes_state.py").chmod(0o600)  # the user's mode is not the machine's
    (store / "pkg" / "__init__.py").write_text("")
    (store / "pkg" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (store / ".git").mkdir()
    (store / ".git" / "HEAD").write_text("ref: x\n")
    lib = tmp_path / "build"
    lib.mkdir()
    (lib / "libsqlite3.so.0").write_bytes(b"\x7fELF")
    members = _members(archive((Input(InputKind.STORE, store), Input(InputKind.SQLITE, lib))))
    assert sorted(members) == ["sqlite", "sqlite/libsqlite3.so.0", "store", "store/hermes_state.py", "store/pkg",
                               "store/pkg/__init__.py"]
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert members["store/hermes_state.py"].mode == 0o644 and members["store/pkg"].mode == 0o755
    assert machine_path(InputKind.STORE) == f"{INPUTS_DIR}/store"


def test_a_single_file_goes_inside_its_kinds_directory(tmp_path: pathlib.Path) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text("{}")
    data = archive((Input(InputKind.START, baseline),))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        extracted = tar.extractfile("start/baseline.json")
        assert extracted is not None and extracted.read() == b"{}"
    assert archive(()) == b""


def test_a_missing_or_oversized_input_is_bad_input(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        archive((Input(InputKind.STORE, tmp_path / "nowhere"),))
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob").write_bytes(bytes(3 << 20))
    with pytest.raises(InputError, match="more than 2 MB"):
        archive((Input(InputKind.STORE, big),), limit=2 << 20)
    assert issubclass(InputError, ScenarioError)  # exit 2, before any container starts


def test_symbolic_links_arrive_as_what_they_point_to(tmp_path: pathlib.Path) -> None:
    """A package linked into the store's directory (a common checkout layout) arrives whole; a loop is listed once."""
    real = tmp_path / "src" / "hermes_state"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("class SessionDB: ...\n")
    store = tmp_path / "store"
    store.mkdir()
    (store / "hermes_state").symlink_to(real)
    (real / "loop").symlink_to(real)
    members = _members(archive((Input(InputKind.STORE, store),)))
    assert "store/hermes_state/__init__.py" in members and members["store/hermes_state/__init__.py"].isfile()
    assert sum(1 for name in members if name.endswith("__init__.py")) == 1  # the loop does not run away


def test_an_archive_is_built_again_only_when_a_file_changed(tmp_path: pathlib.Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "hermes_state.py").write_text("RELEASE = 1\n")
    inputs = code_inputs(str(store), None)
    first = archive(inputs)
    assert archive(inputs) is first  # a run's next trial: nothing read or packed again
    (store / "hermes_state.py").write_text("RELEASE = 22\n")  # another size (and mtime): a new archive
    changed = archive(inputs)
    assert changed is not first
    with tarfile.open(fileobj=io.BytesIO(changed)) as tar:
        extracted = tar.extractfile("store/hermes_state.py")
        assert extracted is not None and extracted.read() == b"RELEASE = 22\n"
