"""The test author's entry point: ConstrainedHost and a pytest fixture, without the CLI.

    from repro.testing import ConstrainedHost
    with ConstrainedHost("fly-256", preset="ns506") as host:
        host.start_workload(seed=7)
        host.wait_for_acks(200)
        host.stop(signal="SIGINT")          # or host.kill(), host.fill_disk(), host.oom()
        result = host.verify()
        assert result.integrity == "ok" and result.lost_acked == 0

Use it as a pytest plugin (``pytest_plugins = ["repro.testing"]``) to get the
``constrained_host`` fixture: a factory whose machines are removed after the test.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from repro.host import ConstrainedHost, DataDisk, StopReport, VerifyResult
from repro.scenario import DEFAULT_PROFILE

__all__ = ["ConstrainedHost", "DataDisk", "StopReport", "VerifyResult", "constrained_host"]


@pytest.fixture
def constrained_host() -> Iterator[Callable[..., ConstrainedHost]]:
    made: list[ConstrainedHost] = []

    def make(profile: str = DEFAULT_PROFILE, **kwargs: object) -> ConstrainedHost:
        host = ConstrainedHost(profile, **kwargs)  # type: ignore[arg-type]
        made.append(host)
        return host

    yield make
    for host in made:
        host.remove()
