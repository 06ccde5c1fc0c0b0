"""The lab as a user installs it: the built wheel (not editable) in a fresh virtualenv (`.venv`, as the docs
name it), used from a project laid out like upstream (a `hermes_state.py` of its own), far from this checkout:
the documented commands that need no checkout run there as written, and so does the test API."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import venv

import docker.errors
import pytest

from doccommands import ROOT, TIMEOUT_S, all_commands, check, user_environment
from repro.machine import engine
from repro.machine.labels import RUN_ID

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "unit"))  # the unit tests' trace helpers
from test_explore_support import recorded_run  # noqa: E402

pytestmark = pytest.mark.docker

TRIAL = textwrap.dedent("""
    from repro.testing import ConstrainedHost, inject, verify
    with ConstrainedHost("fly-256") as machine:       # no image yet: built on first use
        machine.start_workload(seed=7, rate=200)
        machine.wait_for_acks(40)
        inject(machine, "sigkill")
        result = verify(machine)
    print("VERDICT", result.verdict, result.integrity, result.acked, result.lost_acked)
""")


@pytest.fixture(scope="module")
def project(lab_wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A user's project shaped like upstream (its own store module), the wheel installed in its `.venv`."""
    project = tmp_path_factory.mktemp("user") / "project"
    project.mkdir()
    (project / "hermes_state.py").write_text("WHOSE = 'the user'\n")
    venv.create(project / ".venv", with_pip=True)
    install = subprocess.run([str(project / ".venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", str(lab_wheel)],
                             capture_output=True, text=True, timeout=600, env=user_environment(), cwd=project)
    assert install.returncode == 0, install.stderr[-3000:]
    return project


@pytest.mark.slow
def test_the_documented_commands_run_from_the_installed_wheel(project: pathlib.Path) -> None:
    commands = [c for c in all_commands() if c.wheel]
    assert commands and all(not c.not_run for c in commands)
    assert not any("hermes_state" in c.text or "docker/" in c.text for c in commands), "these need the checkout"
    env = user_environment()
    where = subprocess.run([str(project / ".venv" / "bin" / "python"), "-c", "import repro; print(repro.__file__)"],
                           capture_output=True, text=True, env=env, cwd=project)
    assert str(project / ".venv") in where.stdout and str(ROOT) not in where.stdout  # the wheel, not the checkout
    for command in commands:
        check(command, project, env)


def test_the_installed_wheel_builds_its_image_runs_a_trial_and_never_shadows_the_users_store(
        project: pathlib.Path, tmp_path: pathlib.Path) -> None:
    env_dir = project / ".venv"
    python = env_dir / "bin" / "python"
    tag = f"hermes-lab:wheel-test-{os.getpid()}"
    # nothing of this checkout may leak in: no PYTHONPATH, no virtualenv of the suite's
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HERMES_LAB_IMAGE=tag, HERMES_LAB_RUN_ID=RUN_ID, PATH=f"{env_dir / 'bin'}:{env.get('PATH', '')}")

    def run(*argv: str, cwd: pathlib.Path = project) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)

    which = run(str(python), "-c", "import hermes_state, repro; print(hermes_state.WHOSE, repro.__file__)")
    assert which.returncode == 0, which.stderr
    assert which.stdout.startswith("the user ") and str(env_dir) in which.stdout  # the lab from the venv
    elsewhere = run(str(python), "-c", "import importlib.util as u; print(u.find_spec('hermes_state'))", cwd=tmp_path)
    assert elsewhere.stdout.strip() == "None"  # installing the lab adds no hermes_state anywhere
    cli = engine.client()
    try:
        try:
            cli.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
        trial = run(str(python), "-c", TRIAL)
        assert trial.returncode == 0, trial.stderr[-3000:]
        verdict, integrity, acked, lost = trial.stdout.split("VERDICT ", 1)[1].split()
        assert (verdict, integrity, lost) == ("pass", "ok", "0") and int(acked) >= 40
        assert engine.image_state(engine.image_labels(cli, tag), "") is engine.ImageState.STALE  # built: labelled
        cli.images.remove(tag, force=True)
        built = run(str(env_dir / "bin" / "repro"), "image", "build")
        assert built.returncode == 0, built.stderr[-3000:]
        assert f"image {tag}" in built.stdout and "context" in built.stdout
        labels = engine.image_labels(cli, tag)
        assert labels is not None and labels.get("org.hermes-lab.context")
        # explore from the installed lab, in the user's project (whose hermes_state.py has no SessionDB): the
        # states are checked in the sandbox with the image's store, so nothing here imports one by name
        trace = recorded_run(tmp_path / "rec", commits=4)
        explored = run(str(env_dir / "bin" / "repro"), "explore", str(trace.path), "--budget", "50",
                       "--out", str(tmp_path / "explored"))
        assert explored.returncode == 0, explored.stderr[-3000:]
        assert "No module named" not in explored.stderr
        report = json.loads((tmp_path / "explored" / "explore.json").read_text())
        assert all(m["verdicts"]["pass"] == m["checked"] > 0 for m in report["models"]), report["models"]
    finally:
        try:
            cli.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
    assert sys.executable != str(python)
