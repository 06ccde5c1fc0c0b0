"""The store configurations exploration is shown on (the tests and bench/bench_explore.py), by name.

Journal mode and synchronous as the lab's presets and overrides set them. Host side: the
sandbox's half of exploration (repro/explore/models.py and the rest the image carries) never
needs a StoreSpec.
"""

from __future__ import annotations

from repro.scenario.stores import StoreSpec

CONFIGURATIONS: dict[str, StoreSpec] = {
    "wal-full": StoreSpec("durable"),
    "wal-normal": StoreSpec("ns506"),
    "delete-full": StoreSpec("legacy", journal_mode="delete"),
    "delete-normal": StoreSpec("legacy", journal_mode="delete", synchronous="normal"),
    "delete-extra": StoreSpec("durable", journal_mode="delete"),
    "truncate-full": StoreSpec("ns506", journal_mode="truncate", synchronous="full"),
    "wal-off": StoreSpec("ns506", synchronous="off"),
    "delete-off": StoreSpec("ns506", journal_mode="delete", synchronous="off"),
    "journal-off": StoreSpec("ns506", journal_mode="off"),
}
