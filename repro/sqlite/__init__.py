"""SQLite as a trial variable: find a version's source, build it like Debian does, load it in a machine.

`resolve("3.53.2")` returns a cached build (building it the first time, ~35 s); `resolve("system")`
returns None, meaning the image's own library. See sources.py (where the code comes from),
build.py (how it is compiled and cached) and runtime.py (how a machine loads it).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import TYPE_CHECKING, Iterable

from repro.sqlite.build import (DEFAULT_ASSIST_US, META_NAME, BuildMetadata, SqliteBuild, SqliteBuildError,
                                cached_builds, ensure_build)
from repro.sqlite.index import INDEX
from repro.sqlite import runtime
from repro.sqlite.runtime import SqliteLoadError
from repro.sqlite.sources import SqliteSourceError, SqliteVersionError, SourceStore, parse_version
from repro.steps import step

if TYPE_CHECKING:
    from repro.scenario.stores import StoreSpec

SYSTEM = "system"

__all__ = ["SYSTEM", "SqliteBuild", "SqliteBuildError", "SqliteLoadError", "SqliteSourceError",
           "SqliteVersionError", "available_versions", "cached_builds", "for_store", "listing", "prepare",
           "resolve"]


def resolve(version: str, *, assisted: bool = False, assist_us: int = DEFAULT_ASSIST_US,
            root: pathlib.Path | None = None, store: SourceStore | None = None) -> SqliteBuild | None:
    """The build to run for a `--sqlite` value: None for 'system', else a cached build."""
    text = version.strip()
    if text == SYSTEM:
        if assisted:
            raise SqliteVersionError("an assisted build needs a SQLite version, not 'system'")
        return None
    return ensure_build(text, assisted=assisted, assist_us=assist_us, root=root, store=store)


def available_versions(root: pathlib.Path | None = None) -> list[str]:
    """Versions the lab can build without searching the registry (indexed) or has built (cached)."""
    versions = {r.sqlite_version for r in INDEX} | {b.version for b in cached_builds(root)}
    return sorted(versions, key=parse_version)


def for_store(store: StoreSpec, sqlite: str | SqliteBuild | None = None) -> tuple[StoreSpec, SqliteBuild | None]:
    """The build a machine of this store loads (None: the system library), resolved now -- before
    any container starts -- and the store spec naming it. `sqlite` overrides the spec's choice: a
    version string, or a build made elsewhere (say with another assist delay)."""
    if isinstance(sqlite, SqliteBuild):
        return dataclasses.replace(store, sqlite=sqlite.version, sqlite_assisted=sqlite.assisted), sqlite
    if sqlite is not None:
        store = dataclasses.replace(store, sqlite=sqlite.strip(), sqlite_assisted=False)
    return store, resolve(store.sqlite, assisted=store.sqlite_assisted)


def listing(root: pathlib.Path | None = None) -> list[str]:
    """`repro sqlite list`: one line per version available (indexed or built), with its builds
    (build time, assisted or not, the delay) -- read from build.json, never rebuilt."""
    builds: dict[str, list[str]] = {}
    sources: dict[str, str] = {}
    for b in cached_builds(root):
        try:
            meta = BuildMetadata.from_json((b.lib_dir / META_NAME).read_text())
        except (OSError, ValueError, TypeError, KeyError):
            continue
        kind = f"assisted ({meta.assist_us} us in each checkpoint)" if meta.assisted else "plain"
        builds.setdefault(b.version, []).append(f"{kind}, built in {meta.build_seconds:.1f} s")
        sources[b.version] = meta.source
    indexed = {**sources, **{r.sqlite_version: r.label for r in INDEX}}
    lines = [f"{'version':<9} {'source':<24} builds"]
    for version in available_versions(root):
        lines.append(f"{version:<9} {indexed.get(version, '?'):<24} {'; '.join(builds.get(version, [])) or 'not built'}")
    return lines


def prepare(wanted: Iterable[tuple[str, bool]]) -> list[str]:
    """Build (or find cached) each (version, assisted) a run asks for and load it once on this host:
    done before any container starts, so an unknown version is bad input with nothing started. One
    line per build, returned once all are ready (a bad version is then the only thing said)."""
    done = []
    for version, assisted in dict.fromkeys(wanted):
        if version == SYSTEM:
            continue
        started = time.monotonic()
        with step(f"SQLite {version}{' assisted' if assisted else ''}: building it, or finding it cached"):
            build = resolve(version, assisted=assisted)
        assert build is not None
        runtime.probe(build)
        done.append(f"SQLite {build.label} from {build.source}: {build.lib_dir} ({time.monotonic() - started:.1f} s)")
    return done
