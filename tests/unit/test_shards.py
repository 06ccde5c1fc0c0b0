"""Shards: the K-th of N deterministic parts, and a merge that gives back the unsharded run trial for trial."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from repro.errors import ScenarioError
from repro.oracle.verdicts import Verdict
from repro.report.records import RunMeta, RunResult, TrialRecord
from repro.report.outcome import outcome
from repro.report.render import read_run, write_all
from repro.scenario import FaultSpec, StoreSpec, WorkloadSpec, expand, replay_command
from repro.shards import Shard, interleave, merge_runs, run_options
from test_report import rec

COMMAND = "repro matrix --faults sigkill,sigterm --presets legacy,ns506 --trials 3 --seed 9"


def test_parse_select_and_interleave_are_inverse() -> None:
    assert Shard.parse("2/3") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    for bad in ("0/2", "3/2", "1/0", "x", "1/2/3"):
        with pytest.raises(ScenarioError):
            Shard.parse(bad)
    items = list(range(11))
    for n in range(1, 6):
        parts = [Shard(k, n).select(items) for k in range(1, n + 1)]
        assert sorted(sum(parts, [])) == items and interleave(parts) == items
    with pytest.raises(ScenarioError, match="has no trials"):
        Shard(5, 5).select(items[:3])


def test_shards_expand_the_same_trials_with_the_same_ids_and_seeds() -> None:
    stores = [StoreSpec("legacy"), StoreSpec("ns506")]
    full = expand(["fly-256"], [("sigkill",), ("sigterm",)], stores, 3, 9, WorkloadSpec())
    again = expand(["fly-256"], [("sigkill",), ("sigterm",)], stores, 3, 9, WorkloadSpec())
    parts = [Shard(k, 4).select(again) for k in range(1, 5)]
    assert interleave(parts) == full
    assert {s.store.preset for s in parts[0]} == {"legacy", "ns506"}  # each shard gets a share of every store
    assert FaultSpec.parse("sigkill") in {f for s in parts[0] for f in s.faults}


def trials() -> list[TrialRecord]:
    out = []
    for n, (fault, preset) in enumerate([(f, p) for f in ("sigkill", "sigterm") for p in ("legacy", "ns506")]):
        for i in range(1, 4):
            verdict = Verdict.LOST_ACKED if (fault, preset, i) == ("sigkill", "ns506", 2) else Verdict.PASS
            tid = f"fly-256.{fault}.{preset}.{i}"
            out.append(dataclasses.replace(rec(n * 3 + i, verdict, expected=verdict is Verdict.PASS, faults=(fault,),
                                               preset=preset), id=tid, artifacts_dir=None,
                                           replay=replay_command("runs/x", tid)))
    return out


def shard_dirs(tmp_path: pathlib.Path, records: list[TrialRecord], n: int) -> list[pathlib.Path]:
    dirs = []
    for k in range(1, n + 1):
        part = Shard(k, n).select(records)
        d = tmp_path / f"shard-{k}"
        failing = [t for t in part if t.verdict is not Verdict.PASS]
        for t in failing:
            (d / "trials" / t.id).mkdir(parents=True)
            (d / "trials" / t.id / "ledger.jsonl").write_text("{}\n")
        part = [dataclasses.replace(t, artifacts_dir=str(d / "trials" / t.id)) if t in failing else t for t in part]
        meta = RunMeta(run_id=f"run-{k}", seed=9, started_at=f"2026-11-29T10:0{k}:00Z",
                       command=f"{COMMAND} --shard {k}/{n} --out {d} --jobs 2", duration_s=10.0 + k,
                       compare=True, shard=f"{k}/{n}", planned=len(records))
        write_all(d, RunResult(meta, tuple(part)))
        dirs.append(d)
    return dirs


def test_merge_of_shards_equals_the_unsharded_run(tmp_path: pathlib.Path) -> None:
    records = trials()
    dirs = shard_dirs(tmp_path, records, 3)
    out = tmp_path / "merged"
    merged = merge_runs([(d, read_run(d)) for d in reversed(dirs)], out)  # any order on the command line
    assert [t.id for t in merged.trials] == [t.id for t in records]
    for got, want in zip(merged.trials, records):
        assert (got.seed, got.verdict, got.scenario, got.faults, got.preset) == \
               (want.seed, want.verdict, want.scenario, want.faults, want.preset)
        assert got.replay == replay_command(out, got.id)
    lost = next(t for t in merged.trials if t.verdict is Verdict.LOST_ACKED)
    assert lost.artifacts_dir == str(out / "trials" / lost.id)
    assert (out / "trials" / lost.id / "ledger.jsonl").is_file()
    assert replay_command(out, lost.id) in (out / "trials" / lost.id / "replay.sh").read_text()
    meta = merged.meta
    assert (meta.seed, meta.planned, meta.shard, meta.compare) == (9, 12, "", True)
    assert meta.merged_from == ("run-1", "run-2", "run-3") and meta.duration_s == 13.0
    assert meta.command == COMMAND and meta.started_at == "2026-11-29T10:01:00Z"
    assert outcome(merged).code == 1  # the broken promise, recomputed from the merged trials


def test_merge_refuses_what_is_not_one_whole_run(tmp_path: pathlib.Path) -> None:
    records = trials()
    dirs = shard_dirs(tmp_path, records, 3)
    runs = [(d, read_run(d)) for d in dirs]
    with pytest.raises(ScenarioError, match="exactly once"):
        merge_runs(runs[:2], tmp_path / "m")
    with pytest.raises(ScenarioError, match="exactly once"):
        merge_runs(runs + runs[:1], tmp_path / "m")
    other_seed = (dirs[1], dataclasses.replace(runs[1][1], meta=dataclasses.replace(runs[1][1].meta, seed=10)))
    with pytest.raises(ScenarioError, match="another run"):
        merge_runs([runs[0], other_seed, runs[2]], tmp_path / "m")
    short = (dirs[2], RunResult(runs[2][1].meta, runs[2][1].trials[:-1]))
    with pytest.raises(ScenarioError, match="interrupted"):
        merge_runs([runs[0], runs[1], short], tmp_path / "m")
    other_options = (dirs[0], dataclasses.replace(runs[0][1], meta=dataclasses.replace(
        runs[0][1].meta, command=runs[0][1].meta.command.replace("--trials 3", "--trials 4"))))
    with pytest.raises(ScenarioError, match="other options"):
        merge_runs([other_options, runs[1], runs[2]], tmp_path / "m")
    unsharded = (dirs[0], dataclasses.replace(runs[0][1], meta=dataclasses.replace(runs[0][1].meta, shard="")))
    with pytest.raises(ScenarioError, match="not a shard"):
        merge_runs([unsharded], tmp_path / "m")


def test_run_options_leave_out_where_a_shard_wrote() -> None:
    assert run_options("repro run --seed 1 --shard 1/2 --out=x --json y.json --jobs 2 --fail-on regression") == \
        ["repro", "run", "--seed", "1"]
