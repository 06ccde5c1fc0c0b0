"""The README's Compose reproduction, run for real: disk fill, then Fly's stop, then the verdict."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest

from repro.protocol import EventKind, parse_line

pytestmark = pytest.mark.docker
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_compose_profile_fills_the_disk_stops_the_store_and_prints_a_verdict(lab_image: str) -> None:
    project = f"hermes-lab-test-{os.getpid()}"
    compose = ["docker", "compose", "-p", project, "-f", str(ROOT / "compose.yaml"), "--profile", "fly-256"]
    env = {**os.environ, "HERMES_LAB_IMAGE": lab_image, "LAB_OPS": "20000"}
    try:
        proc = subprocess.run([*compose, "up", "--exit-code-from", "verify-fly-256"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=240)
    finally:
        subprocess.run([*compose, "down", "-v", "--remove-orphans"], env=env, cwd=ROOT, capture_output=True,
                       timeout=120)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, "\n".join(lines[-30:]) + proc.stderr[-2000:]
    # the filler ended in ENOSPC (not in an OOM kill of its own: tmpfs pages are charged to it)
    parsed = [(l, parse_line(l)) for l in lines]  # Compose prefixes each line with "service | "
    full = [dict(p.payload) for _, p in parsed if p is not None and p.is_event(EventKind.DISK_FULL)]
    assert full and full[0]["free"] == 0
    # the store was stopped by the signal (the filler's exit ends the stack), mid-run, not at its op limit
    assert any(p.is_event(EventKind.STOP_SIGNAL) for l, p in parsed if p is not None and l.startswith("store-"))
    (verdict,) = [json.loads(l.split("| ", 1)[1]) for l in lines if l.startswith("verify-") and '"verdict"' in l]
    assert verdict["verdict"] == "pass" and verdict["integrity"] == "ok"
    assert verdict["acked"] > 0 and verdict["lost_acked"] == 0 and verdict["journal_mode"] == "wal"
