"""Crash during recovery without a machine: a reopen's trace judged where its first state was, a repair that
empties a table for a moment caught only by the states in between, which states are reopened, and the
store a recording names given back to a reopen machine."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from repro.errors import ScenarioError
from repro.explore.check import Checker, ChunkStats, JudgedAt, StateResult
from repro.explore.models import PRESETS, PersistenceModel as M
from repro.explore.reopen import store_of
from repro.explore.second import (ALLOWED_LOSS, FINDING, FIRST_FILE, SAMPLED, FirstLevel, choose, read_first,
                                  worse)
from repro.explore.tracedir import Recording, TraceDir, write_recording
from repro.oracle.verdicts import Verdict
from repro.scenario import StoreSpec
from test_explore_support import SnapshotRecorder
from test_verify_support import FakeWorkload

SYNCED = PRESETS["synced-only"]


def _reopen_trace(root: pathlib.Path, *, repair_empties: bool) -> tuple[TraceDir, FirstLevel]:
    """Five acknowledged messages; the trace starts from that database (the first-level state) and records a
    'repair': the messages copied out and the table emptied in one commit, copied back in the next."""
    data, out = root / "data", root / "reopen"
    data.mkdir(parents=True)
    out.mkdir()
    w = FakeWorkload(data / "state.db", journal_mode="delete", synchronous=2)
    w.create_session("s1")
    for n in range(5):
        w.append("s1", f"message {n}")
    w.conn.execute("CREATE TABLE IF NOT EXISTS kept AS SELECT 1 AS one")  # a change the repair makes either way
    rec = SnapshotRecorder(data, out / "trace.jsonl")
    rec.writer.mark("ready 0")
    if repair_empties:
        w.sql("CREATE TABLE messages_copy AS SELECT * FROM messages")
        w.sql("DELETE FROM messages")
        rec.step()
        w.sql("INSERT INTO messages SELECT * FROM messages_copy")
        w.sql("DROP TABLE messages_copy")
        rec.step()
    else:
        w.sql("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
        rec.step()
    w.close()
    rec.close()
    write_recording(out, Recording(source="test_explore_second"), w.log())
    first = FirstLevel("prefix:9@abc", SAMPLED, JudgedAt(acked=6, next_ack=None, wal_sync_ack=0, dir_sync_ack=0,
                                                           lazy_dirs=False), "pass", None, ())
    (out / FIRST_FILE).write_text(first.to_json())
    return TraceDir.open(out), first


@pytest.mark.parametrize("repair_empties", [True, False])
def test_a_reopen_that_empties_a_table_for_a_moment_is_worse_only_in_between(tmp_path: pathlib.Path,
                                                                             repair_empties: bool) -> None:
    trace, first = _reopen_trace(tmp_path, repair_empties=repair_empties)
    assert read_first(trace.path) == first
    checker = Checker(trace, (SYNCED,), judged_at=first.at)
    try:
        results = [checker.check(SYNCED, i, ChunkStats()) for i in range(checker.space.total(SYNCED))]
    finally:
        checker.close()
    assert [r.verdict for r in results if r.verdict is Verdict.ERROR] == []
    found = [worse(first, r) for r in results]
    assert found[0] is None and found[-1] is None  # before the reopen, and once it completed: all five rows
    if repair_empties:  # between the two commits the table is empty: five acknowledged rows gone
        between = [n for n, r in enumerate(results) if r.regressed]
        assert between and all(results[n].regressed == (1, 2, 3, 4, 5) for n in between)
        # the counter says 5 and no row is left: the store's health check calls it corrupt, and the five
        # acknowledged appends (ledger 2..6) are lost
        assert all(results[n].verdict is Verdict.CORRUPT and results[n].lost == (2, 3, 4, 5, 6) for n in between)
        assert all("lost 5 message row(s) the interrupted state held" in str(found[n]) for n in between)
        assert [n for n, how in enumerate(found) if how is not None] == between
    else:
        assert found == [None] * len(results)
    # judged at the reopen's own crash point instead (nothing acknowledged since its ready mark), the same states
    # lose no acknowledged write: where a state is judged decides its verdict
    own = Checker(trace, (SYNCED,))
    try:
        at_own_point = [own.check(SYNCED, i, ChunkStats()) for i in range(own.space.total(SYNCED))]
    finally:
        own.close()
    assert all(r.lost == () and r.regressed == () for r in at_own_point)
    assert [r.lost for r in results] != [r.lost for r in at_own_point] or not repair_empties


def _result(model: M, index: int, verdict: Verdict, *, expected: bool = True, lost: tuple[int, ...] = (),
            regressed: tuple[int, ...] = ()) -> StateResult:
    return StateResult(model, index, index, index, verdict, expected, 5, lost, (), "why", True, regressed)


def test_the_states_reopened_are_findings_then_allowed_losses_then_a_seeded_sample() -> None:
    prefix = PRESETS["prefix"]
    results = [_result(prefix, i, Verdict.PASS) for i in range(40)]
    results[7] = _result(prefix, 7, Verdict.CORRUPT, expected=False)
    results[9] = _result(prefix, 9, Verdict.EXPECTED_LOSS, lost=(5,))
    results[11] = _result(prefix, 11, Verdict.ERROR, expected=False)
    chosen = choose(results, 4, seed=3)
    assert [(r.index, why) for r, why in chosen[:2]] == [(7, FINDING), (9, ALLOWED_LOSS)]
    assert all(why == SAMPLED and r.verdict is Verdict.PASS for r, why in chosen[2:]) and len(chosen) == 4
    assert chosen == choose(results, 4, seed=3) and chosen != choose(results, 4, seed=4)
    assert 11 not in {r.index for r, _ in choose(results, 40, seed=3)}  # a lab error is never reopened


def test_worse_is_a_broken_promise_a_corruption_or_a_row_the_first_state_held() -> None:
    prefix = PRESETS["prefix"]
    kept = FirstLevel("prefix:1@x", SAMPLED, JudgedAt(5, None, 0, 0, False), "pass", None, ())
    lossy = dataclasses.replace(kept, verdict="expected-loss", lost=(5,))
    broken = dataclasses.replace(kept, verdict="corrupt", kind="corrupt")
    assert worse(kept, _result(prefix, 1, Verdict.PASS)) is None
    assert "lost-acked where the interrupted state kept its promise" in str(
        worse(kept, _result(prefix, 1, Verdict.LOST_ACKED, expected=False, lost=(5,))))
    assert "corrupt where the interrupted state was expected-loss" in str(
        worse(lossy, _result(prefix, 1, Verdict.CORRUPT, expected=True)))
    assert "2 message row(s)" in str(worse(lossy, _result(prefix, 1, Verdict.EXPECTED_LOSS, lost=(5,),
                                                          regressed=(3, 4))))
    assert worse(broken, _result(prefix, 1, Verdict.CORRUPT, expected=False)) is None  # no worse than it was
    assert worse(kept, _result(prefix, 1, Verdict.ERROR, expected=False)) is None  # a lab error, counted apart
    assert FirstLevel.from_json(lossy.to_json()) == lossy
    with pytest.raises(ScenarioError, match="not a first-level state"):
        FirstLevel.from_json('{"state": "prefix:1"}')


@pytest.mark.parametrize("store", [
    StoreSpec("durable"), StoreSpec("ns506", "delete", "normal"), StoreSpec("own", store_path="/s"),
    StoreSpec("legacy", checkpoint_mode="truncate", wal_autocheckpoint=0),
])
def test_a_reopen_runs_the_store_its_recording_ran(store: StoreSpec) -> None:
    again = store_of(Recording(store_env=store.environment(), store_path=store.store_path))
    assert again.environment() == store.environment() and again.store_path == store.store_path


def test_settings_the_lab_never_sets_are_refused() -> None:
    with pytest.raises(ScenarioError, match="not ones the lab sets"):
        store_of(Recording(store_env={"HERMES_STATE_PRESET": "durable", "HERMES_STATE_SYNCHRONOUS": "FULL"}))


def test_a_reopen_s_level_counts_what_was_chosen_and_judges_the_completed_reopen_apart() -> None:
    """The completed reopen (its last crash point) is always judged: a store whose open deletes a row with no
    crash at all is worse there too, and the report says so even when the sample never reached that point."""
    from repro.explore.second import summarize

    prefix = PRESETS["prefix"]
    kept = FirstLevel("prefix:1@x", SAMPLED, JudgedAt(5, None, 0, 0, False), "pass", None, ())
    sampled = [_result(prefix, 0, Verdict.PASS), _result(prefix, 3, Verdict.PASS, regressed=(1,))]
    last = _result(SYNCED, 9, Verdict.PASS, regressed=(1,))
    verdicts, found, completed, completed_worse, errors = summarize(
        kept, [*sampled, last], last, {("prefix", 0), ("prefix", 3)}, lambda r: f"{r.model.value}:{r.index}")
    assert verdicts == {"pass": 2} and [s for s, _ in found] == ["prefix:3"] and errors == 0
    assert completed == "pass" and "lost 1 message row(s)" in str(completed_worse)
    assert summarize(kept, sampled, None, {("prefix", 0)}, str)[2:4] == (None, None)


def test_the_completed_reopen_is_synced_only_at_the_last_crash_point(tmp_path: pathlib.Path) -> None:
    """check_reopen finds the completed reopen as synced-only's state numbered as the last crash point."""
    from repro.explore.space import StateSpace
    from repro.explore.timeline import Timeline

    trace, _ = _reopen_trace(tmp_path, repair_empties=True)
    timeline = Timeline(trace.reader())
    last = len(timeline.points) - 1
    spec = StateSpace(timeline, (SYNCED,)).spec(SYNCED, last)
    assert spec.point.index == last and spec.point.pos == len(timeline.ops)


