"""The report's pictures, drawn with matplotlib as inline SVG: the verdict heatmap, a timeline per trial,
the old-vs-new comparison.

matplotlib because it is the long-kept, widely packaged plotting library of Python, draws SVG
with no browser, no JavaScript and no network at view time (the page stays self-contained),
and runs headless (the Agg/SVG backends) on a CI machine. Text stays text in the SVG
(``svg.fonttype: none``), which keeps each figure small and searchable. Figures are made as
``Figure`` objects, not through pyplot: no global figure state, and a third less time per report.
"""

from __future__ import annotations

import io
import textwrap
from typing import Sequence

import matplotlib

matplotlib.use("svg")  # headless: never a display, never a GUI toolkit

from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from repro.oracle.verdicts import Verdict  # noqa: E402
from repro.report.comparison import Comparison  # noqa: E402
from repro.report.summary import WRITES_LOST, GroupSummary  # noqa: E402
from repro.report.timeline import MarkKind, Timeline  # noqa: E402

# One colour per verdict, shared with the HTML page's legend and badges (worst verdict colours a cell).
VERDICT_COLOURS = {
    Verdict.PASS: "#3a9a4c",
    Verdict.EXPECTED_LOSS: "#e0b030",
    Verdict.LOST_ACKED: "#e0632a",
    Verdict.CORRUPT: "#b8212d",
    Verdict.ERROR: "#8e44ad",
}
OLD_COLOUR, NEW_COLOUR = "#8c8c8c", "#1f5fa8"
SEVERITY = (Verdict.PASS, Verdict.EXPECTED_LOSS, Verdict.LOST_ACKED, Verdict.CORRUPT, Verdict.ERROR)
MARK_COLOURS = {MarkKind.FAULT: "#b8212d", MarkKind.DISK_FULL: "#6b4f1d", MarkKind.DISK_CLEARED: "#8c8c8c",
                MarkKind.STOP: "#1f5fa8", MarkKind.POWER_CUT: "#000000", MarkKind.LEAK: "#8e44ad",
                MarkKind.END: "#555555", MarkKind.STORE_UNUSABLE: "#d35400", MarkKind.STORE_RECOVERED: "#27ae60"}

matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 9, "font.family": "DejaVu Sans",
                     "svg.hashsalt": "hermes-lab"})  # the same input draws the same SVG


def _svg(fig: Figure, tight: bool = True) -> str:
    """The figure as inline SVG; ``tight=False`` keeps the figure's own margins (half the drawing time)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight" if tight else None, metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]  # inline: no XML prolog or doctype


def worst(group: GroupSummary) -> Verdict:
    """The verdict that colours a heatmap cell: the most severe one any trial got."""
    return max((v for v in SEVERITY if group.count(v)), key=SEVERITY.index, default=Verdict.PASS)


def heatmap(groups: Sequence[GroupSummary]) -> str:
    """Fault (rows) x store configuration (columns); each cell coloured by its worst verdict, with counts."""
    rows = list(dict.fromkeys(f"{g.key.profile}  {g.key.faults}" for g in groups))
    cols = list(dict.fromkeys(g.key.config for g in groups))
    cell = {(f"{g.key.profile}  {g.key.faults}", g.key.config): g for g in groups}
    # Each column says what differs between them: the configuration asked for, wrapped, and what was in force.
    forced = {c: ", ".join(dict.fromkeys(g.in_force for g in groups if g.key.config == c and g.in_force)) for c in cols}
    names = ["\n".join(textwrap.wrap(_short_paths(c), 24, break_on_hyphens=False, break_long_words=False)
                       + textwrap.wrap(f"({forced[c]})" if forced[c] else "", 24, break_long_words=False))
             for c in cols]
    longest = max((len(line) for name in names for line in name.splitlines()), default=10)
    column = max(1.8, 0.075 * longest)  # inches: room for the widest label line, so labels never overlap
    width = min(16.0, 1.0 + column * len(cols) + max(len(r) for r in rows) * 0.07)
    lines = max(name.count("\n") + 1 for name in names)
    fig = Figure(figsize=(width, 0.8 + 0.16 * lines + 0.6 * len(rows)))
    ax = fig.subplots()
    palette = ["#f4f4f4", *[VERDICT_COLOURS[v] for v in SEVERITY]]
    grid = [[0 if (r, c) not in cell else 1 + SEVERITY.index(worst(cell[r, c])) for c in cols] for r in rows]
    ax.imshow(grid, cmap=ListedColormap(palette), vmin=0, vmax=len(palette) - 1, aspect="auto")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            g = cell.get((r, c))
            if g is None:
                continue
            label = "\n".join(f"{g.count(v)} {v.value}" for v in SEVERITY if g.count(v))
            if g.writes_lost:
                label += f"\n{g.writes_lost} {WRITES_LOST}"
            dark = worst(g) in (Verdict.CORRUPT, Verdict.LOST_ACKED, Verdict.PASS, Verdict.ERROR)
            ax.text(j, i, label, ha="center", va="center", fontsize=9, color="white" if dark else "black")
    ax.set_xticks(range(len(cols)), names, fontsize=8)
    ax.set_yticks(range(len(rows)), rows)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_xticks([x - 0.5 for x in range(1, len(cols))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _svg(fig)


def _short_paths(label: str) -> str:
    """A label's long paths cut to their last two parts (``…/dropper-case/good``): a heatmap column is narrow."""
    return " ".join("…/" + "/".join(word.rstrip("/").split("/")[-2:]) if word.startswith("/") and len(word) > 24
                    else word for word in label.split(" "))


