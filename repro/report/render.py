"""The run as a terminal table, report.json, report.md and junit.xml (old-vs-new lives in comparison.py)."""

from __future__ import annotations

import pathlib
import xml.etree.ElementTree as ET
from typing import Sequence

from rich.console import Console
from rich.table import Table

from repro.errors import ExitCode
from repro.oracle.verdicts import Verdict
from repro.report.records import RunResult, TrialRecord
from repro.report.summary import VERDICTS, blind_controls, summarize

_EXIT_TEXT = {
    ExitCode.OK: "every trial as the oracle expects",
    ExitCode.TRIAL_FAILED: "a trial failed: corruption or lost acknowledged writes where SQLite promised none",
    ExitCode.BAD_INPUT: "bad input",
    ExitCode.LAB_FAILED: "the lab failed: at least one trial could not be judged",
}


# -- terminal ---------------------------------------------------------------------------

_STYLE = {
    Verdict.PASS: "green",
    Verdict.CORRUPT: "bold red",
    Verdict.LOST_ACKED: "bold red",
    Verdict.EXPECTED_LOSS: "yellow",
    Verdict.ERROR: "magenta",
}


def render_table(records: Sequence[TrialRecord], title: str = "crash trials") -> Table:
    """One row per (profile, faults, preset[, store]) with a count column per verdict."""
    show_store = len({r.store for r in records}) > 1
    table = Table(title=title)
    table.add_column("profile")
    table.add_column("faults")
    table.add_column("preset")
    table.add_column("in force")
    table.add_column("sqlite")
    if show_store:
        table.add_column("store")
    for verdict in VERDICTS:
        table.add_column(verdict.value, justify="right", style=_STYLE[verdict])
    table.add_column("lost acked", justify="right")
    table.add_column("as expected", justify="center")
    for g in summarize(records):
        cells = [g.key.profile, g.key.faults, g.key.preset, g.pragmas or "?", g.sqlite]
        cells += [g.key.store] if show_store else []
        cells += [str(g.count(v)) if g.count(v) else "." for v in VERDICTS]
        cells.append(str(g.lost_acked))
        ok = g.failed == 0 and g.count(Verdict.ERROR) == 0
        cells.append("yes" if ok else "[bold red]NO[/]")
        table.add_row(*cells)
    return table


def print_table(records: Sequence[TrialRecord], console: Console | None = None) -> None:
    """The verdict table, then a warning for every positive control that never failed."""
    console = console or Console()
    console.print(render_table(records))
    for key in blind_controls(records):
        console.print(f"[yellow]warning:[/] {key.profile} {key.faults} {key.preset}: nothing was promised, yet every "
                      "trial passed -- the lab may not see this bug class here (more trials, larger messages?)")


# -- files ------------------------------------------------------------------------------


def write_json(path: pathlib.Path, run: RunResult) -> pathlib.Path:
    path.write_text(run.to_json() + "\n", encoding="utf-8")
    return path


def write_markdown(path: pathlib.Path, run: RunResult) -> pathlib.Path:
    path.write_text(render_markdown(run), encoding="utf-8")
    return path


