"""The promise table, the verdicts built on it, and the run's exit-code rule."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sqlite3
import subprocess
import sys

import pytest

from repro.errors import LabError, MachineOutputError
from repro.ledger import Ledger, LedgerError
from repro.oracle.promises import (
    CrashClass,
    JournalMode,
    LossBound,
    OracleError,
    StoreConfig,
    Synchronous,
    crash_class_of,
    promise,
)
from repro.errors import ExitCode
from repro.oracle.verdicts import Verdict, judge
from repro.protocol import Tag, format_line
from repro.report.records import TrialRecord, exit_code
from repro.verify.facts import ProbeError, ProbeFacts, StoreFacts
from repro.verify.probe import collect
from test_verify_support import FakeWorkload, standard_run, tear_page

REPO = pathlib.Path(__file__).resolve().parents[2]
P, L = CrashClass.PROCESS, CrashClass.POWER_LOSS


@pytest.mark.parametrize(
    ("mode", "sync", "crash", "lazy", "consistent", "loss"),
    [
        # process crash: durable and consistent whatever synchronous, except journal OFF/MEMORY
        ("wal", 0, P, False, True, LossBound.NONE),
        ("wal", 1, P, False, True, LossBound.NONE),
        ("delete", 0, P, False, True, LossBound.NONE),
        ("off", 2, P, False, False, LossBound.ANY),
        ("memory", 2, P, False, False, LossBound.ANY),
        # power loss
        ("wal", 0, L, False, False, LossBound.ANY),
        ("delete", 0, L, False, False, LossBound.ANY),
        ("wal", 1, L, False, True, LossBound.LAST_COMMITS),
        ("wal", 2, L, False, True, LossBound.NONE),
        ("wal", 3, L, True, True, LossBound.NONE),
        ("delete", 1, L, False, False, LossBound.ANY),
        ("delete", 2, L, False, True, LossBound.NONE),
        ("delete", 2, L, True, True, LossBound.LAST_COMMITS),
        ("delete", 3, L, True, True, LossBound.NONE),
        ("truncate", 2, L, True, True, LossBound.NONE),
        ("off", 3, L, False, False, LossBound.ANY),
    ],
)
def test_promise_table(mode: str, sync: int, crash: CrashClass, lazy: bool, consistent: bool,
                       loss: LossBound) -> None:
    p = promise(StoreConfig.parse(mode, sync), crash, lazy_dirs=lazy)
    assert (p.consistent, p.loss) == (consistent, loss)
    assert p.promised_safe == (consistent and loss is not LossBound.ANY)


def test_crash_classes_compose_to_the_strongest() -> None:
    assert crash_class_of(["sigint"]) is P
    assert crash_class_of(["disk-fill", "sigterm"]) is P
    assert crash_class_of(["oom", "power-loss"]) is L
    assert crash_class_of(["sigkill-machine", "SIGQUIT"]) is P
    with pytest.raises(OracleError):
        crash_class_of(["meteor"])


def test_config_parsing() -> None:
    assert StoreConfig.parse("WAL", "normal") == StoreConfig(JournalMode.WAL, Synchronous.NORMAL)
    assert StoreConfig.from_ready({"journal_mode": "delete", "synchronous": 3}).synchronous is Synchronous.EXTRA
    for bad in (("wal", 7), ("wall", 1), ("wal", True)):
        with pytest.raises(OracleError):
            StoreConfig.parse(*bad)
    with pytest.raises(OracleError):
        StoreConfig.from_ready({"journal_mode": "wal"})


def _trial(tmp_path: pathlib.Path, mode: str = "wal", sync: int = 2) -> tuple[FakeWorkload, Ledger]:
    w = standard_run(tmp_path / "state.db", journal_mode=mode, synchronous=sync)
    return w, w.ledger()


def _facts(w: FakeWorkload) -> ProbeFacts:
    w.close()
    return collect(w.path, open_store=False)


def test_clean_trial_passes(tmp_path: pathlib.Path) -> None:
    w, ledger = _trial(tmp_path)
    j = judge(ledger, _facts(w), ["sigkill"])
    assert (j.verdict, j.expected, j.promised_safe) == (Verdict.PASS, True, True)


def test_lab_errors(tmp_path: pathlib.Path) -> None:
    w, ledger = _trial(tmp_path)
    facts = _facts(w)
    assert judge(None, facts, ["sigkill"]).verdict is Verdict.ERROR
    assert judge(Ledger(operations=ledger.operations), facts, ["sigkill"]).reason == "the workload never reported READY"
    assert judge(ledger, None, ["sigkill"]).verdict is Verdict.ERROR
    assert judge(ledger, facts, ["sigkill"], error="engine went away").reason == "engine went away"
    assert judge(ledger, facts, ["meteor"]).reason == "unknown fault 'meteor'"
    broken = dataclasses.replace(facts, probe_error="KeyError: x")
    assert judge(ledger, broken, ["sigkill"]).verdict is Verdict.ERROR
    no_store = dataclasses.replace(facts, store=StoreFacts(opened=False, error="ModuleNotFoundError: hermes_state"))
    j = judge(ledger, no_store, ["sigkill"])
    assert (j.verdict, j.expected, j.promised_safe) == (Verdict.ERROR, False, False)


def test_corruption_under_wal_process_crash_is_a_failure(tmp_path: pathlib.Path) -> None:
    w, ledger = _trial(tmp_path)
    w.sql("UPDATE sessions SET message_count = 99 WHERE id = 's1'")  # all messages present
    j = judge(ledger, _facts(w), ["sigterm"])
    assert (j.verdict, j.expected, j.promised_safe) == (Verdict.CORRUPT, False, True)
    assert "message_count=99" in j.reason


def test_dropped_locks_void_every_promise(tmp_path: pathlib.Path) -> None:
    """The raw-open hazard: with the gateway's POSIX locks gone, the same damage is no broken promise."""
    for mode, sync in (("wal", 2), ("wal", 1), ("delete", 3)):
        p = promise(StoreConfig.parse(mode, sync), CrashClass.PROCESS, locks_dropped=True)
        assert not p.promised_safe and "POSIX locks" in p.reason
    w, ledger = _trial(tmp_path)
    w.sql("UPDATE sessions SET message_count = 99 WHERE id = 's1'")
    j = judge(ledger, _facts(w), ["sigkill"], locks_dropped=True)
    assert (j.verdict, j.expected, j.promised_safe) == (Verdict.CORRUPT, True, False)


