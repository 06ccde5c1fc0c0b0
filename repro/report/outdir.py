"""A run's report directory: its own (the run id in its name), never another run's reports unless --force.

The default is ``runs/<timestamp>-<run id>``, made with an exclusive mkdir (a suffix if even
that exists), so two runs started in the same second never share one. A ``runs`` directory the lab makes
gets a ``.gitignore`` of ``*``, as pytest's cache does, so reports never land untracked in a repository. A directory given with
``--out`` must be empty or absent; ``--force`` clears an earlier run's reports from it first,
but only files the lab writes, and only in a directory that looks like a lab report's. A
marker file, made exclusively, says which run writes there now, so two runs given the same
``--out`` at once cannot both take it.

Nothing is written through a symbolic link. An ``--out`` that is itself a link is refused (what
was checked could be re-pointed before the run writes, and the replay commands would name the
link); a lab file or directory inside it that is a link (report.md -> ~/.bashrc, trials -> /etc)
is the lab's name, so the link itself is removed or replaced, never what it points to: reports
are written to a temporary file beside them and renamed over the name (``replace_file``).
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import shutil
from dataclasses import dataclass

from repro.errors import LabError, ScenarioError, shown
from repro.report.records import load_json

# What the lab writes into a report directory (and so what --force may delete): `repro run`'s and
# `repro explore`'s.
LAB_FILES = ("report.json", "report.md", "junit.xml", "report.html", "explore.json", "explore.md")
LAB_DIRS = ("trials", "replays", "trace")
MARKER = ".repro-run"
# What the lab writes into a `runs/` directory it makes itself, as pytest does in its .pytest_cache: the reports
# never land untracked in the user's repository (delete the file to commit them).
GITIGNORE = "# Created by repro (hermes-lab) automatically: run reports are not source.\n*\n"
DEFAULT_BASE = "runs"


class ReportWriteError(LabError):
    """The reports or the evidence could not be written (a full or read-only disk): exit 3."""


@dataclass(frozen=True)
class ReportDir:
    """Where a run will write, as checked before anything starts."""

    path: pathlib.Path
    explicit: bool  # given with --out (else a fresh default name)
    force: bool = False


def plan(out: str | None, run_id: str, *, force: bool = False, base: pathlib.Path = pathlib.Path(DEFAULT_BASE),
         now: dt.datetime | None = None, prefix: str = "") -> ReportDir:
    """Check a report directory up front (ScenarioError when it cannot be used); nothing is made. The
    default is ``base/<prefix><timestamp>-<run id>``."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    target = ReportDir(pathlib.Path(out), True, force) if out else \
        ReportDir(base / f"{prefix}{stamp}-{run_id}", False)
    if target.explicit and target.path.is_symlink():
        raise ScenarioError(f"--out {shown(target.path, quote=False)} is a symbolic link: give the directory "
                            "itself (the lab never writes through a link)")
    existing = target.path
    while not existing.exists() and existing != existing.parent:  # the part of the path that exists
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ScenarioError(f"cannot make the report directory {shown(target.path, quote=False)}: "
                            f"{shown(existing, quote=False)} is not a writable directory")
    if target.explicit and target.path.is_dir() and any(target.path.iterdir()):
        _check_reusable(target.path, force)
    return target


