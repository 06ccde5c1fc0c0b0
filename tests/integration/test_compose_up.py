"""The Compose reproduction of docs/how-to/compose.md, run for real: disk fill, writes into the full disk, Fly's stop, the verdict."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest

from repro.ledger import parse_lines
from repro.protocol import EventKind, Tag, parse_line

pytestmark = pytest.mark.docker
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_compose_profile_fills_the_disk_writes_into_it_stops_the_store_and_prints_a_verdict(lab_image: str) -> None:
    project = f"hermes-lab-test-{os.getpid()}"
    compose = ["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml"), "--profile", "fly-256"]
    env = {**os.environ, "HERMES_LAB_IMAGE": lab_image, "LAB_OPS": "20000", "LAB_HOLD_FULL_MS": "2000"}

    def logs(service: str) -> list[str]:
        out = subprocess.run([*compose, "logs", "--no-log-prefix", "--no-color", service], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        return out.stdout.splitlines()

    try:
        proc = subprocess.run([*compose, "up", "--attach", "verify-fly-256", "--exit-code-from", "verify-fly-256"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
        store, filler = logs("store-fly-256"), logs("fill-fly-256")
        states = subprocess.run([*compose, "ps", "-a", "--format", "{{.Service}} {{.ExitCode}}"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60).stdout.split("\n")
    finally:
        subprocess.run([*compose, "down", "-v", "--remove-orphans"], env=env, cwd=ROOT, capture_output=True,
                       timeout=120)
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    assert proc.returncode == 0, "\n".join(lines[-30:]) + proc.stderr[-2000:]
    # the console shows the verifier only: its verdict is the last line it printed, and no ledger line
    assert not any("LEDGER" in l for l in lines), "ledger lines reached the console"
    verify_lines = [l.split("| ", 1)[1] for l in lines if l.startswith("verify-") and "| " in l]
    verdict = json.loads(verify_lines[-1])
    assert verdict["verdict"] == "pass" and verdict["integrity"] == "ok"
    assert verdict["acked"] > 0 and verdict["lost_acked"] == 0 and verdict["journal_mode"] == "wal"
    # no helper exits like a failure (the disk holder used to be SIGKILLed: 137)
    codes = dict(line.split() for line in states if line.strip())
    assert set(codes) == {"holder-fly-256", "store-fly-256", "fill-fly-256", "verify-fly-256"}
    assert set(codes.values()) == {"0"}, codes
    # the filler ended in ENOSPC (not in an OOM kill of its own: tmpfs pages are charged to it)
    full = [dict(p.payload) for p in map(parse_line, filler) if p is not None and p.is_event(EventKind.DISK_FULL)]
    assert full and full[0]["free"] == 0
    # the store wrote into the full disk (failed writes in its ledger), then Fly's stop ended it mid-run
    ledger = parse_lines(store)
    assert len(ledger.failed) > 0 and all("full" in op.error.lower() for op in ledger.failed[:5])
    parsed = [p for p in map(parse_line, store) if p is not None]
    assert any(p.is_event(EventKind.STOP_SIGNAL) for p in parsed)
    assert len([p for p in parsed if p.tag is Tag.LEDGER]) < 2 * 20000  # stopped, not at its op limit
