"""Findings as orderings: a finding shrunk along its model's axis names the operation that must persist first,
and the findings of one cause group into one sentence."""

from __future__ import annotations

import pathlib

from repro.explore.check import Checker, ChunkStats, StateResult
from repro.explore.models import PersistenceModel as M
from repro.explore.orderings import Explainer, explain
from repro.explore.space import StateSpace
from repro.ledger import Ledger
from repro.lossyfs.trace import TraceWriter
from repro.oracle.verdicts import Verdict
from test_explore_states import A, B, trace
from test_explore_support import recorded_run


def three_writes(tw: TraceWriter) -> None:
    tw.mark("ready 0")
    tw.create(B, "b")              # seq 2
    tw.write(A, "a", 0, b"x")      # seq 3
    tw.write(B, "b", 0, b"y")      # seq 4
    tw.write(A, "a", 9, b"z")      # seq 5
    tw.unlink(B, "b")              # seq 6
    tw.fsync(A, "a", True)         # seq 7


def test_a_prefix_finding_names_what_must_persist_before_what(tmp_path: pathlib.Path) -> None:
    t = trace(tmp_path, three_writes)
    space = StateSpace(t, (M.PREFIX, M.LAZY_DIRS))
    point = t.points[4]  # after seq 5: seq 3, 4, 5 un-synced; prefix states 0..3
    assert [t.describe(p) for p in point.unsynced] == ["seq 3 write a 1@0", "seq 4 write b 1@0", "seq 5 write a 1@9"]
    explainer = Explainer(space, Ledger(()))
    idx = [space.index_of(M.PREFIX, point, (k, 0, 0)) for k in range(4)]
    assert explainer.siblings(space.spec(M.PREFIX, idx[2])) == idx
    bad = {idx[0]: Verdict.PASS, idx[1]: Verdict.CORRUPT, idx[2]: Verdict.CORRUPT, idx[3]: Verdict.PASS}
    said = explainer.sentence(space.spec(M.PREFIX, idx[2]), bad, Verdict.CORRUPT, numbered=True)
    assert said == "corrupt: write a (seq 5, no ledger operation) must persist before write a (seq 3, no ledger operation)"
    assert explainer.sentence(space.spec(M.PREFIX, idx[2]), bad, Verdict.CORRUPT, numbered=False) == \
        "corrupt: write a must persist before write a"
    never = {**bad, idx[3]: Verdict.CORRUPT}  # nothing later repairs it
    assert "persisted before its fsync" in explainer.sentence(space.spec(M.PREFIX, idx[2]), never, Verdict.CORRUPT,
                                                               numbered=False)
    # lazy entries after the unlink: 0, 1 or 2 of the create/unlink durable
    last = t.points[5]
    lazy = [space.index_of(M.LAZY_DIRS, last, (0, 0, e)) for e in range(3)]
    verdicts = {lazy[0]: Verdict.LOST_ACKED, lazy[1]: Verdict.LOST_ACKED, lazy[2]: Verdict.PASS}
    said = explainer.sentence(space.spec(M.LAZY_DIRS, lazy[0]), verdicts, Verdict.LOST_ACKED, numbered=True)
    assert said == "acknowledged writes lost: unlink b (seq 6, no ledger operation) must persist before the crash", said


def test_findings_of_one_cause_read_as_few_orderings(tmp_path: pathlib.Path) -> None:
    """Known bad: a disk that acknowledges commits without their fsync (the store's WAL never synced)."""
    traced = recorded_run(tmp_path, commits=10, lying_fsync_from=4)
    models = (M.SYNCED_ONLY, M.PREFIX)
    checker = Checker(traced, models, str(tmp_path))
    try:
        space = checker.space
        results = [checker.check(m, i, ChunkStats()) for m in models for i in range(space.total(m))]
        found = [r for r in results if r.verdict is Verdict.LOST_ACKED]
        asked: list[tuple[str, int]] = []

        def check(refs: list[tuple[str, int]]) -> list[StateResult]:
            asked.extend(refs)
            return [checker.check(M.parse(m), i, ChunkStats()) for m, i in refs]

        orderings = explain(space, traced.ledger(), results, check, limit=8, seed=1)
    finally:
        checker.close()
    assert len(found) > 8 and orderings
    per_model = [sum(1 for r in found if r.model is m) for m in models]
    assert sum(o.states for o in orderings) == sum(min(8, n) for n in per_model)  # at most 8 per model
    assert len(orderings) == 2, orderings  # one cause per model: the WAL's missing sync
    assert all("a sync is missing before write state.db-wal" in o.sentence and "append_message" in o.detail
               for o in orderings), orderings
    assert not asked  # every sibling along a prefix here was checked already: nothing new to check


def test_an_allowed_loss_says_where_the_acknowledged_write_lived(tmp_path: pathlib.Path) -> None:
    """WAL + NORMAL's tail: commits acknowledged after the last WAL sync are lost as allowed; the sentence names
    the un-synced WAL write that held the first of them. Nothing is checked again for it."""
    traced = recorded_run(tmp_path, commits=8, lying_fsync_from=4, synchronous=1)
    checker = Checker(traced, (M.PREFIX,), str(tmp_path))
    try:
        results = [checker.check(M.PREFIX, i, ChunkStats()) for i in range(checker.space.total(M.PREFIX))]
        orderings = explain(checker.space, traced.ledger(), results, lambda refs: [], limit=4, seed=1)
    finally:
        checker.close()
    losses = [r for r in results if r.verdict is Verdict.EXPECTED_LOSS]
    assert losses and not any(r.verdict in (Verdict.CORRUPT, Verdict.LOST_ACKED) for r in results)
    assert [(o.sentence, o.states) for o in orderings] == [
        ("allowed loss: acknowledged append_message lives only in the un-synced write state.db-wal", 4)], orderings
    assert "append_message" in orderings[0].detail and "(seq " in orderings[0].detail


def test_a_combined_finding_that_needs_no_data_is_laid_to_the_entries(tmp_path: pathlib.Path) -> None:
    t = trace(tmp_path, three_writes)
    model = M.parse("dirs=lazy+data=prefix")
    space = StateSpace(t, (model,))
    last = t.points[5]  # after the unlink: seq 3 and 5 un-synced (b has no name), create and unlink pending
    explainer = Explainer(space, Ledger(()))
    at = lambda d, e: space.index_of(model, last, (d, 0, e))  # noqa: E731
    verdicts = {at(d, e): Verdict.LOST_ACKED if e < 2 else Verdict.PASS for d in range(3) for e in range(3)}
    spec = space.spec(model, at(1, 0))
    assert set(explainer.siblings(spec)) == {at(d, 0) for d in range(3)} | {at(1, e) for e in range(3)}
    said = explainer.sentence(spec, verdicts, Verdict.LOST_ACKED, numbered=True)
    assert said == "acknowledged writes lost: unlink b (seq 6, no ledger operation) must persist before the crash"