@pytest.mark.parametrize(("first_json", "argv", "words"), [
    (None, ["--recovery", "1"], ("is a reopen's trace", "--recovery reopens the states of a workload's trace")),
    ('{"state": 1}', [], ("first.json: not a first-level state",)),
])
def test_a_reopen_s_trace_is_refused_where_it_cannot_be_used_in_one_line(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        first_json: str | None, argv: list[str], words: tuple[str, ...]) -> None:
    from repro.cli import main

    trace, _ = _reopen_trace(tmp_path, repair_empties=False)
    if first_json is not None:
        (trace.path / FIRST_FILE).write_text(first_json)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # nothing may reach an engine
    assert main(["explore", str(trace.path), *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_a_level_whose_only_worse_state_is_the_completed_reopen_is_worse_and_blames_the_store() -> None:
    from repro.explore.second import SecondLevel

    kept = FirstLevel("prefix:1@x", SAMPLED, JudgedAt(5, None, 0, 0, False), "pass", None, ())
    level = SecondLevel(kept, "t", "s", 4, 5, 10, 10, {"pass": 10}, (), "lost 1 message row(s) the interrupted "
                        "state held (ids 1)", 0, 1.0, completed="pass")
    assert level.is_worse and level.made_worse == 0
    assert level.sentence() == ("the completed reopen, with no crash, lost 1 message row(s) the interrupted state "
                                "held (ids 1): the store's own doing")
    assert not dataclasses.replace(level, completed_worse=None).is_worse
