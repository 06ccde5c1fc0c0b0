"""report.html: one self-contained page (inline SVG and CSS, no script, nothing fetched at view time) with
the verdict heatmap, the table of report.md, the old-vs-new comparison, every trial that harmed
data with links to its evidence, and a timeline per trial."""

from __future__ import annotations

import html
import pathlib
import urllib.parse

from repro.errors import ExitCode

from repro.report import figures
from repro.report.comparison import DETECTABLE_LIMIT, Comparison
from repro.report.confidence import METHOD_TEXT, RateBound
from repro.report.outcome import RunOutcome, outcome
from repro.report.provenance import provenance_lines
from repro.report.records import RunResult, TrialRecord
from repro.report.summary import HARMED_DATA, WRITES_LOST, columns, config_label, group_key, in_force, \
    settings_in_force, start_labels, summarize, table_rows, table_title
from repro.report.blame import NO_CONTROLS, Controls, controls_of, promise_text

_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222;
       padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; margin-bottom: 0.2em; }
.headline { font-size: 1.1em; font-weight: bold; padding: 0.5em 0.8em; border-left: 6px solid #1f5fa8;
            background: #f3f6fb; }
.exit-0 { border-left-color: #3a9a4c; } .exit-1, .exit-3 { border-left-color: #b8212d; }
.headline.allowed { border-left-color: #e0b030; background: #fdf7e6; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; }
.badge { display: inline-block; padding: 0 0.4em; border-radius: 3px; color: white; font-size: 0.85em; }
.legend span { margin-right: 0.8em; }
code, pre { background: #f6f6f6; font-size: 0.85em; }
pre { padding: 0.4em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
figure { margin: 0.4em 0; } figure svg { max-width: 100%; height: auto; }
details { margin: 0.3em 0; } summary { cursor: pointer; }
.no { color: #b8212d; font-weight: bold; }
"""
# A figure takes matplotlib ~0.1 s: a run of 20,000 trials would take minutes and make a page of
# hundreds of MB. The page draws the first MAX_TIMELINES harmed trials' timelines and the first
# MAX_OVERLAY trials of each group's overlay, and says so; report.json keeps every timeline.
MAX_TIMELINES = 40
MAX_OVERLAY = 100


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(verdict_value: str) -> str:
    colour = next((c for v, c in figures.VERDICT_COLOURS.items() if v.value == verdict_value), "#555")
    return f'<span class="badge" style="background:{colour}">{_e(verdict_value)}</span>'


def _artifact_links(t: TrialRecord, report_dir: pathlib.Path | None) -> str:
    """Links to the trial's evidence, relative to the page (so the run directory can move)."""
    if report_dir is not None and (report_dir / "trials" / t.id).is_dir():
        folder = report_dir / "trials" / t.id
        base = f"trials/{urllib.parse.quote(t.id)}/"
        links = [f'<a href="{_e(base + urllib.parse.quote(p.name))}">{_e(p.name)}</a>'
                 for p in sorted(folder.iterdir()) if p.is_file()]
        return f'artifacts (<a href="{_e(base)}">folder</a>): ' + ", ".join(links)
    if t.artifacts_dir:
        return f"artifacts: <code>{_e(t.artifacts_dir)}</code> (not beside this page)"
    return "no artifacts kept (the trial passed)"


def _table(run: RunResult) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns(run.trials))
    body = []
    for group, cells in table_rows(run.trials):
        tds = []
        for name, text in cells.items():
            if name == "verdicts":
                tds.append("<td>" + ", ".join(f"{_e(part.split(' ', 1)[0])} {_badge(part.split(' ', 1)[1])}"
                                              for part in text.split(", ")) + "</td>")
            elif name == WRITES_LOST:
                tds.append(f'<td class="num">{_e(text)}</td>')
            elif name == "as expected":
                tds.append(f'<td class="{"" if group.as_expected else "no"}">{_e(text)}</td>')
            else:
                tds.append(f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    sure = "".join(f"<li>{_e(g.key.profile)} / {_e(g.key.faults)} / {_e(g.key.config)}: "
                   + _e("; ".join(bound.text for bound in g.rates)) + "</li>" for g in summarize(run.trials) if g.rates)
    return (f"<p>{_e(table_title(run.trials))}</p><table><tr>{head}</tr>{''.join(body)}</table>"
            f"<p>How sure: {_e(METHOD_TEXT)}.</p><ul>{sure}</ul>")


def _tested(run: RunResult) -> str:
    """The "what was tested" panel: per store configuration, its code (source, commit and subject), the pragmas
    and SQLite read back in the machines, the profiles, the starting database, and its counts with an interval."""
    sources = {(p.source, p.preset if p.kind == "bundled" else ""): p for p in run.meta.stores}
    rows = []
    for config in dict.fromkeys(config_label(t) for t in run.trials):
        recs = [t for t in run.trials if config_label(t) == config]
        judged = [t for t in recs if not t.lab_error]
        code = sources.get((recs[0].store, recs[0].preset if recs[0].store == "default" else ""))
        settings = sorted({settings_in_force(t).split(" [")[0] for t in judged}) or ["not read (no trial judged)"]
        pragmas = "; ".join(sorted({" ".join(f"{k}={v}" for k, v in sorted(t.pragmas.items())) for t in judged
                                    if t.pragmas}))
        harmed = RateBound(HARMED_DATA, sum(1 for t in judged if t.harmed), len(judged)) if judged else None
        faults = ", ".join(dict.fromkeys(t.faults_label for t in recs))
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            f"<b>{_e(config)}</b>", _e(code.line if code is not None else recs[0].store),
            f'<span title="{_e(pragmas)}">{_e(", ".join(settings))}</span>',
            _e(", ".join(sorted({t.profile for t in recs}))),
            _e("; ".join(start_labels(recs)) or "an empty disk"),
            f"{len(recs)} trials ({_e(faults)})", _e(harmed.text if harmed else "none judged"))) + "</tr>")
    starts = "".join(f"<li>starting database {_e(name)}: sha256 <code>{_e(digest[:16])}</code></li>"
                     for name, digest in run.meta.starts.items())
    image = (f"<li>image <code>{_e(run.meta.image)}</code> ({_e(run.meta.image_id.removeprefix('sha256:')[:12])}), "
             f"lab {_e(run.meta.lab_version or '?')}</li>") if run.meta.image else ""
    return ("<h2>What was tested</h2><table><tr><th>store</th><th>code</th><th>in force (read back: pragmas, "
            "SQLite)</th><th>profile</th><th>start</th><th>trials</th><th>harmed data, how sure</th></tr>"
            + "".join(rows) + f"</table><ul>{image}{starts}</ul>")


def _comparison(comparison: Comparison) -> str:
    rows = "".join(
        f"<tr><td>{_e(r.profile)}</td><td>{_e(r.faults)}</td>"
        + "".join(f"<td>{_e(f'{g.harmed} of {g.judged}' if g else '-')}</td>" for g in (r.old, r.new))
        + f"<td>{_e(r.change_text)}</td><td class='num'>{_e('-' if r.p_value is None else f'{r.p_value:.4f}')}</td>"
        + "</tr>" for r in comparison.rows)
    return (f"<p><b>{_e(comparison.headline)}</b></p>"
            f"<figure>{figures.comparison_chart(comparison)}</figure>"
            f"<table><tr><th>profile</th><th>faults</th><th>{_e(comparison.old_label)}: {HARMED_DATA}</th>"
            f"<th>{_e(comparison.new_label)}: {HARMED_DATA}</th><th>change</th><th>p (Fisher)</th></tr>{rows}</table>"
            "<p>A change is better or worse only at p &lt; 0.05 (Fisher's exact test, two-sided, on the share of "
            "trials that corrupted or lost acknowledged data). No change seen is inconclusive when these counts "
            f"could not have detected a difference of {DETECTABLE_LIMIT:.0%} of trials.</p>")


def _trial(t: TrialRecord, report_dir: pathlib.Path | None, picture: bool, drawn: bool = True,
           controls: Controls = NO_CONTROLS) -> str:
    """One trial: what the oracle made of it, its evidence, and (``picture``) its own timeline (``drawn``:
    among the first MAX_TIMELINES, else a line saying it was not drawn)."""
    promise = f"<span class='no'>{_e(promise_text(t, controls))}</span>" if t.failed else _e(promise_text(t))
    facts = (f"{_e(t.profile)}, {_e(t.faults_label)}, store {_e(config_label(t))}, in force {_e(in_force(t))}, "
             f"seed {t.seed}; acked {t.acked}, {WRITES_LOST} {t.lost_acked}, integrity {_e(t.integrity)}"
             + (f"; start: {_e(t.start)}; pre-existing rows {t.preexisting}, lost or rewritten {t.lost_preexisting}"
                if t.start else ""))
    figure = ""
    if picture and t.timeline is None:
        figure = "<p>no timeline recorded for this trial</p>"
    elif picture and not drawn:
        figure = (f"<p>timeline not drawn: the page draws the first {MAX_TIMELINES} of these trials "
                  "(report.json holds every trial's)</p>")
    elif picture and t.timeline is not None:
        figure = (f"<figure>{figures.timeline(t.timeline, f'{t.id}: {t.verdict.value}', t.preexisting, t.lost_preexisting)}"
                  "</figure>")
    body = (f"<p>{promise}. {facts}</p><p>{_e(t.detail)}</p><p>{_artifact_links(t, report_dir)}</p>"
            f"<pre>{_e(t.replay)}</pre>{figure}")
    anchor = _e("trial-" + t.id)
    summary = f"{_badge(t.verdict.value)} <b>{_e(t.id)}</b> ({t.duration_s:.1f} s)"
    return f'<details id="{anchor}"{" open" if picture else ""}><summary>{summary}</summary>{body}</details>'


def _passing(trials: list[TrialRecord], report_dir: pathlib.Path | None) -> list[str]:
    """Trials that harmed nothing, per group: their timelines in one figure, then each trial (folded)."""
    groups: dict[object, list[TrialRecord]] = {}
    for t in trials:
        groups.setdefault(group_key(t), []).append(t)
    parts = []
    for members in groups.values():
        first = members[0]
        parts.append(f"<h3>{_e(first.profile)} {_e(first.faults_label)}, {_e(config_label(first))}</h3>")
        drawn = [(t.id, t.timeline) for t in members if t.timeline is not None]
        if drawn:
            title = ("every trial that harmed nothing" if len(drawn) <= MAX_OVERLAY else
                     f"the first {MAX_OVERLAY} of the {len(drawn)} trials that harmed nothing")
            parts.append(f"<figure>{figures.overlay(drawn[:MAX_OVERLAY], title)}</figure>")
        parts += [_trial(t, report_dir, picture=False) for t in members]
    return parts


def render_html(run: RunResult, report_dir: pathlib.Path | None = None, result: RunOutcome | None = None) -> str:
    meta, trials = run.meta, run.trials
    result = result or outcome(run)
    legend = "".join(f"<span>{_badge(v.value)}</span>" for v in figures.SEVERITY)
    meta_items = [f"{len(trials)} trials, seed <code>{meta.seed}</code>, started {_e(meta.started_at)}, "
                  f"{meta.duration_s:.1f} s", f"command: <code>{_e(meta.command)}</code>"]
    if meta.shard:
        meta_items.append(f"shard {_e(meta.shard)} of a run of {meta.planned} trials")
    if meta.merged_from:
        meta_items.append(f"merged from {len(meta.merged_from)} shards: {_e(', '.join(meta.merged_from))}")
    meta_items += [f"store: <code>{_e(line)}</code>" for line in provenance_lines(meta.stores)]
    meta_items += [f"<code>--fail-on {_e(g.condition.value)}</code>: {'FAILED' if g.failed else 'ok'}, {_e(g.reason)}"
                   for g in result.gates]
    harmed = [t for t in trials if t.harmed or t.lab_error]
    # A regression in data harmed where every trial stayed inside its promise (expected-loss) is no broken promise:
    # the banner is amber and says so, never red over trials that all went as expected.
    allowed, note = "", ""
    if result.comparison is not None and result.trials_code is ExitCode.OK and any(
            r.change == "worse" for r in result.comparison.rows):
        allowed = " allowed"
        note = ("<p>Every trial went as the oracle expects: the data harmed is loss the configuration in force "
                "allows (expected-loss), not a broken promise.</p>")
    parts = [
        f"<h1>Crash trials: run {_e(meta.run_id)}</h1>",
        f'<p class="headline exit-{int(result.code)}{allowed}">{_e(result.headline)}</p>{note}',
        f"<p>Result: {_e(result.result)} (exit {int(result.code)}).</p>",
        "<ul>" + "".join(f"<li>{item}</li>" for item in meta_items) + "</ul>",
        _tested(run) if trials else "",
        "<h2>Verdicts: fault x store configuration</h2>",
        f'<p class="legend">{legend} (a cell takes the colour of its worst verdict)</p>',
        f"<figure>{figures.heatmap(summarize(trials))}</figure>" if trials else "<p>no trials</p>",
        _table(run),
    ]
    if result.comparison is not None:
        parts += ["<h2>Old vs new</h2>", _comparison(result.comparison)]
    parts.append(f"<h2>Trials that harmed data or could not be judged ({len(harmed)})</h2>")
    controls = controls_of(trials)
    parts += [_trial(t, report_dir, picture=True, drawn=n < MAX_TIMELINES, controls=controls)
              for n, t in enumerate(harmed)] \
        or ["<p>None.</p>"]
    others = [t for t in trials if not (t.harmed or t.lab_error)]
    if others:
        parts.append(f"<h2>Every other trial ({len(others)})</h2>")
        parts += _passing(others, report_dir)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>hermes-lab run {_e(meta.run_id)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
