"""The store under test is untrusted: whatever it prints, forks or writes, the verdict is the true one.

Each store of tests/adversarial.py gave the lab a false pass before the evidence channel, the
cross-checks and the holder's clean-up (issue 17). Here each runs through `repro` as a user runs
it, and its trials must end lost-acked or error -- never pass, and never "as expected" for a
configuration the store only claimed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Iterator

import pytest

from adversarial import write_adversarial_store

pytestmark = pytest.mark.docker

REPRO = str(pathlib.Path(sys.executable).with_name("repro"))  # the console script, as a user runs it


@pytest.fixture
def store_dir() -> Iterator[pathlib.Path]:
    """A world-readable directory for a store (the machine's user, uid 1000, reads it through a mount)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="hermes-adversarial-"))
    os.chmod(base, 0o755)
    yield base
    subprocess.run(["rm", "-rf", str(base)], check=False)


def run(out: pathlib.Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([REPRO, *argv, "--out", str(out), "--seed", "17"], env=env, capture_output=True, text=True,
                          timeout=900)
    report = out / "report.json"
    assert report.is_file(), proc.stderr[-3000:]
    return proc, list(json.loads(report.read_text())["trials"])


@pytest.mark.parametrize("kind", ["swallow", "forged-ready", "flood"])
def test_a_store_that_writes_on_stdout_cannot_hide_its_losses(lab_image: str, store_dir: pathlib.Path,
                                                              tmp_path: pathlib.Path, kind: str) -> None:
    store = write_adversarial_store(store_dir / kind, kind)
    fault = "sigkill@acks=300" if kind == "flood" else "sigkill"  # the flood comes at the 41st message
    proc, trials = run(tmp_path / "r", "run", "--fault", fault, "--trials", "2", "--store-path", str(store))
    verdicts = [t["verdict"] for t in trials]
    assert verdicts and "pass" not in verdicts, (verdicts, proc.stderr[-2000:])
    assert proc.returncode != 0
    for trial in trials:
        assert trial["verdict"] in ("lost-acked", "error"), trial["detail"]
        assert not trial["expected"], trial["detail"]  # never "as expected" for a configuration only claimed
        if trial["verdict"] == "lost-acked":
            assert trial["journal_mode"] == "wal" and trial["synchronous"] != "0"  # the READY the workload wrote
            printed = (pathlib.Path(str(trial["artifacts_dir"])) / "store.log").read_text()
            assert ("LEDGER " if kind == "swallow" else "READY ") in printed  # what it printed: an artifact
            assert len(printed) < 300_000  # capped, however much it printed


def test_a_matrix_of_a_good_store_against_the_swallowing_one_fails_the_regression_gate(
        lab_image: str, store_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from upstream_like import write_module_store

    good = write_module_store(store_dir / "good")
    bad = write_adversarial_store(store_dir / "bad", "swallow")
    proc, trials = run(tmp_path / "m", "matrix", "--faults", "sigkill@acks=50", "--trials", "2",
                       "--store-paths", f"{good},{bad}", "--fail-on", "regression")
    assert proc.returncode != 0, proc.stderr[-2000:]
    by_store: dict[str, set[str]] = {}
    for trial in trials:
        by_store.setdefault(str(trial["store"]), set()).add(str(trial["verdict"]))
    assert len(by_store) == 2 and {"pass"} in by_store.values(), by_store
    assert any("pass" not in verdicts for verdicts in by_store.values()), by_store


def test_a_process_the_store_forks_in_the_restarted_machine_never_reaches_the_next_trial(
        lab_image: str, store_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The daemon unlinks the WAL of whatever database the kept disk holds, from a second after the probe:
    it used to make trials 2 and 3 lose acknowledged writes. Killed with the probe, it harms none."""
    store = write_adversarial_store(store_dir / "daemon", "daemon")
    proc, trials = run(tmp_path / "r", "run", "--fault", "sigkill@acks=300", "--trials", "3",
                       "--store-path", str(store))
    assert [t["verdict"] for t in trials] == ["pass"] * 3, [t["detail"] for t in trials]
    assert proc.returncode == 0


def test_the_kept_evidence_is_out_of_the_store_s_reach_and_hashed(lab_image: str, store_dir: pathlib.Path,
                                                                   tmp_path: pathlib.Path) -> None:
    store = write_adversarial_store(store_dir / "tamper", "tamper")
    proc, trials = run(tmp_path / "r", "run", "--fault", "sigkill", "--trials", "1", "--store-path", str(store))
    (trial,) = trials
    assert trial["verdict"] == "lost-acked", trial["detail"]
    kept = pathlib.Path(str(trial["artifacts_dir"]))
    evidence = trial["evidence"]
    assert isinstance(evidence, dict) and "state.db" in evidence
    for name, digest in evidence.items():
        data = (kept / name).read_bytes()
        assert b"TAMPERED EVIDENCE" not in data
        assert hashlib.sha256(data).hexdigest() == digest
    # the store did try (its message reached the probe's output as an OUTPUT record), and was refused
    assert "tamper: /var/lib/crash-state/" in (kept / "probe.log").read_text()
    assert "Permission denied" in (kept / "probe.log").read_text()
