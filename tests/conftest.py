"""Shared fixtures: the lab image for integration tests, a machine factory, and a leftover check."""

from __future__ import annotations

import os
from typing import Callable, Iterator

import pytest


def _engine_or_reason() -> str | None:
    try:
        from repro import engine

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


@pytest.fixture(scope="session")
def lab_image() -> str:
    """The lab image, rebuilt once per session so that it holds the code under test (Docker's
    layer cache makes that take a second or two when nothing changed)."""
    from repro import engine
    from repro.labels import IMAGE

    return engine.build_image(engine.client()).image


@pytest.fixture
def machine(lab_image: str) -> Iterator[Callable[..., object]]:
    """Make ConstrainedHost machines that are removed after the test, whatever happens."""
    from repro.host import ConstrainedHost

    made: list[ConstrainedHost] = []

    def make(profile: str = "fly-256", **kwargs: object) -> ConstrainedHost:
        host = ConstrainedHost(profile, image=lab_image, **kwargs)  # type: ignore[arg-type]
        made.append(host)
        return host

    yield make
    for host in made:
        host.remove()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A suite that leaves containers or volumes behind is broken: fail it."""
    if _engine_or_reason() is not None:
        return
    from repro import engine
    from repro.labels import RUN_ID

    cli = engine.client()
    containers, volumes = engine.leftovers(cli, RUN_ID)
    if containers or volumes:
        engine.cleanup(cli, run_id=RUN_ID)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"LEFTOVERS: containers={containers} volumes={volumes}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
