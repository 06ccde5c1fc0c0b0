"""What of a ref's tree the cache keeps: every file but large non-Python files in directories that hold no Python code.

A commit of a real project is mostly not its store: upstream's tree (a fork's commit 9a75ff0 of
August 2026) is 146 MB in 6,479 files, of which the store's import check loads 12 (``hermes_state.py``, ``hermes_constants.py`` and a few
modules of ``agent/``, ``hermes_cli/`` and ``tools/``). Two ways to keep only what the store needs
were weighed:

- The import closure (the files ``imported`` by repro/verify/importcheck.py) plus declared data.
  Rejected: it is what ran *while importing and opening a database*, not what a trial runs.
  Upstream's modules import more inside functions (``agent/memory_manager.py`` imports
  ``toolsets`` and ``tools.daemon_pool`` when called; ``hermes_state.py`` imports
  ``hermes_cli.config`` inside ``try: ... except Exception: return fallback``) and read data by
  path (``agent/i18n.py`` reads ``../locales``, a directory without Python). A closure-only tree
  would make such a store fail in the middle of trials, or worse, silently run its fallback:
  another store than the release.
- The tree minus what no store can import and is unlikely to read: **chosen**. Kept: every
  Python file anywhere (a lazy import may reach any of them), every file in a directory that
  holds a Python file (a package's own data, whatever its size), and every file under
  ``LARGE_BYTES`` anywhere (configuration, locales, scripts). Left out: a file of ``LARGE_BYTES``
  or more that is not Python, in a directory with no Python file -- the website's images, the
  desktop app's assets, infographics. Decided from ``git ls-tree`` alone, before extracting:
  the same commit always gives the same tree, and nothing the store does can change it.

Git already leaves out what is untracked or ignored, and ``export-ignore`` paths of the commit's
``.gitattributes``. A store that reads a large file from a directory without Python code is
tested from a checkout with ``--store-path`` instead (docs/how-to/releases-by-ref.md).
"""

from __future__ import annotations

import posixpath
import subprocess
from dataclasses import dataclass
from typing import Iterable

LARGE_BYTES = 256 * 1024
# Python code or what the import system loads: never left out, whatever its size.
CODE_SUFFIXES = (".py", ".pyi", ".pyx", ".pxd", ".pth", ".so", ".pyd")


@dataclass(frozen=True)
class TreeFile:
    """One blob of a commit's tree: its path (relative, ``/``-separated) and size in bytes."""

    path: str
    size: int


@dataclass(frozen=True)
class Trim:
    """What the cache keeps of a tree, and what it leaves out (paths, largest first)."""

    kept_files: int
    kept_bytes: int
    left_out: tuple[str, ...]
    left_out_bytes: int

    def summary(self) -> str:
        """``kept 6,422 files (94.5 MB); left out 57 files (51.5 MB) ... e.g. infographic/a.png``."""
        line = f"kept {self.kept_files:,} files ({self.kept_bytes / 1e6:.1f} MB)"
        if self.left_out:
            line += (f"; left out {len(self.left_out):,} files ({self.left_out_bytes / 1e6:.1f} MB) of "
                     f"{LARGE_BYTES // 1024} KiB or more, not Python, in directories without Python code, "
                     f"e.g. {self.left_out[0]}")
        return line


def is_code(path: str) -> bool:
    return path.endswith(CODE_SUFFIXES)


def trim(files: Iterable[TreeFile]) -> Trim:
    """Which files of a tree the cache leaves out (see the module's docstring for the rule and why)."""
    listed = list(files)
    code_dirs = {posixpath.dirname(f.path) for f in listed if is_code(f.path)}
    out = [f for f in listed
           if f.size >= LARGE_BYTES and not is_code(f.path) and posixpath.dirname(f.path) not in code_dirs]
    out.sort(key=lambda f: (-f.size, f.path))
    total = sum(f.size for f in listed)
    dropped = sum(f.size for f in out)
    return Trim(kept_files=len(listed) - len(out), kept_bytes=total - dropped,
                left_out=tuple(f.path for f in out), left_out_bytes=dropped)


def tree_files(git_dir: str, commit: str, env: dict[str, str], timeout_s: float) -> list[TreeFile]:
    """Every blob of ``commit``'s tree with its size (``git ls-tree -r -l -z``; submodules, which have no
    size, are not files here). Raises subprocess.CalledProcessError or TimeoutExpired."""
    out = subprocess.run(["git", "-c", "safe.directory=*", "ls-tree", "-r", "-l", "-z", "--full-tree", commit],
                         cwd=git_dir, capture_output=True, env=env, timeout=timeout_s, check=True).stdout
    found = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        fields = meta.split()
        if len(fields) == 4 and fields[1] == b"blob" and fields[3].isdigit():
            found.append(TreeFile(path.decode("utf-8", "surrogateescape"), int(fields[3])))
    return found
