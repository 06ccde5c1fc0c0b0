"""The lab's typed errors under one root, and the exit code each family maps to.

Bad input (exit 2) is a different family from the lab failing (exit 3); only the CLI turns
them into messages and exit codes. Stdlib only: code inside the machine raises these too.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The CLI's exit statuses (BAD_INPUT is the CLI's own; the rest follow from the trials)."""

    OK = 0
    TRIAL_FAILED = 1
    BAD_INPUT = 2
    LAB_FAILED = 3


class LabError(Exception):
    """Base of every error the lab raises on purpose."""


class ScenarioError(LabError, ValueError):
    """The user's input is wrong: an unknown profile or fault, a malformed size, a missing path."""


class EngineError(LabError):
    """No Docker engine answers, or it refused what the lab asked (exit 3)."""


class ImageError(EngineError):
    """The lab image is missing and could not be built."""


class CacheError(LabError):
    """The lab's own cache cannot be written (full, read-only, not a directory): the lab's trouble, not the
    user's input, so the message names the cache (exit 3)."""


class TrialError(LabError):
    """A trial could not be carried out; its verdict is `error`, never the store's fault."""


class MachineOutputError(LabError, ValueError):
    """A machine printed something the lab cannot read (a ledger, probe or protocol line):
    the lab's fault, never the store's, so the trial is an `error`."""


class MachineKilledError(TrialError):
    """Someone outside the lab killed or removed a trial's machine (docker kill, docker stop, docker rm -f): its
    end is not the fault's, so the trial is an `error` that says so (repro/machine/witness.py)."""


class DeadlineError(TrialError):
    """A phase of a trial passed its deadline; the watchdog removed the trial's machines."""


def shown(value: object, limit: int = 200, quote: bool = True) -> str:
    """User input as an error line echoes it: a string repr'd (unless ``quote`` is false), and cut at
    ``limit`` characters with an ellipsis."""
    text = repr(value) if isinstance(value, str) and quote else str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
