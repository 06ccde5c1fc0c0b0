"""Build libsqlite3.so.0 from a version's amalgamation with Debian's options, once, into a cache.

A build lives in `<cache>/sqlite/<version>-<options hash>[-assisted]/` (cache root
`$HERMES_LAB_CACHE`, default `~/.cache/hermes-lab`) with `build.json` beside the library. It is
compiled in a temporary directory and renamed into place, under a per-key file lock, so a
reader never sees half a build and two lab processes never compile the same thing twice.
A cache hit reads build.json and touches neither the network nor the compiler.

The *assisted* build (the WAL-reset hunt) inserts a `usleep(LAB_ASSIST_CHECKPOINT_US)`, compiled
only when that macro is defined, into `sqlite3WalCheckpoint` after it has read the wal-index
header and before it copies frames back: the window of the WAL-reset race (a writer restarting
the WAL in between leaves the checkpoint working from a stale header), and the place where
SQLite 3.51.3 put its own test hook for the bug (`sqlite3FaultSim(660)`). A sleep at the very
start of the function would come before the header is read, and widen nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time
from typing import Iterator, Sequence

from repro.caches import cache_failure, touch
from repro.errors import LabError
from repro.sqlite import options as opts
from repro.sqlite.index import INDEX
from repro.sqlite.sources import Amalgamation, SourceRelease, SourceStore, SqliteVersionError, parse_version

CACHE_ENV = "HERMES_LAB_CACHE"
LIB_NAME = "libsqlite3.so.0"
META_NAME = "build.json"
ASSIST_MACRO = "LAB_ASSIST_CHECKPOINT_US"
DEFAULT_ASSIST_US = 1000
CC = "gcc"
CFLAGS: tuple[str, ...] = ("-O2", "-fPIC", "-shared", f"-Wl,-soname,{LIB_NAME}")
LIBS: tuple[str, ...] = ("-lm", "-ldl", "-lpthread")
_CHECKPOINT_DEF = re.compile(rb"^SQLITE_PRIVATE int sqlite3WalCheckpoint\([^;{]*?\)\{\n", re.M)
# In sqlite3WalCheckpoint, once the header is read (3.7 to 3.54 alike): the assist goes after this.
_COPY_BACK = re.compile(rb"/\* Copy data from the log to the database file\. \*/\n[ \t]*if\( rc==SQLITE_OK \)\{\n")
_FUNCTION_END = re.compile(rb"^\}\n", re.M)
# Part of an assisted build's cache key: where the patch puts the delay (builds placed elsewhere are not reused).
ASSIST_PLACE = "after-header-read"
_ASSIST_BLOCK = (b"#ifdef " + ASSIST_MACRO.encode() + b"\n"
                 b"  usleep(" + ASSIST_MACRO.encode() + b");  /* hermes-lab assisted build: widen the "
                 b"WAL-reset race window */\n#endif\n")


class SqliteBuildError(LabError):
    """The compiler is missing, or the lab failed to write its build cache (exit 3)."""


@dataclasses.dataclass(frozen=True)
class SqliteBuild:
    """One built library: what a machine mounts and what a report names."""

    version: str
    lib_dir: pathlib.Path
    source: str  # e.g. "better-sqlite3@12.11.1"
    options: tuple[str, ...]  # the system library's compile_options this build follows
    assisted: bool
    source_id: str  # SQLITE_SOURCE_ID of the amalgamation (runtime.probe reads the one in force)

    @property
    def label(self) -> str:
        return f"{self.version}-assisted" if self.assisted else self.version


@dataclasses.dataclass(frozen=True)
class BuildMetadata:
    """build.json: everything needed to say what a cached library is without rebuilding it."""

    version: str
    source: str
    source_sha256: str
    source_id: str
    compile_options: tuple[str, ...]
    flags: tuple[str, ...]
    assisted: bool
    assist_us: int | None
    build_seconds: float
    compiler: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> BuildMetadata:
        raw = json.loads(text)
        raw["compile_options"], raw["flags"] = tuple(raw["compile_options"]), tuple(raw["flags"])
        return cls(**raw)

    def build(self, lib_dir: pathlib.Path) -> SqliteBuild:
        return SqliteBuild(self.version, lib_dir, self.source, self.compile_options, self.assisted,
                           self.source_id)


def cache_root() -> pathlib.Path:
    """The lab's cache: $HERMES_LAB_CACHE, else ~/.cache/hermes-lab."""
    env = os.environ.get(CACHE_ENV)
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "hermes-lab"


def sqlite_cache(root: pathlib.Path | None = None) -> pathlib.Path:
    return (root if root is not None else cache_root()) / "sqlite"


def assist_patch(source: bytes) -> bytes:
    """The amalgamation with the assist delay in sqlite3WalCheckpoint, once the wal-index header is
    read, right before the frames are copied back (see the module docstring)."""
    matches = list(_CHECKPOINT_DEF.finditer(source))
    if len(matches) != 1:
        raise SqliteBuildError(f"cannot place the assist delay: found {len(matches)} definitions of "
                               "sqlite3WalCheckpoint in the amalgamation (expected 1)")
    start = matches[0].end()
    end_match = _FUNCTION_END.search(source, start)
    end = end_match.start() if end_match else len(source)
    places = list(_COPY_BACK.finditer(source, start, end))
    if len(places) != 1:
        raise SqliteBuildError(f"cannot place the assist delay: found {len(places)} copy-back blocks in "
                               "sqlite3WalCheckpoint (expected 1)")
    at = places[0].end()
    return source[:at] + _ASSIST_BLOCK + source[at:]


