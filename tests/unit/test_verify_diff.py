"""The verifier flags hand-made bad databases: torn page, lost acked rows, counters, phantoms."""

from __future__ import annotations

import pathlib
import sqlite3

import pytest

from repro.ledger import Ledger, Operation, OpKind, Outcome
from repro.oracle.verdicts import Verdict, judge
from repro.verify.diff import PhantomKind, Verification, diff
from repro.verify.facts import Check, CheckStatus, MessageRow, ProbeFacts, SessionRow
from repro.verify.probe import collect
from test_verify_support import FakeWorkload, sha, standard_run, tear_page


def verify(w: FakeWorkload) -> Verification:
    ledger = w.ledger()
    w.close()
    return diff(ledger, collect(w.path, open_store=False))


def test_clean_run_has_no_findings(tmp_path: pathlib.Path) -> None:
    v = verify(standard_run(tmp_path / "state.db"))
    assert v.acked == 18
    assert (v.lost, v.phantoms, v.mismatches, v.indeterminate) == ((), (), (), ())
    assert not v.corrupt and v.loss_is_suffix


def test_torn_page_is_damage(tmp_path: pathlib.Path) -> None:
    w = FakeWorkload(tmp_path / "state.db", journal_mode="delete")
    w.create_session("s1")
    for n in range(300):
        w.append("s1", f"row {n} " + "z" * 400)
    ledger = w.ledger()
    w.close()
    tear_page(w.path)
    v = diff(ledger, collect(w.path, open_store=False))
    assert v.corrupt and not v.health.integrity_ok
    assert any(p.startswith("integrity_check") for p in v.health.problems)


