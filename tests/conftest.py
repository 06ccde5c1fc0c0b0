"""The suite uses the lab's own pytest plugin (repro.testing: lab_image, constrained_host); here: engine skips and a leftover check."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

pytest_plugins = ["repro.testing"]


def _engine_or_reason() -> str | None:
    try:
        from repro.machine import engine

        engine.client()
        return None
    except Exception as exc:  # no engine: integration tests cannot run here
        return str(exc).splitlines()[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    docker_items = [item for item in items if item.get_closest_marker("docker")]
    if not docker_items:
        return
    reason = _engine_or_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        return  # in CI a missing engine is a failure, not a skip: the tests will say so
    for item in docker_items:
        item.add_marker(pytest.mark.skip(reason=f"no Docker engine: {reason}"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A suite that leaves containers or volumes behind is broken: fail it."""
    if _engine_or_reason() is not None:
        return
    from repro.machine import engine
    from repro.machine.labels import RUN_ID

    cli = engine.client()
    from repro.machine import loops

    containers, volumes = engine.leftovers(cli, RUN_ID)
    devices = loops.bound_to(RUN_ID)  # --fs: a loop device still bound to one of this run's images
    if containers or volumes or devices:
        engine.cleanup(cli, run_id=RUN_ID)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"LEFTOVERS: containers={containers} volumes={volumes} loop devices={devices}",
                                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# What a wheel is built from: the project as an sdist would carry it (no caches, no build output).
_WHEEL_SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "compose.yaml", "repro", "hermes_state",
                  "docker")


@pytest.fixture(scope="session")
def lab_wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The lab's wheel, built (not editable) from a clean copy of this checkout, once per session."""
    root = pathlib.Path(__file__).resolve().parents[1]
    source = tmp_path_factory.mktemp("wheel-src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_image", "_store", ".cache")
    for name in _WHEEL_SOURCES:
        path = root / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
                           "-w", str(dist), str(source)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = dist.glob("hermes_lab-*.whl")
    return wheel