def claim(target: ReportDir, run_id: str) -> pathlib.Path:
    """Make the directory and mark it as this run's; returns the path actually used."""
    try:
        path = _make_unique(target.path) if not target.explicit else _make_explicit(target)
        fd = os.open(path / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise ScenarioError(f"another run took the report directory {shown(target.path, quote=False)} meanwhile; "
                            "use another --out") from None
    except OSError as exc:
        raise ScenarioError(f"cannot make the report directory {shown(target.path, quote=False)}: "
                            f"{exc.strerror}") from None
    from repro.machine.owner import process_start

    started = process_start(os.getpid())
    try:
        with os.fdopen(fd, "w") as handle:  # the start time tells this process from a later one given its pid
            handle.write(f"{run_id} {os.getpid()} {started[0] if started else ''}".rstrip() + "\n")
    except OSError as exc:
        raise write_error(path, exc) from None
    return path


def write_error(path: pathlib.Path, exc: OSError) -> ReportWriteError:
    """An OSError met while writing reports or evidence under ``path``, as the one line the CLI prints."""
    return ReportWriteError(f"cannot write {shown(path, quote=False)}: {exc.strerror or exc}")


def replace_file(path: pathlib.Path, data: str | bytes) -> None:
    """Write ``path`` whole, never through a link: a temporary file beside it (O_EXCL, O_NOFOLLOW), renamed
    over the name, so a link there is replaced and a full disk leaves the old file (OSError is raised;
    the temporary file is removed)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a run that died here (its own name: a link there is only unlinked)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)  # the umask decides, as before
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def looks_like_lab_report(path: pathlib.Path) -> bool:
    """A directory this lab wrote: a report.json of the lab's format, or the marker of a run."""
    if (path / MARKER).is_file():
        return True
    try:
        data = load_json((path / "report.json").read_text(), "report.json")
    except (OSError, ValueError):  # ResultsError (not JSON, too deep) and undecodable text included
        return False
    return isinstance(data, dict) and "run" in data and "trials" in data and "format" in data


def clear(path: pathlib.Path) -> None:
    """Delete an earlier run's reports: only the lab's own files and directories, nothing else. A
    symbolic link under one of their names is removed itself, never followed: the new reports are
    then written into the directory, not through the link."""
    for name in (*LAB_FILES, MARKER):
        (path / name).unlink(missing_ok=True)  # a link: the link itself
    for name in LAB_DIRS:
        if (path / name).is_symlink() or ((path / name).exists() and not (path / name).is_dir()):
            (path / name).unlink()
        elif (path / name).is_dir():
            shutil.rmtree(path / name)


def _check_reusable(path: pathlib.Path, force: bool) -> None:
    if not force:
        raise ScenarioError(f"--out {shown(path, quote=False)} is not empty (an earlier run's reports?): give a new "
                            "directory, or --force to replace the lab report in it")
    if path.is_symlink():
        raise ScenarioError(f"--out {shown(path, quote=False)} is a symbolic link: --force replaces nothing "
                            "through one; give the directory itself")
    if not looks_like_lab_report(path):
        raise ScenarioError(f"--out {shown(path, quote=False)} is not empty and holds no lab report (report.json): "
                            "refusing to delete anything in it, even with --force")


def _make_parents(path: pathlib.Path) -> None:
    """``path``'s missing parents, made; a ``runs`` directory among them gets its own .gitignore (GITIGNORE)."""
    missing = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    for made in missing:
        if made.name == DEFAULT_BASE:
            try:
                with open(made / ".gitignore", "x", encoding="utf-8") as handle:
                    handle.write(GITIGNORE)
            except FileExistsError:
                pass


def _make_unique(path: pathlib.Path) -> pathlib.Path:
    _make_parents(path)
    for n in range(1, 1000):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(path)


def _make_explicit(target: ReportDir) -> pathlib.Path:
    path = target.path
    _make_parents(path)
    path.mkdir(exist_ok=True)
    if any(path.iterdir()):
        _check_reusable(path, target.force)  # it filled up since the check (another run)
        writer = _live_writer(path)
        if writer:
            raise ScenarioError(f"--out {shown(path, quote=False)}: run {writer} is writing there now; "
                                "use another --out")
        clear(path)
    return path


def _live_writer(path: pathlib.Path) -> str:
    """The run (and pid) named by the directory's marker, if that process is still alive; else "". A marker
    that gives the process's start time names only that process: a pid the kernel has since given to
    another is not the run (an earlier run's marker stays in its directory)."""
    from repro.machine.owner import process_start

    try:
        run_id, pid, *rest = (path / MARKER).read_text().split()
        found = process_start(int(pid))
        started = int(rest[0]) if rest else None
    except (OSError, ValueError):
        return ""
    if found is None or found[1] in ("Z", "X") or (started is not None and found[0] != started):
        return ""
    return f"{run_id} (pid {pid})"
