"""An exploration as a terminal table, explore.json, explore.md and junit.xml (in the style of repro/report).

One row per persistence model: how many states it has, how many were checked (all, or a
seeded sample), the verdicts, the promises broken by kind and at how many crash points, the
largest loss of acknowledged writes, and for the first broken promise (or, where nothing was
promised, the first corrupt or lossy state) the command that writes that exact state out.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import pathlib
import sqlite3
import xml.etree.ElementTree as ET

from rich.console import Console
from rich.table import Table

from repro.errors import ExitCode, ScenarioError, shown
from repro.explore.check import StateResult, ViolationKind
from repro.explore.runner import Exploration, ModelSummary, describe_state
from repro.oracle.verdicts import Verdict

FORMAT = "repro-explore"
VERSION = 1
VERDICTS = (Verdict.PASS, Verdict.EXPECTED_LOSS, Verdict.LOST_ACKED, Verdict.CORRUPT, Verdict.ERROR)
KINDS = tuple(ViolationKind)
_EXIT_TEXT = {
    ExitCode.OK: "the configuration kept its promises in every state checked",
    ExitCode.TRIAL_FAILED: "a promise was broken: corruption or acknowledged writes lost beyond what the "
                           "configuration allows",
    ExitCode.LAB_FAILED: "the lab failed: a state could not be judged",
}


def _coverage(m: ModelSummary) -> str:
    sel = m.selection
    return "all" if sel.exhaustive else f"sample (seed {sel.seed})"


def _state(run: Exploration, result: StateResult | None) -> dict[str, object] | None:
    if result is None:
        return None
    state_id = run.state_ref(result.model, result.index)
    return {"state": state_id, "verdict": result.verdict.value, "kind": result.kind.value if result.kind else None,
            "reason": result.reason, "acked": result.acked, "lost": list(result.lost),
            "lost_beyond_sync": list(result.beyond_sync),
            "description": describe_state(run.space, run.space.spec(result.model, result.index)),  # type: ignore[arg-type]
            "materialize": run.materialize_command(state_id)}


def to_dict(run: Exploration) -> dict[str, object]:
    rec = run.trace_dir.recording
    return {
        "format": FORMAT, "version": VERSION,
        "result": {"exit_code": int(run.exit_code), "text": _EXIT_TEXT[run.exit_code]},
        "trace": {"dir": str(run.trace_dir.path), "digest": run.digest, "shape": run.shape,
                  "reproducible": run.trace_dir.recording.reproducible, "ops": run.ops,
                  "crash_points": run.crash_points, "source": rec.source},
        "configuration": {"journal_mode": run.config.journal_mode.value,
                          "synchronous": run.config.synchronous.name.lower(), "crash_class": "power-loss",
                          "sqlite_in_machine": run.machine_sqlite, "sqlite_of_probe": sqlite3.sqlite_version,
                          "store_env": dict(rec.store_env)},
        "budget": run.budget, "seed": run.seed, "jobs": run.jobs, "seconds": round(run.seconds, 3),
        "states": run.states, "states_per_second": round(run.rate, 1),
        "cost": dataclasses.asdict(run.stats),
        "models": [{
            "model": m.model.value, "promise": m.promise, "states_total": m.selection.total,
            "checked": m.checked, "exhaustive": m.selection.exhaustive, "sample_seed": m.selection.seed,
            "verdicts": {v.value: m.verdicts.get(v.value, 0) for v in VERDICTS},
            "violations": {k.value: m.violations.get(k.value, 0) for k in KINDS},
            "broken_promises": m.broken, "violating_crash_points": m.violating_points,
            "findings": m.findings, "finding_crash_points": m.finding_points,
            "largest_loss": m.largest_loss, "largest_loss_state": m.largest_loss_state,
            "probes": m.probes,
            "first_violation": _state(run, m.first_violation),
            "first_finding": _state(run, m.first_finding),
        } for m in run.models],
        "orderings": [{"model": o.model, "sentence": o.sentence, "states": o.states, "example": o.example,
                       "detail": o.detail, "materialize": run.materialize_command(o.example)} for o in run.orderings],
        "recovery": [level.to_dict() for level in run.second],
    }


def render_table(run: Exploration) -> Table:
    cfg = run.config
    table = Table(title=f"crash states of {run.trace_dir.path.name} ({cfg.journal_mode.value} + "
                        f"synchronous={cfg.synchronous.name.lower()}, power loss)")
    for column in ("model", "states", "checked"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for v in VERDICTS:
        table.add_column(v.value, justify="right")
    table.add_column("broken promises", justify="right")
    table.add_column("at crash points", justify="right")
    table.add_column("largest loss", justify="right")
    for m in run.models:
        cells = [m.model.value, str(m.selection.total), f"{m.checked} ({_coverage(m)})"]
        cells += [str(m.verdicts[v.value]) if m.verdicts.get(v.value) else "." for v in VERDICTS]
        cells += [f"[bold red]{m.broken}[/]" if m.broken else "0", str(m.violating_points), str(m.largest_loss)]
        table.add_row(*cells)
    return table


def print_report(run: Exploration, console: Console) -> None:
    console.print(render_table(run))
    for m in run.models:
        shown = m.first_violation or m.first_finding
        if shown is None:
            continue
        what = "first broken promise" if m.first_violation else "first finding (nothing was promised)"
        console.print(f"{m.model.value}: {what}: {run.state_ref(shown.model, shown.index)} ({shown.verdict.value}) "
                      f"{shown.reason[:120]}")
        console.print(f"  {run.materialize_command(run.state_ref(shown.model, shown.index))}")
    if run.orderings:
        console.print(f"findings as orderings ({sum(o.states for o in run.orderings)} of "
                      f"{sum(m.findings for m in run.models)} findings shrunk):")
    for o in run.orderings:
        console.print(f"  {o.model}: {o.states} x {o.sentence}")
        console.print(f"    e.g. {o.example}: {o.detail}")
    if run.second:
        console.print(render_second(run))


def render_second(run: Exploration) -> Table:
    """Crash during recovery: one row per reopened state."""
    table = Table(title="crash during recovery: each chosen state reopened, and every crash state of its reopen "
                        "judged where the state was")
    for column in ("state", "chosen as", "its verdict", "reopen ops", "states checked", "made worse", "what"):
        table.add_column(column, justify="right" if column in ("reopen ops", "states checked", "made worse")
                         else "left")
    for level in run.second:
        f = level.first
        worse = f"[bold red]{level.made_worse}[/]" if level.is_worse else "0"
        table.add_row(f.state, f.reason, f.verdict, str(level.ops), f"{level.checked} of {level.states_total}",
                      worse, level.sentence())
    return table


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(run: Exploration) -> str:
    cfg = run.config
    lines = [
        f"# Crash states of trace {run.digest}", "",
        f"**Result: {_EXIT_TEXT[run.exit_code]}** (exit {int(run.exit_code)}).", "",
        f"- trace: `{run.trace_dir.path}` ({run.ops} operations, {run.crash_points} crash points); "
        f"recorded by {run.trace_dir.recording.source or '?'}",
        f"- configuration in force (READY): journal_mode={cfg.journal_mode.value}, "
        f"synchronous={cfg.synchronous.name.lower()}; crash class: power loss; SQLite {run.machine_sqlite} in the "
        f"machine, {sqlite3.sqlite_version} in the probe",
        f"- findings (corrupt, or acknowledged writes lost, promised or not): "
        f"{', '.join(f'{m.model.value} {m.findings} at {m.finding_points} crash points' for m in run.models)}"
        + ("" if any(m.promise_safe for m in run.models) else " -- nothing was promised here (a positive control)"),
        f"- budget {run.budget} states per model, seed `{run.seed}`, {run.jobs} worker(s): {run.states} states in "
        f"{run.seconds:.1f} s ({run.rate:.0f} states/s, {run.stats.probes} probed, the rest equal to a probed one)",
        "", "## Per persistence model", "",
    ]
    header = ["model", "promise", "states", "checked"] + [v.value for v in VERDICTS] + [
        "broken promises", "by kind", "at crash points", "largest loss"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in run.models:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(m.violations.items())) or "none"
        row = [m.model.value, m.promise, m.selection.total, f"{m.checked} ({_coverage(m)})"]
        row += [m.verdicts.get(v.value, 0) for v in VERDICTS]
        row += [m.broken, kinds, m.violating_points, m.largest_loss]
        lines.append("| " + " | ".join(_md(c) for c in row) + " |")
    lines += ["", "`expected-loss`: acknowledged writes lost as the configuration allows (WAL + NORMAL: the "
              "commits since the last WAL sync). `lost-beyond-sync`: a loss of commits acknowledged before "
              "the sync that should have kept them. Findings where nothing was promised (synchronous=OFF, "
              "journal_mode=OFF) are reported, not counted as broken promises.", ""]
    for m in run.models:
        shown, title = (m.first_violation, "first broken promise") if m.first_violation else \
            (m.first_finding, "first finding (nothing was promised)")
        state = _state(run, shown)
        if state is None:
            continue
        lines += [f"### {m.model.value}: {title}: `{state['state']}` ({state['verdict']})", "",
                  f"- {_md(state['reason'])}", f"- findings: {m.findings} states at {m.finding_points} crash points"]
        description = state["description"]
        assert isinstance(description, dict)
        lines += [f"- {k}: {_md(v)}" for k, v in description.items()]
        lines += ["- inspect:", "", "```", str(state["materialize"]), "```", ""]
    if run.second:
        lines += ["## Crash during recovery", "",
                  "Each chosen state reopened on a recording machine (SQLite's recovery, the store's own repair, "
                  "its close), and every crash state of that reopen judged where the state was: *worse* breaks a "
                  "promise the state kept, or lacks a message row it held.", "",
                  "| state | chosen as | its verdict | reopen ops | states checked | made worse | what |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| `{s.first.state}` | {s.first.reason} | {s.first.verdict} | {s.ops} | {s.checked} of "
                  f"{s.states_total} | {s.made_worse} | {_md(s.sentence())} |" for s in run.second]
        lines.append("")
    if run.orderings:
        lines += ["## Findings as orderings", "",
                  f"{sum(o.states for o in run.orderings)} findings (a seeded choice of at most `--shrink` per model) "
                  "shrunk to the fewest operations that produce them:", "",
                  "| model | states | ordering | example |", "|---|---|---|---|"]
        lines += [f"| {_md(o.model)} | {o.states} | {_md(o.sentence)} | `{o.example}`: {_md(o.detail)} |"
                  for o in run.orderings]
        lines.append("")
    return "\n".join(lines) + "\n"


def junit_element(run: Exploration) -> ET.Element:
    """One testcase per model: <failure> when it broke a promise, <error> when a state could not be judged."""
    failures = sum(1 for m in run.models if m.broken)
    errors = sum(1 for m in run.models if m.violations.get(ViolationKind.ERROR.value))
    suites = ET.Element("testsuites", tests=str(len(run.models)), failures=str(failures), errors=str(errors),
                        time=f"{run.seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=f"repro.explore.{run.digest}", tests=str(len(run.models)),
                          failures=str(failures), errors=str(errors), skipped="0", time=f"{run.seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="seed", value=str(run.seed))
    ET.SubElement(props, "property", name="trace", value=str(run.trace_dir.path))
    cfg = run.config
    for m in run.models:
        case = ET.SubElement(suite, "testcase", name=m.model.value, time="0",
                             classname=f"{cfg.journal_mode.value}.{cfg.synchronous.name.lower()}")
        first = m.first_violation
        if m.violations.get(ViolationKind.ERROR.value) and first is not None:
            ET.SubElement(case, "error", message=first.reason[:200], type="lab-error")
        elif m.broken and first is not None:
            state_id = run.state_ref(first.model, first.index)
            ET.SubElement(case, "failure", message=f"{m.broken} state(s) broke the promise; first {state_id}: "
                          f"{first.reason[:160]}", type=first.kind.value if first.kind else "violation"
                          ).text = run.materialize_command(state_id)
        ET.SubElement(case, "system-out").text = (
            f"states={m.selection.total} checked={m.checked} ({_coverage(m)}) verdicts={m.verdicts} "
            f"findings={m.findings} largest_loss={m.largest_loss} promise={m.promise}")
    for level in run.second:
        case = ET.SubElement(suite, "testcase", name=f"reopen {level.first.state}", time=f"{level.seconds:.3f}",
                             classname="recovery")
        if level.errors:
            ET.SubElement(case, "error", message=level.sentence()[:200], type="lab-error")
        elif level.is_worse:
            ET.SubElement(case, "failure", message=level.sentence()[:300], type="worse-after-recovery-crash"
                          ).text = level.trace
    tests = len(run.models) + len(run.second)
    bad = sum(1 for level in run.second if level.is_worse and not level.errors)
    broke = sum(1 for level in run.second if level.errors)
    for element in (suites, suite):
        element.set("tests", str(tests))
        element.set("failures", str(failures + bad))
        element.set("errors", str(errors + broke))
    return suites


def write_all(out_dir: pathlib.Path, run: Exploration) -> tuple[pathlib.Path, ...]:
    """explore.json, explore.md and junit.xml under ``out_dir`` (never through a symbolic link)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "explore.json", out_dir / "explore.md", out_dir / "junit.xml")
    tree = ET.ElementTree(junit_element(run))
    ET.indent(tree)
    junit = io.BytesIO()
    tree.write(junit, encoding="utf-8", xml_declaration=True)
    contents = ((json.dumps(to_dict(run), indent=2) + "\n").encode("utf-8"), render_markdown(run).encode("utf-8"),
                junit.getvalue())
    for path, data in zip(paths, contents):
        _write(path, data)
    return paths


def _write(path: pathlib.Path, data: bytes) -> None:
    """Write a report file; a symbolic link in its place is refused, never followed."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ScenarioError(f"{shown(str(path), quote=False)} is a symbolic link: the lab writes no report "
                                "through one") from None
        raise ScenarioError(f"cannot write {shown(str(path), quote=False)}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
