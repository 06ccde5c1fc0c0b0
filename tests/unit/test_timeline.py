"""A trial's timeline from the engine's timestamped log: writes over time, marks, lost writes; compact in report.json."""

from __future__ import annotations

import dataclasses
import json

from repro.report.outcome import report_json
from repro.oracle.verdicts import Verdict
from repro.report.records import RunResult, TrialRecord
from repro.report.timeline import MAX_POINTS, MarkKind, Timeline, build_timeline, sample, split_stamp
from test_report import rec, run_of

from framing import framed
from repro.protocol import frame


def stamped(seconds: float, text: str) -> str:
    whole = int(seconds)
    return f"2026-11-29T10:00:{whole:02d}.{round((seconds - whole) * 1e9):09d}Z {text}"


def log(acks: int = 100, failed: int = 5) -> list[str]:
    lines = [stamped(0.0, "LAB BOOT {}"), stamped(1.0, 'READY {"journal_mode":"wal","synchronous":1}')]
    t = 1.0
    for i in range(1, acks + 1):
        t += 0.01
        lines += [stamped(t, f'LEDGER {{"i":{2 * i},"t":"invoke","op":"append_message","args":{{}}}}'),
                  stamped(t + 0.002, f'LEDGER {{"i":{2 * i},"t":"ok","result":{{"id":{i}}}}}'),
                  stamped(t + 0.003, f'LEDGER {{"i":{2 * i + 1},"t":"invoke","op":"search_messages","args":{{}}}}'),
                  stamped(t + 0.004, f'LEDGER {{"i":{2 * i + 1},"t":"ok","result":{{"hits":0}}}}')]
    lines.append(stamped(t + 0.01, 'EVENT {"kind":"disk-full","free":0}'))
    for j in range(failed):
        index = 10_000 + j
        lines += [stamped(t + 0.02 + j * 0.01, f'LEDGER {{"i":{index},"t":"invoke","op":"append_message","args":{{}}}}'),
                  stamped(t + 0.021 + j * 0.01, f'LEDGER {{"i":{index},"t":"fail","err":"DiskFullError: full"}}')]
    lines += [stamped(t + 0.2, 'EVENT {"kind":"stop-signal","signal":15}'),
              stamped(t + 0.3, 'FINISH {"service":"session-store","exit":0,"signal":0}'),
              "a line the engine did not stamp"]
    lines = framed(lines)
    return [*lines, stamped(t + 0.31, frame("gateway", 10_000, 'LEDGER {"i":1,"t":"o')[:-3])]  # torn by the crash


def test_writes_marks_and_lost_writes_come_from_the_stamps() -> None:
    tl = build_timeline(log(), faults=[("sigterm", 100, None)], lost_ops=[198, 200],
                        files=[("state.db", 4096), ("state.db-wal", 8192)])
    assert tl is not None
    assert tl.acked[0] == (0.0, 0) and tl.acked[-1][1] == 100  # searches are not writes
    assert len(tl.acked) <= MAX_POINTS and tl.failed[-1][1] == 5
    kinds = [m.kind for m in tl.marks]
    assert kinds == [MarkKind.FAULT, MarkKind.DISK_FULL, MarkKind.STOP, MarkKind.END]
    fault = tl.marks[0]
    assert fault.label == "sigterm (fired after ack 100)" and abs(fault.t - tl.acked[-1][0]) < 1e-9
    assert tl.lost_total == 2 and len(tl.lost) == 2 and tl.lost[0] < tl.lost[1] <= tl.acked[-1][0]
    assert abs(tl.duration - 1.31) < 0.02 and dict(tl.files)["state.db-wal"] == 8192


def test_a_fault_is_placed_when_the_agent_fired_not_at_its_trigger_ack() -> None:
    """sigkill-machine@random=MS fires after a wait whatever the store managed (here at ack 1): the mark goes where
    the agent's clock says (0.5 s after READY), not at the first acknowledged write."""
    ready = split_stamp(stamped(1.0, "x"))[0]
    assert ready is not None
    tl = build_timeline(log(), faults=[("sigkill-machine", 1, ready + 0.5), ("sigterm", 100, None)])
    assert tl is not None
    placed = {m.label: m.t for m in tl.marks if m.kind is MarkKind.FAULT}
    assert placed["sigkill-machine (fired after ack 1)"] == 0.5 and abs(placed["sigkill-machine (fired after ack 1)"]
                                                                          - tl.acked[1][0]) > 0.4
    assert abs(placed["sigterm (fired after ack 100)"] - tl.acked[-1][0]) < 1e-9  # no time: after its ack


def test_a_log_without_stamps_or_ready_line_has_no_timeline() -> None:
    assert build_timeline(['READY {"journal_mode":"wal"}', 'LEDGER {"i":1,"t":"invoke"}']) is None
    assert build_timeline([stamped(1.0, "LAB BOOT {}")]) is None
    assert split_stamp("no stamp here") == (None, "no stamp here")
    assert split_stamp("2026-13-99T99:00:00Z x") == (None, "2026-13-99T99:00:00Z x")


def test_sample_keeps_ends_and_limits_points() -> None:
    points = [(float(i), i) for i in range(1000)]
    out = sample(points, 10)
    assert len(out) == 10 and out[0] == points[0] and out[-1] == points[-1]
    assert sample(points[:5], 10) == tuple(points[:5])


def test_timeline_round_trips_in_the_record_and_stays_small() -> None:
    tl = build_timeline(log(acks=3000, failed=400), faults=[("disk-fill", 3000, None)], lost_ops=list(range(2, 800, 2)))
    assert tl is not None and Timeline.from_dict(json.loads(json.dumps(tl.to_dict()))) == tl
    record = dataclasses.replace(rec(1, Verdict.LOST_ACKED, expected=False), timeline=tl)
    assert TrialRecord.from_json(record.to_json()) == record
    passing = dataclasses.replace(rec(2, Verdict.PASS), timeline=dataclasses.replace(tl, lost=(), lost_total=0))
    text = report_json(run_of(passing))
    assert RunResult.from_json(text) == run_of(passing)
    assert len(text) < 5000, len(text)  # a trial of 3,000 writes, record and timeline: under 5 KB of report.json


def test_a_writer_s_unusable_store_is_a_mark_naming_the_writer() -> None:
    lines = log(acks=10, failed=0)
    lines.insert(-4, stamped(1.3, frame("cron", 1, 'EVENT {"kind":"store-unusable","role":"cron","i":5,"since":3,"refused":50}')))
    lines.insert(-4, stamped(1.35, frame("gateway", 999, 'EVENT {"kind":"store-recovered","role":"gateway","i":9,"probes":2}')))
    tl = build_timeline(lines)
    assert tl is not None
    marks = {m.kind: m.label for m in tl.marks}
    assert marks[MarkKind.STORE_UNUSABLE] == "store unusable (cron)"
    assert marks[MarkKind.STORE_RECOVERED] == "store usable again (gateway)"
    assert Timeline.from_dict(json.loads(json.dumps(tl.to_dict()))) == tl
    from repro.report import figures  # matplotlib: only this test draws
    assert "store unusable (cron)" in figures.timeline(tl, "trial")
