"""What a trial's disk holds before the workload starts: a copy of a given database, one grown to a size, a filler file."""

from __future__ import annotations

import os
from dataclasses import dataclass

from repro.errors import ScenarioError, shown
from repro.scenario.profiles import format_size

MIN_INITIAL_SIZE = 1 << 20


@dataclass(frozen=True)
class StartSpec:
    """The trial's starting disk. ``files`` is set by preparation (repro/startdb): the host directory
    holding the starting database files and their baseline, in the lab's cache."""

    from_db: str | None = None       # the user's database (absolute path): copied, opened read-only only
    initial_size: int | None = None  # bytes: a database the lab grows with the store under test
    fill_pct: int | None = None      # pre-fill the disk to this share with a filler file
    files: str | None = None

    def __post_init__(self) -> None:
        if self.from_db is not None and self.initial_size is not None:
            raise ScenarioError("--from-db and --initial-size both say what the disk starts with: give one")
        if self.initial_size is not None and self.initial_size < MIN_INITIAL_SIZE:
            raise ScenarioError(f"--initial-size must be at least {format_size(MIN_INITIAL_SIZE)}")
        if self.fill_pct is not None and not 1 <= self.fill_pct <= 99:
            raise ScenarioError(f"--disk-fill-to takes a percentage from 1 to 99, not {self.fill_pct}")
        if self.from_db is not None and self.files is None and not os.path.isfile(self.from_db):
            raise ScenarioError(f"--from-db {shown(self.from_db)} is not a file")

    @property
    def database(self) -> bool:
        """The trial starts from a database rather than an empty disk."""
        return self.from_db is not None or self.initial_size is not None

    @property
    def active(self) -> bool:
        return self.database or self.fill_pct is not None

    def describe(self) -> str:
        """``from-db /x/state.db``, ``initial 300m``, ``disk filled to 94%``; "" for an empty disk."""
        parts = []
        if self.from_db:
            parts.append(f"from-db {self.from_db}")
        if self.initial_size:
            parts.append(f"initial {format_size(self.initial_size)}")
        if self.fill_pct:
            parts.append(f"disk filled to {self.fill_pct}%")
        return ", ".join(parts)
