"""The run on a terminal: one line per trial as it ends, the verdict table, the comparison and the outcome.

Made to read at 80 columns: the table has the same columns as report.md (repro/report/summary.py),
every cell folds instead of being cut (no ``pro…`` headers), and trial details wrap.
"""

from __future__ import annotations

import re
from typing import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from repro.oracle.verdicts import Verdict
from repro.report.comparison import render_comparison
from repro.report.confidence import METHOD
from repro.report.outcome import RunOutcome
from repro.report.provenance import StoreProvenance, provenance_lines
from repro.report.records import TrialRecord
from repro.report.summary import HARMED_DATA, VERDICTS, WRITES_LOST, blind_controls, columns, start_labels, \
    table_rows, table_title

VERDICT_STYLE = {
    Verdict.PASS: "green",
    Verdict.CORRUPT: "bold red",
    Verdict.LOST_ACKED: "bold red",
    Verdict.EXPECTED_LOSS: "yellow",
    Verdict.ERROR: "magenta",
}


def _verdicts(text: str) -> Text:
    """``2 pass, 1 lost-acked`` with each verdict in its colour."""
    out = Text()
    for n, part in enumerate(text.split(", ")):
        if n:
            out.append(", ")
        count, _, name = part.partition(" ")
        style = next((VERDICT_STYLE[v] for v in VERDICTS if v.value == name), "")
        out.append(f"{count} {name}", style=style)
    return out


def _longest_word(cells: Sequence[str], after_plus: bool = False) -> int:
    """The longest word of these cells; ``after_plus``: a word may also end after a '+' (``disk-fill+``)."""
    split = (lambda cell: re.findall(r"[^\s+]*\+|[^\s+]+", cell)) if after_plus else str.split
    return max((len(word) for cell in cells for word in split(cell)), default=0)


def fit_widths(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int, gap: int = 2,
               plus_breaks: Sequence[int] = ()) -> list[int] | None:
    """Column widths that fit ``width`` without cutting a word where that is possible: every column gets
    its longest word, the room left goes to the columns whose text would wrap, in proportion to
    what they lack. None when the natural widths fit. When the longest words do not fit, the columns
    in ``plus_breaks`` (a fault combination) count their words as broken after each '+' (fold_plus)."""
    cells = [[h, *(row[i] for row in rows)] for i, h in enumerate(headers)]
    natural = [max(len(line) for cell in col for line in cell.splitlines() or [""]) for col in cells]
    room = width - gap * (len(headers) - 1)
    if sum(natural) <= room:
        return None
    words = [_longest_word(col) for col in cells]
    if sum(words) > room:
        words = [_longest_word(col, after_plus=n in plus_breaks) for n, col in enumerate(cells)]
    spare = max(0, room - sum(words))
    lack = [n - w for n, w in zip(natural, words)]
    total = sum(lack) or 1
    widths = [w + spare * l // total for w, l in zip(words, lack)]
    return [max(1, w) for w in widths]


def fold_plus(text: str, width: int) -> str:
    """A fault combination wider than its column broken after a '+' (Rich breaks lines only at spaces), so
    that no fault's own name is cut: ``disk-fill+`` / ``sigterm@acks=200``."""
    words = []
    for word in text.split(" "):
        if len(word) > width and "+" in word:
            lines = [""]
            for part in re.findall(r"[^+]*\+|[^+]+", word):
                if lines[-1] and len(lines[-1]) + len(part) > width:
                    lines.append("")
                lines[-1] += part
            word = "\n".join(lines)
        words.append(word)
    return " ".join(words)


def render_table(records: Sequence[TrialRecord], title: str | None = None, width: int | None = None) -> Table:
    """One row per (profile, faults, store configuration): the columns of report.md, fitted to ``width``."""
    table = Table(title=title or table_title(records), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True)
    rows = table_rows(records)
    names = columns(records)
    fitted = fit_widths(names, [list(cells.values()) for _, cells in rows], width, plus_breaks=(0,)) if width else None
    for n, name in enumerate(names):
        table.add_column(name, overflow="fold", justify="right" if name == WRITES_LOST else "left",
                         width=fitted[n] if fitted else None)
    for group, cells in rows:
        styled: dict[str, Text | str] = dict(cells)
        if fitted:
            styled[names[0]] = fold_plus(cells[names[0]], fitted[0])
        styled["verdicts"] = _verdicts(cells["verdicts"])
        if group.harmed:
            styled[HARMED_DATA] = Text(cells[HARMED_DATA], style="bold")
        styled["as expected"] = Text(cells["as expected"], style="green" if group.as_expected else "bold red")
        table.add_row(*styled.values())
    return table


def trial_line(record: TrialRecord) -> Text:
    """One finished trial, its whole detail wrapped under it (never cut mid-word)."""
    text = Text(f"  {record.id}: ")
    text.append(record.verdict.value, style=VERDICT_STYLE[record.verdict])
    text.append(f" ({record.duration_s:.1f} s) {record.detail}")
    return text


def print_table(records: Sequence[TrialRecord], console: Console | None = None,
                stores: Sequence[StoreProvenance] = ()) -> None:
    """The verdict table, which code each store was, then a warning for every positive control that never failed."""
    console = console or Console()
    console.print(render_table(records, width=console.width))
    if records:
        console.print(Text(f"{HARMED_DATA} (in brackets): the rate's 95% {METHOD} bounds (one-sided at none or all)",
                           style="dim"))
    for line in provenance_lines(tuple(stores)):
        console.print(Text(f"store: {line}"), soft_wrap=True)  # one line to grep: the terminal wraps it
    for label in start_labels(records):
        console.print(f"start: {label}")
    for key in blind_controls(records):
        console.print(f"[yellow]warning:[/] {key.profile} {key.faults} {key.config}: nothing was promised, yet every "
                      "trial passed -- the lab may not see this bug class here (more trials, larger messages?)")


def print_outcome(result: RunOutcome, console: Console | None = None) -> None:
    """The comparison (when the run compared two stores), then the result and every --fail-on check."""
    console = console or Console()
    if result.comparison is not None:
        console.print(render_comparison(result.comparison))
    for gate in result.gates:
        mark = "[bold red]FAIL[/]" if gate.failed else "[green]ok[/]"
        console.print(f"--fail-on {gate.condition.value}: {mark} {gate.reason}")
    console.print(Text(f"result: {result.result} (exit {int(result.code)})",
                       style="bold" if int(result.code) == 0 else "bold red"))
