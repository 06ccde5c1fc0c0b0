"""Old store vs new store, side by side: the release manager's verdict, with the odds it is chance.

Each side's trials are pooled per (profile, faults). A trial "harmed data" if it corrupted the
database or lost acknowledged writes, whatever the configuration promised: comparing two
presets, data lost is data lost. Lab errors are left out. A difference in the share of harmed
trials is called better/worse only when Fisher's exact test says it is unlikely to be chance
(two-sided p < ALPHA); otherwise it is "inconclusive", with the p-value, so that 1 of 3 against
0 of 3 is never sold as a fix. Equal shares are "no difference" only when the counts could have
shown one: each compared group states the smallest difference Fisher's test could have detected
at its counts (``detectable``), and when that exceeds DETECTABLE_LIMIT (or no difference at all
was detectable, as with 0 of 3 against 0 of 3) the comparison says "inconclusive at this trial
count" instead of "no difference". Broken promises (corruption or loss where the configuration in
force promised none) are listed per side whatever the statistics: one is already a bug shown; they
are called SQLite's only when the lab can tell (repro/report/blame.py), and the store's own when its no-fault control
showed the same.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

from rich import box
from rich.table import Table

from repro.report.records import TrialRecord
from repro.scenario.stores import OWN_SETTINGS
from repro.report.summary import VERDICTS, WRITES_LOST, GroupKey, GroupSummary, config_label, in_force, \
    settings_in_force, summarize
from repro.report.blame import CONTROL_FAULT, NOT_BLAMED, side_blame

ALPHA = 0.05
# "No difference" needs counts that could have shown a difference of this share of trials (one trial in four).
DETECTABLE_LIMIT = 0.25
_RELATIVE_TOLERANCE = math.log1p(1e-7)  # tables this close to the one seen count as equally likely


@functools.lru_cache(maxsize=1024)
def fisher_exact(harmed_a: int, n_a: int, harmed_b: int, n_b: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2x2 table (harmed, not harmed) x (a, b):
    the probability, with the margins fixed, of a split at least as unlikely as the one seen.

    Each table's probability is computed from log-gamma values, O(1) whatever the counts (exact
    binomials of 20,000 trials are numbers of thousands of digits: rendering was quadratic), so one
    test costs O(n); a table counts as "as unlikely" within a relative 1e-7, as scipy's does."""
    if not (0 <= harmed_a <= n_a and 0 <= harmed_b <= n_b):
        raise ValueError(f"bad counts {harmed_a}/{n_a}, {harmed_b}/{n_b}")
    harmed, total = harmed_a + harmed_b, n_a + n_b

    def log_comb(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    denominator = log_comb(total, n_a)

    def log_prob(k: int) -> float:  # k harmed trials on side a (hypergeometric)
        return log_comb(harmed, k) + log_comb(total - harmed, n_a - k) - denominator

    seen = log_prob(harmed_a) + _RELATIVE_TOLERANCE
    low, high = max(0, harmed - n_b), min(harmed, n_a)
    return min(1.0, math.fsum(math.exp(lp) for k in range(low, high + 1) if (lp := log_prob(k)) <= seen))


@functools.lru_cache(maxsize=1024)
def detectable(harmed_old: int, n_old: int, n_new: int) -> float | None:
    """The smallest difference in the share of harmed trials that Fisher's test (p < ALPHA) could have
    detected with ``n_new`` new trials against the old side as seen; None when no outcome could (0 of 3
    against even 3 of 3 is p = 0.1)."""
    if n_old <= 0 or n_new <= 0:
        return None
    rate = harmed_old / n_old
    if n_new <= 64:  # few counts: every outcome
        found = [abs(k / n_new - rate) for k in range(n_new + 1) if fisher_exact(harmed_old, n_old, k, n_new) < ALPHA]
        return min(found) if found else None
    # Many: the p-value falls as k moves away from the old rate, so each side's nearest significant k is found by
    # bisection (O(n log n), where trying every k is quadratic); tests/unit/test_compare.py checks both agree.
    centre = rate * n_new
    nearest = []
    for lo, hi, rising in ((math.ceil(centre), n_new, True), (0, math.floor(centre), False)):
        if lo > hi or fisher_exact(harmed_old, n_old, hi if rising else lo, n_new) >= ALPHA:
            continue
        while lo < hi:  # rising: the least significant k in [lo, hi]; else the greatest
            mid = (lo + hi) // 2 if rising else (lo + hi + 1) // 2
            significant = fisher_exact(harmed_old, n_old, mid, n_new) < ALPHA
            if rising:
                lo, hi = (lo, mid) if significant else (mid + 1, hi)
            else:
                lo, hi = (mid, hi) if significant else (lo, mid - 1)
        nearest.append(abs(lo / n_new - rate))
    return min(nearest) if nearest else None


@functools.lru_cache(maxsize=1024)
def could_detect(harmed_old: int, n_old: int, n_new: int, limit: float = DETECTABLE_LIMIT) -> bool:
    """Whether some difference of at most ``limit`` was detectable (``detectable(...) <= limit``), in two tests
    for large counts: the most extreme outcomes within the limit, and the full search only when neither
    is significant (linear in the trials, where the full search is quadratic)."""
    if n_old <= 0 or n_new <= 0:
        return False
    rate = harmed_old / n_old
    edges = {k for k in (math.floor((rate + limit) * n_new + 1e-9), math.ceil((rate - limit) * n_new - 1e-9))
             if 0 <= k <= n_new}
    if any(fisher_exact(harmed_old, n_old, k, n_new) < ALPHA for k in edges):
        return True
    found = detectable(harmed_old, n_old, n_new)
    return found is not None and found <= limit + 1e-12


@dataclass(frozen=True)
class ComparisonRow:
    """One (profile, faults) group seen in both runs (or only one of them)."""

    profile: str
    faults: str
    old: GroupSummary | None
    new: GroupSummary | None

    @property
    def compared(self) -> bool:
        return not (self.old is None or self.new is None or self.old.judged == 0 or self.new.judged == 0)

    @property
    def p_value(self) -> float | None:
        if not self.compared:
            return None
        assert self.old is not None and self.new is not None
        return fisher_exact(self.old.harmed, self.old.judged, self.new.harmed, self.new.judged)

    @property
    def change(self) -> str:
        """better / worse (significant at ALPHA), same (equal shares), inconclusive, not compared."""
        if not self.compared:
            return "not compared"
        assert self.old is not None and self.new is not None
        old_rate = self.old.harmed / self.old.judged
        new_rate = self.new.harmed / self.new.judged
        if new_rate == old_rate:
            return "same"
        p = self.p_value
        assert p is not None
        if p >= ALPHA:
            return "inconclusive"
        return "better" if new_rate < old_rate else "worse"

    @property
    def detectable(self) -> float | None:
        """The smallest difference these counts could have detected (see ``detectable``); None if none."""
        if not self.compared:
            return None
        assert self.old is not None and self.new is not None
        return detectable(self.old.harmed, self.old.judged, self.new.judged)

    @property
    def underpowered(self) -> bool:
        """No difference was seen (same, or inconclusive) and these counts could not have shown a large one."""
        if self.change not in ("same", "inconclusive"):
            return False
        assert self.old is not None and self.new is not None
        return not could_detect(self.old.harmed, self.old.judged, self.new.judged)

    @property
    def power_text(self) -> str:
        """``3 trials per side could not detect a difference below 100%`` (what an underpowered row lacks)."""
        assert self.old is not None and self.new is not None
        n_old, n_new = self.old.judged, self.new.judged
        trials = f"{n_old} trials per side" if n_old == n_new else f"{n_old} (old) and {n_new} (new) trials"
        found = self.detectable
        if found is None:
            return f"{trials} could not detect any difference, not even 100%"
        return f"{trials} could not detect a difference below {math.floor(found * 100 + 1e-9)}%"

    @property
    def detectable_text(self) -> str:
        """``could have detected 20%``: the smallest difference these counts could have shown (see ``detectable``)."""
        found = self.detectable
        return "could detect no difference" if found is None else f"could have detected {math.ceil(found * 100 - 1e-9)}%"

    @property
    def inconclusive(self) -> bool:
        """No significant difference, and either the shares differ (p >= ALPHA) or the counts were too few; never
        a control (it witnesses whose fault a loss is; a difference there still counts as better or worse)."""
        return self.compared and not self.is_control and (self.change == "inconclusive" or self.underpowered)

    @property
    def is_control(self) -> bool:
        """The no-fault control's group (repro/report/blame.py)."""
        return self.faults.split(" ")[0] == CONTROL_FAULT

    @property
    def change_text(self) -> str:
        p = self.p_value
        if p is None:
            return self.change
        if self.is_control and self.change in ("same", "inconclusive"):
            return f"control: {self.change} ({self.power_text if self.underpowered else self.detectable_text})"
        if self.underpowered:
            return f"inconclusive at this trial count: {self.power_text}"
        if self.change == "same":
            return f"same ({self.detectable_text})"
        if self.change == "inconclusive":
            return f"inconclusive (p={p:.3f}; {self.detectable_text})"
        return f"{self.change} (p<0.001)" if p < 0.001 else f"{self.change} (p={p:.3f})"


@dataclass(frozen=True)
class Comparison:
    old_label: str
    new_label: str
    rows: tuple[ComparisonRow, ...]
    old_blame: str = NOT_BLAMED  # how each side's broken promises read (blame.side_blame)
    new_blame: str = NOT_BLAMED
    # What each side had in force, read back in the machine (summary.settings_in_force), each distinct setting once.
    old_settings: tuple[str, ...] = ()
    new_settings: tuple[str, ...] = ()
    releases: bool = False  # both sides are stores of their own (paths or refs), not presets of the lab's

    @property
    def same_settings(self) -> str:
        """``the two releases ran the same durability settings on these machines (wal/normal, SQLite 3.40.1)``
        when both sides read back identical pragmas on an identical SQLite: a fix that changes them only
        elsewhere (another platform) was not exercised. "" when they differ or were not recorded, or when a side
        is a preset of the lab's own store (its settings are its name)."""
        if not self.releases or not self.old_settings or self.old_settings != self.new_settings:
            return ""
        shown = "; ".join(dict.fromkeys(setting.split(" [")[0] for setting in self.old_settings))  # no source ids
        return f"the two releases ran the same durability settings on these machines ({shown})"

    def _groups(self, change: str) -> list[str]:
        """The groups of that change; the controls' only when they differ (better, worse)."""
        return [f"{r.profile}/{r.faults}" for r in self.rows
                if r.change == change and (change in ("better", "worse") or not r.is_control)]

    def _underpowered(self) -> str:
        """``3 trials per side could not detect a difference below 100% (fly-256/sigkill)``, one per weak group
        (those with the same text joined); "" when every group that saw no difference could have seen one."""
        weak: dict[str, list[str]] = {}
        for r in self.rows:
            if r.compared and r.underpowered and not r.is_control:
                weak.setdefault(r.power_text, []).append(f"{r.profile}/{r.faults}")
        return "; ".join(f"{text} ({', '.join(groups)})" for text, groups in weak.items())

    def broken_promises(self, side: str) -> list[str]:
        """Groups where that side corrupted or lost data although its configuration promised it would not."""
        return [f"{r.profile}/{r.faults} ({g.failed})" for r in self.rows
                if (g := (r.old if side == "old" else r.new)) is not None and g.failed]

    @property
    def headline(self) -> str:
        better, worse, unsure = self._groups("better"), self._groups("worse"), self._groups("inconclusive")
        if not any(r.compared for r in self.rows):
            return "nothing to compare: no (profile, fault) group was judged in both runs"
        if worse and better:
            text = (f"mixed: {self.new_label} fixes {', '.join(better)} but regresses {', '.join(worse)}"
                    f" vs {self.old_label}")
        elif worse:
            text = f"regression: {self.new_label} harms data more often than {self.old_label} in {', '.join(worse)}"
        elif better:
            text = f"{self.new_label} fixes {', '.join(better)} (vs {self.old_label})"
        elif unsure:
            text = (f"no significant difference between {self.old_label} and {self.new_label}; "
                    f"inconclusive in {', '.join(unsure)} (p >= {ALPHA}: run more trials)")
        elif weak := self._underpowered():
            text = (f"inconclusive at this trial count: no difference seen between {self.old_label} and "
                    f"{self.new_label}, but {weak}")
        else:
            text = f"no difference between {self.old_label} and {self.new_label}"
        if (better or worse or unsure) and (weak := self._underpowered()):
            text += f"; inconclusive at this trial count: {weak}"
        if self.same_settings and not (better or worse):
            text += f"; {self.same_settings}: a fix that changes only other platforms' settings did not run here"
        broken = [f"{label} {blame} in {', '.join(groups)}"
                  for label, groups, blame in ((self.old_label, self.broken_promises("old"), self.old_blame),
                                               (self.new_label, self.broken_promises("new"), self.new_blame))
                  if groups]
        return "; ".join([text, *broken])


def compare_runs(old: Sequence[TrialRecord], new: Sequence[TrialRecord],
                 old_label: str = "old", new_label: str = "new") -> Comparison:
    """Per (profile, faults): each side's verdict counts and whether the new side harmed data
    significantly less or more often. Each side should be one preset/store; several are pooled."""
    def pooled(records: Sequence[TrialRecord]) -> dict[tuple[str, str], GroupSummary]:
        groups = summarize(records, key=lambda r: GroupKey(r.profile, r.faults_label, "*"))
        return {(g.key.profile, g.key.faults): g for g in groups}

    olds, news = pooled(old), pooled(new)
    keys = list(dict.fromkeys(list(olds) + list(news)))
    rows = tuple(ComparisonRow(p, f, olds.get((p, f)), news.get((p, f))) for p, f in keys)
    def settings(records: Sequence[TrialRecord]) -> tuple[str, ...]:
        return tuple(sorted({settings_in_force(r) for r in records if not r.lab_error}))

    releases = all(r.store != "default" for r in (*old, *new))
    return Comparison(old_label, new_label, rows, side_blame(old), side_blame(new), settings(old), settings(new), releases)


def comparison_of(records: Sequence[TrialRecord]) -> Comparison | None:
    """Old vs new, side by side, when the records ran exactly two store configurations (the first is old)."""
    sides = list(dict.fromkeys(config_label(r) for r in records))
    if len(sides) != 2:
        return None
    old = [r for r in records if config_label(r) == sides[0]]
    new = [r for r in records if config_label(r) == sides[1]]
    return compare_runs(old, new, _with_force(sides[0], old), _with_force(sides[1], new))


def _with_force(label: str, side: Sequence[TrialRecord]) -> str:
    """A foreign store's side named with the pragmas in force, ``/x/old own settings (wal/full)`` (a preset
    of the lab's own store says what it asked for by its name)."""
    forced = ", ".join(sorted({in_force(r) for r in side if not r.lab_error}))
    foreign = any(r.store != "default" or r.preset == OWN_SETTINGS for r in side)
    return f"{label} ({forced})" if forced and foreign else label


def render_comparison(comparison: Comparison) -> Table:
    table = Table(title=comparison.headline, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("profile", overflow="fold")
    table.add_column("faults", overflow="fold")
    for label in (comparison.old_label, comparison.new_label):
        table.add_column(label, overflow="fold")
    table.add_column("change", overflow="fold")
    for row in comparison.rows:
        table.add_row(row.profile, row.faults, _counts(row.old), _counts(row.new), row.change_text)
    return table


def comparison_markdown(comparison: Comparison) -> str:
    lines = [f"**{comparison.headline}**", "",
             f"| profile | faults | {comparison.old_label} | {comparison.new_label} | change |",
             "|---|---|---|---|---|"]
    for row in comparison.rows:
        lines.append(f"| {row.profile} | {row.faults} | {_counts(row.old)} | {_counts(row.new)} | {row.change_text} |")
    if comparison.same_settings:
        lines += ["", f"Settings: {comparison.same_settings}."]
    elif comparison.releases and comparison.old_settings and comparison.new_settings:
        lines += ["", "Settings read back in the machines: " + "; ".join(
            f"{label}: {', '.join(settings)}" for label, settings in ((comparison.old_label, comparison.old_settings),
                                                                      (comparison.new_label, comparison.new_settings)))]
    lines += ["", f"A change is better/worse only at p < {ALPHA} (Fisher's exact test on the share of trials "
                  f"that corrupted or lost acknowledged data); `{WRITES_LOST} N` counts the acknowledged writes lost. "
                  "No change seen is inconclusive when these counts could not have detected a difference of "
                  f"{DETECTABLE_LIMIT:.0%} of trials."]
    return "\n".join(lines) + "\n"


def _counts(g: GroupSummary | None) -> str:
    if g is None:
        return "-"
    parts = [f"{v.value} {g.count(v)}" for v in VERDICTS if g.count(v)]
    lost = f", {WRITES_LOST} {g.writes_lost}" if g.writes_lost else ""
    return ", ".join(parts) + lost + f" (n={g.trials})"


__all__ = ["ALPHA", "DETECTABLE_LIMIT", "REPLAY_FIGURES", "Comparison", "ComparisonRow", "compare_runs", "comparison_markdown",
           "comparison_of", "could_detect", "detectable", "fisher_exact", "render_comparison", "replay_lines"]


# What `repro replay` compares between a trial and its replay.
REPLAY_FIGURES = ("verdict", "acked", "lost_acked", "integrity")


def replay_lines(original: TrialRecord, replayed: TrialRecord | None, crash_class: str) -> list[str]:
    """The original trial's verdict and figures beside the replay's, and whether they differ."""
    def figures(record: TrialRecord) -> str:
        return ", ".join(f"{name} {_figure(record, name)}" for name in REPLAY_FIGURES)

    lines = [f"original: {figures(original)}"]
    if replayed is None:
        return lines + ["replay:   no record (the replay did not finish)"]
    lines.append(f"replay:   {figures(replayed)}")
    differ = [name for name in REPLAY_FIGURES if _figure(original, name) != _figure(replayed, name)]
    lines.append(f"DIFFERENT: {', '.join(differ)}" if differ else "same verdict and figures")
    if crash_class == "process":
        lines.append("note: a process-fault replay is approximate: the seed and fault schedule are the same, but "
                     "where the fault lands among the writes depends on timing")
    else:
        lines.append("note: a replay is approximate: the seed, fault schedule and the lossy disk's choices are the "
                     "same, but the timing of the writes is not")
    return lines


def _figure(record: TrialRecord, name: str) -> str:
    value = getattr(record, name)
    return str(value.value if hasattr(value, "value") else value)
