"""compose.yaml agrees with repro/scenario/profiles.py: the hand-run machines are the machines the lab runs."""

from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from repro.scenario.profiles import PROFILES, MachineProfile, parse_size

ROOT = pathlib.Path(__file__).resolve().parents[2]


@functools.cache
def _compose_missing() -> str:
    """Why `docker compose config` cannot run here ('' when it can); `config` needs no engine."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    proc = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return "" if proc.returncode == 0 else f"`docker compose` (v2) unavailable: {proc.stderr.strip()[:200]}"


@functools.cache
def compose_config(profile: str) -> dict[str, object]:
    reason = _compose_missing()
    if reason and os.environ.get("CI"):
        pytest.fail(reason)  # in CI a check that cannot run is a failure, not a skip
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "--profile", profile, "config", "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert proc.returncode == 0, f"compose config --profile {profile} is invalid: {proc.stderr.strip()}"
    config = json.loads(proc.stdout)
    assert isinstance(config, dict)
    return config


def _seconds(duration: str) -> float:
    """Compose durations as `config` prints them: 5s, 1m30s, 500ms."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_compose_store_service_matches_the_profile(name: str) -> None:
    profile: MachineProfile = PROFILES[name]
    config = compose_config(name)
    services = config["services"]
    assert isinstance(services, dict)
    store = services[f"store-{name}"]
    assert parse_size(store["mem_limit"]) == profile.memory
    assert parse_size(store["memswap_limit"]) == profile.memory_swap == profile.memory  # no swap
    assert store["pids_limit"] == profile.pids_limit
    assert float(store["cpus"]) == profile.cpus
    assert store["network_mode"] == "none"
    assert store["stop_signal"] == profile.kill_signal
    assert _seconds(store["stop_grace_period"]) == profile.kill_timeout_s

    # the disk: a size-capped tmpfs volume of the profile's size, mounted at /opt/data
    disk = next(v["source"] for v in store["volumes"] if v["target"] == "/opt/data")
    volume = config["volumes"][disk]  # type: ignore[index]
    assert volume["driver_opts"]["type"] == "tmpfs"
    options = dict(opt.split("=", 1) for opt in volume["driver_opts"]["o"].split(",") if "=" in opt)
    assert parse_size(options["size"]) == profile.disk
    # the filler's writes to the tmpfs are charged to its own cgroup: it must be able to hold
    # the whole disk, or the fill ends in an OOM kill instead of ENOSPC
    assert parse_size(services[f"fill-{name}"]["mem_limit"]) > profile.disk

    # every machine of the profile is cut off from the network; only its own profile's services run
    for service in services.values():
        assert service["network_mode"] == "none"
        assert service["profiles"] == [name]


def test_only_the_known_profiles_exist() -> None:
    """A profile in compose.yaml that repro/scenario/profiles.py does not know (or the reverse) is drift."""
    config = compose_config(sorted(PROFILES)[0])
    text = (ROOT / "compose.yaml").read_text()
    assert set(re.findall(r"profiles:\s*\[([\w-]+)\]", text)) == set(PROFILES)
    assert config["services"]  # parsed, not empty
