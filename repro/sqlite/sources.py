"""Where a SQLite version's amalgamation comes from: a better-sqlite3 release on the npm registry.

The registry is the only source of SQLite reachable here (field notes, section 1): each
better-sqlite3 tarball ships `deps/sqlite3/sqlite3.c`, and the `#define SQLITE_VERSION` in that
file is the only truth about which SQLite it is. A checked-in index (index.py) maps the versions
the lab uses to a release and its registry integrity, so resolving them downloads one tarball;
any other version is found by a binary search over the package's releases (SQLite versions rise
with the package's), probing a handful of tarballs. Every download is checked against the
registry's `dist.integrity` (sha512) and `shasum` (sha1) before a byte of it is used.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import re
import tarfile
import urllib.error
import urllib.request
from typing import Any, Callable, Protocol, Sequence

from repro.caches import touch
from repro.errors import LabError
from repro.scenario.stores import VERSION_FORM as _VERSION
from repro.scenario.stores import SqliteVersionError, parse_version

PACKAGE = "better-sqlite3"
REGISTRY_URL = "https://registry.npmjs.org"
AMALGAMATION_MEMBER = "package/deps/sqlite3/sqlite3.c"
_DEFINE = re.compile(rb'^#define SQLITE_VERSION\s+"(\d+\.\d+\.\d+)"', re.M)
_SOURCE_ID = re.compile(rb'^#define SQLITE_SOURCE_ID\s+"([^"]+)"', re.M)
_TIMEOUT_S = 60.0


class SqliteSourceError(LabError):
    """The registry could not be reached, or served something that fails its integrity check."""


@dataclasses.dataclass(frozen=True)
class SourceRelease:
    """One registry release and the SQLite version its amalgamation holds."""

    sqlite_version: str
    package_version: str
    tarball: str
    integrity: str  # the registry's dist.integrity, "sha512-<base64>"
    shasum: str  # the registry's dist.shasum (sha1 hex)

    @property
    def label(self) -> str:
        return f"{PACKAGE}@{self.package_version}"


@dataclasses.dataclass(frozen=True)
class Amalgamation:
    """A verified sqlite3.c on disk, with what it says about itself."""

    release: SourceRelease
    path: pathlib.Path
    sha256: str
    source_id: str


class Registry(Protocol):
    """What the lab needs from a package registry (the tests pass a fake one)."""

    def document(self) -> dict[str, Any]: ...

    def tarball(self, url: str) -> bytes: ...


class NpmRegistry:
    """The public npm registry over HTTPS, with the standard library only."""

    def __init__(self, base_url: str = REGISTRY_URL) -> None:
        self.base_url = base_url.rstrip("/")

    def _get(self, url: str, accept: str) -> bytes:
        request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "hermes-lab"})
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
                body: bytes = response.read()
                return body
        except (urllib.error.URLError, OSError) as exc:
            raise SqliteSourceError(f"cannot fetch {url}: {exc}") from None

    def document(self) -> dict[str, Any]:
        body = self._get(f"{self.base_url}/{PACKAGE}", "application/vnd.npm.install-v1+json")
        try:
            doc: dict[str, Any] = json.loads(body)
        except ValueError as exc:
            raise SqliteSourceError(f"the registry's {PACKAGE} document is not JSON: {exc}") from None
        return doc

    def tarball(self, url: str) -> bytes:
        return self._get(url, "application/octet-stream")


def releases(doc: dict[str, Any]) -> list[SourceRelease]:
    """The package's stable releases, oldest first (sqlite_version left empty: not yet read)."""
    found = []
    for version, meta in doc.get("versions", {}).items():
        dist = meta.get("dist", {})
        if _VERSION.fullmatch(version) is None or not dist.get("tarball") or not dist.get("integrity"):
            continue  # pre-releases and entries without a checkable tarball are never used
        found.append(SourceRelease("", version, dist["tarball"], dist["integrity"], dist.get("shasum", "")))
    return sorted(found, key=lambda r: parse_version(r.package_version))


def verify(data: bytes, release: SourceRelease) -> None:
    """Raise unless `data` is exactly the tarball the registry describes."""
    algo, _, expected = release.integrity.partition("-")
    if algo not in ("sha512", "sha384", "sha256"):
        raise SqliteSourceError(f"{release.label}: unsupported integrity {release.integrity[:16]!r}")
    actual = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if actual != expected:
        raise SqliteSourceError(f"{release.label}: tarball fails its {algo} integrity check")
    if release.shasum and hashlib.sha1(data).hexdigest() != release.shasum:
        raise SqliteSourceError(f"{release.label}: tarball fails its sha1 shasum check")