def test_torn_page_under_journal_off_is_corrupt_but_expected(tmp_path: pathlib.Path) -> None:
    w = FakeWorkload(tmp_path / "state.db", journal_mode="delete")
    w.ready = {"journal_mode": "off", "synchronous": 2}
    w.create_session("s1")
    for n in range(300):
        w.append("s1", f"row {n} " + "q" * 400)
    ledger = w.ledger()
    w.close()
    tear_page(w.path)
    j = judge(ledger, collect(w.path, open_store=False), ["sigkill"])
    assert (j.verdict, j.expected, j.promised_safe) == (Verdict.CORRUPT, True, False)


def test_lost_acked_write_under_wal_full(tmp_path: pathlib.Path) -> None:
    w, ledger = _trial(tmp_path)
    w.sql("DELETE FROM messages WHERE id = 8")
    w.sql("UPDATE sessions SET message_count = message_count - 1 WHERE id = 's2'")
    j = judge(ledger, _facts(w), ["power-loss"])
    assert (j.verdict, j.expected, j.lost_acked) == (Verdict.LOST_ACKED, False, 1)


def _lose_last_commit(tmp_path: pathlib.Path, sync: int) -> tuple[Ledger, ProbeFacts]:
    w = FakeWorkload(tmp_path / "state.db", synchronous=sync)
    w.create_session("s1")
    w.append("s1", "kept")
    last = w.append("s1", "rolled back")
    w.sql("DELETE FROM messages WHERE id = ?", (last,))
    w.sql("UPDATE sessions SET message_count = 1")
    ledger = w.ledger()
    return ledger, _facts(w)


def test_wal_normal_power_loss_of_the_last_commit_is_expected_loss(tmp_path: pathlib.Path) -> None:
    ledger, facts = _lose_last_commit(tmp_path, sync=1)
    j = judge(ledger, facts, ["power-loss"])
    assert (j.verdict, j.expected, j.promised_safe, j.lost_acked) == (Verdict.EXPECTED_LOSS, True, True, 1)
    # the same loss after a mere process crash is a broken promise
    assert judge(ledger, facts, ["sigkill"]).verdict is Verdict.LOST_ACKED
    # and with lazy directory entries DELETE+FULL may lose it too, EXTRA may not
    assert judge(ledger, facts, ["power-loss"], config=StoreConfig.parse("delete", 2),
                 lazy_dirs=True).verdict is Verdict.EXPECTED_LOSS
    assert judge(ledger, facts, ["power-loss"], config=StoreConfig.parse("delete", 3),
                 lazy_dirs=True).verdict is Verdict.LOST_ACKED


