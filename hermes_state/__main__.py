"""Command line: `python -m hermes_state doctor PATH [--fix] [--json]` (exit 0/1/2)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence

from .doctor import ExitCode, format_text, run_doctor
from .errors import DatabaseNotFoundError, NotADatabaseError, StateError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hermes_state", description="hermes_state tools")
    sub = parser.add_subparsers(dest="command", required=True)
    doc = sub.add_parser("doctor", help="check (and with --fix repair) a state database")
    doc.add_argument("path", help="the database file (never created)")
    doc.add_argument("--fix", action="store_true", help="back up, then repair a structurally broken database")
    doc.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # argparse exits 2 with a usage line on bad arguments

    def fail(code: ExitCode, message: str) -> int:
        print(f"hermes_state doctor: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"path": args.path, "error": message, "exit_code": int(code)}))
        return int(code)

    try:
        report = run_doctor(args.path, fix=args.fix)
    except (DatabaseNotFoundError, NotADatabaseError) as exc:
        return fail(ExitCode.BAD_INPUT, str(exc))
    except StateError as exc:
        return fail(ExitCode.UNHEALTHY, str(exc))
    except sqlite3.Error as exc:
        return fail(ExitCode.UNHEALTHY, f"sqlite error: {exc}")
    except OSError as exc:
        return fail(ExitCode.BAD_INPUT, f"{exc.strerror or exc}: {args.path}")
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_text(report))
    return int(report.exit_code)


if __name__ == "__main__":
    sys.exit(main())
