"""What a run asks of the workload (rate, mix, message sizes, hazards, a slow shutdown): one frozen object
from the command line through the scenario and its replay to the machine (stdlib only).

The lab builds a ``WorkloadSpec`` from the options, a trial carries it in its scenario, and the machine
reads the very same fields back (``WorkloadConfig`` in config.py adds what the lab decides per trial):
a field keeps its name end to end, and its LAB_* variable is that name in capitals.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from repro.errors import ScenarioError, shown
from repro.ledger import SHORT_MIX_WORDS, OpKind

# Ack counts and milliseconds the in-machine agent compares with 32-bit status-board counters.
MAX_TRIGGER_VALUE = 2**31
DEFAULT_MIX = "append_message=80,update_token_counts=8,search_messages=6,create_session=3,end_session=3"
# The mix names each store operation by its own name (repro/ledger.py); the short words of earlier labs
# (append, tokens, ...) are still accepted and read as those names.
OPS = tuple(kind.value for kind in OpKind)
DEFAULT_SIZES = (200, 20_000)  # message sizes in bytes when none are given

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
MAX_SIZE = 1 << 50  # 1 PiB: no size the lab takes comes near it


class WorkloadConfigError(ScenarioError):
    """A workload setting that cannot be used."""


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


def parse_mix(text: str) -> tuple[tuple[str, int], ...]:
    """``append_message=80,update_token_counts=10`` -> (("append_message", 80), ("update_token_counts", 10));
    a short word (append=80) reads as the operation's name; unknown ops are errors."""
    mix: list[tuple[str, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        word, sep, weight = part.partition("=")
        kind = OpKind.from_mix_word(word)
        if not sep or kind is None:
            raise WorkloadConfigError(f"bad mix entry {shown(part)}; ops are {', '.join(OPS)} "
                                      f"(or {', '.join(SHORT_MIX_WORDS)})")
        weight = weight.strip()
        if not (weight.isascii() and weight.isdigit() and len(weight) <= 9):
            raise WorkloadConfigError(f"mix entry {shown(part)}: the weight must be a whole number from 0 to "
                                      "999999999")
        mix.append((kind.value, int(weight)))
    if not any(w for _, w in mix) or dict(mix).get(OpKind.APPEND_MESSAGE.value, 0) == 0:
        raise WorkloadConfigError(f"the mix needs a positive {OpKind.APPEND_MESSAGE.value} weight")
    return tuple(mix)


class HazardName(str, enum.Enum):
    """What the application around the store does wrong, all trial long (not a fault: nothing fires).

    docs/FACTS.md (the store the lab models) lists the causes upstream traced corruption to.
    """

    RAW_OPEN = "raw-open"    # the gateway open()s and close()s its own live database (a size probe):
    #                          POSIX advisory locks are per process, so that close drops SQLite's locks
    DASHBOARD = "dashboard"  # a second process (dashboard, doctor) opens the store, reads, closes
    CRON = "cron"            # a second process writes through its own store instance (a cron job)
    CHECKPOINTER = "checkpointer"  # a third process checkpoints the WAL (PASSIVE, TRUNCATE) with its own connection


# The hazard's value when none is given: every N writes (raw-open), every N ms (dashboard, cron, checkpointer).
HAZARD_DEFAULTS = {HazardName.RAW_OPEN: 10, HazardName.DASHBOARD: 20, HazardName.CRON: 20, HazardName.CHECKPOINTER: 1}


@dataclass(frozen=True)
class Hazard:
    """One hazard with its period."""

    name: HazardName
    every: int

    @classmethod
    def parse(cls, text: str) -> "Hazard":
        """``raw-open``, ``raw-open=50`` (writes), ``dashboard``, ``dashboard=100`` (milliseconds)."""
        head, sep, value = text.strip().partition("=")
        try:
            name = HazardName(head)
        except ValueError:
            known = ", ".join(h.value for h in HazardName)
            raise ScenarioError(f"unknown hazard {shown(head)}; known: {known}") from None
        whole = value.isascii() and value.isdigit() and len(value) <= 12
        if sep and not (whole and 0 < int(value) < MAX_TRIGGER_VALUE):
            raise ScenarioError(f"hazard {shown(text)}: the period must be a positive whole number below "
                                f"{MAX_TRIGGER_VALUE}")
        return cls(name, int(value) if sep else HAZARD_DEFAULTS[name])

    def __str__(self) -> str:
        return self.name.value if self.every == HAZARD_DEFAULTS[self.name] else f"{self.name.value}={self.every}"


@dataclass(frozen=True)
class WorkloadSpec:
    """How hard the workload drives the store: operations per second (0: flat out), the op mix, the message
    sizes, the hazards around it and a slow shutdown. A field added here reaches the machine as it is."""

    rate: float = 0.0
    mix: str = ""  # e.g. "append_message=80,search_messages=20" (as given: short words too); empty: DEFAULT_MIX
    sizes: str = ""  # message sizes "MIN:MAX" (e.g. 20k:200k); empty: DEFAULT_SIZES
    hazards: tuple[Hazard, ...] = ()
    linger_ms: int = 0  # a slow shutdown: after the stop signal the workload writes on this long

    def __post_init__(self) -> None:
        if not 0 <= self.linger_ms < MAX_TRIGGER_VALUE:
            raise ScenarioError(f"--linger must be a whole number of milliseconds >= 0, not {self.linger_ms}")
        names = [h.name for h in self.hazards]
        if len(set(names)) != len(names):
            raise ScenarioError("a hazard may appear only once")
        if not math.isfinite(self.rate) or self.rate < 0:
            raise ScenarioError(f"--rate must be a finite number of operations per second, not {self.rate}")
        self.size_range()
        try:
            self.weights()
        except (WorkloadConfigError, ValueError) as exc:
            raise ScenarioError(f"bad --mix: {exc}") from None

    def size_range(self) -> tuple[int, int]:
        """The smallest and largest message, in bytes."""
        if not self.sizes:
            return DEFAULT_SIZES
        low, sep, high = self.sizes.partition(":")
        if not sep:
            raise ScenarioError(f"--message-size takes MIN:MAX (e.g. 20k:200k), not {shown(self.sizes)}")
        try:
            lo, hi = parse_size(low), parse_size(high)
        except ScenarioError as exc:
            raise ScenarioError(f"--message-size: {exc}") from None
        if lo > hi:
            raise ScenarioError(f"--message-size {shown(self.sizes)}: MIN is larger than MAX")
        return lo, hi

    def weights(self) -> tuple[tuple[str, int], ...]:
        """The mix as (operation, weight) pairs."""
        return parse_mix(self.mix or DEFAULT_MIX)

    def hazard_every(self, name: HazardName) -> int:
        """The period of that hazard (0: not in this workload)."""
        return next((h.every for h in self.hazards if h.name is name), 0)

    @property
    def hazard_labels(self) -> tuple[str, ...]:
        return tuple(str(h) for h in self.hazards)
