"""The verdict of one trial: the diff of ledger and facts held against the promise (stdlib only).

Verdicts: ``pass``, ``corrupt``, ``lost-acked``, ``expected-loss`` (loss the configuration
allows, with its count) and ``error`` (the lab failed: never the store's fault, never a
pass). A judgement also says whether the verdict stays inside the promise (``expected``)
and whether the configuration promised anything at all (``promised_safe``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping, Sequence

from repro.ledger import Ledger
from repro.oracle.promises import LossBound, OracleError, Promise, StoreConfig, crash_class_of, promise
from repro.verify.baseline import SessionState
from repro.verify.diff import Verification, diff
from repro.verify.facts import ProbeFacts


class Verdict(str, enum.Enum):
    PASS = "pass"
    CORRUPT = "corrupt"
    LOST_ACKED = "lost-acked"
    EXPECTED_LOSS = "expected-loss"
    ERROR = "error"


@dataclass(frozen=True)
class Judgement:
    """A verdict, whether the oracle expected it, and why."""

    verdict: Verdict
    expected: bool
    promised_safe: bool
    reason: str
    promise: Promise | None = None
    verification: Verification | None = None

    @property
    def lost_acked(self) -> int:
        return 0 if self.verification is None else self.verification.lost_acked


def is_expected(verdict: Verdict, promise: Promise) -> bool:
    """Does the verdict stay inside the promise? An error never does."""
    if verdict in (Verdict.PASS, Verdict.EXPECTED_LOSS):
        return True
    if verdict is Verdict.CORRUPT:
        return not promise.consistent
    if verdict is Verdict.LOST_ACKED:
        return promise.loss is LossBound.ANY
    return False


def lab_error(reason: str) -> Judgement:
    return Judgement(Verdict.ERROR, expected=False, promised_safe=False, reason=reason)


def judge(
    ledger: Ledger | None,
    facts: ProbeFacts | None,
    faults: Sequence[str],
    *,
    config: StoreConfig | None = None,
    lazy_dirs: bool = False,
    locks_dropped: bool = False,
    error: str | None = None,
    start: Mapping[str, SessionState] | None = None,
) -> Judgement:
    """The verdict of one trial.

    ``config`` defaults to the READY facts (what was in force, which can differ from what
    was asked: WAL falls back to DELETE on some FUSE mounts). ``error`` is a lab failure
    the caller saw (engine error, timeout...). An unknown fault name is a lab error too.
    """
    if error:
        return lab_error(error)
    if ledger is None:
        return lab_error("no ledger")
    if not ledger.ready:
        return lab_error("the workload never reported READY")
    if facts is None:
        return lab_error("no probe output")
    if facts.probe_error:
        return lab_error(f"the probe failed: {facts.probe_error}")
    if facts.store.import_failed:
        return lab_error(f"the store could not be imported: {facts.store.error}")
    try:
        crash = crash_class_of(faults)
        cfg = config if config is not None else StoreConfig.from_ready(ledger.ready)
    except OracleError as exc:
        return lab_error(str(exc))
    prom = promise(cfg, crash, lazy_dirs=lazy_dirs, locks_dropped=locks_dropped)
    ver = diff(ledger, facts, start)
    verdict, reason = _verdict(ver, prom)
    return Judgement(verdict, is_expected(verdict, prom), prom.promised_safe, reason, prom, ver)


def _verdict(ver: Verification, prom: Promise) -> tuple[Verdict, str]:
    if ver.corrupt:
        return Verdict.CORRUPT, _summary(ver.problems())
    old = ver.preexisting
    if old is not None and old.lost:
        # Rows that were there before the trial were durable long before it: no crash class allows
        # losing them, so they count as acknowledged writes lost, never as the last commits.
        return Verdict.LOST_ACKED, _summary(ver.problems())
    kept = f"; the {old.rows} pre-existing rows intact" if old is not None else ""
    if ver.lost_acked == 0:
        return Verdict.PASS, f"{ver.acked} acknowledged writes all present{kept}"
    count = f"{ver.lost_acked} of {ver.acked} acknowledged writes lost"
    if prom.loss is LossBound.LAST_COMMITS:
        if ver.loss_is_suffix:
            return Verdict.EXPECTED_LOSS, f"{count} (the last commits; {prom.reason})"
        return Verdict.LOST_ACKED, f"{count}, not only the last commits ({prom.reason})"
    return Verdict.LOST_ACKED, f"{count}: {_summary(ver.problems())}"


def _summary(lines: tuple[str, ...], limit: int = 3) -> str:
    shown = "; ".join(lines[:limit])
    return shown + (f"; +{len(lines) - limit} more" if len(lines) > limit else "")