def test_missing_acknowledged_row(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    # the commit of message 3 rolled back: row and counter both gone, consistently
    w.sql("DELETE FROM messages WHERE id = 3")
    w.sql("UPDATE sessions SET message_count = message_count - 1 WHERE id = 's1'")
    v = verify(w)
    assert v.lost_acked == 1
    lost = v.lost[0]
    assert (lost.kind, lost.session_id, lost.detail) == (OpKind.APPEND_MESSAGE, "s1", "message 3 missing")
    assert not v.corrupt
    assert not v.loss_is_suffix  # later acked writes survived


def test_lost_tail_is_a_suffix(tmp_path: pathlib.Path) -> None:
    w = FakeWorkload(tmp_path / "state.db")
    w.create_session("s1")
    w.append("s1", "a")
    last = w.append("s1", "b")
    w.sql("DELETE FROM messages WHERE id = ?", (last,))
    w.sql("UPDATE sessions SET message_count = 1")
    v = verify(w)
    assert v.lost_acked == 1 and v.loss_is_suffix


def test_content_changed_under_the_same_id_is_lost_and_phantom(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    w.sql("UPDATE messages SET content = 'other' WHERE id = 1")
    v = verify(w)
    assert [x.detail for x in v.lost] == ["message 1 holds other content or session"]
    assert [(p.kind, p.key) for p in v.phantoms] == [(PhantomKind.MESSAGE, "1")]
    assert v.corrupt


def test_session_counter_disagrees_with_its_messages(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    w.sql("UPDATE sessions SET message_count = message_count + 1 WHERE id = 's1'")
    v = verify(w)
    assert v.lost == ()
    assert [(m.session_id, m.field, m.recorded) for m in v.mismatches] == [("s1", "message_count", "7")]
    assert v.corrupt


def test_phantom_row(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    w.sql("INSERT INTO messages(session_id, role, content, timestamp) VALUES ('s1', 'user', 'ghost', 0)")
    w.sql("UPDATE sessions SET message_count = message_count + 1 WHERE id = 's1'")
    v = verify(w)
    assert len(v.phantoms) == 1
    p = v.phantoms[0]
    assert (p.kind, p.session_id, p.detail) == (PhantomKind.MESSAGE, "s1", "no invoked append wrote it")
    assert v.mismatches == () and v.corrupt


def test_row_of_a_failed_append_is_a_phantom(tmp_path: pathlib.Path) -> None:
    w = FakeWorkload(tmp_path / "state.db")
    w.create_session("s1")
    w.append("s1", "refused", outcome="fail", applied=True)
    v = verify(w)
    assert [p.detail for p in v.phantoms] == ["matches failed op 2"]


def test_phantom_session(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    w.sql("INSERT INTO sessions(id, source, started_at) VALUES ('nobody', 'x', 0)")
    v = verify(w)
    assert [(p.kind, p.key) for p in v.phantoms] == [(PhantomKind.SESSION, "nobody")]


def test_indeterminate_ops_resolved_both_ways(tmp_path: pathlib.Path) -> None:
    w = FakeWorkload(tmp_path / "state.db")
    w.create_session("s1")
    w.append("s1", "landed", outcome="info", applied=True)
    w.append("s1", "never landed", outcome="info", applied=False)
    w.tokens("s1", 3, 4, outcome="info", applied=True)
    w.create_session("s2", outcome="info", applied=False)
    w.end("s1", "crash", outcome="info", applied=False)
    v = verify(w)
    found = {r.op_index: r.found for r in v.indeterminate}
    assert found == {2: True, 3: False, 4: True, 5: False, 6: False}
    assert v.lost == () and v.phantoms == () and not v.corrupt


def test_lost_token_increment_and_end_reason(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    w.sql("UPDATE sessions SET input_tokens = input_tokens - 10, output_tokens = output_tokens - 20 WHERE id = 's1'")
    w.sql("UPDATE sessions SET end_reason = NULL, ended_at = NULL WHERE id = 's2'")
    v = verify(w)
    kinds = sorted((x.kind.value, x.session_id) for x in v.lost)
    assert kinds == [("end_session", "s2"), ("update_token_counts", "s1")]
    # the kindest reading of a deficit of one increment: the last one rolled back
    token_loss = next(x for x in v.lost if x.kind is OpKind.UPDATE_TOKENS)
    last_token_op = max(op.index for op in w.ledger().acked
                        if op.kind is OpKind.UPDATE_TOKENS and op.args["session_id"] == "s1")
    assert token_loss.op_index == last_token_op


def test_tokens_beyond_any_history_are_a_mismatch(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    w.sql("UPDATE sessions SET input_tokens = input_tokens + 1 WHERE id = 's2'")
    v = verify(w)
    assert [(m.session_id, m.field) for m in v.mismatches] == [("s2", "input_tokens")]
    assert v.corrupt


def test_acked_session_missing(tmp_path: pathlib.Path) -> None:
    w = FakeWorkload(tmp_path / "state.db")
    w.create_session("s1")
    w.sql("DELETE FROM sessions WHERE id = 's1'")
    v = verify(w)
    assert [(x.kind, x.detail) for x in v.lost] == [(OpKind.CREATE_SESSION, "session missing")]


def test_missing_database_loses_every_acked_write_but_is_not_damage(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    ledger = w.ledger()
    w.close()
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    v = diff(ledger, collect(tmp_path / "state.db"))
    assert v.lost_acked == v.acked == 18
    assert not v.health.damaged and v.health.integrity == "missing"


def test_database_without_a_schema_loses_every_acked_write_but_is_not_damage(tmp_path: pathlib.Path) -> None:
    """A power cut before the schema's commit was synced (WAL + NORMAL) leaves a sound, empty database."""
    w = standard_run(tmp_path / "state.db")
    ledger = w.ledger()
    w.close()
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    empty = sqlite3.connect(tmp_path / "state.db")
    empty.execute("PRAGMA journal_mode=wal")  # the header written and synced, the schema not
    empty.close()
    v = diff(ledger, collect(tmp_path / "state.db", open_store=False))
    assert v.lost_acked == v.acked == 18 and v.loss_is_suffix
    assert not v.corrupt and v.health.integrity == "ok (empty: no schema)"


def test_one_table_of_the_schema_gone_is_damage(tmp_path: pathlib.Path) -> None:
    """Known bad for the case above: both tables come in one transaction, so one missing is damage."""
    w = standard_run(tmp_path / "state.db")
    ledger = w.ledger()
    w.sql("PRAGMA foreign_keys=OFF")
    w.sql("DROP TABLE sessions")
    w.close()
    v = diff(ledger, collect(tmp_path / "state.db", open_store=False))
    assert v.corrupt and any("no such table: sessions" in p for p in v.health.problems)


def test_orphan_messages_are_damage(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    w.sql("PRAGMA foreign_keys=OFF")
    w.sql("UPDATE messages SET session_id = 'gone' WHERE id = 1")
    v = verify(w)
    assert v.health.orphan_messages == 1
    assert v.health.fk_violations == 1
    assert v.corrupt


# -- what survived must be a prefix: cut-off writes read back as present count -------------

_OK = Check(CheckStatus.OK)
_WAL_NORMAL = {"journal_mode": "wal", "synchronous": 1}


def _rollback_then_cut_off(cut_off: Operation, rows: tuple[MessageRow, ...],
                           session: SessionRow) -> tuple[Ledger, ProbeFacts]:
    """Ops 1-3 acked (create s1, append "a" as id 1, append "b" as id 2), then ``cut_off`` (op 4).

    The commit of op 3 is gone from the file; ``rows``/``session`` say what else is there.
    """
    ledger = Ledger(operations=(
        Operation(1, OpKind.CREATE_SESSION, {"session_id": "s1"}, Outcome.OK),
        Operation(2, OpKind.APPEND_MESSAGE, {"session_id": "s1", "sha": sha("a")}, Outcome.OK, {"id": 1}),
        Operation(3, OpKind.APPEND_MESSAGE, {"session_id": "s1", "sha": sha("b")}, Outcome.OK, {"id": 2}),
        cut_off,
    ), ready=_WAL_NORMAL)
    facts = ProbeFacts(db_path="state.db", exists=True, integrity=_OK, foreign_keys=_OK, fk_violations=0,
                       fts=_OK, journal_mode="wal", messages=rows, sessions=(session,))
    return ledger, facts


_KEPT = MessageRow(1, "s1", sha("a"))


@pytest.mark.parametrize("case", ["append", "tokens", "end"])
def test_cut_off_write_present_after_a_lost_acked_one_is_not_a_suffix_loss(case: str) -> None:
    """Op 3 (acked) rolled back but op 4 (cut off, invoked later) made it: not a rolled-back tail."""
    if case == "append":  # SQLite hands the rolled-back rowid 2 to the next insert
        cut = Operation(4, OpKind.APPEND_MESSAGE, {"session_id": "s1", "sha": sha("c")}, Outcome.INFO)
        rows, session = (_KEPT, MessageRow(2, "s1", sha("c"))), SessionRow("s1", 2, 0, 0, None)
    elif case == "tokens":
        cut = Operation(4, OpKind.UPDATE_TOKENS, {"session_id": "s1", "input_tokens": 5, "output_tokens": 6},
                        Outcome.INFO)
        rows, session = (_KEPT,), SessionRow("s1", 1, 5, 6, None)
    else:
        cut = Operation(4, OpKind.END_SESSION, {"session_id": "s1", "end_reason": "user_exit"}, Outcome.INFO)
        rows, session = (_KEPT,), SessionRow("s1", 1, 0, 0, "user_exit")
    ledger, facts = _rollback_then_cut_off(cut, rows, session)
    v = diff(ledger, facts)
    assert [w.op_index for w in v.lost] == [3]
    assert [(r.op_index, r.found) for r in v.indeterminate] == [(4, True)]
    assert not v.corrupt
    assert v.loss_is_suffix is False
    j = judge(ledger, facts, ["power-loss"])  # WAL+NORMAL may lose only the last commits
    assert (j.verdict, j.expected) == (Verdict.LOST_ACKED, False)
    assert "not only the last commits" in j.reason


def test_cut_off_write_absent_after_lost_acked_ones_is_a_suffix_loss() -> None:
    """The same rollback with the later cut-off write gone too: a rolled-back tail, as WAL+NORMAL allows."""
    cut = Operation(4, OpKind.APPEND_MESSAGE, {"session_id": "s1", "sha": sha("c")}, Outcome.INFO)
    ledger, facts = _rollback_then_cut_off(cut, (_KEPT,), SessionRow("s1", 1, 0, 0, None))
    v = diff(ledger, facts)
    assert [w.op_index for w in v.lost] == [3]
    assert [(r.op_index, r.found) for r in v.indeterminate] == [(4, False)]
    assert not v.corrupt and v.loss_is_suffix is True
    j = judge(ledger, facts, ["power-loss"])
    assert (j.verdict, j.expected, j.lost_acked) == (Verdict.EXPECTED_LOSS, True, 1)


def test_cut_off_write_present_before_the_lost_acked_one_keeps_a_suffix_loss() -> None:
    """A write cut off earlier (an I/O error mid-run) that landed is part of the surviving prefix."""
    ledger = Ledger(operations=(
        Operation(1, OpKind.CREATE_SESSION, {"session_id": "s1"}, Outcome.OK),
        Operation(2, OpKind.APPEND_MESSAGE, {"session_id": "s1", "sha": sha("a")}, Outcome.INFO),
        Operation(3, OpKind.APPEND_MESSAGE, {"session_id": "s1", "sha": sha("b")}, Outcome.OK, {"id": 2}),
    ), ready=_WAL_NORMAL)
    facts = ProbeFacts(db_path="state.db", exists=True, integrity=_OK, foreign_keys=_OK, fk_violations=0,
                       fts=_OK, journal_mode="wal", messages=(_KEPT,), sessions=(SessionRow("s1", 1, 0, 0, None),))
    v = diff(ledger, facts)
    assert [w.op_index for w in v.lost] == [3]
    assert [(r.op_index, r.found) for r in v.indeterminate] == [(2, True)]
    assert v.loss_is_suffix is True
    assert judge(ledger, facts, ["power-loss"]).verdict is Verdict.EXPECTED_LOSS
