"""The terminal at 80 columns: the table of report.md, no header cut to `pro…`, details wrapped, not cut."""

from __future__ import annotations

import dataclasses

from rich.console import Console

from repro.oracle.verdicts import Verdict
from repro.report.markdown import render_markdown
from repro.report.summary import columns, summarize
from repro.report.terminal import fit_widths, fold_plus, print_table, trial_line
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
    # Longest words too wide together: a fault combination's words end after each '+'.
    assert fit_widths(["a", "b"], [["disk-fill+sigterm@acks=200", "y" * 20]], 40) == [26, 20]  # too wide: Rich folds
    assert fit_widths(["a", "b"], [["disk-fill+sigterm@acks=200", "y" * 20]], 40, plus_breaks=(0,)) == [18, 20]
    assert fold_plus("fly-256 disk-fill+sigterm@acks=200", 16) == "fly-256 disk-fill+\nsigterm@acks=200"
    assert fold_plus("disk-fill+sigterm", 17) == "disk-fill+sigterm"


def with_faults(record, *typed: str):  # type: ignore[no-untyped-def]
    """The record as the pipeline makes it: fault names in ``faults``, the faults as typed in its scenario."""
    specs = tuple(FaultSpec.parse(t) for t in typed)
    scenario = Scenario(get_profile("fly-256"), specs, trial_id=record.id)
    return dataclasses.replace(record, faults=tuple(s.name.value for s in specs), scenario=scenario_to_dict(scenario))


def test_the_faults_column_names_a_trigger_that_is_not_the_default() -> None:
    from repro.report.html import render_html

    checkpoint = [with_faults(rec(i, Verdict.CORRUPT, promised_safe=False), "sigkill@checkpoint") for i in (1, 2)]
    default = [with_faults(rec(3, Verdict.PASS), "sigkill"), with_faults(rec(4, Verdict.PASS), "sigkill@on-write")]
    counted = [with_faults(rec(5, Verdict.PASS), "disk-fill", "sigterm@acks=200")]
    records = checkpoint + default + counted + [rec(6, Verdict.PASS)]  # the last: an older report, no scenario
    assert [r.faults_label for r in records] == ["sigkill@checkpoint"] * 2 + ["sigkill"] * 2 + [
        "disk-fill+sigterm@acks=200", "sigkill"]
    groups = {g.key.faults: g.trials for g in summarize(records)}
    assert groups == {"sigkill@checkpoint": 2, "sigkill": 3, "disk-fill+sigterm@acks=200": 1}  # on-write is sigkill's own
    text = rendered(records + WIDE, 80)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80 and "…" not in text
    words = text.split()
    assert "sigkill@checkpoint" in words, text
    # Too wide for its column beside journal_mode=off: broken after the '+' (Rich would cut it anywhere), no name cut.
    assert "disk-fill+" in words and "sigterm@acks=200" in words, text
    assert "disk-fill+sigterm" in words  # a combination that fits stays whole
    assert "sigkill@on-write" not in text
    md = render_markdown(run_of(*records))
    assert "| sigkill@checkpoint |" in md and "| disk-fill+sigterm@acks=200 |" in md
    assert ">sigkill@checkpoint<" in render_html(run_of(*records))


def test_power_loss_options_are_their_own_row() -> None:
    """power-loss:lazy-dirs is another configuration than power-loss: its own row, its own name."""
    plain = [with_faults(rec(i, Verdict.PASS), "power-loss") for i in (1, 2)]
    lazy = [with_faults(rec(3, Verdict.CORRUPT, promised_safe=False), "power-loss:lazy-dirs@acks=100")]
    groups = {g.key.faults: g.trials for g in summarize(plain + lazy)}
    assert groups == {"power-loss": 2, "power-loss:lazy-dirs@acks=100": 1}
    assert "| power-loss:lazy-dirs@acks=100 |" in render_markdown(run_of(*plain, *lazy))