def test_wal_normal_losing_a_write_before_a_surviving_one_is_lost_acked(tmp_path: pathlib.Path) -> None:
    w, ledger = _trial(tmp_path, sync=1)
    w.sql("DELETE FROM messages WHERE id = 2")
    w.sql("UPDATE sessions SET message_count = message_count - 1 WHERE id = 's1'")
    j = judge(ledger, _facts(w), ["power-loss"])
    assert (j.verdict, j.expected) == (Verdict.LOST_ACKED, False)
    assert "not only the last commits" in j.reason


def test_synchronous_off_power_loss_reports_loss_as_lost_acked_and_expected(tmp_path: pathlib.Path) -> None:
    ledger, facts = _lose_last_commit(tmp_path, sync=0)
    j = judge(ledger, facts, ["power-loss"])
    assert (j.verdict, j.expected, j.promised_safe) == (Verdict.LOST_ACKED, True, False)


def _record(verdict: Verdict, expected: bool, promised_safe: bool = True) -> TrialRecord:
    return TrialRecord(
        id="t", profile="fly-256", faults=("sigkill",), preset="ns506", journal_mode="wal", synchronous="1",
        seed=1, verdict=verdict, integrity="ok", acked=1, lost_acked=0, phantom=0, indeterminate=0,
        oom_killed=None, exit_code=137, duration_s=1.0, expected=expected, promised_safe=promised_safe,
        detail="", artifacts_dir=None, replay="repro replay runs/x t",
    )


def test_exit_code_rule() -> None:
    ok = _record(Verdict.PASS, True)
    control = _record(Verdict.CORRUPT, True, promised_safe=False)
    allowed = _record(Verdict.EXPECTED_LOSS, True)
    failed = _record(Verdict.LOST_ACKED, False)
    lab = _record(Verdict.ERROR, False, promised_safe=False)
    assert exit_code([ok, control, allowed]) is ExitCode.OK
    assert exit_code([ok, failed]) is ExitCode.TRIAL_FAILED
    assert exit_code([ok, lab]) is ExitCode.LAB_FAILED
    assert exit_code([failed, lab]) is ExitCode.LAB_FAILED
    assert exit_code([]) is ExitCode.LAB_FAILED


def _compose_judge(tmp_path: pathlib.Path, ledger_file: pathlib.Path, db: pathlib.Path,
                   *faults: str) -> tuple[int, dict[str, object]]:
    """`python3 -m repro.oracle` as the Compose verify service runs it in the restarted machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_STATE_")}
    cmd = [sys.executable, "-m", "repro.oracle", "--ledger", str(ledger_file), "--db", str(db)]
    for fault in faults:
        cmd += ["--fault", fault]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    return proc.returncode, json.loads(lines[0])


def test_compose_judge_exit_codes(tmp_path: pathlib.Path) -> None:
    w = standard_run(tmp_path / "state.db")
    ledger_file = tmp_path / "ledger.log"
    ledger_file.write_text("\n".join(w.log()) + "\n")
    w.sql("UPDATE sessions SET message_count = 99 WHERE id = 's1'")
    w.close()
    code, out = _compose_judge(tmp_path, ledger_file, w.path, "disk-fill", "sigterm")
    assert (code, out["verdict"], out["expected"], out["acked"]) == (1, "corrupt", False, 18)
    conn = sqlite3.connect(w.path)
    conn.execute("UPDATE sessions SET message_count = 6 WHERE id = 's1'")
    conn.commit()
    conn.close()
    code, out = _compose_judge(tmp_path, ledger_file, w.path, "sigkill")
    assert (code, out["verdict"], out["lost_acked"], out["journal_mode"]) == (0, "pass", 0, "wal")
    code, out = _compose_judge(tmp_path, tmp_path / "no-ledger.log", w.path)
    assert (code, out["verdict"]) == (3, "error")
    gapped = tmp_path / "gapped.log"  # a ledger record went missing: never judged
    gapped.write_text("\n".join(w.log()[:4] + w.log()[5:]) + "\n")
    code, out = _compose_judge(tmp_path, gapped, w.path, "sigkill")
    assert (code, out["verdict"]) == (3, "error") and "gateway: record(s) 4 of" in out["reason"]


def test_oracle_and_verify_errors_are_lab_errors() -> None:
    assert issubclass(OracleError, LabError)
    assert issubclass(ProbeError, MachineOutputError) and issubclass(LedgerError, MachineOutputError)
