"""The test author's API: a machine, a workload, a fault and a verdict, without the CLI."""

from __future__ import annotations

import pathlib

import pytest

from repro.errors import TrialError
from repro.faults import run_agent
from repro.machine.restart import fetch_database
from repro.testing import ConstrainedHost, fault_step, inject, verify
from repro.workload.agent import Action

pytestmark = pytest.mark.docker


def test_the_documented_example_runs(lab_image: str) -> None:
    with ConstrainedHost("fly-256", preset="ns506", image=lab_image) as machine:
        machine.start_workload(seed=7)
        machine.wait_for_acks(200)
        inject(machine, "sigint")
        result = verify(machine)
        assert result.integrity == "ok" and result.lost_acked == 0
        assert result.verdict == "pass" and result.acked >= 200


@pytest.mark.skipif(not pathlib.Path("/dev/fuse").exists(), reason="power loss needs /dev/fuse on the engine's host")
def test_the_documented_power_loss_of_a_foreign_store_runs(lab_image: str, tmp_path: pathlib.Path) -> None:
    """docs/how-to/test-api.md: a store of one's own, its own settings, FUSE asked for by the fault."""
    from upstream_like import write_module_store

    store = write_module_store(tmp_path / "hermes-agent")
    with ConstrainedHost("fly-256", store_path=str(store), faults=["power-loss"], image=lab_image) as machine:
        assert machine.fuse and machine.store.preset == "own"
        ready = machine.start_workload(seed=7)
        assert (ready["journal_mode"], ready["synchronous"]) == ("wal", 2)  # the store's own, read back
        machine.wait_for_acks(200)
        inject(machine, "power-loss")
        result = verify(machine)
        assert result.integrity == "ok"
        assert result.verdict in ("pass", "expected-loss") and len(repr(result)) < 2000


def test_the_machine_fixture_and_a_kill_mid_write(constrained_host, tmp_path: pathlib.Path) -> None:
    machine = constrained_host("fly-256", preset="legacy")
    with machine:
        ready = machine.start_workload(seed=11)
        assert ready["synchronous"] == 2  # legacy keeps the compiled-in FULL
        outcome = inject(machine, "sigkill@in-write=100")
        agent = outcome.detail["agent"]
        assert isinstance(agent, dict) and agent["trigger_in_write"] and outcome.acks_at_fire >= 100
        result = verify(machine)
        assert result.integrity == "ok" and result.lost_acked == 0
        # The crash state is the disk as the crash left it: the killed writer's WAL still holds
        # frames, which the restarted machine's clean close then checkpointed and deleted.
        crash, after = tmp_path / "crash", tmp_path / "after"
        crash.mkdir()
        after.mkdir()
        assert "state.db-wal" in fetch_database(machine, crash, kept=result.kept)
        assert (crash / "state.db-wal").stat().st_size > 0
        assert (crash / "evidence.sha256").read_text().count("  state.db") == len(result.kept) >= 2
        # the kept crash state is root's and read-only: the store's user (uid 1000) cannot change it
        code, said = machine.disk.run(["sh", "-c", "for f in /var/lib/crash-state/files-*/state.db; do echo TAMPERED >> $f; done"], {})
        assert code != 0 and "ermission denied" in said
        assert "state.db" in fetch_database(machine, after)
        assert not (after / "state.db-wal").exists()


def test_a_trigger_that_never_comes_is_a_lab_error_not_a_verdict(constrained_host) -> None:
    machine = constrained_host("fly-256")
    with machine:
        machine.start_workload(seed=3)
        with pytest.raises(TrialError, match="trigger never came"):
            run_agent(machine, Action.NONE, fault_step(machine, "sigkill-machine@acks=1000000000"), timeout=1.0)

