"""Probe, diff and verdict in one stdlib-only step, for the Compose `verify` service.

The CLI and testcontainers path read the ledger from the engine's logs on the host;
a plain ``docker compose up`` has no such channel, so the workload also appends its
ledger to a separate volume and this module, run in the restarted machine, judges it:
``python3 -m repro.oracle --ledger FILE --db PATH --fault NAME [--fault NAME]``.
It prints one JSON object with the verdict and exits 0 (as the oracle expects), 1 (not
as expected) or 3 (no ledger to judge, or one that disagrees with itself: repro/verify/crosscheck.py).
"""

from __future__ import annotations

import argparse
import json
import sys

from repro.errors import ExitCode
from repro.ledger import parse_lines
from repro.oracle.verdicts import judge
from repro.verify import crosscheck
from repro.verify.probe import collect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m repro.oracle", description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--fault", action="append", default=[])
    parser.add_argument("--store-mount", default=None)
    args = parser.parse_args(argv)
    try:
        with open(args.ledger, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        print(json.dumps({"verdict": "error", "reason": f"no ledger: {exc}"}))
        return ExitCode.LAB_FAILED
    ledger = parse_lines(lines)
    facts = collect(args.db, args.store_mount)
    problems = crosscheck.channel_problems(lines, boot=False) + crosscheck.ledger_problems(
        ledger, lines, crosscheck.Witnesses(facts=facts))
    if problems:  # as a trial: evidence that disagrees with itself is never judged
        print(json.dumps({"verdict": "error", "reason": crosscheck.disagreement(problems)}))
        return ExitCode.LAB_FAILED
    judgement = judge(ledger, facts, args.fault or ["sigterm"])
    ver = judgement.verification
    print(json.dumps({
        "verdict": judgement.verdict.value,
        "expected": judgement.expected,
        "reason": judgement.reason,
        "integrity": ver.health.integrity if ver else "unknown",
        "acked": ver.acked if ver else 0,
        "lost_acked": ver.lost_acked if ver else 0,
        "phantom": ver.phantom if ver else 0,
        "indeterminate": len(ver.indeterminate) if ver else 0,
        "journal_mode": ledger.ready.get("journal_mode"),
        "synchronous": ledger.ready.get("synchronous"),
    }))
    return ExitCode.OK if judgement.expected else ExitCode.TRIAL_FAILED


if __name__ == "__main__":
    sys.exit(main())
