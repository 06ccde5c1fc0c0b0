"""The ledger read back from machine output: ok / fail / info / unknown, exactly as the workload left it."""

from __future__ import annotations

import json

import pytest

from repro.ledger import LedgerError, OpKind, Outcome, encode, parse_lines

# What `docker logs` of a machine looks like: s6 noise, READY, EVENT, FINISH and ledger lines.
MACHINE_OUTPUT = [
    "s6-svscan: info: starting",
    'READY {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 2000}',
    encode({"i": 1, "t": "invoke", "op": "create_session",
            "args": {"session_id": "s1", "source": "cli", "model": "m"}}),
    encode({"i": 1, "t": "ok", "result": {}}),
    encode({"i": 2, "t": "invoke", "op": "append_message",
            "args": {"session_id": "s1", "role": "user", "sha": "ab", "length": 2, "tool_calls": False}}),
    "s6-supervise npm-cache: warning: unable to spawn ./run - waiting 10 seconds",
    'EVENT {"kind": "disk-full", "written": 1048576}',
    encode({"i": 2, "t": "ok", "result": {"id": 7}}) + "\r\n",
    encode({"i": 3, "t": "invoke", "op": "append_message", "args": {"session_id": "s1"}}),
    encode({"i": 3, "t": "fail", "err": "OperationalError: database or disk is full"}),
    encode({"i": 4, "t": "invoke", "op": "update_token_counts", "args": {"session_id": "s1"}}),
    encode({"i": 4, "t": "info", "err": "OperationalError: disk I/O error"}),
    encode({"i": 5, "t": "invoke", "op": "search_messages", "args": {"query": "disk"}}),
    encode({"i": 5, "t": "ok", "result": {"hits": 3}}),
    encode({"i": 6, "t": "invoke", "op": "end_session", "args": {"session_id": "s1", "end_reason": "timeout"}}),
    'FINISH {"service":"session-store","exit":256,"signal":9}',
]


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


def test_prefixed_lines_are_read() -> None:
    """The engine or s6 may put something before the tag (a timestamp, a service name)."""
    lines = ["2024-05-01T10:00:00Z " + encode({"i": 1, "t": "invoke", "op": "create_session", "args": {}}),
             "session-store | " + encode({"i": 1, "t": "ok", "result": {}})]
    op, = parse_lines(lines).operations
    assert op.outcome is Outcome.OK


def test_torn_last_line_leaves_its_op_indeterminate() -> None:
    ok_line = encode({"i": 6, "t": "ok", "result": {}})
    for cut in (len("LEDGER ") + 1, len(ok_line) // 2, len(ok_line) - 1):
        ledger = parse_lines([*MACHINE_OUTPUT[:-1], ok_line[:cut]])
        op6 = ledger.operations[-1]
        assert op6.index == 6 and op6.outcome is Outcome.INFO, cut
    # the same line whole completes it (the test above can fail)
    assert parse_lines([*MACHINE_OUTPUT[:-1], ok_line]).operations[-1].outcome is Outcome.OK


def test_torn_line_glued_to_the_next_service_line() -> None:
    """s6's finish script prints after the kill, on the same line as the torn ledger record."""
    torn = encode({"i": 6, "t": "ok", "result": {}})[:20] + 'FINISH {"service":"session-store"}'
    ledger = parse_lines([*MACHINE_OUTPUT[:-1], torn])
    assert ledger.operations[-1].outcome is Outcome.INFO


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
        parse_lines(["LEDGER " + json.dumps([1, "ok"])])
