"""The write retry policy: jittered, time-bounded, with injectable randomness and time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ConfigError


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a locked/busy write after a random 20-150 ms pause until `budget_s` has passed.

    `rng`, `sleep` and `clock` are seams: pass `random.Random(seed)` to replay the jitter.
    """

    budget_s: float = 5.0
    min_jitter_s: float = 0.020
    max_jitter_s: float = 0.150
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.budget_s < 0 or self.min_jitter_s < 0 or self.max_jitter_s < self.min_jitter_s:
            raise ConfigError(
                f"invalid retry policy: budget_s={self.budget_s}, jitter {self.min_jitter_s}..{self.max_jitter_s}"
            )

    @classmethod
    def seeded(cls, seed: int, *, budget_s: float = 5.0) -> RetryPolicy:
        """A policy whose jitter sequence is fixed by *seed*."""
        return cls(budget_s=budget_s, rng=random.Random(seed))

    def jitter(self) -> float:
        """The next pause, in seconds."""
        return self.rng.uniform(self.min_jitter_s, self.max_jitter_s)