def extract_amalgamation(data: bytes, release: SourceRelease) -> bytes | None:
    """The tarball's sqlite3.c, or None when this release ships none (old layouts)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            try:
                member = tar.extractfile(AMALGAMATION_MEMBER)
            except KeyError:
                return None
            return member.read() if member is not None else None
    except (tarfile.TarError, OSError) as exc:
        raise SqliteSourceError(f"{release.label}: unreadable tarball: {exc}") from None


def read_define(source: bytes) -> tuple[str, str]:
    """(SQLITE_VERSION, SQLITE_SOURCE_ID) as the amalgamation defines them."""
    version, source_id = _DEFINE.search(source), _SOURCE_ID.search(source)
    if version is None or source_id is None:
        raise SqliteSourceError("the amalgamation defines no SQLITE_VERSION / SQLITE_SOURCE_ID")
    return version.group(1).decode(), source_id.group(1).decode()


class SourceStore:
    """Amalgamations fetched from a registry, kept under `<cache>/sources`, probes remembered."""

    def __init__(self, cache_dir: pathlib.Path, registry: Registry | None = None) -> None:
        self.dir = cache_dir / "sources"
        self.registry: Registry = registry if registry is not None else NpmRegistry()
        self._doc: dict[str, Any] | None = None
        self.downloads = 0  # tarballs fetched by this store (the tests count them)

    def _releases(self) -> list[SourceRelease]:
        if self._doc is None:
            self._doc = self.registry.document()
        return releases(self._doc)

    def _probes_path(self) -> pathlib.Path:
        return self.dir / "probes.json"

    def _probes(self) -> dict[str, str | None]:
        try:
            probes: dict[str, str | None] = json.loads(self._probes_path().read_text())
            return probes
        except (OSError, ValueError):
            return {}

    def _remember(self, package_version: str, sqlite_version: str | None) -> None:
        probes = self._probes()
        probes[package_version] = sqlite_version
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._probes_path().with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(probes, indent=1, sort_keys=True))
        tmp.replace(self._probes_path())

    def fetch(self, release: SourceRelease, keep: bool = True) -> Amalgamation | None:
        """Download and verify one release's sqlite3.c (None if it ships none); `keep` stores it
        (a search's probes are only remembered by version: 9 MB each is too much to keep)."""
        path = self.dir / f"{PACKAGE}-{release.package_version}" / "sqlite3.c"
        if path.is_file():
            source = path.read_bytes()
            touch(path.parent)  # a use: `repro clean --caches --older-than` keeps it
        else:
            data = self.registry.tarball(release.tarball)
            self.downloads += 1
            verify(data, release)
            extracted = extract_amalgamation(data, release)
            if extracted is None:
                self._remember(release.package_version, None)
                return None
            source = extracted
            if keep:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(source)
                tmp.replace(path)
        version, source_id = read_define(source)
        self._remember(release.package_version, version)
        pinned = dataclasses.replace(release, sqlite_version=version)
        return Amalgamation(pinned, path, hashlib.sha256(source).hexdigest(), source_id)

    def _sqlite_of(self, release: SourceRelease) -> tuple[int, int, int] | None:
        known = self._probes().get(release.package_version, "")
        if known == "":
            fetched = self.fetch(release, keep=False)
            known = fetched.release.sqlite_version if fetched is not None else None
        return parse_version(known) if known else None

    def search(self, version: str) -> SourceRelease:
        """Binary search of the package's releases for one that ships `version`."""
        wanted = parse_version(version)
        candidates = self._releases()
        lo, hi = 0, len(candidates) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            found = self._sqlite_of(candidates[mid])
            if found == wanted:
                return dataclasses.replace(candidates[mid], sqlite_version=version)
            if found is None or found < wanted:  # no amalgamation: an old layout, so look newer
                lo = mid + 1
            else:
                hi = mid - 1
        raise SqliteVersionError(f"no {PACKAGE} release on the registry ships SQLite {version}")

    def amalgamation(self, version: str, index: Sequence[SourceRelease]) -> Amalgamation:
        """The verified amalgamation of `version`: from the index when listed, else searched."""
        parse_version(version)
        listed = [r for r in index if r.sqlite_version == version]
        release = listed[0] if listed else self.search(version)
        fetched = self.fetch(release)
        if fetched is None or fetched.release.sqlite_version != version:
            got = fetched.release.sqlite_version if fetched else "no amalgamation"
            raise SqliteSourceError(f"{release.label} was indexed as SQLite {version} but holds {got}")
        return fetched


def refresh_index(store: SourceStore, package_versions: Sequence[str],
                  progress: Callable[[SourceRelease], None] | None = None) -> tuple[SourceRelease, ...]:
    """Re-read the SQLite version of each named package release from its tarball (the index's truth)."""
    by_version = {r.package_version: r for r in store._releases()}
    entries = []
    for package_version in package_versions:
        if package_version not in by_version:
            raise SqliteSourceError(f"the registry has no {PACKAGE}@{package_version}")
        fetched = store.fetch(by_version[package_version])
        if fetched is None:
            raise SqliteSourceError(f"{PACKAGE}@{package_version} ships no {AMALGAMATION_MEMBER}")
        entries.append(fetched.release)
        if progress is not None:
            progress(fetched.release)
    return tuple(sorted(entries, key=lambda r: parse_version(r.sqlite_version)))


def render_index(entries: Sequence[SourceRelease]) -> str:
    """index.py's text for these entries (refresh_index's output, written back by a maintainer)."""
    lines = ['"""Checked-in map of SQLite versions to the better-sqlite3 release shipping them',
             '(generated by repro.sqlite.sources.refresh_index; each entry read from its tarball)."""',
             "", "from __future__ import annotations", "",
             "from repro.sqlite.sources import SourceRelease", "",
             "INDEX: tuple[SourceRelease, ...] = ("]
    for r in entries:
        lines.append(f"    SourceRelease({r.sqlite_version!r}, {r.package_version!r},")
        lines.append(f"                  {r.tarball!r},")
        lines.append(f"                  {r.integrity!r},")
        lines.append(f"                  {r.shasum!r}),")
    lines.append(")")
    return "\n".join(lines) + "\n"
