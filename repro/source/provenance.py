"""Each store's provenance, found on the host: git commit, dirty tree and diff hash, a ref's subject and date, the imported files' hash.

The list of files comes from the store's import check in a throwaway machine (``imported`` in
repro/verify/importcheck.py: every module of the store's directory loaded after it was imported
and opened a database); the host hashes those files from the directory the machines mounted.
Git is only read (``rev-parse``, ``diff``, ``ls-files``, ``log``); a directory outside any
repository, or a host without git, records no commit rather than failing the run.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys
from typing import TYPE_CHECKING, Iterable, Sequence

from repro.report.provenance import BUNDLED, PATH, REF, StoreProvenance
from repro.scenario import StoreSpec

if TYPE_CHECKING:
    from repro.options import RunOptions

GIT_TIMEOUT_S = 60


def files_hash(root: str | pathlib.Path, files: Iterable[str]) -> str:
    """sha256 over each file's relative path and bytes, in sorted order ("" for no files); a file that is
    gone is hashed as missing, so it can never match the code that ran."""
    digest = hashlib.sha256()
    for name in sorted(set(files)):
        digest.update(name.encode() + b"\0")
        try:
            digest.update(hashlib.sha256((pathlib.Path(root) / name).read_bytes()).hexdigest().encode())
        except OSError:
            digest.update(b"missing")
        digest.update(b"\0")
    return digest.hexdigest() if files else ""


def _git(args: Sequence[str], cwd: str) -> str | None:
    """git's stdout, or None when git is missing, fails or is not in a repository here."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        proc = subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=cwd, capture_output=True, env=env,
                              timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else None


def git_state(directory: str, imported: Sequence[str] = ()) -> tuple[str, bool | None, str]:
    """(commit, dirty, diff sha256) of ``directory`` in its repository; ("", None, "") outside one.

    Dirty: a tracked file under the directory differs from the commit (staged or not), or a file the
    store imported is not tracked at all. The diff hash covers ``git diff HEAD --binary`` of the
    directory and the untracked imported files' paths and bytes: the same change, the same hash.
    """
    commit = (_git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], directory) or "").strip()
    if not commit:
        return "", None, ""
    diff = _git(["diff", "HEAD", "--binary", "--no-ext-diff", "--", "."], directory)
    tracked = _git(["ls-files", "-z", "--", "."], directory)
    if diff is None or tracked is None:
        return commit, None, ""
    known = set(tracked.split("\0"))
    untracked = sorted(name for name in imported if name not in known)
    if not diff and not untracked:
        return commit, False, ""
    digest = hashlib.sha256(diff.encode())
    digest.update(files_hash(directory, untracked).encode())
    return commit, True, digest.hexdigest()


def ref_subject(git_dir: str, commit: str) -> tuple[str, str]:
    """(subject, committer date ISO 8601) of a commit; ("", "") if git cannot say."""
    out = _git(["log", "-1", "--format=%s%x00%cI", commit, "--"], git_dir)
    if not out:
        return "", ""
    subject, _, date = out.strip().partition("\0")
    return subject, date


def bundled_provenance(store: StoreSpec) -> StoreProvenance:
    """The lab's own store: its package's files hashed, and the commit of the lab's checkout if it is one."""
    from repro.machine.context import find_sources

    root = find_sources().store_dir
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    return StoreProvenance(source=store.source, kind=BUNDLED, path=str(root),
                           content_sha256=files_hash(root, files), preset=store.preset)


def _is_bundled(package: pathlib.Path) -> bool:
    """Whether a ``hermes_state`` package is the lab's bundled store: the same directory, or the same files."""
    from repro.machine.context import find_sources

    root = find_sources().store_dir

    def python_files(base: pathlib.Path) -> list[str]:
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*.py") if "__pycache__" not in p.parts)

    if package.resolve() == root.resolve():
        return True
    mine, theirs = python_files(package), python_files(root)
    return mine == theirs and files_hash(package, mine) == files_hash(root, theirs)