def write_junit(path: pathlib.Path, run: RunResult) -> pathlib.Path:
    tree = ET.ElementTree(junit_element(run))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_all(out_dir: pathlib.Path, run: RunResult) -> tuple[pathlib.Path, ...]:
    """report.json, report.md and junit.xml under ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return (
        write_json(out_dir / "report.json", run),
        write_markdown(out_dir / "report.md", run),
        write_junit(out_dir / "junit.xml", run),
    )


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(run: RunResult) -> str:
    meta, trials = run.meta, run.trials
    code = run.exit_code
    lines = [
        f"# Crash trials: run {meta.run_id}",
        "",
        f"**Result: {_EXIT_TEXT[code]}** (exit {int(code)}).",
        "",
        f"- trials: {len(trials)}, run seed: `{meta.seed}`, started: {meta.started_at}, "
        f"duration: {meta.duration_s:.1f} s",
        f"- command: `{meta.command}`",
    ]
    if meta.sqlite_version or meta.lab_version:
        lines.append(f"- SQLite {meta.sqlite_version or '?'}, lab {meta.lab_version or '?'}")
    lines += ["", "## Verdicts per group", ""]
    header = ["profile", "faults", "preset", "store", "sqlite"] + [v.value for v in VERDICTS]
    header += ["lost acked", "promised safe"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for g in summarize(trials):
        row = [g.key.profile, g.key.faults, g.key.preset, g.key.store, g.sqlite]
        row += [str(g.count(v)) for v in VERDICTS] + [str(g.lost_acked), "yes" if g.promised_safe else "no"]
        lines.append("| " + " | ".join(_md(c) for c in row) + " |")
    lines += ["", "`expected-loss`: loss the configuration allows (e.g. WAL + synchronous=NORMAL under power loss)."
              " `promised safe` = no: SQLite promises nothing there (positive controls); failures are expected."]
    failed = [t for t in trials if t.failed]
    errors = [t for t in trials if t.lab_error]
    lines += ["", "## Failing trials", ""]
    if not failed:
        lines.append("None.")
    for t in failed:
        lines += _trial_md(t)
    if errors:
        lines += ["", "## Lab errors (not the store's fault, not a pass)", ""]
        for t in errors:
            lines += _trial_md(t)
    blind = blind_controls(trials)
    if blind:
        lines += ["", "## Warning: positive controls that never failed", ""]
        lines += [f"- {k.profile} / {k.faults} / {k.preset}: SQLite promises nothing here, yet every trial"
                  " passed -- the lab may not see this bug class" for k in blind]
    return "\n".join(lines) + "\n"


def _trial_md(t: TrialRecord) -> list[str]:
    out = [
        f"### {t.id}: {t.verdict.value} ({t.profile}, {t.faults_label}, {t.preset},"
        f" journal_mode={t.journal_mode}, synchronous={t.synchronous}, SQLite {t.sqlite_text}, seed {t.seed})",
        "",
        f"- {_md(t.detail)}",
        f"- integrity: {_md(t.integrity)}; acked {t.acked}, lost {t.lost_acked}, phantom {t.phantom},"
        f" indeterminate {t.indeterminate}" + ("; OOM-killed" if t.oom_killed else ""),
    ]
    if t.artifacts_dir:
        out.append(f"- artifacts: `{t.artifacts_dir}`")
    out += ["- replay:", "", "```", t.replay, "```", ""]
    return out


def junit_element(run: RunResult) -> ET.Element:
    """One testcase per trial; <failure> for an unexpected verdict, <error> for a lab error."""
    trials = run.trials
    failures = sum(1 for t in trials if not t.expected and not t.lab_error)
    errors = sum(1 for t in trials if t.lab_error)
    total_time = sum(t.duration_s for t in trials)
    suites = ET.Element("testsuites", tests=str(len(trials)), failures=str(failures),
                        errors=str(errors), time=f"{total_time:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=f"repro.{run.meta.run_id}", tests=str(len(trials)),
                          failures=str(failures), errors=str(errors), skipped="0", time=f"{total_time:.3f}")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="seed", value=str(run.meta.seed))
    ET.SubElement(props, "property", name="command", value=run.meta.command)
    for t in trials:
        case = ET.SubElement(suite, "testcase", classname=f"{t.profile}.{t.faults_label}.{t.preset}"
                             + ("" if t.sqlite == "system" else f".sqlite-{t.sqlite}"),
                             name=t.id, time=f"{t.duration_s:.3f}")
        text = f"{t.detail}\nreplay: {t.replay}"
        if t.lab_error:
            ET.SubElement(case, "error", message=t.detail[:200], type="lab-error").text = text
        elif not t.expected:
            ET.SubElement(case, "failure", message=f"{t.verdict.value}: {t.detail[:200]}",
                          type=t.verdict.value).text = text
        ET.SubElement(case, "system-out").text = (
            f"verdict={t.verdict.value} expected={t.expected} journal_mode={t.journal_mode}"
            f" synchronous={t.synchronous} SQLite {t.sqlite_text} seed={t.seed} acked={t.acked}"
            f" lost_acked={t.lost_acked}"
            f"\nreplay: {t.replay}"
        )
    return suites
