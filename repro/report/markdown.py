"""report.md: a run that stands alone -- its verdict first, the configuration in force by name, every trial
that harmed data with its evidence and replay command, expected or not."""

from __future__ import annotations

from repro.report.comparison import comparison_markdown
from repro.report.confidence import METHOD_TEXT
from repro.report.outcome import RunOutcome, outcome
from repro.report.provenance import provenance_lines
from repro.report.records import RunResult, TrialRecord
from repro.report.summary import HARMED_DATA, WRITES_LOST, blind_controls, columns, config_label, in_force, \
    start_labels, summarize, table_rows, table_title
from repro.report.blame import NO_CONTROLS, Controls, controls_of, promise_text


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(run: RunResult, result: RunOutcome | None = None) -> str:
    meta, trials = run.meta, run.trials
    result = result or outcome(run)
    lines = [f"# Crash trials: run {meta.run_id}", ""]
    if result.comparison is not None:
        lines += [f"**{result.comparison.headline}**", ""]
    lines += [f"**Result: {result.result}** (exit {int(result.code)}).", ""]
    lines += [f"- trials: {len(trials)}, run seed: `{meta.seed}`, started: {meta.started_at}, "
              f"duration: {meta.duration_s:.1f} s",
              f"- command: `{meta.command}`"]
    if meta.shard:
        lines.append(f"- shard {meta.shard} of a run of {meta.planned} trials (`repro merge` combines the shards)")
    if meta.merged_from:
        lines.append(f"- merged from {len(meta.merged_from)} shards: {', '.join(meta.merged_from)}")
    lines += [f"- store: {_md(line)}" for line in provenance_lines(meta.stores)]
    lines += [f"- start: {_md(label)}" for label in start_labels(trials)]
    if meta.sqlite_version or meta.lab_version:
        image = f", image {meta.image} ({meta.image_id.removeprefix('sha256:')[:12]})" if meta.image else ""
        lines.append(f"- SQLite {meta.sqlite_version or '?'}, lab {meta.lab_version or '?'}{image}")
    lines += [f"- starting database {name}: sha256 {digest[:16]}" for name, digest in meta.starts.items()]
    for gate in result.gates:
        lines.append(f"- `--fail-on {gate.condition.value}`: {'**FAILED**' if gate.failed else 'ok'}, {gate.reason}")
    lines += ["", f"## Verdicts per group: {table_title(trials)}", ""]
    names = columns(trials)
    lines.append("| " + " | ".join(names) + " |")
    lines.append("|" + "---|" * len(names))
    rows = table_rows(trials)
    for _, cells in rows:
        lines.append("| " + " | ".join(_md(c) for c in cells.values()) + " |")
    lines += ["", f"Verdict `lost-acked` counts trials that lost acknowledged writes; `{WRITES_LOST}` counts the "
              f"acknowledged writes they lost; `{HARMED_DATA}` counts trials that corrupted the database or lost "
              "acknowledged writes, whatever was promised. `expected-loss`: loss the configuration allows (WAL + "
              "synchronous=normal under power loss). The configuration in force is the journal mode and "
              "synchronous the store read back."]
    lines += ["", "## How sure", "", f"Per group, each bad outcome's count and the rates it allows: {METHOD_TEXT}.", ""]
    lines += [f"- {g.key.profile} / {g.key.faults} / {_md(g.key.config)}: "
              + "; ".join(bound.text for bound in g.rates) for g in summarize(trials) if g.rates]
    reproduced = [(g, cells) for g, cells in rows if g.harmed]
    if reproduced:
        lines += [""]
        lines += [f"- {g.key.profile} / {g.key.faults} / {cells['store (in force)']}: **{g.reproduced}** ({g.verdict_text}; "
                  f"{g.writes_lost} {WRITES_LOST})" for g, cells in reproduced]
    if result.comparison is not None:
        lines += ["", "## Old vs new", "", comparison_markdown(result.comparison).rstrip()]
    harmed = [t for t in trials if t.harmed]
    lines += ["", "## Trials that harmed data", ""]
    if not harmed:
        lines.append("None: no trial corrupted the database or lost an acknowledged write.")
    else:
        unexpected = sum(1 for t in harmed if t.failed)
        lines += [f"{len(harmed)} trial(s), {unexpected} of them where the configuration in force promised no "
                  "loss.", ""]
    controls = controls_of(trials)
    for t in harmed:
        lines += _trial_md(t, controls)
    errors = [t for t in trials if t.lab_error]
    if errors:
        lines += ["", "## Lab errors (not the store's fault, not a pass)", ""]
        for t in errors:
            lines += _trial_md(t)
    blind = blind_controls(trials)
    if blind:
        lines += ["", "## Warning: positive controls that never failed", ""]
        lines += [f"- {k.profile} / {k.faults} / {k.config}: SQLite promises nothing here, yet every trial"
                  " passed -- the lab may not see this bug class" for k in blind]
    lines += ["", "Pictures (verdict heatmap, each trial's timeline): `report.html` beside this file; "
              "re-render with `repro report RUN_DIR`."]
    return "\n".join(lines) + "\n"


def _trial_md(t: TrialRecord, controls: Controls = NO_CONTROLS) -> list[str]:
    promise = promise_text(t, controls)
    if t.failed:
        promise = f"**{promise}**"
    out = [
        f"### {t.id}: {t.verdict.value}",
        "",
        f"- {promise}",
        f"- {t.profile}, {t.faults_label}, store {config_label(t)}, in force {in_force(t)}, seed {t.seed}"
        + (f", schedule: {'; '.join(t.schedule)}" if t.schedule else ""),
        f"- {_md(t.detail)}",
        f"- integrity: {_md(t.integrity)}; acked {t.acked}, {WRITES_LOST} {t.lost_acked}, phantom {t.phantom},"
        f" indeterminate {t.indeterminate}" + ("; OOM-killed" if t.oom_killed else ""),
    ]
    if t.start:
        out.append(f"- start: {_md(t.start)}; pre-existing rows {t.preexisting}, lost or rewritten "
                   f"{t.lost_preexisting}")
    if t.artifacts_dir:
        out.append(f"- artifacts: `{t.artifacts_dir}` (database files as the crash left them, ledger, machine "
                   "log, probe output, replay.sh)")
    out += ["- replay:", "", "```", t.replay, "```", ""]
    return out
