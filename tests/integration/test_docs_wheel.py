"""The documented commands that need no checkout, run as written from the built wheel installed into a fresh
virtualenv (`.venv`, as the docs name it) in a folder far from this checkout."""

from __future__ import annotations

import pathlib
import subprocess
import venv

import pytest

from doccommands import ROOT, TIMEOUT_S, all_commands, check, user_environment

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_the_documented_commands_run_from_the_installed_wheel(lab_wheel: pathlib.Path,
                                                               tmp_path: pathlib.Path) -> None:
    commands = [c for c in all_commands() if c.wheel]
    assert commands and all(not c.not_run for c in commands)
    assert not any("hermes_state" in c.text or "docker/" in c.text for c in commands), "these need the checkout"
    project = tmp_path / "project"
    project.mkdir()
    venv.create(project / ".venv", with_pip=True)
    env = user_environment()
    install = subprocess.run([str(project / ".venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", str(lab_wheel)],
                             capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=project)
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run([str(project / ".venv" / "bin" / "python"), "-c", "import repro; print(repro.__file__)"],
                           capture_output=True, text=True, env=env, cwd=project)
    assert str(project / ".venv") in where.stdout and str(ROOT) not in where.stdout  # the wheel, not the checkout
    for command in commands:
        check(command, project, env)
