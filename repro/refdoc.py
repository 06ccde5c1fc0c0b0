"""The generated parts of the reference (CLI help, faults, exit codes), written between markers in docs/.

`python -m repro.refdoc` rewrites every block between ``<!-- generated: NAME -->`` and
``<!-- end generated -->`` in README.md and docs/ from the code; ``--check`` only says which differ
(tests/unit/test_refdoc.py runs it). Like sqlite-utils' cog blocks, but no code lives in the docs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import pathlib
import re
import signal
import sys
from typing import Callable, Iterator

from repro.errors import ExitCode

WIDTH = 100  # the help's width, whatever the terminal that regenerates it
BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)

EXIT_MEANINGS = {
    ExitCode.OK: "every trial as the oracle expects: including positive controls that failed and power-loss "
                 "losses the configuration allows; `explore`: every state checked kept the promises",
    ExitCode.TRIAL_FAILED: "a trial corrupted the database or lost an acknowledged write where the configuration "
                           "promised it would not, or a `--fail-on` condition holds; `explore`: a state broke a "
                           "promise",
    ExitCode.BAD_INPUT: "bad input, one line and no traceback: an unknown fault, a store that cannot be imported, "
                        "a non-empty `--out` without `--force`, `repro clean` refusing to touch live runs, ...",
    ExitCode.LAB_FAILED: "the lab itself failed: no engine, or a trial that could not be carried out (`error`)",
}


def _walk(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The parser and every subcommand's parser, in the order the CLI defines them."""
    yield prefix or parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{prefix or parser.prog} {name}")


def cli_help() -> str:
    """Every command's ``--help``, at a fixed width."""
    from repro.cli import build_parser

    parts = []
    for name, parser in _walk(build_parser()):
        parser.formatter_class = functools.partial(argparse.HelpFormatter, width=WIDTH)  # type: ignore[assignment]
        parts.append(f"## `{name}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def fault_table() -> str:
    """One row per fault class, as repro/faults registers them."""
    from repro.faults import FAULTS

    rows = ["| fault | default trigger | crash class | ends the machine | what it does |", "|---|---|---|---|---|"]
    for name, fault in FAULTS.items():
        rows.append(f"| `{name.value}` | `@{fault.default_trigger.value}` | {fault.crash_class.value} | "
                    f"{'yes' if fault.ends_machine else 'no'} | {fault.summary} |")
    triggers = ", ".join(f"`@{t.value}`" for t in type(next(iter(FAULTS.values())).default_trigger))
    return "\n".join(rows) + f"\n\nTriggers: {triggers}.\n"


def exit_codes() -> str:
    """ExitCode, then the two an interrupted run returns (repro/cli.py: 128 + the signal)."""
    rows = ["| code | name | meaning |", "|---|---|---|"]
    rows += [f"| `{code.value}` | `{code.name}` | {EXIT_MEANINGS[code]} |" for code in ExitCode]
    for sig, how in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM (`timeout`, a CI cancel)")):
        rows.append(f"| `{128 + sig}` | | interrupted by {how}; the run's machines were removed first |")
    return "\n".join(rows) + "\n"


_FIELD = re.compile(r"^    (\w+): ([^=#\n]+?)\s*(?:=[^#\n]*)?(?:#\s*(.*))?$", re.MULTILINE)


def _fields(cls: type) -> list[str]:
    """A dataclass's fields as table rows: name, type and the comment beside it in the source."""
    found = {m[1]: (m[2].strip(), (m[3] or "").strip()) for m in _FIELD.finditer(inspect.getsource(cls))}
    rows = []
    for f in dataclasses.fields(cls):
        kind, note = found.get(f.name, (str(f.type), ""))
        rows.append(f"| `{f.name}` | `{kind}` | {note.replace('<', '&lt;')} |".replace(" | None`", " \\| None`"))
    return rows


def report_fields() -> str:
    """report.json's keys: the run (RunMeta) and each trial (TrialRecord)."""
    from repro.report.provenance import StoreProvenance
    from repro.report.records import RESULTS_FORMAT, RunMeta, TrialRecord

    head = ["| key | type | note |", "|---|---|---|"]
    return (f"Top level: `format` ({RESULTS_FORMAT}), `exit_code`, `run`, `trials`; and, derived from the trials "
            "for other readers (never read back), `intervals` (method and confidence) and `groups` (per profile, "
            "faults and store configuration: `corrupt`, `lost writes` and `harmed data`, each `[count, judged, low, "
            "high]`).\n\n"
            "`run`:\n\n" + "\n".join(head + _fields(RunMeta)) + "\n\nEach of `run.stores`:\n\n"
            + "\n".join(head + _fields(StoreProvenance)) + "\n\nEach of `trials`:\n\n"
            + "\n".join(head + _fields(TrialRecord)) + "\n")


GENERATORS: dict[str, Callable[[], str]] = {"cli": cli_help, "faults": fault_table, "exit-codes": exit_codes,
                                            "report-json": report_fields}


def documents(root: pathlib.Path) -> list[pathlib.Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def regenerate(text: str) -> str:
    """``text`` with every generated block rewritten (an unknown block name is an error)."""
    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise KeyError(f"unknown generated block {name!r}: known {sorted(GENERATORS)}")
        return f"{match[1]}{GENERATORS[name]()}{match[4]}"

    return BLOCK.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = pathlib.Path(__file__).resolve().parents[1]
    if not (root / "docs").is_dir():
        print(f"no docs/ beside {root / 'repro'}: run this from a checkout of the lab", file=sys.stderr)
        return 2
    stale = []
    for path in documents(root):
        text = path.read_text()
        fresh = regenerate(text)
        if fresh != text:
            stale.append(str(path.relative_to(root)))
            if "--check" not in args:
                path.write_text(fresh)
    verb = "out of date" if "--check" in args else "regenerated"
    print(f"{verb}: {', '.join(stale)}" if stale else "the generated reference is up to date")
    return 1 if stale and "--check" in args else 0


if __name__ == "__main__":
    sys.exit(main())
