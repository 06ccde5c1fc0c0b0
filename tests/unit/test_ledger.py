"""The ledger read back from machine output: ok / fail / info / unknown, exactly as the workload left it."""

from __future__ import annotations

import json

import pytest

from framing import framed

from repro.ledger import LedgerError, OpKind, Outcome, encode, parse_lines
from repro.protocol import Framed, Tag, format_line, frame, read_frame
from repro.verify.crosscheck import Witnesses, channel_problems, ledger_problems
from repro.verify.facts import ProbeFacts


def body(record: dict[str, object]) -> str:
    return format_line(Tag.LEDGER, record)

# What `docker logs` of a machine looks like: s6 noise, READY, EVENT, FINISH and ledger records, framed.
MACHINE_OUTPUT = framed([
    "s6-svscan: info: starting",
    'LAB BOOT {"disk_entries":0,"services":"session-store"}',
    'READY {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 2000}',
    body({"i": 1, "t": "invoke", "op": "create_session", "args": {"session_id": "s1", "source": "cli", "model": "m"}}),
    body({"i": 1, "t": "ok", "result": {}}),
    body({"i": 2, "t": "invoke", "op": "append_message",
          "args": {"session_id": "s1", "role": "user", "sha": "ab", "length": 2, "tool_calls": False}}),
    "s6-supervise npm-cache: warning: unable to spawn ./run - waiting 10 seconds",
    'EVENT {"kind": "disk-full", "written": 1048576}',
    body({"i": 2, "t": "ok", "result": {"id": 7}}),
    body({"i": 3, "t": "invoke", "op": "append_message", "args": {"session_id": "s1"}}),
    body({"i": 3, "t": "fail", "err": "OperationalError: database or disk is full"}),
    body({"i": 4, "t": "invoke", "op": "update_token_counts", "args": {"session_id": "s1"}}),
    body({"i": 4, "t": "info", "err": "OperationalError: disk I/O error"}),
    body({"i": 5, "t": "invoke", "op": "search_messages", "args": {"query": "disk"}}),
    body({"i": 5, "t": "ok", "result": {"hits": 3}}),
    body({"i": 6, "t": "invoke", "op": "end_session", "args": {"session_id": "s1", "end_reason": "timeout"}}),
    'FINISH {"service":"session-store","exit":256,"signal":9}',
])
OK_6 = frame("gateway", 14, body({"i": 6, "t": "ok", "result": {}}))  # the gateway's next record


def test_parse_lines_builds_every_outcome() -> None:
    ledger = parse_lines(MACHINE_OUTPUT)
    ops = {op.index: op for op in ledger.operations}
    assert sorted(ops) == [1, 2, 3, 4, 5, 6]
    assert [ops[i].outcome for i in range(1, 7)] == [
        Outcome.OK, Outcome.OK, Outcome.FAIL, Outcome.INFO, Outcome.OK, Outcome.INFO]
    assert ops[2].kind is OpKind.APPEND_MESSAGE and ops[2].result == {"id": 7}
    assert ops[2].args["session_id"] == "s1"
    assert ops[3].error == "OperationalError: database or disk is full"
    assert ops[6].error == ""  # cut off: no completion at all
    assert ledger.ready == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 2000}
    assert ledger.events == ({"kind": "disk-full", "written": 1048576},)
    # acked writes exclude the search; indeterminate are writes with no known outcome
    assert [op.index for op in ledger.acked] == [1, 2]
    assert [op.index for op in ledger.indeterminate] == [4, 6]
    assert [op.index for op in ledger.failed] == [3]


def test_the_evidence_of_an_honest_log_agrees_with_itself() -> None:
    assert channel_problems(MACHINE_OUTPUT) == []
    assert channel_problems([*MACHINE_OUTPUT, OK_6]) == []


