"""Fly-like machine profiles: the sizes, limits and stop behaviour the lab's containers imitate."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from repro.errors import ScenarioError, shown

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
MAX_SIZE = 1 << 50  # 1 PiB: no size the lab takes comes near it


def parse_size(text: str | int) -> int:
    """``256m``, ``1g``, ``64MiB``, ``512k`` or a byte count -> bytes (binary units, as Docker's)."""
    if isinstance(text, int):
        if text <= 0:
            raise ScenarioError(f"size must be positive, got {text}")
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ScenarioError(f"malformed size {shown(text)}: use a number with k, m or g (e.g. 256m, 1g)")
    number, unit = match.groups()
    value = float(number) * _UNITS[(unit or "")[:1].lower()]
    if not math.isfinite(value) or value > MAX_SIZE:
        raise ScenarioError(f"size {shown(text)} is more than any machine's memory or disk ({format_size(MAX_SIZE)})")
    if value < 1 or value != int(value):
        raise ScenarioError(f"size {shown(text)} is not a whole, positive number of bytes")
    return int(value)


def format_size(size: int) -> str:
    """Bytes -> the shortest exact docker-style size (``268435456`` -> ``256m``)."""
    for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


@dataclass(frozen=True)
class MachineProfile:
    """One Fly Machine size as a container: memory = memory+swap, 1 CPU, a tiny data disk."""

    name: str
    memory: int  # bytes; memory+swap is the same (no swap)
    cpus: float
    pids_limit: int
    disk: int  # bytes of the data volume (size-capped tmpfs)
    kill_signal: str = "SIGINT"  # Fly's default kill_signal
    kill_timeout_s: int = 5  # Fly's default kill_timeout
    network: bool = False

    def __post_init__(self) -> None:
        if self.memory < (32 << 20):
            raise ScenarioError(f"profile {self.name}: memory below 32m cannot run the workload")
        if self.disk < (1 << 20):
            raise ScenarioError(f"profile {self.name}: disk below 1m")
        if self.kill_signal not in ("SIGINT", "SIGTERM"):
            raise ScenarioError(f"profile {self.name}: kill signal must be SIGINT or SIGTERM")
        if not 0 < self.kill_timeout_s <= 300:
            raise ScenarioError(f"profile {self.name}: kill timeout must be 1..300 s (Fly's range)")

    @property
    def memory_swap(self) -> int:
        return self.memory


PROFILES: dict[str, MachineProfile] = {
    p.name: p
    for p in (
        MachineProfile("fly-256", memory=256 << 20, cpus=1.0, pids_limit=128, disk=64 << 20),
        MachineProfile("fly-512", memory=512 << 20, cpus=1.0, pids_limit=256, disk=128 << 20),
        MachineProfile("fly-1g", memory=1 << 30, cpus=1.0, pids_limit=512, disk=256 << 20),
    )
}
DEFAULT_PROFILE = "fly-256"


def get_profile(name: str) -> MachineProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ScenarioError(f"unknown profile {shown(name)}; known: {', '.join(PROFILES)}") from None
