"""A release by name: ``REPO@REV`` checked out from git into the lab's cache, keyed by commit id.

The user's repository is only read: the commit is resolved with ``git rev-parse`` and its tree
exported with ``git archive`` (no checkout, no ``git worktree``, nothing written into it). A
repository the host reaches by URL is mirrored once into the cache (``git clone --mirror``)
and fetched again on later uses. A commit's tree is extracted once, into
``<cache>/stores/<commit>``, and mounted read-only into the machines from there: all of it but large
non-Python files in directories without Python code (the website's images, an app's assets;
repro/source/trim.py says which and why), so a ref of an upstream fork took 98 MB of cache, not 150.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass

from repro.caches import make_partial, record_made, touch
from repro.errors import ScenarioError, shown
from repro.machine.labels import RUN_ID
from repro.source.trim import Trim, tree_files, trim
from repro.steps import step

# A URL git fetches from (scheme://... or scp-like user@host:path); anything else must be a directory.
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/@:]+@[^/:]+:)", re.IGNORECASE)
GIT_TIMEOUT_S = 600


@dataclass(frozen=True)
class StoreRef:
    """``REPO@REV`` as typed: a repository (path or URL) and a revision (tag, branch or commit)."""

    text: str
    repo: str
    rev: str

    @classmethod
    def parse(cls, text: str) -> "StoreRef":
        repo, sep, rev = text.strip().rpartition("@")
        if not sep or not repo or not rev:
            raise ScenarioError(f"--store-ref takes REPO@REV (a git repository and a tag, branch or commit), "
                                f"not {shown(text)}")
        return cls(text.strip(), repo, rev)

    @property
    def is_url(self) -> bool:
        return bool(_URL.match(self.repo)) and not os.path.isdir(self.path)

    @property
    def path(self) -> str:
        """The repository as a directory: ``~`` expanded (the shell leaves it alone after a comma in --store-refs)."""
        return os.path.abspath(os.path.expanduser(self.repo))


def _git(args: list[str], cwd: str | None = None, what: str = "") -> str:
    """Run git (as this user, never asking for credentials); ScenarioError with git's last line on failure."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        proc = subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=cwd, capture_output=True, text=True,
                              env=env, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise ScenarioError("--store-ref needs git on this machine (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise ScenarioError(f"{what}: git {args[0]} took more than {GIT_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise ScenarioError(f"{what}: {last}")
    return proc.stdout


def git_dir(ref: StoreRef, cache: pathlib.Path) -> str:
    """The git directory to read ``ref`` from: the user's repository itself, or the cache's mirror of a URL."""
    if not ref.is_url:
        path = ref.path
        if not os.path.isdir(path):
            raise ScenarioError(f"--store-ref {shown(ref.text)}: {shown(ref.repo)} is neither a directory nor a "
                                "URL git can fetch")
        return path
    mirror = _mirror(ref, cache)
    if mirror.is_dir():
        touch(mirror)
        with step(f"fetching {ref.repo} into its mirror"):
            _git(["--git-dir", str(mirror), "remote", "update", "--prune"], what=f"--store-ref {ref.text}")
    else:
        partial = make_partial(mirror.parent, "mirror-")
        try:
            with step(f"cloning {ref.repo} (a mirror, once)"):
                _git(["clone", "--quiet", "--mirror", ref.repo, str(partial / "git")], what=f"--store-ref {ref.text}")
            os.replace(partial / "git", mirror)
            record_made(cache, mirror, RUN_ID)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return str(mirror)


def local_git_dir(ref: StoreRef, cache: pathlib.Path) -> str | None:
    """Where ``ref``'s commits can be read without fetching (the user's repository, or the cache's mirror
    of a URL when there is one); None if neither is there."""
    if not ref.is_url:
        path = ref.path
        return path if os.path.isdir(path) else None
    mirror = _mirror(ref, cache)
    return str(mirror) if mirror.is_dir() else None


def _mirror(ref: StoreRef, cache: pathlib.Path) -> pathlib.Path:
    return cache / "repos" / (hashlib.sha256(ref.repo.encode()).hexdigest()[:20] + ".git")


def resolve(ref: StoreRef, cache: pathlib.Path) -> tuple[str, str]:
    """(git directory, full commit id) of ``ref``; ScenarioError when REV is not a commit there."""
    where = git_dir(ref, cache)
    out = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref.rev}^{{commit}}"], cwd=where,
               what=f"--store-ref {ref.text}: {shown(ref.rev)} is not a commit of {ref.repo}")
    return where, out.strip()


def checkout(ref: StoreRef, cache: pathlib.Path, commit: str | None = None) -> tuple[str, pathlib.Path]:
    """The commit ``ref`` names (or ``commit``, when it was resolved before: a replay) and the directory its
    tree is extracted to, made once per commit."""
    where, resolved = resolve(ref, cache) if commit is None else (git_dir(ref, cache), commit)
    target = cache / "stores" / resolved
    if target.is_dir():
        touch(target)  # a use: `repro clean --caches --older-than` keeps it
        return resolved, target
    partial = make_partial(target.parent, f"{resolved[:12]}-")
    try:
        tree = partial / "tree"
        tree.mkdir()
        with step(f"extracting {ref.text} ({resolved[:12]}) into the cache"):
            kept = _extract(where, resolved, tree, ref.text)
        if kept.left_out:
            print(f"repro: {ref.text} ({resolved[:12]}): {kept.summary()}", file=sys.stderr, flush=True)
        for path in [tree, *tree.rglob("*")]:  # the machine's uid 1000 reads it through a read-only mount
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
        try:
            os.rename(tree, target)
            record_made(cache, target, RUN_ID)  # `repro clean --caches --run ID`
        except OSError:
            if not target.is_dir():  # another run made it meanwhile: theirs is the same tree
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return resolved, target


def _extract(where: str, commit: str, dest: pathlib.Path, what: str) -> Trim:
    """``git archive COMMIT`` into ``dest`` (tar's "data" filter: no absolute paths, no links out), without the
    files ``trim`` leaves out; what it kept and left out."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        kept = trim(tree_files(where, commit, env, GIT_TIMEOUT_S))
    except subprocess.TimeoutExpired:
        raise ScenarioError(f"--store-ref {what}: git ls-tree took more than {GIT_TIMEOUT_S} s") from None
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit {exc.returncode}"])[-1]
        raise ScenarioError(f"--store-ref {what}: git ls-tree failed: {last}") from None
    left_out = set(kept.left_out)
    proc = subprocess.Popen(["git", "-c", "safe.directory=*", "archive", "--format=tar", commit], cwd=where,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.name not in left_out:
                    tar.extract(member, dest, filter="data")
    except tarfile.TarError as exc:
        proc.kill()
        raise ScenarioError(f"--store-ref {what}: cannot extract commit {commit[:12]}: {exc}") from None
    finally:
        err = proc.stderr.read().decode("utf-8", "replace")
        code = proc.wait()
    if code != 0:
        raise ScenarioError(f"--store-ref {what}: git archive failed: {(err.strip().splitlines() or ['?'])[-1]}")
    return kept
