"""The HERMES_STATE_* names the lab passes a store: the settings hermes_state/config.py reads, and no other (stdlib only).

A recording (repro/explore/tracedir.py) carries the store's environment as data; only these
names are taken from it, so a tampered recording cannot set PYTHONPATH, LD_PRELOAD or anything
else for the process that imports the store. tests/unit/test_explore_sandbox_unit.py checks this
list against hermes_state/config.py and the presets' environment.
"""

from __future__ import annotations

from typing import Mapping

STORE_ENV_NAMES = frozenset({
    "HERMES_STATE_PRESET", "HERMES_STATE_JOURNAL_MODE", "HERMES_STATE_SYNCHRONOUS", "HERMES_STATE_BUSY_TIMEOUT_MS",
    "HERMES_STATE_CHECKPOINT_MODE", "HERMES_STATE_CHECKPOINT_EVERY", "HERMES_STATE_WAL_AUTOCHECKPOINT",
})
MAX_VALUE = 64  # the settings are words and small numbers


def store_settings(env: Mapping[object, object]) -> dict[str, str]:
    """The lab's store settings in ``env``; every other name, and any value that is not a short
    printable string, is left out."""
    kept: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or name not in STORE_ENV_NAMES or not isinstance(value, (str, int)):
            continue
        text = str(value)
        if len(text) <= MAX_VALUE and text.isprintable():
            kept[name] = text
    return kept
