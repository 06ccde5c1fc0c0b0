"""Machine profiles and sizes: what a Fly machine is, and how sizes parse, before any container starts."""

from __future__ import annotations

import pytest

from repro.errors import ScenarioError
from repro.scenario.profiles import PROFILES, format_size, get_profile, parse_size

MIB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256m", 256 * MIB),
        ("1g", 1 << 30),
        ("64MiB", 64 * MIB),
        ("512k", 512 << 10),
        ("4096", 4096),
        ("1.5k", 1536),  # Docker's own parser (go-units RAMInBytes) gives 1536 too
        (300, 300),
    ],
)
def test_parse_size_accepts(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1m", "1.1k", "0.1m", "0", "0m", "12q", "1 g b", 0, -5])
def test_parse_size_rejects_with_scenario_error(text: str | int) -> None:
    with pytest.raises(ScenarioError):
        parse_size(text)


@pytest.mark.parametrize("size", [1, 1000, 1536, 512 << 10, 64 * MIB, 256 * MIB, 3 << 30, 5 * MIB + 1])
def test_format_size_round_trips(size: int) -> None:
    assert parse_size(format_size(size)) == size


@pytest.mark.parametrize(("size", "text"), [(256 * MIB, "256m"), (1 << 30, "1g"), (1536, "1536"), (2048, "2k")])
def test_format_size_is_the_shortest_exact_form(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(("name", "memory"), [("fly-256", 256 * MIB), ("fly-512", 512 * MIB), ("fly-1g", 1 << 30)])
def test_fly_profiles(name: str, memory: int) -> None:
    profile = get_profile(name)
    assert profile.name == name
    assert profile.memory == profile.memory_swap == memory  # no swap
    assert profile.cpus == 1.0
    assert profile.kill_signal == "SIGINT" and profile.kill_timeout_s == 5  # Fly's stop
    assert profile.network is False
    assert profile.pids_limit > 0
    assert MIB <= profile.disk <= 256 * MIB  # tiny on purpose: disk fill is fast


def test_profiles_grow_with_the_machine() -> None:
    small, mid, big = (PROFILES[n] for n in ("fly-256", "fly-512", "fly-1g"))
    assert small.memory < mid.memory < big.memory
    assert small.disk == 64 * MIB


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ScenarioError) as info:
        get_profile("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in ("fly-256", "fly-512", "fly-1g"):
        assert name in message
