"""Another version of the store (an older release, a candidate fix) runs under the same workload."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from typing import Iterator

import pytest

from repro.testing import verify

pytestmark = pytest.mark.docker

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def other_store() -> Iterator[pathlib.Path]:
    """A marked copy of hermes_state: a stand-in for an older release or a candidate fix.
    It lives in a world-readable directory because the workload runs as uid 1000."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="hermes-other-store-"))
    os.chmod(base, 0o755)
    shutil.copytree(ROOT / "hermes_state", base / "hermes_state",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (base / "hermes_state" / "OLD_RELEASE").write_text("stand-in for an older release\n")
    for path in base.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_the_workload_and_the_verifier_use_the_store_from_store_path(constrained_host, other_store: pathlib.Path) -> None:
    with constrained_host("fly-256", preset="legacy", store_path=str(other_store), lab_settings=True) as machine:
        ready = machine.start_workload(seed=21)
        assert str(ready["store"]).startswith("/opt/lab-inputs/store/hermes_state/")
        machine.exec_checked(["test", "-f", "/opt/lab-inputs/store/hermes_state/OLD_RELEASE"])
        # mounted read-only: the machine cannot change the store under test
        result = machine.get_wrapped_container().exec_run(["touch", "/opt/lab-inputs/store/hermes_state/x"], user="root")
        assert result.exit_code != 0
        machine.wait_for_acks(50)
        machine.stop(signal="SIGTERM")
        result = verify(machine, ("sigterm",))
        assert result.facts.store.module.startswith("/opt/lab-inputs/store/hermes_state")
        assert result.verdict == "pass" and result.lost_acked == 0
