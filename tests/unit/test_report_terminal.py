"""The terminal at 80 columns: the table of report.md, no header cut to `pro…`, details wrapped, not cut."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from repro.oracle.verdicts import Verdict
from repro.report.markdown import render_markdown
from repro.report.summary import columns
from repro.report.terminal import fit_widths, print_table, trial_line
from repro.scenario import FaultSpec, Scenario, StoreSpec, get_profile, scenario_to_dict
from test_report import MIXED, rec, run_of


def with_override(record, journal_mode: str):  # type: ignore[no-untyped-def]
    scenario = Scenario(get_profile("fly-512"), (FaultSpec.parse("sigkill"),), StoreSpec("ns506", journal_mode=journal_mode),
                        trial_id=record.id)
    return dataclasses.replace(record, profile="fly-512", journal_mode=journal_mode, scenario=scenario_to_dict(scenario))


WIDE = list(MIXED.trials) + [with_override(rec(7, Verdict.CORRUPT, promised_safe=False,
                                             faults=("disk-fill", "sigterm")), "off")]


def rendered(records: list, width: int) -> str:  # type: ignore[type-arg]
    console = Console(record=True, width=width, color_system=None)
    print_table(records, console)
    return console.export_text()


def test_the_table_reads_at_80_columns() -> None:
    text = rendered(WIDE, 80)
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    header_words = {word.strip(",") for name in columns(WIDE) for word in name.split()}
    body = text.split()
    for word in header_words:  # every header word whole (none folded or cut)
        assert word in body or word + "," in body, (word, text)
    for whole in ("disk-fill+sigterm", "journal_mode=off", "expected-loss", "lost-acked", "(wal/normal)"):
        assert whole in text, (whole, text)


def test_terminal_and_markdown_have_the_same_columns() -> None:
    md = render_markdown(run_of(*WIDE))
    header = next(line for line in md.splitlines() if line.startswith("| "))
    assert [c.strip() for c in header.strip("|").split("|")] == list(columns(WIDE))
    assert columns(WIDE)[0] == "profile, faults" and columns(MIXED.trials)[0] == "faults"  # profile when it varies


def test_a_trial_line_wraps_its_whole_detail() -> None:
    detail = " ".join(f"word{i:03d}" for i in range(60))  # 480 characters
    console = Console(record=True, width=80, color_system=None)
    console.print(trial_line(dataclasses.replace(rec(1, Verdict.PASS), detail=detail)))
    text = console.export_text()
    assert " ".join(text.split()).endswith(detail)
    assert all(len(line) <= 80 for line in text.splitlines())


def test_fit_widths_gives_every_column_its_longest_word() -> None:
    widths = fit_widths(["a", "b"], [["x" * 30, "one two three " * 5]], 40)
    assert widths is not None and widths[0] == 30 and widths[1] >= 5
    assert fit_widths(["a"], [["short"]], 80) is None  # fits as it is