def _assist_defines(assisted: bool, assist_us: int) -> tuple[str, ...]:
    if not assisted:
        return ()
    if assist_us < 1:
        raise SqliteVersionError(f"the assist delay must be at least 1 microsecond, not {assist_us}")
    return (f"-D{ASSIST_MACRO}={assist_us}",)


def build_dir_name(version: str, options: Sequence[str], assisted: bool, assist_us: int) -> str:
    key = opts.options_hash(options, (*_assist_defines(assisted, assist_us), *((ASSIST_PLACE,) if assisted else ())))
    return f"{version}-{key}-assisted" if assisted else f"{version}-{key}"


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (one builder per cache key across processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def _workdir(base: pathlib.Path) -> Iterator[pathlib.Path]:
    """A temporary build directory beside the cache entries (same filesystem, so rename works)."""
    base.mkdir(parents=True, exist_ok=True)
    path = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)  # already gone when it was renamed into place


def _read_build(directory: pathlib.Path) -> SqliteBuild | None:
    try:
        if not (directory / LIB_NAME).is_file():
            return None
        return BuildMetadata.from_json((directory / META_NAME).read_text()).build(directory)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _readable_by_all(directory: pathlib.Path) -> None:
    """mkdtemp made the build's directory 0700: others on this host (another user's lab) may read the cache too.
    (Machines get the build through the engine, root-owned and world-readable whatever its mode here.)"""
    if directory.stat().st_mode & 0o055 != 0o055:
        directory.chmod(0o755)


def cached_builds(root: pathlib.Path | None = None) -> list[SqliteBuild]:
    """Every complete build in the cache, by version."""
    base = sqlite_cache(root)
    found = [b for d in sorted(base.iterdir()) if d.is_dir() and (b := _read_build(d))] if base.is_dir() else []
    return sorted(found, key=lambda b: (parse_version(b.version), b.assisted))


def _compile(amalgamation: Amalgamation, source: bytes, flags: Sequence[str], workdir: pathlib.Path) -> str:
    """Compile into workdir/LIB_NAME; the compiler's version line is returned for the record."""
    cc = shutil.which(CC)
    if cc is None:
        raise SqliteBuildError(f"no {CC} on this host: the lab builds SQLite where a compiler is")
    src = workdir / "sqlite3.c"
    src.write_bytes(source)
    cmd = [cc, *CFLAGS, *flags, str(src), "-o", str(workdir / LIB_NAME), *LIBS]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    src.unlink()
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "error" in line] or proc.stderr.splitlines()
        raise SqliteVersionError(f"SQLite {amalgamation.release.sqlite_version} ({amalgamation.release.label}) "
                                 f"does not build with Debian's options: {(errors or ['?'])[0][:200]}")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()
    return version[0] if version else cc


def ensure_build(version: str, *, assisted: bool = False, assist_us: int = DEFAULT_ASSIST_US,
                 root: pathlib.Path | None = None, store: SourceStore | None = None,
                 index: Sequence[SourceRelease] | None = None) -> SqliteBuild:
    """The cached build of `version` (built now if missing); bad versions raise SqliteVersionError."""
    parse_version(version)
    system = opts.system_compile_options()
    assist = _assist_defines(assisted, assist_us)
    base = sqlite_cache(root)
    final = base / build_dir_name(version, system, assisted, assist_us)
    hit = _read_build(final)
    if hit is not None:
        with contextlib.suppress(OSError):  # a read-only cache still serves its builds
            _readable_by_all(final)  # builds cached before the lab mounted them into machines
        touch(final)
        return hit
    try:
        return _build(version, final, base, system, assist, assisted, assist_us, store, index)
    except OSError as exc:  # the cache, not the compiler or the registry (those raise their own errors)
        raise cache_failure(exc, base) from None


def _build(version: str, final: pathlib.Path, base: pathlib.Path, system: tuple[str, ...],
           assist: tuple[str, ...], assisted: bool, assist_us: int, store: SourceStore | None,
           index: Sequence[SourceRelease] | None) -> SqliteBuild:
    """Build ``version`` into the cache entry ``final``, one builder per entry (ensure_build found none)."""
    with _locked(base / f".{final.name}.lock"):
        hit = _read_build(final)  # another process may have built it while we waited
        if hit is not None:
            return hit
        store = store if store is not None else SourceStore(base)
        amalgamation = store.amalgamation(version, INDEX if index is None else index)
        source = amalgamation.path.read_bytes()
        if assisted:
            source = assist_patch(source)
        flags = (*opts.translate(system, source), *opts.PLATFORM_DEFINES, *assist)
        with _workdir(base) as workdir:
            started = time.monotonic()
            compiler = _compile(amalgamation, source, flags, workdir)
            meta = BuildMetadata(version, amalgamation.release.label, amalgamation.sha256,
                                 amalgamation.source_id, system, flags, assisted,
                                 assist_us if assisted else None,
                                 round(time.monotonic() - started, 1), compiler)
            (workdir / META_NAME).write_text(meta.to_json())
            _readable_by_all(workdir)
            if final.exists():
                shutil.rmtree(final)  # an incomplete leftover (no build.json): replace it
            os.rename(workdir, final)
        return meta.build(final)
