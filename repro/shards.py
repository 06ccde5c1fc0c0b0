"""One run split across machines: ``--shard K/N`` runs the K-th of N deterministic parts, `repro merge`
puts their reports back together as if one machine had run them all.

A run's trials (and each trial's id and seed) follow from its options and its seed alone, so
every shard expands the same list and keeps every N-th trial, starting at the K-th: each
shard gets a share of every fault and store, and the shards' trials interleave back into
the unsharded order. Shards need an explicit ``--seed`` (a random one would differ per shard).
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import shlex
import shutil
from dataclasses import dataclass, replace
from typing import Sequence, TypeVar

from repro.errors import ScenarioError
from repro.report.outdir import write_error
from repro.report.records import FailOn, RunMeta, RunResult, TrialRecord
from repro.scenario import replay_command

_T = TypeVar("_T")
# Options that say where one shard's reports went, not what it ran: left out when shards are compared.
_PLACE_OPTIONS = ("--shard", "--out", "--json", "--fail-on", "--jobs")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based: K of K/N
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ScenarioError(f"--shard takes K/N (the K-th of N parts, 1 <= K <= N), not {text!r}")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 1 <= index <= count:
            raise ScenarioError(f"--shard {text}: K must be between 1 and N (N >= 1)")
        return cls(index, count)

    def select(self, items: Sequence[_T]) -> list[_T]:
        """Every N-th item, starting at the K-th (the same items whatever machine asks)."""
        chosen = list(items[self.index - 1::self.count])
        if not chosen:
            raise ScenarioError(f"shard {self} has no trials: the run has only {len(items)}")
        return chosen


def interleave(parts: Sequence[Sequence[_T]]) -> list[_T]:
    """The inverse of ``select`` over all shards: parts[k] is shard k+1's items, in order."""
    out: list[_T] = []
    for position in range(max((len(p) for p in parts), default=0)):
        out += [part[position] for part in parts if position < len(part)]
    return out


def run_options(command: str) -> list[str]:
    """A run's command line without the options that only place or gate one shard's output."""
    words, out, skip = shlex.split(command), [], False
    for word in words:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in _PLACE_OPTIONS:
            skip = "=" not in word
            continue
        out.append(word)
    return out


def check_shards(runs: Sequence[tuple[pathlib.Path, RunResult]]) -> list[tuple[Shard, tuple[pathlib.Path, RunResult]]]:
    """The shards of one whole run, each exactly once, in shard order (ScenarioError if they are not):
    checked before `repro merge` touches its --out."""
    if not runs:
        raise ScenarioError("repro merge needs at least one report directory")
    metas = [run.meta for _, run in runs]
    shards = []
    for (path, _), meta in zip(runs, metas):
        if not meta.shard:
            raise ScenarioError(f"{path} is not a shard (run with --shard K/N)")
        shards.append(Shard.parse(meta.shard))
    count = shards[0].count
    if any(s.count != count for s in shards):
        raise ScenarioError(f"the reports are shards of different splits: {', '.join(str(s) for s in shards)}")
    if sorted(s.index for s in shards) != list(range(1, count + 1)):
        raise ScenarioError(f"need each of the {count} shards exactly once, got {', '.join(str(s) for s in shards)}")
    first = metas[0]
    for (path, _), meta in zip(runs, metas):
        if meta.seed != first.seed or meta.planned != first.planned:
            raise ScenarioError(f"{path} is a shard of another run (seed {meta.seed}, {meta.planned} trials; "
                                f"expected seed {first.seed}, {first.planned} trials)")
        if run_options(meta.command) != run_options(first.command):
            raise ScenarioError(f"{path} ran other options: {meta.command!r} vs {first.command!r}")
    ordered = sorted(zip(shards, runs), key=lambda pair: pair[0].index)
    for shard, (path, run) in ordered:
        expected = len(range(shard.index - 1, first.planned, count))
        if len(run.trials) != expected:
            raise ScenarioError(f"{path}: shard {shard} has {len(run.trials)} trials, not {expected} "
                                "(interrupted? run it again)")
    ids = [t.id for _, (_, run) in ordered for t in run.trials]
    if len(set(ids)) != len(ids):
        raise ScenarioError("two shards hold the same trial id")
    return ordered


def merge_runs(runs: Sequence[tuple[pathlib.Path, RunResult]], out: pathlib.Path,
               fail_on: Sequence[FailOn] | None = None) -> RunResult:
    """One RunResult from every shard of a run (each exactly once), trials in the unsharded order, their
    artifacts copied under ``out/trials`` and their replay commands pointing there (ReportWriteError
    if the disk refuses)."""
    ordered = check_shards(runs)
    metas = [run.meta for _, run in runs]
    first = metas[0]
    try:
        trials = interleave([[_moved(rec, path, out) for rec in run.trials] for _, (path, run) in ordered])
    except OSError as exc:
        raise write_error(out, exc) from None
    started = min(m.started_at for m in metas)
    meta = RunMeta(
        run_id=f"merged-{dt.datetime.now().strftime('%Y%m%d%H%M%S')}", seed=first.seed, started_at=started,
        command=shlex.join(run_options(first.command)), duration_s=max(m.duration_s for m in metas),
        lab_version=first.lab_version,
        sqlite_version=", ".join(sorted({v for m in metas for v in m.sqlite_version.split(", ") if v})),
        compare=first.compare, fail_on=tuple(fail_on) if fail_on is not None else first.fail_on,
        planned=first.planned, merged_from=tuple(run.meta.run_id for _, (_, run) in ordered),
        stores=tuple(dict.fromkeys(s for m in metas for s in m.stores)))  # shards that ran other code: both lines
    return RunResult(meta, tuple(trials))


def _moved(record: TrialRecord, source: pathlib.Path, out: pathlib.Path) -> TrialRecord:
    """The record with its evidence copied from the shard's directory into the merged one."""
    artifacts = record.artifacts_dir
    evidence = source / "trials" / record.id
    if evidence.is_dir():
        target = out / "trials" / record.id
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(evidence, target)
        (target / "replay.sh").write_text("#!/bin/sh\n" + replay_command(out, record.id) + "\n")
        artifacts = str(target)
    return replace(record, artifacts_dir=artifacts, replay=replay_command(out, record.id))
