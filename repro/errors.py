"""The lab's typed errors: bad input (exit 2) is a different family from the lab failing (exit 3)."""

from __future__ import annotations


class LabError(Exception):
    """Base of every error the lab raises on purpose."""


class ScenarioError(LabError, ValueError):
    """The user's input is wrong: an unknown profile or fault, a malformed size, a missing path."""


class EngineError(LabError):
    """No Docker engine answers, or it refused what the lab asked (exit 3)."""


class ImageError(EngineError):
    """The lab image is missing and could not be built."""


class TrialError(LabError):
    """A trial could not be carried out; its verdict is `error`, never the store's fault."""