def store_provenance(store: StoreSpec, imported: Sequence[str] = ()) -> StoreProvenance:
    """A prepared store's provenance (its ref checked out: ``store_path`` and ``store_commit`` set)."""
    if not store.foreign or store.store_path is None:
        return bundled_provenance(store)
    path = store.store_path
    content = files_hash(path, imported)
    if store.store_ref:
        from repro.source.refs import StoreRef, local_git_dir
        from repro.sqlite.build import cache_root

        where = local_git_dir(StoreRef.parse(store.store_ref), cache_root())
        subject, date = ref_subject(where, store.store_commit) if where and store.store_commit else ("", "")
        return StoreProvenance(source=store.source, kind=REF, path=path, commit=store.store_commit or "",
                               dirty=False, subject=subject, date=date, imported=tuple(imported),
                               content_sha256=content, image=store.image or "", requirements=store.requirements or "")
    commit, dirty, diff = git_state(path, imported)
    return StoreProvenance(source=store.source, kind=PATH, path=path, commit=commit, dirty=dirty, diff_sha256=diff,
                           imported=tuple(imported), content_sha256=content, image=store.image or "",
                           requirements=store.requirements or "")


def start_hashes(directories: Iterable[str | pathlib.Path | None]) -> dict[str, str]:
    """Each prepared starting database (its cache directory's name) and the sha256 of its files (the database,
    -wal and -shm as restored, and the baseline the lab read from them)."""
    found = {}
    for directory in directories:
        if directory is None:
            continue
        root = pathlib.Path(directory)
        found[root.name] = files_hash(root, sorted(p.name for p in root.iterdir() if p.is_file()))
    return found


def replay_refusal(then: Sequence[StoreProvenance], now: StoreProvenance) -> str:
    """Why a rerun of ``now`` would not be a replay: its files' hash differs from the run's ("" when it is the same
    code, or either hash is unknown)."""
    before = next((p for p in then if p.source == now.source), None)
    if before is None or not before.content_sha256 or not now.content_sha256:
        return ""
    if before.content_sha256 == now.content_sha256:
        return ""
    return (f"not a replay: the store {now.source} is not the code that ran (the files it imports hashed sha256 "
            f"{before.content_sha256[:16]} then, {now.content_sha256[:16]} now); restore that code, or run the "
            "scenario again with `repro run` as a new run")


def bundled_notice(directory: str, preset: str, option: str = "--store-path") -> str:
    """The line that says a run tests the lab's bundled store although ``directory`` holds a store of its own
    (``hermes_state.py`` or a ``hermes_state`` package); "" when it holds none, or when its package is the
    bundled store itself (the lab's own checkout: the same files)."""
    for name in ("hermes_state.py", os.path.join("hermes_state", "__init__.py")):
        if os.path.isfile(os.path.join(directory, name)):
            if name != "hermes_state.py" and _is_bundled(pathlib.Path(directory, "hermes_state")):
                return ""
            shown = "./" + name.replace(os.sep, "/").removesuffix("/__init__.py") + ("/" if "__init__" in name else "")
            return (f"testing the lab's bundled store {preset} -- not {shown}; use {option} . to test yours")
    return ""


def bundled_notice_of(args: RunOptions) -> None:
    """First: a run of the lab's own store, started in a directory that holds a store of its own, says so."""
    if args.command == "run":
        named, option = args.store_path or args.store_ref, "--store-path"
        preset = args.preset or "ns506"
    else:
        named, option = args.store_paths or args.store_refs, "--store-paths"
        preset = args.presets or "ns506"
    notice = "" if named else bundled_notice(os.getcwd(), preset, option)
    if notice:
        print(f"repro: note: {notice}", file=sys.stderr, flush=True)


def lab_version() -> str:
    """The installed lab's version (report.json ``run.lab_version``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hermes-lab")
    except PackageNotFoundError:
        return "unknown"
