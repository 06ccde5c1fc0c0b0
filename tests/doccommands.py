"""The shell commands README.md and docs/ tell a user to run, collected from their ```sh blocks with the
directives in the HTML comments right above each block.

Every fenced block in ``sh``, ``bash`` or ``shell`` is a block of commands: one command per
line (a line ending in a backslash continues), blank lines and ``#`` comment lines skipped. The
comments right above a block (no blank line between) say how the suite runs it:

- ``<!-- test: docker slow -->``: pytest markers for its commands;
- ``<!-- not run in CI: REASON -->``: never run, with the reason (a registry, a second host, ...);
- ``<!-- xfail: REASON -->``: expected to fail for now (strict=False: a pass is fine);
- ``<!-- exit: N -->``: the exit status the doc promises (default 0);
- ``<!-- output: TEXT -->``: what the doc promises the command prints (stdout or stderr);
- ``<!-- wheel -->``: also run from an installed wheel, outside the checkout.

Commands run in document order, each with ``bash -c`` exactly as written, from the root of the checkout.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 900
SHELLS = ("sh", "bash", "shell")
MARKS = {"docker", "slow", "fuse"}
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(test|not run in CI|xfail|exit|output|wheel)\s*(?::\s*(.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class DocCommand:
    """One documented command and how the suite runs it."""

    doc: str  # the document, relative to the checkout
    line: int  # where the command starts (1-based)
    text: str  # exactly as written (continuation lines joined by their backslash-newline)
    marks: tuple[str, ...] = ()
    not_run: str | None = None
    xfail: str | None = None
    exit: int = 0
    wheel: bool = False
    output: str | None = None

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def documents(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    return [root / "README.md", root / "CHANGELOG.md", *sorted((root / "docs").rglob("*.md"))]


def _directives(comments: list[str], where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for comment in comments:
        match = _DIRECTIVE.match(comment)
        if match is None:  # a misspelt directive must not silently run (or skip) a block
            raise ValueError(f"{where}: {comment.strip()!r} is no directive (test, not run in CI, xfail, exit, output, wheel)")
        key, value = match[1], (match[2] or "").strip()
        if key in ("not run in CI", "xfail", "output") and not value:
            raise ValueError(f"{where}: <!-- {key}: ... --> needs a reason")
        if key == "test" and not set(value.split()) <= MARKS:
            raise ValueError(f"{where}: unknown marks {sorted(set(value.split()) - MARKS)} (known {sorted(MARKS)})")
        found[key] = value
    return found


def collect(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[DocCommand]:
    """The commands of one document, in order."""
    doc = str(path.relative_to(root))
    lines = path.read_text().splitlines()
    commands: list[DocCommand] = []
    comments: list[str] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            comments = comments + [lines[i]] if lines[i].lstrip().startswith("<!--") else []
            i += 1
            continue
        indent, lang = fence[1], fence[2]
        found = _directives(comments, f"{doc}:{i + 1}") if lang in SHELLS else {}
        comments, i = [], i + 1
        pending: list[str] = []
        start = 0
        while i < len(lines) and not lines[i].strip().startswith("```"):
            text = lines[i].removeprefix(indent)
            if lang in SHELLS and (pending or (text.strip() and not text.lstrip().startswith("#"))):
                start = start if pending else i + 1
                pending.append(text)
                if not text.endswith("\\"):
                    commands.append(DocCommand(doc, start, "\n".join(pending), tuple(found.get("test", "").split()),
                                               found.get("not run in CI"), found.get("xfail"),
                                               int(found.get("exit", "0") or 0), "wheel" in found,
                                               found.get("output")))
                    pending = []
            i += 1
        i += 1
    return commands


def all_commands(root: pathlib.Path = ROOT) -> list[DocCommand]:
    return [command for path in documents(root) for command in collect(path, root)]


def user_environment() -> dict[str, str]:
    """The environment a user's shell would have: nothing of the suite's import path or virtualenv, but
    the suite's run id (so its leftover check and reaper cover what the commands make)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST")}
    from repro.machine.labels import RUN_ID

    env["HERMES_LAB_RUN_ID"] = RUN_ID
    return env


def check(command: DocCommand, cwd: os.PathLike[str] | str, env: dict[str, str]) -> None:
    proc = subprocess.run(["bash", "-c", command.text], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == command.exit, (
        f"{command.id}: `{command.text}` exited {proc.returncode}, the doc says {command.exit}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    if command.output is not None:
        assert command.output in proc.stdout + proc.stderr, (
            f"{command.id}: `{command.text}` did not print {command.output!r}\n--- stdout\n{proc.stdout[-3000:]}\n"
            f"--- stderr\n{proc.stderr[-3000:]}")
