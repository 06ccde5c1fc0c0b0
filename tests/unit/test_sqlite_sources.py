"""Finding a SQLite version's amalgamation on a registry: index, binary search, integrity, bad input."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import pathlib
import tarfile
from typing import Any

import pytest

from repro.errors import ScenarioError
from repro.sqlite import sources
from repro.sqlite.index import INDEX
from repro.sqlite.sources import (SourceRelease, SourceStore, SqliteSourceError, SqliteVersionError,
                                  refresh_index, render_index)

# package version -> SQLite version its tarball ships (None: an old layout without sqlite3.c)
SHIPPED: dict[str, str | None] = {
    "1.0.0": None, "2.0.0": "3.40.1", "2.1.0": "3.40.1", "3.0.0": "3.44.2", "4.0.0": "3.50.4",
    "5.0.0": "3.51.2", "6.0.0": "3.53.2", "7.0.0": "3.54.1",
}


def _tarball(sqlite_version: str | None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {"package/package.json": b"{}"}
        if sqlite_version is not None:
            files[sources.AMALGAMATION_MEMBER] = (
                f'/* amalgamation */\n#define SQLITE_VERSION        "{sqlite_version}"\n'
                f'#define SQLITE_SOURCE_ID      "2026-01-01 00:00:00 fake{sqlite_version}"\n').encode()
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeRegistry:
    """A registry document and tarballs built in memory; counts what it serves."""

    def __init__(self, shipped: dict[str, str | None] = SHIPPED) -> None:
        self.tarballs = {f"https://fake/{v}.tgz": _tarball(s) for v, s in shipped.items()}
        self.documents = 0
        self.fetched: list[str] = []

    def release(self, version: str) -> SourceRelease:
        data = self.tarballs[f"https://fake/{version}.tgz"]
        return SourceRelease("", version, f"https://fake/{version}.tgz",
                             "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
                             hashlib.sha1(data).hexdigest())

    def document(self) -> dict[str, Any]:
        self.documents += 1
        versions = {v: {"dist": {"tarball": r.tarball, "integrity": r.integrity, "shasum": r.shasum}}
                    for v in [u.split("/")[-1][:-4] for u in self.tarballs] for r in [self.release(v)]}
        versions["8.0.0-beta.1"] = {"dist": {"tarball": "https://fake/beta.tgz", "integrity": "sha512-x"}}
        return {"name": sources.PACKAGE, "versions": versions}

    def tarball(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.tarballs[url]


def test_binary_search_finds_the_release_probing_few_tarballs(tmp_path: pathlib.Path) -> None:
    registry = FakeRegistry()
    store = SourceStore(tmp_path, registry)
    found = store.search("3.51.2")
    assert (found.package_version, found.sqlite_version) == ("5.0.0", "3.51.2")
    assert 1 <= len(registry.fetched) <= 4  # log2(8) + 1, never every tarball
    assert not any("beta" in url for url in registry.fetched)  # pre-releases are never candidates
    before = len(registry.fetched)
    assert store.search("3.51.2").package_version == "5.0.0"
    assert len(registry.fetched) == before  # probes are remembered by version, not downloaded again
    assert store.search("3.40.1").sqlite_version == "3.40.1"  # past the release without sqlite3.c


@pytest.mark.parametrize("version", ["3.99.0", "3.45.0", "3.7.0"])
def test_a_version_no_release_ships_is_bad_input(tmp_path: pathlib.Path, version: str) -> None:
    with pytest.raises(SqliteVersionError) as info:
        SourceStore(tmp_path, FakeRegistry()).search(version)
    assert str(info.value) == f"no better-sqlite3 release on the registry ships SQLite {version}"


@pytest.mark.parametrize("text", ["abc", "3.53", "", "3.53.2.1", "v3.53.2", "3.53.x"])
def test_garbage_is_one_line_of_bad_input_without_network(text: str, tmp_path: pathlib.Path) -> None:
    registry = FakeRegistry()
    with pytest.raises(SqliteVersionError) as info:
        SourceStore(tmp_path, registry).amalgamation(text, INDEX)
    assert "\n" not in str(info.value) and registry.documents == 0 and not registry.fetched
    assert isinstance(info.value, ScenarioError)


def test_an_indexed_version_needs_no_registry_document_and_is_kept(tmp_path: pathlib.Path) -> None:
    registry = FakeRegistry()
    index = (dataclasses.replace(registry.release("6.0.0"), sqlite_version="3.53.2"),)
    store = SourceStore(tmp_path, registry)
    amalgamation = store.amalgamation("3.53.2", index)
    assert registry.documents == 0 and len(registry.fetched) == 1
    assert amalgamation.source_id == "2026-01-01 00:00:00 fake3.53.2"
    assert amalgamation.sha256 == hashlib.sha256(amalgamation.path.read_bytes()).hexdigest()
    store.amalgamation("3.53.2", index)
    assert len(registry.fetched) == 1  # the verified sqlite3.c is kept in the cache


def test_an_index_entry_that_lies_is_a_lab_error(tmp_path: pathlib.Path) -> None:
    registry = FakeRegistry()
    index = (dataclasses.replace(registry.release("5.0.0"), sqlite_version="3.53.2"),)
    with pytest.raises(SqliteSourceError, match="indexed as SQLite 3.53.2 but holds 3.51.2"):
        SourceStore(tmp_path, registry).amalgamation("3.53.2", index)


@pytest.mark.parametrize("field", ["integrity", "shasum"])
def test_a_tarball_that_fails_its_registry_checksum_is_refused(tmp_path: pathlib.Path, field: str) -> None:
    registry = FakeRegistry()
    good = registry.release("6.0.0")
    bad = SourceRelease("3.53.2", "6.0.0", good.tarball,
                        "sha512-" + base64.b64encode(hashlib.sha512(b"other").digest()).decode()
                        if field == "integrity" else good.integrity,
                        hashlib.sha1(b"other").hexdigest() if field == "shasum" else good.shasum)
    with pytest.raises(SqliteSourceError, match="fails its"):
        SourceStore(tmp_path, registry).amalgamation("3.53.2", (bad,))
    assert not (tmp_path / "sources" / "better-sqlite3-6.0.0" / "sqlite3.c").exists()


def test_refresh_reads_each_define_and_renders_an_importable_index(tmp_path: pathlib.Path) -> None:
    registry = FakeRegistry()
    entries = refresh_index(SourceStore(tmp_path, registry), ["6.0.0", "3.0.0"])
    assert [(e.sqlite_version, e.package_version) for e in entries] == [("3.44.2", "3.0.0"), ("3.53.2", "6.0.0")]
    namespace: dict[str, Any] = {}
    exec(compile(render_index(entries), "index.py", "exec"), namespace)
    assert namespace["INDEX"] == entries
    with pytest.raises(SqliteSourceError, match="ships no"):
        refresh_index(SourceStore(tmp_path, registry), ["1.0.0"])


def test_the_checked_in_index_covers_the_versions_the_hunt_needs() -> None:
    versions = [e.sqlite_version for e in INDEX]
    assert len(versions) == len(set(versions))
    assert {"3.53.2", "3.51.2", "3.40.1"} <= set(versions)
    assert any(v.startswith("3.44.") for v in versions) and any(v.startswith("3.50.") for v in versions)
    for entry in INDEX:
        assert entry.tarball == f"{sources.REGISTRY_URL}/better-sqlite3/-/better-sqlite3-{entry.package_version}.tgz"
        assert entry.integrity.startswith("sha512-") and len(entry.shasum) == 40
    assert {e.sqlite_version: e.package_version for e in INDEX}["3.53.2"] == "12.11.1"