def timeline(tl: Timeline, title: str, start_rows: int = 0, start_lost: int = 0) -> str:
    """Acknowledged and failed writes over time, the marks (fault, disk full, stop...), lost writes in red; the
    marks' labels sit above the plot, never over the lost writes. ``start_rows``: the rows the trial started with
    (--from-db, --initial-size), drawn at 0 s with ``start_lost`` of them lost."""
    fig = Figure(figsize=(9.0, 3.3))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.15, top=0.70)
    if tl.acked:
        ax.step([t for t, _ in tl.acked], [n for _, n in tl.acked], where="post", color="#1f5fa8",
                label="acknowledged writes")
    if tl.failed:
        ax.step([t for t, _ in tl.failed], [n for _, n in tl.failed], where="post", color="#e0b030",
                label="failed writes")
    if tl.lost:
        heights = [_count_at(tl, t) for t in tl.lost]
        more = f" (first {len(tl.lost)})" if tl.lost_total > len(tl.lost) else ""
        ax.scatter(tl.lost, heights, marker="x", color="#b8212d", s=18, zorder=3,
                   label=f"{tl.lost_total} acknowledged writes lost{more}")
    top = max([n for _, n in tl.acked] + [n for _, n in tl.failed] + [1])
    right = max(tl.duration, max((m.t for m in tl.marks), default=0.0), 0.1) * 1.02
    if start_lost:
        ax.scatter([0.0], [0], marker="v", color="#b8212d", s=40, zorder=4, clip_on=False,
                   label=f"{start_lost} of {start_rows} rows from before the trial lost")
    for n, mark in enumerate(tl.marks):
        ax.axvline(mark.t, color=MARK_COLOURS[mark.kind], linestyle="--", linewidth=1)
        near_end = mark.t > 0.7 * right  # label to the left of its line, or it runs off the figure
        ax.text(mark.t, 1.01 + 0.075 * (n % 3), f"{mark.label} " if near_end else f" {mark.label}",
                transform=ax.get_xaxis_transform(), clip_on=False,  # above the plot: lost writes stay visible
                color=MARK_COLOURS[mark.kind], fontsize=8, va="bottom", ha="right" if near_end else "left")
    files = ", ".join(f"{name} {_size(size)}" for name, size in tl.files)
    start = f"; started from {start_rows:,} rows" if start_rows else ""
    ax.set_title(title + start + (f"\nat the crash: {files}" if files else ""), fontsize=9, loc="left", pad=34)
    ax.set_xlabel("seconds since the store opened")
    ax.set_ylabel("writes")
    ax.set_xlim(left=0, right=right)
    ax.set_ylim(bottom=0, top=top * 1.05)
    ax.legend(loc="lower right", fontsize=8, frameon=False, bbox_to_anchor=(1, 0.08))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig, tight=False)


def overlay(timelines: Sequence[tuple[str, Timeline]], title: str) -> str:
    """Many trials of one group in one figure: each one's acknowledged writes over time, a dot where its
    fault fired (cheaper than a figure per trial, and the spread between trials shows at a glance)."""
    fig = Figure(figsize=(9.0, 2.9))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.17, top=0.86)
    top = 1
    for _, tl in timelines:
        if tl.acked:
            ax.step([t for t, _ in tl.acked], [n for _, n in tl.acked], where="post", color="#1f5fa8",
                    linewidth=0.8, alpha=0.6)
            top = max(top, tl.acked[-1][1])
        for mark in tl.marks:
            if mark.kind is MarkKind.FAULT:
                ax.plot([mark.t], [_count_at(tl, mark.t)], "o", color=MARK_COLOURS[mark.kind], markersize=3)
            elif mark.kind is MarkKind.DISK_FULL:
                ax.plot([mark.t], [_count_at(tl, mark.t)], "|", color=MARK_COLOURS[mark.kind], markersize=8)
    ax.set_title(f"{title}: {len(timelines)} trial(s) (dot: the fault fired; bar: disk full)", fontsize=9, loc="left")
    ax.set_xlabel("seconds since the store opened")
    ax.set_ylabel("acknowledged writes")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0, top=top * 1.05)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig, tight=False)


def _count_at(tl: Timeline, t: float) -> int:
    """The sampled acknowledged-writes curve at time ``t`` (for placing a lost write on it)."""
    below = [n for at, n in tl.acked if at <= t]
    return below[-1] if below else 0


def _size(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def comparison_chart(comparison: Comparison) -> str:
    """Per (profile, faults): the share of trials that harmed data on each side, with the p-value."""
    rows = [r for r in comparison.rows if r.old is not None or r.new is not None]
    fig = Figure(figsize=(7.2, 0.8 + 0.6 * len(rows)))
    ax = fig.subplots()
    for i, row in enumerate(rows):
        for offset, g, colour in ((-0.18, row.old, OLD_COLOUR), (0.18, row.new, NEW_COLOUR)):
            if g is None or g.judged == 0:
                continue
            share = g.harmed / g.judged
            ax.barh(i + offset, share, height=0.34, color=colour)
            ax.text(share + 0.01, i + offset, f"{g.harmed} of {g.judged}", va="center", fontsize=7)
        ax.text(1.02, i, row.change_text, va="center", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_yticks(range(len(rows)), [f"{r.profile} {r.faults}" for r in rows])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of trials that harmed data (corrupt, lost-acked or expected-loss)")
    ax.legend(handles=[Patch(color=OLD_COLOUR, label=comparison.old_label),
                       Patch(color=NEW_COLOUR, label=comparison.new_label)],
              loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, fontsize=8, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig)