def test_a_torn_last_record_leaves_its_op_indeterminate_and_is_allowed() -> None:
    for cut in (len(OK_6) - 30, len(OK_6) // 2 + 10, len(OK_6) - 1):
        lines = [*MACHINE_OUTPUT, OK_6[:cut]]
        op6 = parse_lines(lines).operations[-1]
        assert op6.index == 6 and op6.outcome is Outcome.INFO, cut
        assert channel_problems(lines) == [], cut  # the crash cut the source's last record
    # the same record whole completes it (the test above can fail)
    assert parse_lines([*MACHINE_OUTPUT, OK_6]).operations[-1].outcome is Outcome.OK


def test_stray_bytes_glued_to_a_record_make_it_damaged_never_silently_dropped() -> None:
    """The swallowing store of issue 17: 7 bytes without a newline, and the next ledger record glued on.
    The record is not read, and the check says which one is missing; so is a record glued in front."""
    glued_front = "LEDGER " + MACHINE_OUTPUT[4]
    lines = [*MACHINE_OUTPUT[:4], glued_front, *MACHINE_OUTPUT[5:]]
    assert 1 not in {op.index for op in parse_lines(lines).acked}
    assert any("gateway: record(s) 3 of" in p for p in channel_problems(lines))
    glued_back = MACHINE_OUTPUT[4] + "LEDGER "
    problems = channel_problems([*MACHINE_OUTPUT[:4], glued_back, *MACHINE_OUTPUT[5:]])
    assert problems == ["gateway: record 3 is longer (other bytes were glued on)"]


def test_a_torn_record_that_is_not_its_source_s_last_is_damage() -> None:
    torn = MACHINE_OUTPUT[4][:-5]
    assert channel_problems([*MACHINE_OUTPUT[:4], torn, *MACHINE_OUTPUT[5:]]) == ["gateway: record 3 is torn"]


def test_a_log_that_lost_its_beginning_or_a_record_twice_is_flagged() -> None:
    rotated = [line for line in MACHINE_OUTPUT if "LAB BOOT" not in line and '"i":1,' not in line]
    problems = channel_problems(rotated)
    assert "lost its beginning" in problems[0]
    assert any("record(s) 2-3 of" in p for p in problems)
    assert channel_problems([*MACHINE_OUTPUT, MACHINE_OUTPUT[5]]) == ["gateway: record(s) 4 appear more than once"]


def test_a_record_outside_the_frame_is_not_the_lab_s() -> None:
    """An unframed READY (what a store printing to the channel by hand would write) is never read."""
    forged = 'READY {"journal_mode":"off","synchronous":0}'
    ledger = parse_lines([*MACHINE_OUTPUT, forged, "x " + MACHINE_OUTPUT[2]])
    assert ledger.ready["journal_mode"] == "wal"
    assert read_frame(forged) == Framed()


@pytest.mark.parametrize(
    "record",
    [
        {"i": 1, "t": "done"},  # unknown record type
        {"t": "ok"},  # no index
        {"i": "x", "t": "ok"},  # index not a number
        {"i": 1, "t": "invoke", "op": "drop_table", "args": {}},  # unknown operation
        {"i": 1, "t": "invoke", "args": {}},  # no operation
    ],
)
def test_bad_records_raise_ledger_error(record: dict[str, object]) -> None:
    with pytest.raises(LedgerError):
        parse_lines([encode(record)])


def test_non_object_record_raises_ledger_error() -> None:
    with pytest.raises(LedgerError):
        parse_lines([frame("gateway", 1, "LEDGER " + json.dumps([1, "ok"]))])


def _facts(journal_mode: str | None) -> ProbeFacts:
    return ProbeFacts(db_path="state.db", exists=True, journal_mode=journal_mode)


def test_the_ledger_agrees_with_its_witnesses_and_each_disagreement_is_named() -> None:
    ledger = parse_lines(MACHINE_OUTPUT)  # READY says wal; 2 acknowledged writes (ops 1 and 2)
    honest = Witnesses(agent_acks=(2,), facts=_facts("wal"))
    assert ledger_problems(ledger, MACHINE_OUTPUT, honest) == []  # the known-good case
    second_ready = frame("gateway", 14, 'READY {"journal_mode":"off","synchronous":0}')
    assert ledger_problems(ledger, [*MACHINE_OUTPUT, second_ready], honest) == [
        "2 READY records (gateway, gateway): the store's settings are ambiguous"]
    elsewhere = [line.replace("@gateway/1/", "@cron/1/") if " READY " in line else line for line in MACHINE_OUTPUT]
    assert ledger_problems(ledger, elsewhere, honest) == ["READY came from 'cron', not the gateway"]
    no_ready = [line for line in MACHINE_OUTPUT if " READY " not in line]
    assert ledger_problems(parse_lines(no_ready), no_ready, honest)[0].endswith("the settings in force are unknown")
    more_acks = ledger_problems(ledger, MACHINE_OUTPUT, Witnesses(agent_acks=(3,), facts=_facts("wal")))
    assert more_acks == ["the fault agent counted 3 acknowledged writes when it fired, the ledger holds 2: "
                         "acknowledgements are missing from the ledger"]
    header = ledger_problems(ledger, MACHINE_OUTPUT, Witnesses(facts=_facts("delete")))
    assert header == ["READY said journal_mode=wal, the database file's header says delete"]
    # after a power cut the header may lag READY (the WAL switch was never synced): not a disagreement
    assert ledger_problems(ledger, MACHINE_OUTPUT, Witnesses(facts=_facts("delete"), page_cache_lost=True)) == []


def test_a_finish_counts_only_from_the_supervisors_finish_script() -> None:
    """The store shares a process with the channel and can write a FINISH of its own: it carries the channel's
    source, and a second one from the finish script's source carries a number past 1. Neither is the end."""
    from repro.protocol import frame, read_frame

    body = 'FINISH {"service":"session-store","exit":0,"signal":null}'
    real, forged, again = (read_frame(frame(source, seq, body)).line
                           for source, seq in (("finish-session-store", 1), ("gateway", 7), ("finish-session-store", 2)))
    assert real is not None and forged is not None and again is not None
    assert real.is_finish("session-store")
    assert not forged.is_finish("session-store") and not again.is_finish("session-store")
    assert not real.is_finish("cron")
