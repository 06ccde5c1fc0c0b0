"""Command line: `python -m hermes_state doctor PATH [--json] [--fix | --salvage [--out NEW]]` (exit 0/1/2)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence

from .doctor import ExitCode, format_text, run_doctor
from .errors import DatabaseNotFoundError, NotADatabaseError, OutputExistsError, StateError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hermes_state", description="hermes_state tools")
    sub = parser.add_subparsers(dest="command", required=True)
    doc = sub.add_parser(
        "doctor", help="check a state database (--fix: repair it; --salvage: copy its readable rows out)",
        description="Exit 0 healthy, 1 unhealthy, 2 bad input. --fix and --salvage are offline operations "
                    "(stop the processes using the database first).",
    )
    doc.add_argument("path", help="the database file (never created)")
    action = doc.add_mutually_exclusive_group()
    action.add_argument("--fix", action="store_true",
                        help="back up, repair a copy, and replace the database with it only if the copy is healthy")
    action.add_argument("--salvage", action="store_true",
                        help="write the rows that can still be read into a new database (the original is untouched)")
    doc.add_argument("--out", metavar="NEW",
                     help="with --salvage: the new database (must not exist; default PATH's stem.salvaged-<time>)")
    doc.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # argparse exits 2 with a usage line on bad arguments
    if args.out is not None and not args.salvage:
        parser.error("--out needs --salvage")

    def fail(code: ExitCode, message: str) -> int:
        print(f"hermes_state doctor: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"path": args.path, "error": message, "exit_code": int(code)}))
        return int(code)

    try:
        report = run_doctor(args.path, fix=args.fix, salvage=args.salvage, out=args.out)
    except (DatabaseNotFoundError, NotADatabaseError, OutputExistsError) as exc:
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
